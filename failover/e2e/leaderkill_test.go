package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// TestLeaderKill: the leader logger is killed (-9) in the
// middle of a failover; the new leader resumes the operation from its
// record in the log and finishes it, still with zero loss.
//
// The failover is held in its catch-up step: the one eligible candidate's
// applier waits on a table lock the test holds, so it lags the log, and
// the leader waits for it (rule 4). The leader is killed there; the lock is
// released only once the new leader has taken the operation over.
func TestLeaderKill(t *testing.T) {
	for _, flavor := range []sandbox.Flavor{sandbox.MariaDB, sandbox.MySQL} {
		t.Run(string(flavor), func(t *testing.T) { leaderKillOnce(t, flavor) })
	}
}

func leaderKillOnce(t *testing.T, flavor sandbox.Flavor) {
	r := newRig(t, flavor, rigOptions{replicas: 2, candidate: func(i int, s *sandbox.Server) string {
		if i == 1 {
			return s.Addr() + ",never-promote"
		}
		return s.Addr()
	}})
	target, other := r.replicas[0], r.replicas[1]
	t.Cleanup(func() {
		if t.Failed() {
			r.failoverLogs()
		}
	})
	l := r.startLoad(16)
	defer l.stop()
	l.waitCount(t, 300)

	// Hold the target's applier on a table lock so that it lags.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	lock, err := target.Conn(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			_, _ = lock.Execute("UNLOCK TABLES")
			lock.Close()
		}
	}
	defer unlock()
	if _, err := lock.Execute("LOCK TABLES test.acked READ"); err != nil {
		t.Fatal(err)
	}
	l.waitCount(t, l.count()+100)

	leader := r.leader()
	if leader == r.feeder {
		t.Fatalf("member %d leads and feeds the replicas: killing it would cut the target off the fleet", leader)
	}
	old := r.src.Addr()
	if err := r.src.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the source %s after %d acknowledged commits; member %d leads", old, l.count(), leader)

	// The failover reaches its catch-up step and waits for the target.
	var op *failover.Operation
	if err := fleet.Poll(context.Background(), wait, func() error {
		fs, err := r.failoverStatus()
		if err != nil {
			return err
		}
		if fs.Operation == nil || fs.Operation.Finished() || fs.Operation.Step != failover.StepChosen {
			return fmt.Errorf("operation %+v", fs.Operation)
		}
		op = fs.Operation
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if op.Target != target.Addr() || op.Leader != leader {
		t.Fatalf("operation %s chose %s on leader %d; want %s on leader %d", op.ID, op.Target, op.Leader, target.Addr(), leader)
	}
	// The wait shows the target's progress: the lock holds its SQL thread,
	// so it still lacks transactions and applies none.
	if err := fleet.Poll(context.Background(), wait, func() error {
		fs, err := r.failoverStatus()
		if err != nil {
			return err
		}
		if cu := fs.CatchUp; cu == nil || cu.Target != target.Addr() || cu.Missing == 0 || cu.Total < cu.Missing {
			return fmt.Errorf("catch-up %+v", fs.CatchUp)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if h, err := r.ctl("failover", "status"); err != nil || !strings.Contains(h, "Catch-up:       "+target.Addr()+" applied ") {
		t.Fatalf("binlogctl failover status during the catch-up (%v):\n%s", err, h)
	}
	time.Sleep(500 * time.Millisecond) // NB: well inside the catch-up wait
	if err := r.f.Kill(leader); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Logf("killed -9 the leader, member %d, with %s at step %s (target %s)", leader, op.ID, op.Step, op.Target)

	// A new leader takes the operation over from its record.
	var resumedBy uint64
	if err := fleet.Poll(context.Background(), wait, func() error {
		rs, err := r.auditTrail()
		if err != nil {
			return err
		}
		for _, rec := range rs {
			if rec.OpID == op.ID && rec.Step == "resume" && rec.Leader != leader {
				resumedBy = rec.Leader
				return nil
			}
		}
		return fmt.Errorf("no resume record yet")
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("member %d resumed %s %v after the kill", resumedBy, op.ID, time.Since(killed).Round(time.Millisecond))
	unlock()

	newSrc := r.waitNewSource(old, wait)
	if newSrc != target.Addr() {
		t.Fatalf("new source %s, want %s", newSrc, target.Addr())
	}
	t.Logf("new source %s streaming %v after the leader's kill", newSrc, time.Since(killed).Round(time.Millisecond))
	if err := fleet.Poll(context.Background(), wait, func() error {
		if n := l.countOn(newSrc); n < 200 {
			return fmt.Errorf("%d commits on the new source", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	l.stop() // NB: it waits until the application's sessions are gone
	l.verifyAcked(t, target)
	dumptest.WaitReplicated(t, target, other, wait)
	dumptest.SameData(t, target, other, []string{"test.acked"})

	// One operation, started by the killed leader and finished by the new
	// one, and nothing else.
	rs, err := r.auditTrail()
	if err != nil {
		t.Fatal(err)
	}
	steps := map[uint64][]string{}
	for _, rec := range rs {
		switch {
		case rec.OpID != "" && rec.OpID != op.ID:
			t.Errorf("a second operation %s: %s %s %s", rec.OpID, rec.Step, rec.Outcome, rec.Message)
		case rec.OpID == "":
			t.Errorf("an audit record outside the operation: %s %s %s", rec.Step, rec.Outcome, rec.Message)
		case rec.Outcome != "ok":
			t.Logf("record %s %s by leader %d: %s", rec.Step, rec.Outcome, rec.Leader, rec.Message)
		}
		if rec.OpID == op.ID {
			steps[rec.Leader] = append(steps[rec.Leader], rec.Step)
		}
	}
	t.Logf("steps by leader: %v", steps)
	if !hasStep(steps[leader], failover.StepChosen) || hasStep(steps[leader], failover.StepCaughtUp) {
		t.Errorf("the killed leader %d recorded %v; want it to have stopped after %s", leader, steps[leader], failover.StepChosen)
	}
	for _, s := range []string{"resume", failover.StepCaughtUp, failover.StepPromoted, failover.StepResumed, failover.StepDone} {
		if !hasStep(steps[resumedBy], s) {
			t.Errorf("the new leader %d recorded %v; want %s among them", resumedBy, steps[resumedBy], s)
		}
	}
	fs, err := r.failoverStatus()
	if err != nil || fs.Last == nil || fs.Last.ID != op.ID || fs.Last.Step != failover.StepDone || fs.Operation == nil || !fs.Operation.Finished() {
		t.Errorf("failover status %+v (%v): want %s done, nothing in progress", fs, err, op.ID)
	} else if fs.Epoch != op.FromEpoch+2 || fs.Last.NewEpoch != fs.Epoch {
		t.Errorf("epoch %d (operation's new epoch %d), want %d: one fence and one promotion", fs.Epoch, fs.Last.NewEpoch, op.FromEpoch+2)
	}
	h, _ := r.ctl("history")
	t.Logf("binlogctl history:\n%s", h)
}

// auditTrail reads the audit records from a running member.
func (r *rig) auditTrail() ([]failover.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var rs []failover.Record
	var err error
	for _, m := range r.f.Members {
		if !m.Running() {
			continue
		}
		if err = r.get(ctx, m.ID, "/failover/history", &rs); err == nil {
			return rs, nil
		}
	}
	return nil, err
}

func hasStep(l []string, s string) bool {
	for _, v := range l {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// failoverLogs logs every member's failover and ingest lines (the rig logs
// only the tails, which dragonboat's noise fills after a kill).
func (r *rig) failoverLogs() {
	for _, m := range r.f.Members {
		b, _ := os.ReadFile(m.LogPath)
		var keep []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "component=failover") || strings.Contains(line, "component=semisync") {
				keep = append(keep, line)
			}
		}
		if len(keep) > 80 {
			keep = keep[len(keep)-80:]
		}
		r.t.Logf("member %d failover and ingest log:\n%s", m.ID, strings.Join(keep, "\n"))
	}
}
