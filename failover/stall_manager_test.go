package failover

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// leadLog is a log this member leads, whose source is src:3306 at epoch 3.
type leadLog struct {
	recLog
}

func (l *leadLog) State() (logger.State, error) {
	return logger.State{Epoch: 3, Source: logger.Source{Addr: "src:3306", Flavor: "mariadb"}}, nil
}
func (l *leadLog) IsLeader() bool                               { return true }
func (l *leadLog) Meta(string) ([]byte, bool, error)            { return nil, false, nil }
func (l *leadLog) MetaPrefix(string) (map[string][]byte, error) { return nil, nil }

// pingServer answers Ping with ping().
type pingServer struct {
	Server
	ping func() error
}

func (s pingServer) Ping(context.Context) error { return s.ping() }
func (s pingServer) Close() error               { return nil }

// The Manager on a fake clock: the source answers, then the leader is
// stalled for 40 s in the middle of a probe (the probe's deadline passes
// while the process is stopped). Whatever the source does afterwards, the
// leader gives no verdict for one lease after the stall; then it judges on
// fresh evidence and the other members' answers.
func TestManagerStalledMidProbe(t *testing.T) {
	const lease = 3 * time.Second
	errDown := errors.New("dial tcp src:3306: connect: connection refused")
	for _, tc := range []struct {
		name       string
		aliveAfter bool                // the source answers the probes after the stall
		event      bool                // the ingest stream brings heartbeats after the stall
		peers      func() []PeerAnswer // nil: a single member
		want       Verdict             // the verdict one lease and a second after the stall
	}{
		{"source alive", true, false, nil, VerdictHealthy},
		{"probes fail but heartbeats arrive", false, true, nil, VerdictHealthy},
		{"source dead, single member", false, false, nil, VerdictDeadSource},
		{"source dead, the other members cannot reach it", false, false, func() []PeerAnswer {
			return []PeerAnswer{{Member: 2, Probe: PeerProbe{Source: "src:3306", Error: "refused"}}, {Member: 3, Err: errors.New("unreachable")}}
		}, VerdictDeadSource},
		{"leader cut off, another member reaches the source", false, false, func() []PeerAnswer {
			return []PeerAnswer{{Member: 2, Probe: PeerProbe{Source: "src:3306", Reachable: true}}}
		}, VerdictSeenByPeer},
		{"source dead, no other member in the group", false, false, func() []PeerAnswer { return nil }, VerdictDeadSource},
		{"no other member can be asked", false, false, func() []PeerAnswer {
			return []PeerAnswer{{Member: 2, Err: errors.New("unreachable")}, {Member: 3, Err: errors.New("unreachable")}}
		}, VerdictDeadSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
			log := &leadLog{}
			var ping func() error
			var lastEvent time.Time
			cfg := DefaultConfig()
			cfg.Auto, cfg.Lease, cfg.ProbeInterval = false, lease, 250*time.Millisecond
			deps := Deps{Log: log, Now: clk.Now,
				Connect: func(context.Context, string, Credentials) (Server, error) {
					return pingServer{ping: func() error { return ping() }}, nil
				},
				Ingest: func() IngestView { return IngestView{Source: "src:3306", LastEvent: lastEvent} },
			}
			if tc.peers != nil {
				deps.AskPeers = func(context.Context) []PeerAnswer { return tc.peers() }
			}
			m, err := New(cfg, deps)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// step moves the clock one probe interval, the stall detector
			// firing on time, and runs one round.
			step := func() Status {
				m.stall.mu.Lock()
				beat := m.stall.beat
				m.stall.mu.Unlock()
				clk.Advance(cfg.ProbeInterval)
				if !beat.IsZero() {
					m.stall.Observe(beat.Add(stallPeriod), clk.Now())
				}
				m.stall.mu.Lock()
				m.stall.beat = clk.Now()
				m.stall.mu.Unlock()
				m.tick(ctx)
				return m.Status()
			}
			ping = func() error { return nil }
			for i := 0; i < 20; i++ {
				step()
			}
			if st := m.Status(); st.Verdict != VerdictHealthy.String() {
				t.Fatalf("before the stall: %s (%s)", st.Verdict, st.Reason)
			}
			// The stall: the process stops during a probe for 40 s; the
			// probe fails when it wakes up, before the detector has run.
			ping = func() error { clk.Advance(40 * time.Second); return context.DeadlineExceeded }
			m.tick(ctx)
			stallEnd := clk.Now()
			if st := m.Status(); st.Verdict != VerdictLeaderStalled.String() || st.Decision != ActionNone.String() {
				t.Fatalf("right after a 40 s stall: %s/%s (%s), want %s", st.Verdict, st.Decision, st.Reason, VerdictLeaderStalled)
			}
			ping = func() error {
				if tc.aliveAfter {
					return nil
				}
				return errDown
			}
			var final Status
			for clk.Now().Before(stallEnd.Add(lease + time.Second)) {
				if tc.event {
					lastEvent = clk.Now()
				}
				st := step()
				inLease := clk.Now().Before(stallEnd.Add(lease))
				if inLease && (st.Verdict == VerdictDeadSource.String() || st.Verdict == VerdictSeenByPeer.String()) {
					t.Fatalf("%v after the stall, within one lease: %s (%s)", clk.Now().Sub(stallEnd), st.Verdict, st.Reason)
				}
				final = st
			}
			if final.Verdict != tc.want.String() {
				t.Fatalf("one lease and a second after the stall: %s (%s), want %s", final.Verdict, final.Reason, tc.want)
			}
			blocked := 0
			for _, r := range log.recs {
				if r.Outcome == "blocked" {
					blocked++
				}
			}
			if dead := tc.want == VerdictDeadSource; (blocked > 0) != dead {
				t.Fatalf("%d blocked-failover records (automatic failover is off), want them: %v", blocked, dead)
			}
			// NB: the detector's own goroutine wakes up one step after the
			// Manager saw the stall, and records the stall it measured.
			if d, err := time.ParseDuration(final.LastStall); err != nil || d < 40*time.Second ||
				final.LastStallEnd.Before(stallEnd) || final.LastStallEnd.After(stallEnd.Add(cfg.ProbeInterval)) {
				t.Fatalf("status: last_stall %q ending %v, want 40s or more ending at %v or one step later", final.LastStall, final.LastStallEnd, stallEnd)
			}
			t.Logf("%s: %s", final.Verdict, final.Reason)
		})
	}
}
