package failover

import (
	"strings"
	"testing"
	"time"
)

// The lease expires only on evidence: each case is one moment on a fake
// clock (t0 + seconds), with the leader's contact, stall, probes and the
// other members' answers as of then.
func TestLeaseEvidence(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	probes := func(ss ...float64) []time.Time {
		var out []time.Time
		for _, s := range ss {
			out = append(out, at(s))
		}
		return out
	}
	const lease = 3 * time.Second
	// The leader leads since t0; the source last answered at t0+60 s.
	base := Observation{Leader: true, LeaderSince: t0, Epoch: 7, Source: "src:3306", Lease: lease, LastContact: at(60)}
	live := Policy{Auto: true, AntiFlap: 5 * time.Minute}
	for _, tc := range []struct {
		name   string
		now    float64
		f      func(o *Observation)
		want   Verdict
		action Action
	}{
		{"healthy: contact within a third of the lease", 60.9, nil, VerdictHealthy, ActionNone},
		{"suspect: silent, lease held", 62, func(o *Observation) { o.FailedProbes = probes(61, 61.5) }, VerdictSuspect, ActionNone},
		{"dead: lease out, fresh failures, no other member", 63.5, func(o *Observation) { o.FailedProbes = probes(61, 62, 63) }, VerdictDeadSource, ActionFailover},
		{"lease out but one fresh failure: wait for evidence", 63.5, func(o *Observation) { o.FailedProbes = probes(63.2) }, VerdictSuspect, ActionNone},
		{"lease out, no probe finished: wait", 64, nil, VerdictSuspect, ActionNone},
		{"grace: a new leader waits one lease", 61, func(o *Observation) {
			o.LeaderSince, o.LastContact = at(59), time.Time{}
			o.FailedProbes = probes(59, 60, 60.5)
		}, VerdictLeaseGrace, ActionNone},
		{"grace over: dead", 62.5, func(o *Observation) {
			o.LeaderSince, o.LastContact = at(59), time.Time{}
			o.FailedProbes = probes(59, 60, 61, 62)
		}, VerdictDeadSource, ActionFailover},

		// The leader was stalled 40 s (60.1 -> 100.1): in the same instant
		// its probe's deadline passed and the lease looks 37 s overdue.
		{"stalled leader: no verdict at the stall's end", 100.1, func(o *Observation) {
			o.StallEnd, o.Stall = at(100.1), 40*time.Second
			o.FailedProbes = probes(60.1)
		}, VerdictLeaderStalled, ActionNone},
		{"stalled leader: still no verdict just before one lease after", 103.0, func(o *Observation) {
			o.StallEnd, o.Stall = at(100.1), 40*time.Second
			o.FailedProbes = probes(60.1, 100.2, 100.7, 101.2, 101.7, 102.2, 102.7)
		}, VerdictLeaderStalled, ActionNone},
		{"stalled leader: the source answered after the stall", 100.5, func(o *Observation) {
			o.StallEnd, o.Stall = at(100.1), 40*time.Second
			o.LastContact = at(100.2)
		}, VerdictHealthy, ActionNone},
		{"stalled leader: dead one lease after, on fresh failures", 103.2, func(o *Observation) {
			o.StallEnd, o.Stall = at(100.1), 40*time.Second
			o.FailedProbes = probes(60.1, 100.2, 101.2, 102.2)
		}, VerdictDeadSource, ActionFailover},
		{"stale probe from before the stall is ignored", 103.2, func(o *Observation) {
			o.StallEnd, o.Stall = at(100.1), 40*time.Second
			// NB: started before the stall, failed after it; plus one
			// fresh failure: not enough.
			o.FailedProbes = probes(60.1, 99.0, 102.9)
		}, VerdictSuspect, ActionNone},
		{"a stall before this leadership does not restart the lease", 63.5, func(o *Observation) {
			o.LeaderSince, o.StallEnd, o.Stall = at(10), at(5), 2*time.Second
			o.FailedProbes = probes(61, 62, 63)
		}, VerdictDeadSource, ActionFailover},

		// A second vantage point.
		{"other members not asked yet: confirm", 63.5, func(o *Observation) {
			o.Peers, o.FailedProbes = 2, probes(61, 62, 63)
		}, VerdictConfirming, ActionNone},
		{"a second member reaches the source: no failover", 63.5, func(o *Observation) {
			o.Peers, o.FailedProbes = 2, probes(61, 62, 63)
			o.Vantage = &Vantage{Asked: at(63.4), Reached: []uint64{2}, Unreached: []uint64{3}}
		}, VerdictSeenByPeer, ActionNone},
		{"the second members cannot reach it either: dead", 63.5, func(o *Observation) {
			o.Peers, o.FailedProbes = 2, probes(61, 62, 63)
			o.Vantage = &Vantage{Asked: at(63.4), Unreached: []uint64{2, 3}}
		}, VerdictDeadSource, ActionFailover},
		{"no other member can be asked: the leader's fresh evidence decides", 63.5, func(o *Observation) {
			o.Peers, o.FailedProbes = 2, probes(61, 62, 63)
			o.Vantage = &Vantage{Asked: at(63.4), Errors: []string{"member 2: unreachable", "member 3: unreachable"}}
		}, VerdictDeadSource, ActionFailover},
		{"an old answer is asked again", 65, func(o *Observation) {
			o.Peers, o.FailedProbes = 2, probes(61, 62, 63, 64)
			o.Vantage = &Vantage{Asked: at(63.4), Reached: []uint64{2}}
		}, VerdictConfirming, ActionNone},
		{"an answer from before the stall does not count", 103.5, func(o *Observation) {
			o.StallEnd, o.Stall = at(100.1), 40*time.Second
			o.Peers, o.FailedProbes = 2, probes(100.2, 101.2, 102.2, 103.2)
			o.Vantage = &Vantage{Asked: at(60.05), Unreached: []uint64{2}}
		}, VerdictConfirming, ActionNone},
	} {
		o := base
		o.Now = at(tc.now)
		if tc.f != nil {
			tc.f(&o)
		}
		v := Analyse(o)
		d := Decide(v, o.Now, live)
		if v != tc.want || d.Action != tc.action {
			t.Errorf("%s: %s/%s (%s); want %s/%s", tc.name, v, d.Action, Explain(o, v), tc.want, tc.action)
		}
	}
}

// A stalled leader gives no verdict for one full lease after the stall,
// whatever its probes say, then judges on what it gathered since.
func TestLeaseAfterStallTimeline(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	const lease = 3 * time.Second
	stallEnd := t0.Add(50 * time.Second)
	o := Observation{Leader: true, LeaderSince: t0, Epoch: 1, Source: "src:1", Lease: lease,
		LastContact: t0.Add(10 * time.Second), StallEnd: stallEnd, Stall: 40 * time.Second}
	// Probes every 250 ms from the stall's end, all failing.
	for now := stallEnd; now.Before(stallEnd.Add(2 * lease)); now = now.Add(250 * time.Millisecond) {
		o.Now = now
		v := Analyse(o)
		inLease := now.Before(stallEnd.Add(lease))
		switch {
		case inLease && v != VerdictLeaderStalled:
			t.Fatalf("at stall end + %v: %s, want %s", now.Sub(stallEnd), v, VerdictLeaderStalled)
		case !inLease && v != VerdictDeadSource:
			t.Fatalf("at stall end + %v: %s (%s), want %s", now.Sub(stallEnd), v, Explain(o, v), VerdictDeadSource)
		}
		o.FailedProbes = append(o.FailedProbes, now)
	}
}

func TestExplain(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	o := Observation{Leader: true, LeaderSince: t0, Epoch: 1, Source: "src:1", Lease: 3 * time.Second, Now: t0.Add(101 * time.Second),
		StallEnd: t0.Add(100 * time.Second), Stall: 41500 * time.Millisecond}
	if s := Explain(o, Analyse(o)); !strings.Contains(s, "stalled for 41.5s") || !strings.Contains(s, "10:01:43.000") {
		t.Errorf("stall: %q", s)
	}
	o.Vantage = &Vantage{Reached: []uint64{3}}
	if s := Explain(o, VerdictSeenByPeer); !strings.Contains(s, "member(s) [3] can") || !strings.Contains(s, "transfer-leader") {
		t.Errorf("seen by peer: %q", s)
	}
}

func TestLateBy(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	if _, ok := LateBy(t0, t0.Add(time.Second), time.Second); ok {
		t.Error("late by exactly the threshold is a stall")
	}
	s, ok := LateBy(t0, t0.Add(6*time.Second), time.Second)
	if !ok || s.Length != 6*time.Second || !s.End.Equal(t0.Add(6*time.Second)) {
		t.Errorf("%+v %v", s, ok)
	}
}

// The detector reports the latest stall, and one still going on (its
// timer overdue: the process just woke up) as ending now.
func TestStallDetector(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	d := NewStallDetector(100*time.Millisecond, time.Second, nil)
	if s := d.Last(t0); !s.End.IsZero() {
		t.Fatalf("a new detector reports %+v", s)
	}
	d.beat = t0
	if s := d.Last(t0.Add(900 * time.Millisecond)); !s.End.IsZero() {
		t.Fatalf("within the threshold: %+v", s)
	}
	now := t0.Add(6 * time.Second)
	if s := d.Last(now); !s.End.Equal(now) || s.Length != 5900*time.Millisecond {
		t.Fatalf("ongoing stall: %+v", s)
	}
	// The detector's goroutine wakes up and records it.
	d.Observe(t0.Add(100*time.Millisecond), now.Add(time.Millisecond))
	d.beat = now.Add(time.Millisecond)
	if s := d.Last(now.Add(200 * time.Millisecond)); !s.End.Equal(now.Add(time.Millisecond)) {
		t.Fatalf("recorded stall: %+v", s)
	}
	// A smaller lateness later does not replace it; a later stall does.
	d.Observe(now.Add(time.Second), now.Add(1500*time.Millisecond))
	d.beat = now.Add(1500 * time.Millisecond)
	if s := d.Last(now.Add(1500 * time.Millisecond)); !s.End.Equal(now.Add(time.Millisecond)) {
		t.Fatalf("a lateness under the threshold replaced the stall: %+v", s)
	}
	d.Observe(now.Add(2*time.Second), now.Add(4*time.Second))
	if s := d.Last(now.Add(4 * time.Second)); !s.End.Equal(now.Add(4*time.Second)) || s.Length != 2*time.Second {
		t.Fatalf("later stall: %+v", s)
	}
}
