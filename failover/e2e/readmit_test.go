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

// rigLease is the rig's --failover-lease.
const rigLease = 3 * time.Second

// noCandidateRig is a source, one replica fed by the fleet that is no
// candidate (it shows what the fleet's log holds), and the fleet.
func noCandidateRig(t *testing.T, flavor sandbox.Flavor) *rig {
	return newRig(t, flavor, rigOptions{replicas: 1, candidate: func(int, *sandbox.Server) string { return "" }})
}

// sourceReadOnly reads the server's read_only (MySQL's super_read_only too).
func sourceReadOnly(s *sandbox.Server) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	q := "SELECT @@GLOBAL.read_only"
	if s.Flavor() == sandbox.MySQL {
		q = "SELECT @@GLOBAL.read_only + @@GLOBAL.super_read_only"
	}
	r, err := s.Exec(ctx, q)
	if err != nil {
		return false, err
	}
	v, _ := r.GetInt(0, 0)
	return v != 0, nil
}

// readmitRecords returns the audit records of kind readmit.
func (r *rig) readmitRecords() []failover.Record {
	rs, err := r.history()
	if err != nil {
		r.t.Fatalf("history: %v", err)
	}
	var out []failover.Record
	for _, x := range rs {
		if x.Kind == failover.KindReadmit {
			out = append(out, x)
		}
	}
	return out
}

// TestReadmitLiveSource: a forced failover with no candidate against a
// live source under a ledgered write load. The fleet re-admits the source
// under a new epoch: it is writable again within the lease and a few
// seconds, every acknowledged commit is on it and in the fleet's log (on
// the replica the fleet feeds), and binlogctl history shows the
// re-admission.
func TestReadmitLiveSource(t *testing.T) {
	for _, flavor := range []sandbox.Flavor{sandbox.MariaDB, sandbox.MySQL} {
		t.Run(string(flavor), func(t *testing.T) { readmitLiveOnce(t, flavor) })
	}
}

func readmitLiveOnce(t *testing.T, flavor sandbox.Flavor) {
	r := noCandidateRig(t, flavor)
	src, rep := r.src, r.replicas[0]
	l := r.startLoad(8)
	defer l.stop()
	l.waitCount(t, 200)
	fs0, err := r.failoverStatus()
	if err != nil {
		t.Fatal(err)
	}

	// Watch read_only while the forced failover runs.
	var fencedAt, writableAt time.Time
	watch := make(chan struct{})
	go func() {
		defer close(watch)
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			ro, err := sourceReadOnly(src)
			now := time.Now()
			switch {
			case err != nil:
			case ro && fencedAt.IsZero():
				fencedAt = now
			case !ro && !fencedAt.IsZero():
				writableAt = now
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if out, err := r.ctl("history"); err != nil { // NB: builds binlogctl before the clock starts
		t.Fatalf("binlogctl history: %v\n%s", err, out)
	}
	acked0 := l.count()
	start := time.Now()
	out, err := r.ctl("failover", "--force")
	t.Logf("binlogctl failover --force (%v): %v\n%s", time.Since(start).Round(time.Millisecond), err, out)
	if err != nil {
		t.Fatalf("binlogctl failover --force: %v", err)
	}
	<-watch
	if fencedAt.IsZero() || writableAt.IsZero() {
		t.Fatalf("read_only was never seen on and then off again (fenced %v, writable %v)", fencedAt, writableAt)
	}
	down := writableAt.Sub(start)
	t.Logf("MEASURED %s: the source was read-only from +%v to +%v after the forced failover started: writable again %v after it (%d commits acknowledged before it)",
		flavor, fencedAt.Sub(start).Round(time.Millisecond), down.Round(time.Millisecond), down.Round(time.Millisecond), acked0)
	if down > rigLease+5*time.Second {
		t.Errorf("the source was writable again %v after the failover started; want at most the lease (%v) + 5s", down, rigLease)
	}
	if !strings.Contains(out, "step done") || !strings.Contains(out, "-> "+src.Addr()) {
		t.Errorf("binlogctl failover --force did not finish with the source re-admitted:\n%s", out)
	}

	fs1, err := r.failoverStatus()
	if err != nil {
		t.Fatal(err)
	}
	if fs1.Source != src.Addr() || fs1.Epoch <= fs0.Epoch+1 || fs1.Advice != "" {
		t.Errorf("after the re-admission: source %q epoch %d (was %d), advice %q; want %s under a new epoch past the fence's", fs1.Source, fs1.Epoch, fs0.Epoch, fs1.Advice, src.Addr())
	}
	r.waitStreaming(src.Addr())
	recs := r.readmitRecords()
	if len(recs) < 2 || recs[len(recs)-1].NewSource != src.Addr() {
		t.Errorf("history has %d readmit records, want the re-admission and writable steps: %+v", len(recs), recs)
	}
	for _, x := range recs {
		t.Logf("readmit record: step %s epoch %d: %s", x.Step, x.Epoch, x.Message)
	}

	// The load goes on on the re-admitted source.
	n := l.count()
	l.waitCount(t, n+200)
	firstAfter := time.Time{}
	l.mu.Lock()
	for _, c := range l.commits {
		if c.at.After(writableAt.Add(-time.Second)) && c.at.After(fencedAt) && (firstAfter.IsZero() || c.at.Before(firstAfter)) {
			firstAfter = c.at
		}
	}
	l.mu.Unlock()
	if !firstAfter.IsZero() {
		t.Logf("MEASURED %s: first commit acknowledged after the fence: %v after the forced failover started", flavor, firstAfter.Sub(start).Round(time.Millisecond))
	}
	l.stop()
	l.verifyAcked(t, src)
	dumptest.WaitReplicated(t, src, rep, wait)
	l.verifyAcked(t, rep)
	dumptest.SameData(t, src, rep, []string{"test.acked"})
	h, _ := r.ctl("history")
	t.Logf("binlogctl history:\n%s", h)
}

// TestNoCandidateSourceDown: with no candidate and the source killed, the
// failover waits: binlogctl status and failover status show one line
// saying what to do, it is logged once, and the retries back off; once the
// source is restarted it is re-admitted, and no acknowledged commit is
// lost.
func TestNoCandidateSourceDown(t *testing.T) {
	flavor := sandbox.MariaDB
	r := noCandidateRig(t, flavor)
	src, rep := r.src, r.replicas[0]
	l := r.startLoad(4)
	defer l.stop()
	l.waitCount(t, 100)
	fs0, err := r.failoverStatus()
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Logf("killed the source %s after %d acknowledged commits", src.Addr(), l.count())

	var st failover.Status
	if err := fleet.Poll(context.Background(), wait, func() error {
		if st, err = r.failoverStatus(); err != nil {
			return err
		}
		if !strings.Contains(st.Advice, "fenced and unreachable") {
			return fmt.Errorf("advice %q (verdict %s)", st.Advice, st.Verdict)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v after the kill, /failover/status advice: %s (retry every %s)", time.Since(killed).Round(time.Millisecond), st.Advice, st.RetryInterval)
	for _, want := range []string{src.Addr(), "binlogctl candidates add HOST:PORT --credential NAME", "re-admitted once it answers"} {
		if !strings.Contains(st.Advice, want) {
			t.Errorf("the advice does not say %q: %s", want, st.Advice)
		}
	}
	for _, args := range [][]string{{"status"}, {"failover", "status"}} {
		out, err := r.ctl(args...)
		if err != nil || strings.Count(out, "ACTION NEEDED:") != 1 || !strings.Contains(out, st.Advice) {
			t.Errorf("binlogctl %s (%v) does not show the advice once:\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("binlogctl %s:\n%s", strings.Join(args, " "), out)
		}
	}

	// The retry interval grows and the advice is logged once.
	leader := r.f.Member(r.leader())
	logged := func() int {
		b, _ := os.ReadFile(leader.LogPath)
		return strings.Count(string(b), "is fenced and unreachable")
	}
	var intervals []time.Duration
	if d, err := time.ParseDuration(st.RetryInterval); err == nil {
		intervals = append(intervals, d) // NB: from the first sight on: the interval doubles after each retry
	}
	n0 := logged()
	for i := 0; i < 8; i++ {
		time.Sleep(time.Second)
		s, err := r.failoverStatus()
		if err != nil {
			continue
		}
		if d, err := time.ParseDuration(s.RetryInterval); err == nil {
			intervals = append(intervals, d)
		}
	}
	n1 := logged()
	t.Logf("retry intervals seen over 8 s: %v; the advice is in the leader's log %d times (then %d)", intervals, n0, n1)
	if len(intervals) < 2 || intervals[len(intervals)-1] <= intervals[0] || intervals[len(intervals)-1] < 2*time.Second {
		t.Errorf("the retry interval does not grow: %v", intervals)
	}
	if n0 < 1 || n0 > 2 || n1 != n0 {
		t.Errorf("the advice was logged %d times, then %d: want once (and once more in the failover's first error), not every retry", n0, n1)
	}
	if st, _ := r.status(); !st.SourceFenced || st.Epoch != fs0.Epoch+1 {
		t.Errorf("while waiting: source %q epoch %d; want the fence at epoch %d", st.Source, st.Epoch, fs0.Epoch+1)
	}

	// The source comes back: it is re-admitted.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	err = src.Restart(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	if err := fleet.Poll(context.Background(), wait, func() error {
		s, err := r.failoverStatus()
		if err != nil {
			return err
		}
		if s.Source != src.Addr() || s.Advice != "" {
			return fmt.Errorf("source %q, advice %q", s.Source, s.Advice)
		}
		if ro, err := sourceReadOnly(src); err != nil || ro {
			return fmt.Errorf("read_only %v (%v)", ro, err)
		}
		return nil
	}); err != nil {
		t.Fatalf("the restarted source was not re-admitted: %v", err)
	}
	t.Logf("MEASURED: the restarted source was re-admitted and writable %v after it answered again (%v after the kill)",
		time.Since(back).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	r.waitStreaming(src.Addr())
	if recs := r.readmitRecords(); len(recs) < 2 {
		t.Errorf("history has %d readmit records: %+v", len(recs), recs)
	}
	n := l.count()
	l.waitCount(t, n+100)
	l.stop()
	l.verifyAcked(t, src)
	dumptest.WaitReplicated(t, src, rep, wait)
	l.verifyAcked(t, rep)
	dumptest.SameData(t, src, rep, []string{"test.acked"})
	h, _ := r.ctl("history")
	t.Logf("binlogctl history:\n%s", h)
}
