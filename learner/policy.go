package learner

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// Operations on the membership.
const (
	OpAddLearner     = "add-learner"
	OpPromote        = "promote"
	OpDemote         = "demote"
	OpRemove         = "remove"
	OpTransferLeader = "transfer-leader"
	OpWeight         = "weight"
)

// Change is one requested membership operation.
type Change struct {
	Op   string
	ID   uint64
	Addr string // add-learner: the new member's raft address
	// AdminAddr (add-learner, optional): the new member's admin API, so
	// that its catch-up progress shows before it registers itself.
	AdminAddr string
	NewID     uint64 // demote: the id the member rejoins with as a learner
	Weight    int    // weight
	// By names who asked (the admin caller, for the record a removed
	// member shows).
	By string
}

// Sentinel classes of refusals (errors.Is).
var (
	// ErrBadInput: the request itself is malformed (an address, an id).
	ErrBadInput = errors.New("learner: bad request")
	// ErrUnknownMember: no such member in the group.
	ErrUnknownMember = errors.New("learner: unknown member")
	// ErrUnsafe: the change would endanger the quorum or the log.
	ErrUnsafe = errors.New("learner: unsafe change refused")
)

// RefusedError is a refusal with its reason; it wraps one of the sentinels.
type RefusedError struct {
	Class  error
	Reason string
}

func (e *RefusedError) Error() string { return e.Reason }
func (e *RefusedError) Unwrap() error { return e.Class }

func refuse(class error, format string, args ...any) error {
	return &RefusedError{Class: class, Reason: fmt.Sprintf(format, args...)}
}

// ValidateAddr checks a raft address: host:port with a numeric port.
func ValidateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return refuse(ErrBadInput, "address %q is not host:port: %v", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return refuse(ErrBadInput, "address %q: the port must be a number from 1 to 65535", addr)
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return refuse(ErrBadInput, "address %q: the host is empty or invalid", addr)
	}
	return nil
}

// quorum is the majority of n voters.
func quorum(n int) int { return n/2 + 1 }

// Check decides whether a change is safe on the group as v shows it. It
// returns nil or a *RefusedError naming the reason. Pure.
func Check(v View, c Change, lim Limits) error {
	if c.ID == 0 {
		return refuse(ErrBadInput, "member ids are positive integers")
	}
	for _, r := range v.Removed {
		if r == c.ID && c.Op == OpAddLearner {
			return refuse(ErrBadInput, "member id %d was removed from the group and can never be used again; pick a new id", c.ID)
		}
	}
	m, known := v.Get(c.ID)
	if c.Op == OpAddLearner {
		if known {
			return refuse(ErrBadInput, "member id %d is already in the group (a %s at %s)", c.ID, m.Role, m.RaftAddr)
		}
		if err := ValidateAddr(c.Addr); err != nil {
			return err
		}
		for _, o := range v.Members {
			if o.RaftAddr == c.Addr {
				return refuse(ErrBadInput, "raft address %s is already used by member %d", c.Addr, o.ID)
			}
		}
		return needQuorum(v, "adding a learner")
	}
	if !known {
		return refuse(ErrUnknownMember, "no member %d in the group (members: %s)", c.ID, ids(v))
	}
	switch c.Op {
	case OpPromote:
		if m.Role != RoleLearner {
			return refuse(ErrBadInput, "member %d is already a logger", c.ID)
		}
		if err := caughtUp(v, m, lim, "promoted"); err != nil {
			return err
		}
		// The promoted member counts as a new voter: the reachable voters
		// after the change must still be a majority.
		live, n := liveLoggers(v, 0)
		if live+1 < quorum(n+1) {
			return refuse(ErrUnsafe, "promoting member %d would need %d reachable loggers of %d, and only %d are (with it)", c.ID, quorum(n+1), n+1, live+1)
		}
		return needQuorum(v, "promoting a learner")
	case OpDemote, OpRemove:
		if c.Op == OpDemote {
			if m.Role != RoleLogger {
				return refuse(ErrBadInput, "member %d is a learner already", c.ID)
			}
			if c.NewID == 0 || c.NewID == c.ID {
				return refuse(ErrBadInput, "a demoted logger rejoins as a learner under a new id (the group never reuses an id); give new_id")
			}
			if _, dup := v.Get(c.NewID); dup {
				return refuse(ErrBadInput, "member id %d is already in the group", c.NewID)
			}
			for _, r := range v.Removed {
				if r == c.NewID {
					return refuse(ErrBadInput, "member id %d was removed and can never be used again", c.NewID)
				}
			}
		}
		if m.Role == RoleLearner {
			return nil // NB: learners do not count toward the quorum
		}
		if err := needQuorum(v, "changing the loggers"); err != nil {
			return err
		}
		live, n := liveLoggers(v, c.ID)
		if n == 0 {
			return refuse(ErrUnsafe, "member %d is the last logger: the group would have no voter", c.ID)
		}
		if live < quorum(n) {
			return refuse(ErrUnsafe, "removing logger %d would leave %d loggers of which only %d are reachable, below their quorum of %d",
				c.ID, n, live, quorum(n))
		}
		return nil
	case OpTransferLeader:
		if m.Role != RoleLogger {
			return refuse(ErrBadInput, "member %d is a learner: only a logger can lead", c.ID)
		}
		if m.Leader {
			return nil
		}
		return caughtUp(v, m, lim, "made the leader")
	case OpWeight:
		if c.Weight < 0 || c.Weight > 1000 {
			return refuse(ErrBadInput, "a weight is between 0 and 1000, got %d", c.Weight)
		}
		return nil
	}
	return refuse(ErrBadInput, "unknown operation %q", c.Op)
}

func caughtUp(v View, m Member, lim Limits, what string) error {
	switch {
	case !v.Complete:
		return refuse(ErrUnsafe, "member %d cannot be %s: the leader's progress is unknown right now (no leader, or it does not answer)", m.ID, what)
	case !m.Reachable:
		return refuse(ErrUnsafe, "member %d cannot be %s: it is unreachable (%s)", m.ID, what, orDash(m.Error))
	case !m.CaughtUp:
		return refuse(ErrUnsafe, "member %d cannot be %s: it is far behind the leader (%d entries, %s; caught up is within %d entries and %s)",
			m.ID, what, m.LagEntries, Bytes(m.LagBytes), lim.Entries, Bytes(lim.Bytes))
	}
	return nil
}

func needQuorum(v View, what string) error {
	live, n := liveLoggers(v, 0)
	if n > 0 && live < quorum(n) {
		return refuse(ErrUnsafe, "%s needs a quorum: only %d of %d loggers are reachable (need %d)", what, live, n, quorum(n))
	}
	return nil
}

// liveLoggers counts the loggers but except, and the reachable ones.
func liveLoggers(v View, except uint64) (live, n int) {
	for _, m := range v.Loggers() {
		if m.ID == except {
			continue
		}
		n++
		if m.Reachable {
			live++
		}
	}
	return live, n
}

func ids(v View) string {
	var s []string
	for _, m := range v.Members {
		s = append(s, fmt.Sprintf("%d (%s)", m.ID, m.Role))
	}
	return strings.Join(s, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "no answer"
	}
	return s
}

// NextID returns the smallest id above every member's and every removed
// id: a safe id for a new member.
func NextID(v View) uint64 {
	var n uint64
	for _, m := range v.Members {
		n = max(n, m.ID)
	}
	for _, r := range v.Removed {
		n = max(n, r)
	}
	return n + 1
}

// Handoff says whether the leader should hand leadership over, and to
// whom: the heaviest caught-up reachable logger, preferring members that
// hold the whole log (no local retention beyond the group's) over log-only
// ones, because a new member's snapshot comes from the leader. The current
// leader keeps leading unless the best candidate is strictly better. Pure.
func Handoff(v View) (to uint64, reason string) {
	leader, ok := v.Get(v.Leader)
	if !ok || !v.Complete {
		return 0, ""
	}
	type cand struct {
		m    Member
		full bool
	}
	rank := func(c cand) [2]int {
		f := 0
		if c.full {
			f = 1
		}
		return [2]int{f, c.m.Weight}
	}
	better := func(a, b [2]int) bool { return a[0] > b[0] || (a[0] == b[0] && a[1] > b[1]) }
	var cs []cand
	for _, m := range v.Loggers() {
		if m.ID == leader.ID || !m.CaughtUp || !m.Reachable || m.Weight <= 0 {
			continue
		}
		cs = append(cs, cand{m, !m.Retention.Limited()})
	}
	if len(cs) == 0 {
		return 0, ""
	}
	sort.Slice(cs, func(i, j int) bool {
		ri, rj := rank(cs[i]), rank(cs[j])
		if ri != rj {
			return better(ri, rj)
		}
		return cs[i].m.ID < cs[j].m.ID
	})
	best := cs[0]
	self := cand{leader, !leader.Retention.Limited()}
	if leader.Weight > 0 && !better(rank(best), rank(self)) {
		return 0, ""
	}
	switch {
	case best.full && !self.full:
		reason = fmt.Sprintf("member %d holds the whole log and this leader is log-only", best.m.ID)
	default:
		reason = fmt.Sprintf("member %d weighs %d, this leader %d", best.m.ID, best.m.Weight, leader.Weight)
	}
	return best.m.ID, reason
}
