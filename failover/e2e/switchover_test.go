package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// TestSwitchover: binlogctl promote --to under 16 writing clients: zero
// loss, writes pause less than 2 s, and the old source becomes a replica
// of the fleet.
func TestSwitchover(t *testing.T) {
	for _, flavor := range []sandbox.Flavor{sandbox.MariaDB, sandbox.MySQL} {
		t.Run(string(flavor), func(t *testing.T) {
			r := newRig(t, flavor, rigOptions{replicas: 2})
			// NB: paced so that the replicas keep up (the pause is the
			// target's apply lag plus the switchover's own steps).
			l := r.startLoad(16, 10*time.Millisecond)
			defer l.stop()
			l.waitCount(t, 300)
			// NB: the pause measures the switchover, not a backlog that a
			// loaded machine left on the target (seen: 3,000 transactions
			// behind at load 10+, then a 9.6 s pause); it must hold what the
			// source had a moment ago, twice: the backlog, then what came
			// meanwhile.
			for range 2 {
				dumptest.WaitReplicated(t, r.src, r.replicas[0], wait)
			}
			old, target := r.src.Addr(), r.replicas[0].Addr()
			t0 := time.Now()
			out, err := r.ctl("promote", "--to", target)
			took := time.Since(t0)
			if err != nil {
				t.Fatalf("binlogctl promote --to %s: %v\n%s", target, err, out)
			}
			t.Logf("binlogctl promote --to took %v:\n%s", took, out)
			if got := r.waitNewSource(old, wait); got != target {
				t.Fatalf("new source %s, want %s", got, target)
			}
			if err := fleet.Poll(context.Background(), wait, func() error {
				if n := l.countOn(target); n < 200 {
					return fmt.Errorf("%d commits on the new source", n)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			pause := l.maxGap(t0, l.firstOn(target).Add(time.Second))
			t.Logf("the longest pause of acknowledged writes during the switchover: %v", pause)
			if pause >= 2*time.Second {
				t.Errorf("writes paused %v, want < 2s", pause)
			}
			l.stop()
			ns := r.byAddr(target)
			l.verifyAcked(t, ns)
			for _, s := range []*sandbox.Server{r.src, r.replicas[1]} {
				dumptest.WaitReplicated(t, ns, s, wait)
				dumptest.SameData(t, ns, s, []string{"test.acked"})
			}
			h, _ := r.ctl("history")
			if !strings.Contains(h, "drained") || !strings.Contains(h, "replicates from the fleet") {
				t.Errorf("history:\n%s", h)
			}
		})
	}
}

// TestChoice: an errant replica and a never-promote one are
// never chosen; a lagging replica (SQL thread stopped) is promoted only
// after it has caught up; with no eligible candidate the fleet says so and
// keeps the source fenced.
func TestChoice(t *testing.T) {
	t.Run("lagging-errant-never", func(t *testing.T) {
		var never string
		r := newRig(t, sandbox.MariaDB, rigOptions{replicas: 3, candidate: func(i int, s *sandbox.Server) string {
			if i == 2 {
				never = s.Addr()
				return s.Addr() + ",never-promote,priority=100"
			}
			return s.Addr()
		}})
		lag, errant := r.replicas[0], r.replicas[1]
		_ = never
		r.exec(lag, "STOP SLAVE SQL_THREAD")
		r.exec(errant, "CREATE DATABASE errant_local_write")
		l := r.startLoad(16)
		l.waitCount(t, 300)
		old := r.src.Addr()
		if err := r.src.Kill(); err != nil {
			t.Fatal(err)
		}
		got := r.waitNewSource(old, wait)
		l.stop()
		if got != lag.Addr() {
			t.Fatalf("promoted %s, want the lagging replica %s (the errant %s and the never-promote one must not be)", got, lag.Addr(), errant.Addr())
		}
		l.verifyAcked(t, lag)
		h, _ := r.ctl("history")
		t.Logf("history:\n%s", h)
		if !strings.Contains(h, "caught-up") {
			t.Error("no caught-up record")
		}
	})
	t.Run("no-candidate", func(t *testing.T) {
		r := newRig(t, sandbox.MariaDB, rigOptions{replicas: 1})
		r.exec(r.replicas[0], "CREATE DATABASE errant_local_write")
		old := r.src.Addr()
		if err := r.src.Kill(); err != nil {
			t.Fatal(err)
		}
		var fs failover.Status
		if err := fleet.Poll(context.Background(), wait, func() error {
			var err error
			if fs, err = r.failoverStatus(); err != nil {
				return err
			}
			if !fs.Fenced || fs.Operation == nil || fs.Operation.Step != failover.StepFenced {
				return fmt.Errorf("status %+v", fs)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // NB: it must stay fenced, not promote
		st, err := r.status()
		if err != nil || !st.SourceFenced || st.Source != api.FencedPrefix+old {
			t.Fatalf("source %q (%v), want it fenced", st.Source, err)
		}
		h, _ := r.ctl("history")
		if !strings.Contains(h, "no eligible candidate") || !strings.Contains(h, "errant") || !strings.Contains(h, "stays fenced") {
			t.Errorf("history does not say why:\n%s", h)
		}
		out, _ := r.ctl("status")
		t.Logf("history:\n%s\nstatus:\n%s", h, out)
	})
}
