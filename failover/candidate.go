package failover

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// Candidate is a replica the fleet may promote. Candidates are stored in
// the log (Meta key MetaCandidatePrefix+Addr) so that every leader knows
// them; they come from --failover-candidate flags or the admin API.
type Candidate = api.Candidate

// ParseCandidate reads a --failover-candidate value:
// "host:port[,priority=N][,never-promote][,user=NAME][,credential=NAME]".
func ParseCandidate(s string) (Candidate, error) {
	parts := strings.Split(s, ",")
	c := Candidate{Addr: strings.TrimSpace(parts[0])}
	if c.Addr == "" || !strings.Contains(c.Addr, ":") {
		return c, fmt.Errorf("failover: candidate %q: want host:port[,priority=N][,never-promote][,user=NAME][,credential=NAME]", s)
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch k {
		case "priority":
			n, err := strconv.Atoi(v)
			if err != nil {
				return c, fmt.Errorf("failover: candidate %q: priority %q is not a number", s, v)
			}
			c.Priority = n
		case "never-promote", "never_promote":
			c.NeverPromote = v == "" || v == "true" || v == "1"
		case "user":
			c.User = v
		case "credential":
			c.Credential = v
		case "password":
			return c, fmt.Errorf("failover: candidate %q: a password is never given here (it would be stored in the log): name a --failover-credentials-file line with credential=NAME", c.Addr)
		default:
			return c, fmt.Errorf("failover: candidate %q: unknown option %q", s, k)
		}
	}
	return c, nil
}

// CandidateState is one candidate as observed just now.
type CandidateState = api.CandidateState

// Judge fills Eligible and Reason from the observations. Pure.
func Judge(c CandidateState) CandidateState {
	c.Eligible, c.Reason = false, ""
	switch {
	case c.IsSource:
		c.Reason = "it is the current source"
	case c.NeverPromote:
		c.Reason = "never-promote"
	case !c.Reachable:
		c.Reason = "unreachable: " + c.Error
	case c.Error != "":
		c.Reason = c.Error
	case len(c.Errant) > 0:
		c.Reason = fmt.Sprintf("errant GTIDs the log does not hold: %s", strings.Join(c.Errant, ","))
	default:
		c.Eligible = true
	}
	return c
}

// Choose picks the candidate to promote: among the eligible ones, the one
// that has applied the most of the log (fewest missing), then the highest
// priority, then the lowest address (so every leader chooses alike). With
// to set, only that candidate is considered. Pure. The error says why
// nothing can be chosen, naming each candidate's reason.
func Choose(cands []CandidateState, to string) (CandidateState, error) {
	var ok []CandidateState
	var why []string
	for _, c := range cands {
		c = Judge(c)
		if to != "" && c.Addr != to {
			continue
		}
		if !c.Eligible {
			why = append(why, c.Addr+": "+c.Reason)
			continue
		}
		ok = append(ok, c)
	}
	if len(ok) == 0 {
		switch {
		case to != "" && len(why) == 0:
			return CandidateState{}, fmt.Errorf("%w: %s is not a configured candidate (add it: binlogctl candidates add %s)", ErrNoCandidate, to, to)
		case len(why) == 0:
			return CandidateState{}, fmt.Errorf("%w: no candidates are configured (--failover-candidate or binlogctl candidates add)", ErrNoCandidate)
		}
		return CandidateState{}, fmt.Errorf("%w: %s", ErrNoCandidate, strings.Join(why, "; "))
	}
	sort.SliceStable(ok, func(i, j int) bool {
		a, b := ok[i], ok[j]
		if a.Missing != b.Missing {
			return a.Missing < b.Missing
		}
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return a.Addr < b.Addr
	})
	return ok[0], nil
}
