package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// clientDeadline is the writers' statement deadline (the soak's).
const clientDeadline = 60 * time.Second

// TestDeferredFenceAfterSourcePause: the MariaDB source (semi-sync, 4
// clients writing straight to it, each statement with a 60 s deadline) is
// stopped with SIGSTOP (a VM or GC pause) for longer than the lease. The
// fleet fails over to the candidate; the old source does not answer the
// fence, so it stays a pending fence (status, metric). After SIGCONT the
// leader fences it within a few seconds: read_only=1, the clients that
// were blocked on it get an error at once instead of waiting for their
// deadline, the audit shows the deferred fence, and the status no longer
// lists it.
func TestDeferredFenceAfterSourcePause(t *testing.T) {
	r := newRig(t, sandbox.MariaDB, rigOptions{replicas: 1})
	old := r.src.Addr()
	w := startWriters(t, r.src, 4, clientDeadline)
	defer w.stop()
	if err := fleet.Poll(context.Background(), wait, func() error {
		if n := w.succeeded(); n < 100 {
			return fmt.Errorf("%d commits", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	pid := r.src.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume) // NB: before the sandbox's Close: a stopped process ignores SIGTERM
	t.Logf("SIGSTOP the source %s (pid %d)", old, pid)

	newSrc := r.waitNewSource(old, wait)
	t.Logf("failed over to %s %v after the SIGSTOP", newSrc, time.Since(stopped).Round(time.Millisecond))
	var pf failover.PendingFence
	if err := fleet.Poll(context.Background(), wait, func() error {
		st, err := r.failoverStatus()
		if err != nil {
			return err
		}
		for _, p := range st.PendingFences {
			if p.Addr == old && p.Attempts >= 2 {
				pf = p
				return nil
			}
		}
		return fmt.Errorf("pending fences %+v", st.PendingFences)
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("pending fence while stopped: %+v", pf)
	if n := r.pendingFencesMetric(t); n != 1 {
		t.Errorf("binlogsvr_failover_pending_fences = %v, want 1", n)
	}
	if out, err := r.ctl("failover", "status"); err != nil || !strings.Contains(out, "Pending fences: 1") || !strings.Contains(out, old) {
		t.Errorf("binlogctl failover status: %v\n%s", err, out)
	}
	if out, err := r.ctl("status"); err != nil || !strings.Contains(out, "Pending fences: 1") {
		t.Errorf("binlogctl status: %v\n%s", err, out)
	}

	// Stopped for longer than the lease and until the failover is done.
	if d := 2*stallLease - time.Since(stopped); d > 0 {
		time.Sleep(d)
	}
	blocked := w.unfinished()
	resume()
	cont := time.Now()
	t.Logf("SIGCONT after %v; %d client statements were waiting on the old source", cont.Sub(stopped).Round(time.Millisecond), len(blocked))

	var fencedAt time.Time
	if err := fleet.Poll(context.Background(), 30*time.Second, func() error {
		ro, err := sourceReadOnly(r.src)
		if err != nil {
			return err
		}
		if !ro {
			return fmt.Errorf("%s is writable", old)
		}
		fencedAt = time.Now()
		return nil
	}); err != nil {
		t.Fatalf("the old source is not read-only %v after SIGCONT: %v", time.Since(cont).Round(time.Millisecond), err)
	}
	toFenced := fencedAt.Sub(cont)
	t.Logf("SIGCONT -> read_only=1 seen: %v", toFenced.Round(time.Millisecond))
	if toFenced > 10*time.Second {
		t.Errorf("the old source was fenced %v after SIGCONT: want a few seconds", toFenced)
	}

	// The statements that were waiting on it at SIGCONT, and those issued
	// to it before its fence, ended soon after SIGCONT (with an error, or
	// with an ACK the fleet had sent before the pause), not at their
	// deadline.
	var worst time.Duration
	exposed, failed, killed := 0, 0, 0
	if err := fleet.Poll(context.Background(), 20*time.Second, func() error {
		worst, exposed, failed, killed = 0, 0, 0, 0
		for _, a := range w.all() {
			if !(blocked[[2]int{a.c, a.n}] || (a.start.After(cont) && a.start.Before(fencedAt))) {
				continue
			}
			exposed++
			if a.end.IsZero() {
				return fmt.Errorf("client %d statement %d still waits %v after SIGCONT", a.c, a.n, time.Since(cont).Round(time.Millisecond))
			}
			worst = max(worst, a.end.Sub(cont))
			if !a.ok {
				failed++
				if blocked[[2]int{a.c, a.n}] {
					killed++
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d statements waited on the old source after SIGCONT (%d of them since before it); they ended at most %v after SIGCONT, %d with an error (%d of those waiting since before SIGCONT)",
		exposed, len(blocked), worst.Round(time.Millisecond), failed, killed)
	if worst > 15*time.Second {
		t.Errorf("a statement on the old source ended %v after SIGCONT", worst)
	}
	if exposed > 0 && failed == 0 {
		t.Errorf("none of the %d statements waiting on the old source got an error", exposed)
	}
	// Nothing commits on the old source once it is fenced.
	time.Sleep(time.Second)
	after := 0
	for _, a := range w.all() {
		if a.ok && a.start.After(fencedAt) {
			after++
		}
	}
	if after > 0 {
		t.Errorf("%d statements committed on the old source after its fence", after)
	}

	// Every statement that returned success is on the new source: the
	// old source returned success only for what the fleet had stored.
	ns := r.byAddr(newSrc)
	if err := fleet.Poll(context.Background(), 20*time.Second, func() error {
		rows := tableRows(t, ns)
		for _, a := range w.all() {
			if a.ok && !rows[[2]int{a.c, a.n}] {
				return fmt.Errorf("commit (client %d, n %d) returned success %v after SIGCONT but is not on the new source %s",
					a.c, a.n, a.end.Sub(cont).Round(time.Millisecond), newSrc)
			}
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	// The audit shows the deferred fence; the status and the metric no
	// longer list it.
	var rec *failover.Record
	rs, err := r.history()
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range rs {
		if x.Kind == failover.KindFence && x.OldSource == old && x.Step == "fenced" && x.Outcome == "ok" {
			rec = &rs[i]
		}
	}
	if rec == nil {
		t.Fatalf("no deferred fence record for %s in the history", old)
	}
	t.Logf("audit: %s (%v after SIGCONT by the leader's clock)", rec.Message, rec.Time.Sub(cont).Round(time.Millisecond))
	if err := fleet.Poll(context.Background(), 10*time.Second, func() error {
		st, err := r.failoverStatus()
		if err != nil {
			return err
		}
		if len(st.PendingFences) != 0 {
			return fmt.Errorf("pending fences %+v", st.PendingFences)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := r.pendingFencesMetric(t); n != 0 {
		t.Errorf("binlogsvr_failover_pending_fences = %v after the fence, want 0", n)
	}
}

// unfinished returns the statements still waiting, as (client, n) keys.
func (w *writers) unfinished() map[[2]int]bool {
	out := map[[2]int]bool{}
	for _, a := range w.all() {
		if a.end.IsZero() {
			out[[2]int{a.c, a.n}] = true
		}
	}
	return out
}

// pendingFencesMetric reads binlogsvr_failover_pending_fences from a
// running member's /metrics.
func (r *rig) pendingFencesMetric(t *testing.T) float64 {
	t.Helper()
	for _, m := range r.f.Members {
		if !m.Running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.f.URL(m.ID, "/metrics"), nil)
		resp, err := r.f.HTTP().Do(req)
		if err != nil {
			cancel()
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var v float64
			if _, err := fmt.Sscanf(sc.Text(), "binlogsvr_failover_pending_fences %g", &v); err == nil {
				resp.Body.Close()
				cancel()
				return v
			}
		}
		resp.Body.Close()
		cancel()
	}
	t.Fatal("no member reports binlogsvr_failover_pending_fences")
	return 0
}
