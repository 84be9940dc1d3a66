package failover

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	u2 = "4e11fa47-71ca-11e1-9e33-c80aa9429562"
)

func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		flavor, log, have string
		want              uint64
	}{
		{"mysql", u1 + ":1-10", u1 + ":1-10", 0},
		{"mysql", u1 + ":1-10", u1 + ":1-7", 3},
		{"mysql", u1 + ":1-10," + u2 + ":1-5", u1 + ":1-10", 5},
		{"mysql", u1 + ":1-10", "", 10},
		{"mysql", u1 + ":1-10", u1 + ":1-20," + u2 + ":1", 0},
		{"mysql", u1 + ":1-10", u1 + ":1-3:5-10", 1},
		{"mariadb", "0-1-100", "0-1-100", 0},
		{"mariadb", "0-1-100", "0-1-90", 10},
		{"mariadb", "0-2-105", "0-1-100", 5}, // NB: by seq: another server continued the domain
		{"mariadb", "0-1-100,1-1-5", "0-1-100", 5},
		{"mariadb", "0-1-100", "", 100},
		{"mariadb", "0-1-100", "0-1-120", 0},
	} {
		got, err := Missing(tc.flavor, tc.log, tc.have)
		if err != nil || got != tc.want {
			t.Errorf("Missing(%s, %q, %q) = %d, %v; want %d", tc.flavor, tc.log, tc.have, got, err, tc.want)
		}
	}
	if _, err := Missing("mysql", "junk", ""); err == nil {
		t.Error("Missing accepted a bad set")
	}
}

func TestExtra(t *testing.T) {
	inLog := map[string]bool{"0-1-100": true, "0-1-99": true, "0-2-101": true}
	lookup := func(g string) (bool, error) { return inLog[g], nil }
	for _, tc := range []struct {
		name                     string
		flavor, log, start, held string
		want                     []string
	}{
		{"mysql none", "mysql", u1 + ":1-10", "", u1 + ":1-10", nil},
		{"mysql behind", "mysql", u1 + ":1-10", "", u1 + ":1-5", nil},
		{"mysql errant", "mysql", u1 + ":1-10", "", u1 + ":1-10," + u2 + ":1-2", []string{u2 + ":1-2"}},
		{"mysql unacked", "mysql", u1 + ":1-10," + u2 + ":1-3", "", u1 + ":1-14", []string{u1 + ":11-14"}},
		{"mariadb in log", "mariadb", "0-2-101", "", "0-1-100,0-2-101", nil},
		{"mariadb errant local write", "mariadb", "0-2-101", "", "0-1-100,0-3-101", []string{"0-3-101"}},
		{"mariadb diverged", "mariadb", "0-2-101", "", "0-1-101", []string{"0-1-101"}},
		{"mariadb before the log", "mariadb", "0-2-101", "0-1-50", "0-1-40", nil},
		{"mariadb unknown domain", "mariadb", "0-2-101", "", "5-1-3", []string{"5-1-3"}},
	} {
		got, err := Extra(tc.flavor, tc.log, tc.start, tc.held, lookup)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Extra = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

func TestChoose(t *testing.T) {
	c := func(addr string, missing uint64, prio int, mods ...func(*CandidateState)) CandidateState {
		s := CandidateState{Candidate: Candidate{Addr: addr, Priority: prio}, Reachable: true, Missing: missing}
		for _, f := range mods {
			f(&s)
		}
		return s
	}
	never := func(s *CandidateState) { s.NeverPromote = true }
	errant := func(s *CandidateState) { s.Errant = []string{"0-9-1"} }
	down := func(s *CandidateState) { s.Reachable, s.Error = false, "refused" }
	src := func(s *CandidateState) { s.IsSource = true }
	for _, tc := range []struct {
		name  string
		cands []CandidateState
		to    string
		want  string // "" = ErrNoCandidate
		why   string
	}{
		{"most caught up", []CandidateState{c("a:1", 5, 0), c("b:1", 0, 0), c("c:1", 2, 9)}, "", "b:1", ""},
		{"priority breaks ties", []CandidateState{c("a:1", 0, 1), c("b:1", 0, 5)}, "", "b:1", ""},
		{"address breaks ties", []CandidateState{c("b:1", 0, 0), c("a:1", 0, 0)}, "", "a:1", ""},
		{"never promote", []CandidateState{c("a:1", 0, 0, never), c("b:1", 9, 0)}, "", "b:1", ""},
		{"errant never", []CandidateState{c("a:1", 0, 9, errant), c("b:1", 9, 0)}, "", "b:1", ""},
		{"unreachable", []CandidateState{c("a:1", 0, 0, down), c("b:1", 3, 0)}, "", "b:1", ""},
		{"not the source", []CandidateState{c("a:1", 0, 0, src), c("b:1", 3, 0)}, "", "b:1", ""},
		{"none eligible", []CandidateState{c("a:1", 0, 0, never), c("b:1", 0, 0, errant)}, "", "", "errant"},
		{"none configured", nil, "", "", "no candidates"},
		{"to", []CandidateState{c("a:1", 0, 0), c("b:1", 4, 0)}, "b:1", "b:1", ""},
		{"to ineligible", []CandidateState{c("a:1", 0, 0), c("b:1", 0, 0, errant)}, "b:1", "", "errant"},
		{"to unknown", []CandidateState{c("a:1", 0, 0)}, "z:1", "", "not a configured candidate"},
	} {
		got, err := Choose(tc.cands, tc.to)
		if tc.want == "" {
			if !errors.Is(err, ErrNoCandidate) || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("%s: got %v, %v; want ErrNoCandidate mentioning %q", tc.name, got.Addr, err, tc.why)
			}
			continue
		}
		if err != nil || got.Addr != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got.Addr, err, tc.want)
		}
	}
}

func TestAnalyseDecide(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	lease := 3 * time.Second
	// NB: two fresh failed probes and no other member: the lease rules of
	// lease_test.go are met wherever the lease has run out.
	base := Observation{Now: t0.Add(time.Minute), Leader: true, LeaderSince: t0, Epoch: 1, Source: "s:1", Lease: lease,
		FailedProbes: []time.Time{t0.Add(59 * time.Second), t0.Add(59500 * time.Millisecond)}}
	with := func(f func(*Observation)) Observation { o := base; f(&o); return o }
	live := Policy{Auto: true, AntiFlap: 5 * time.Minute}
	for _, tc := range []struct {
		name   string
		obs    Observation
		pol    Policy
		want   Verdict
		action Action
	}{
		{"not leader", with(func(o *Observation) { o.Leader = false }), live, VerdictNotLeader, ActionNone},
		{"no source", with(func(o *Observation) { o.Epoch, o.Source = 0, "" }), live, VerdictNoSource, ActionNone},
		{"healthy", with(func(o *Observation) { o.LastContact = o.Now.Add(-200 * time.Millisecond) }), live, VerdictHealthy, ActionNone},
		{"suspect", with(func(o *Observation) { o.LastContact = o.Now.Add(-2 * time.Second) }), live, VerdictSuspect, ActionNone},
		{"dead", with(func(o *Observation) { o.LastContact = o.Now.Add(-4 * time.Second) }), live, VerdictDeadSource, ActionFailover},
		{"new leader waits a lease", with(func(o *Observation) { o.LeaderSince = o.Now.Add(-time.Second) }), live, VerdictLeaseGrace, ActionNone},
		{"new leader after a lease", with(func(o *Observation) { o.LeaderSince = o.Now.Add(-lease) }), live, VerdictDeadSource, ActionFailover},
		{"auto off", with(func(o *Observation) {}), Policy{}, VerdictDeadSource, ActionBlocked},
		{"anti-flap", with(func(o *Observation) {}), Policy{Auto: true, AntiFlap: 5 * time.Minute, LastFailover: t0.Add(58 * time.Second)}, VerdictDeadSource, ActionBlocked},
		{"after anti-flap", with(func(o *Observation) {}), Policy{Auto: true, AntiFlap: 5 * time.Second, LastFailover: t0}, VerdictDeadSource, ActionFailover},
		{"vetoed", with(func(o *Observation) {}), Policy{Auto: true, VetoedUntil: t0.Add(2 * time.Minute)}, VerdictDeadSource, ActionBlocked},
		{"not armed: no account", with(func(o *Observation) {}), Policy{Auto: true, Unarmed: (&Config{}).unarmed()}, VerdictDeadSource, ActionBlocked},
		{"armed by a credentials file", with(func(o *Observation) {}), Policy{Auto: true, Unarmed: (&Config{CredentialsFile: "/c"}).unarmed()}, VerdictDeadSource, ActionFailover},
		{"in progress", with(func(o *Observation) { o.Op = &Operation{Kind: KindFailover, Step: StepFenced, FromEpoch: 1} }), live, VerdictInProgress, ActionResume},
		{"finished op", with(func(o *Observation) {
			o.Op = &Operation{Step: StepDone}
			o.LastContact = o.Now
		}), live, VerdictHealthy, ActionNone},
		{"stale op, source answers", with(func(o *Observation) {
			o.Op = &Operation{Kind: KindFailover, Step: StepStarted, FromEpoch: 1}
			o.LastContact = o.Now
		}), live, VerdictStaleOperation, ActionAbort},
		{"unfenced op, source silent", with(func(o *Observation) { o.Op = &Operation{Kind: KindFailover, Step: StepStarted, FromEpoch: 1} }), live, VerdictInProgress, ActionResume},
		{"fenced without op", with(func(o *Observation) { o.Source, o.Fenced = "s:1", true }), live, VerdictDeadSource, ActionFailover},
	} {
		v := Analyse(tc.obs)
		d := Decide(v, tc.obs.Now, tc.pol)
		if v != tc.want || d.Action != tc.action {
			t.Errorf("%s: %s/%s (%s); want %s/%s", tc.name, v, d.Action, d.Reason, tc.want, tc.action)
		}
	}
}

func TestParseCandidate(t *testing.T) {
	c, err := ParseCandidate("10.0.0.1:3306,priority=5,never-promote,user=admin")
	if err != nil || c != (Candidate{Addr: "10.0.0.1:3306", Priority: 5, NeverPromote: true, User: "admin"}) {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{"", "nohost", "a:1,priority=x", "a:1,color=red"} {
		if _, err := ParseCandidate(bad); err == nil {
			t.Errorf("ParseCandidate(%q) accepted", bad)
		}
	}
}

func TestRejoinAdvice(t *testing.T) {
	r := RejoinReport{Server: "s:1", Flavor: "mariadb", Unacknowledged: []string{"0-1-5"}}
	if a := rejoinAdvice(r); !strings.Contains(a, "flashback") || !strings.Contains(a, "0-1-5") {
		t.Error(a)
	}
	r.Safe, r.Unacknowledged = true, nil
	if a := rejoinAdvice(r); !strings.Contains(a, "binlogctl rejoin s:1") {
		t.Error(a)
	}
}
