package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/dump/dumptest"
	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// repeats is how many times the kill test runs per flavor: 3 with
// BINLOGSVR_LONG=1 (the Done-when), once by default.
func repeats(t *testing.T) int {
	if os.Getenv("BINLOGSVR_LONG") != "" {
		return 3
	}
	t.Log("running once; BINLOGSVR_LONG=1 runs it 3 times in a row")
	return 1
}

// waitNewSource waits until the fleet's log names a source other than old,
// not fenced, and the ingest streams from it.
func (r *rig) waitNewSource(old string, d time.Duration) string {
	r.t.Helper()
	var src string
	err := fleet.Poll(context.Background(), d, func() error {
		st, err := r.status()
		if err != nil {
			return err
		}
		if st.Source == old || failover.IsFenced(st.Source) || st.Source == "" {
			return fmt.Errorf("source %s", st.Source)
		}
		src = st.Source
		if st.Ingest == nil || st.Ingest.State != "streaming" || st.Ingest.Source != src {
			return fmt.Errorf("ingest %+v", st.Ingest)
		}
		return nil
	})
	if err != nil {
		fs, _ := r.failoverStatus()
		r.t.Fatalf("no new source after %v: %v (failover status %+v)", d, err, fs)
	}
	return src
}

// TestKillSource is Done-when 1: kill -9 the source under 16 writing
// clients; the most caught-up replica is promoted, every acknowledged
// commit is on it, the other replica is checksum-equal to it.
func TestKillSource(t *testing.T) {
	for _, flavor := range []sandbox.Flavor{sandbox.MariaDB, sandbox.MySQL} {
		t.Run(string(flavor), func(t *testing.T) {
			for i := 0; i < repeats(t); i++ {
				t.Run(fmt.Sprint("run", i+1), func(t *testing.T) {
					rto := killOnce(t, flavor)
					t.Logf("RTO (kill -9 -> first commit acknowledged by the new source): %v", rto)
				})
			}
		})
	}
}

func killOnce(t *testing.T, flavor sandbox.Flavor) time.Duration {
	r := newRig(t, flavor, rigOptions{replicas: 2})
	l := r.startLoad(16)
	defer l.stop()
	if err := fleet.Poll(context.Background(), wait, func() error {
		if n := l.count(); n < 300 {
			return fmt.Errorf("%d commits", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	old := r.src.Addr()
	killed := time.Now()
	if err := r.src.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the source %s after %d acknowledged commits", old, l.count())
	newSrc := r.waitNewSource(old, wait)
	if err := fleet.Poll(context.Background(), wait, func() error {
		if n := l.countOn(newSrc); n < 200 {
			return fmt.Errorf("%d commits on the new source", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rto := l.firstOn(newSrc).Sub(killed)
	l.stop()
	ns := r.byAddr(newSrc)
	l.verifyAcked(t, ns)
	for _, rep := range r.replicas {
		if rep != ns {
			dumptest.WaitReplicated(t, ns, rep, wait)
			dumptest.SameData(t, ns, rep, []string{"test.acked"})
		}
	}
	out, err := r.ctl("history")
	if err != nil || !strings.Contains(out, "done") || !strings.Contains(out, "fenced") {
		t.Errorf("binlogctl history: %v\n%s", err, out)
	}
	t.Logf("binlogctl history:\n%s", out)
	return rto
}
