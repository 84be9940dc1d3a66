package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// stallLease is the rig's --failover-lease (rig_test.go).
const stallLease = 3 * time.Second

// pause stops members with SIGSTOP (a VM or GC pause, a starved machine);
// the returned function resumes them, and runs at cleanup if the test
// did not.
func (r *rig) pause(ids ...uint64) (resume func()) {
	r.t.Helper()
	var pids []int
	for _, id := range ids {
		pid := r.f.Member(id).PID()
		if pid == 0 {
			r.t.Fatalf("member %d does not run", id)
		}
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			r.t.Fatalf("SIGSTOP member %d: %v", id, err)
		}
		pids = append(pids, pid)
	}
	done := false
	resume = func() {
		if done {
			return
		}
		done = true
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	r.t.Cleanup(resume) // NB: before the fleet's Close: a stopped process ignores SIGTERM
	return resume
}

// readOnly reads the source's @@global.read_only.
func readOnly(t *testing.T, s *sandbox.Server) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.Exec(ctx, "SELECT @@global.read_only")
	if err != nil {
		t.Fatalf("read_only of %s: %v", s.Addr(), err)
	}
	v, _ := res.GetInt(0, 0)
	return v != 0
}

// assertNoFailover checks, for a while after a pause, that the source
// kept its epoch and stayed writable, that no operation was recorded, and
// that the acknowledged commits went on.
func (r *rig) assertNoFailover(l *load, epoch uint64, src string) {
	r.t.Helper()
	n := l.count()
	// NB: a false verdict needs one lease from the pause's end; give it
	// two, and require fresh commits acknowledged by the same source.
	deadline := time.Now().Add(2*stallLease + 2*time.Second)
	if err := fleet.Poll(context.Background(), wait, func() error {
		if c := l.countOn(src); c < n+50 || time.Now().Before(deadline) {
			return fmt.Errorf("%d commits acknowledged by %s (%d before)", c, src, n)
		}
		return nil
	}); err != nil {
		fs, _ := r.failoverStatus()
		r.t.Fatalf("writes did not go on: %v (failover status %+v)", err, fs)
	}
	st, err := r.failoverStatus()
	if err != nil {
		r.t.Fatal(err)
	}
	if st.Epoch != epoch || st.Source != src || st.Fenced || st.Operation != nil || st.Last != nil {
		r.t.Fatalf("the fleet failed over from a live source: epoch %d -> %d, source %s -> %s, fenced %v, operation %+v, last %+v",
			epoch, st.Epoch, src, st.Source, st.Fenced, st.Operation, st.Last)
	}
	if readOnly(r.t, r.src) {
		r.t.Fatalf("the source %s is read-only", src)
	}
	if out, err := r.ctl("history"); err != nil || strings.Contains(out, "fenced") {
		r.t.Fatalf("binlogctl history: %v\n%s", err, out)
	}
	r.t.Logf("no failover: epoch %d, source %s writable, %d commits acknowledged by it (+%d since the pause), verdict %s (%s)",
		st.Epoch, src, l.countOn(src), l.countOn(src)-n, st.Verdict, st.Reason)
}

// TestStalledLeaderNoFailover: the leader (then the whole fleet) is
// stopped with SIGSTOP for twice the lease while the source is healthy and
// writes go on; after SIGCONT there is no failover: same epoch, source
// writable, nothing fenced. When the whole fleet was stopped, the leader
// measured the stall and restarted the lease.
func TestStalledLeaderNoFailover(t *testing.T) {
	r := newRig(t, sandbox.MariaDB, rigOptions{replicas: 1})
	l := r.startLoad(4, 10*time.Millisecond)
	defer l.stop()
	l.waitCount(t, 100)
	st, err := r.failoverStatus()
	if err != nil {
		t.Fatal(err)
	}
	epoch, src := st.Epoch, st.Source

	// The leader alone: the others elect a new leader meanwhile, which
	// waits a lease before judging; the old one wakes up stalled.
	leader := r.leader()
	resume := r.pause(leader)
	t.Logf("SIGSTOP leader %d for %v", leader, 2*stallLease)
	time.Sleep(2 * stallLease)
	resume()
	r.assertNoFailover(l, epoch, src)

	// The whole fleet (the machine starved): the leader keeps leading and
	// must not judge the source on the silence of its own pause.
	leader = r.leader()
	resume = r.pause(1, 2, 3)
	t.Logf("SIGSTOP all members (leader %d) for %v", leader, 2*stallLease)
	time.Sleep(2 * stallLease)
	woke := time.Now()
	resume()
	r.assertNoFailover(l, epoch, src)
	st, _ = r.failoverStatus()
	stall, err := time.ParseDuration(st.LastStall)
	if err != nil || stall < 2*stallLease-time.Second || st.LastStallEnd.Before(woke) {
		t.Fatalf("the leader did not measure the fleet's %v pause: last_stall %q, last_stall_end %v (resumed at %v)",
			2*stallLease, st.LastStall, st.LastStallEnd, woke)
	}
	t.Logf("the leader measured a stall of %s ending %v after SIGCONT", st.LastStall, st.LastStallEnd.Sub(woke).Round(time.Millisecond))
}

// waitFailoverAfter waits until the status shows a finished failover other
// than prev and returns it with the status.
func (r *rig) waitFailoverAfter(prev string) (failover.Status, *failover.Operation) {
	r.t.Helper()
	var st failover.Status
	if err := fleet.Poll(context.Background(), wait, func() error {
		var err error
		if st, err = r.failoverStatus(); err != nil {
			return err
		}
		if op := st.Last; op == nil || op.ID == prev || op.Kind != failover.KindFailover || op.Step != failover.StepDone {
			return fmt.Errorf("no new finished failover in the status: %+v", st)
		}
		return nil
	}); err != nil {
		r.t.Fatal(err)
	}
	return st, st.Last
}

// TestDeadSourceFailsOverOnTime: a source really dead (kill -9) is failed
// over within lease + 1 s of the moment the leader can judge. First a
// plain kill (the leader can judge at once); then a kill while the whole
// fleet is stopped: after SIGCONT the leader restarts the lease, gathers
// fresh failed probes and the other members' answers, and fails over no
// sooner than one lease and no later than lease + 1 s after the later of
// the resume and its leadership's start.
func TestDeadSourceFailsOverOnTime(t *testing.T) {
	r := newRig(t, sandbox.MariaDB, rigOptions{replicas: 2, extra: []string{"--failover-anti-flap", "0s"}})
	l := r.startLoad(4, 10*time.Millisecond)
	defer l.stop()
	l.waitCount(t, 100)

	old := r.src.Addr()
	killed := time.Now()
	if err := r.src.Kill(); err != nil {
		t.Fatal(err)
	}
	src := r.waitNewSource(old, wait)
	_, op := r.waitFailoverAfter("")
	after := op.Started.Sub(killed)
	t.Logf("kill -9 of %s: failover %s started %v after the kill, finished %v after it (lease %v)", old, op.ID,
		after.Round(time.Millisecond), op.Updated.Sub(killed).Round(time.Millisecond), stallLease)
	if after > stallLease+time.Second {
		t.Errorf("the failover started %v after the kill: more than lease + 1 s", after)
	}
	first := op.ID

	if err := fleet.Poll(context.Background(), wait, func() error {
		if n := l.countOn(src); n < 100 {
			return fmt.Errorf("%d commits acknowledged by the new source %s", n, src)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	resume := r.pause(1, 2, 3)
	if err := r.byAddr(src).Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * stallLease)
	woke := time.Now()
	resume()
	t.Logf("killed the source %s while the fleet was stopped for %v; SIGCONT at %v", src, 2*stallLease, woke.Format("15:04:05.000"))
	r.waitNewSource(src, wait)
	st, op := r.waitFailoverAfter(first)
	judge := woke
	if op.Leader == r.leader() && st.LeaderSince.After(judge) {
		judge = st.LeaderSince // NB: a member elected after the resume judges from its election
	}
	after = op.Started.Sub(judge)
	t.Logf("failover %s started %v after the leader (member %d) could judge (resume %v, leading since %v), finished %v after it; the leader measured a stall of %s",
		op.ID, after.Round(time.Millisecond), op.Leader, woke.Format("15:04:05.000"), st.LeaderSince.Format("15:04:05.000"),
		op.Updated.Sub(judge).Round(time.Millisecond), st.LastStall)
	if after < stallLease {
		t.Errorf("the failover started %v after the leader could judge: before one lease (%v) of fresh evidence", after, stallLease)
	}
	if after > stallLease+time.Second {
		t.Errorf("the failover started %v after the leader could judge: more than lease + 1 s", after)
	}
	if out, err := r.ctl("history"); err == nil {
		t.Logf("binlogctl history:\n%s", out)
	}
}
