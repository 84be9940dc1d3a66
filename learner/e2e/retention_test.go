package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

func bg() context.Context { return context.Background() }

// files returns member id's binlog files (its own retention).
func (r *rig) files(id uint64) []binlogsvr.FileInfo {
	r.t.Helper()
	fs, err := r.f.Files(bg(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return fs
}

// showBinaryLogs asks member id's dump server.
func (r *rig) showBinaryLogs(id uint64) []string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(bg(), 30*time.Second)
	defer cancel()
	c, err := dumptest.Dial(ctx, r.f.Member(id).DumpAddr, "repl", fleet.DumpPassword)
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Exec("SHOW BINARY LOGS")
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for i := 0; i < res.RowNumber(); i++ {
		n, _ := res.GetString(i, 0)
		out = append(out, n)
	}
	return out
}

// TestLogOnlyAndPurge: a log-only logger keeps
// no more than its retention while the serving members keep everything
// (SHOW BINARY LOGS says so on each), it does not lead while a full member
// can, a new learner gets the whole log, and the group purge keeps what a
// member still needs unless forced, saying what is held and why.
func TestLogOnlyAndPurge(t *testing.T) {
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB})
	r := newRig(t, src, func(id uint64) fleet.MemberSpec {
		if id == 3 {
			return fleet.MemberSpec{Args: []string{"--retain-files", "2", "--weight", "5"}} // NB: heaviest, yet log-only
		}
		return fleet.MemberSpec{Serve: true}
	}, "--debug-api", "--snapshot-bytes", fmt.Sprint(4<<20)) // NB: the log is smaller than the default; a new member gets a snapshot
	r.leader()
	if err := fleet.Poll(bg(), wait, func() error {
		st, err := r.f.Status(bg(), r.leader(), true)
		if err != nil || st.Epoch != 1 {
			return fmt.Errorf("not seeded: %+v %v", st.SourceError, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// 24 MiB in the first file: a new member's snapshot takes a moment.
	if err := fleet.Poll(bg(), wait, func() error { return r.f.Post(bg(), r.leader(), "/debug/append?n=400&size=60000", nil) }); err != nil {
		t.Fatal(err)
	}
	// NB: retried: the log-only member may be handing leadership over.
	if err := fleet.Poll(bg(), wait, func() error { return r.f.Post(bg(), r.leader(), "/debug/max-file-size?bytes=4096", nil) }); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := fleet.Poll(bg(), wait, func() error { return r.f.Post(bg(), r.leader(), "/debug/append?n=50&size=400", nil) }); err != nil {
			t.Fatal(err)
		}
	}
	// The log-only member does not lead, whatever its weight.
	if err := fleet.Poll(bg(), wait, func() error {
		if l := r.leader(); l == 3 {
			return fmt.Errorf("the log-only member leads")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var all []binlogsvr.FileInfo
	if err := fleet.Poll(bg(), wait, func() error {
		all = r.files(1)
		if n := len(r.files(3)); n > 2 {
			return fmt.Errorf("the log-only member holds %d files", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(all) < 10 || all[0].Name != "binlog.000001" || all[0].Size < 20<<20 {
		t.Fatalf("the serving member holds %d files from %s", len(all), all[0].Name)
	}
	for _, id := range []uint64{1, 2} {
		if got := r.showBinaryLogs(id); len(got) < len(all)-1 || got[0] != "binlog.000001" {
			t.Fatalf("SHOW BINARY LOGS on serving member %d: %v", id, got)
		}
	}
	lo := r.files(3)
	t.Logf("serving members hold %s..%s; the log-only member %s..%s", all[0].Name, all[len(all)-1].Name, lo[0].Name, lo[len(lo)-1].Name)
	v := mustView(t, r, 1)
	m3, _ := member(v, 3)
	if m3.Profile != learner.ProfileLogOnly || m3.Retention.Files != 2 || m3.Serving {
		t.Fatalf("member 3: %+v", m3)
	}

	// A new learner gets the whole log from a full leader's snapshot.
	nm, err := r.f.NewMember(true)
	if err != nil {
		t.Fatal(err)
	}
	r.mustCtl(1, "add-learner", fmt.Sprint(nm.ID), "--raft-addr", nm.RaftAddr, "--admin-addr", nm.AdminAddr)
	if err := r.f.Launch(nm, true, "--role", "learner", "--snapshot-entries", "20"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var progress []string
	r.waitView(1, "the new learner serves", func(v binlogsvr.MembersStatus) error {
		if m, err := member(v, nm.ID); err == nil && m.Progress != nil {
			progress = append(progress, m.Progress.String())
		}
		return caughtUp(nm.ID, learner.RoleLearner, true)(v)
	})
	took := time.Since(t0)
	t.Logf("the new learner caught up in %v; progress seen: %q", took.Round(time.Millisecond), progress)
	// NB: on a quiet machine 23 MiB arrive in about a second, faster than the
	// members view's refresh; progress must show when catching up takes
	// longer than a few refreshes (the progress math is table-tested).
	if len(progress) == 0 && took > 3*time.Second {
		t.Errorf("the members view never showed the new learner's progress in %v", took)
	}
	logged := false
	for _, id := range []uint64{1, 2, 3, nm.ID} {
		if r.logHas(id, fmt.Sprintf("catching_up=%d", nm.ID)) {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no member logged the new learner's catch-up progress")
	}
	if got := r.files(nm.ID); len(got) < len(all) || got[0].Name != "binlog.000001" || got[0].SHA256 != r.files(1)[0].SHA256 {
		t.Fatalf("the new learner holds %d files from %s", len(got), got[0].Name)
	}
	if got := r.showBinaryLogs(nm.ID); got[0] != "binlog.000001" {
		t.Fatalf("SHOW BINARY LOGS on the learner: %v", got)
	}

	// A learner that was added but never started: its needs are unknown, so
	// the purge is held, and says why.
	ghost, err := r.f.NewMember(false)
	if err != nil {
		t.Fatal(err)
	}
	r.mustCtl(1, "add-learner", fmt.Sprint(ghost.ID), "--raft-addr", ghost.RaftAddr)
	out, err := r.binlogctl(2, "purge", "binlog.000005")
	if err == nil || !strings.Contains(out, fmt.Sprintf("held by member %d (learner)", ghost.ID)) || !strings.Contains(out, "unreachable") {
		t.Fatalf("purge with an unreachable learner: %v\n%s", err, out)
	}
	t.Logf("held: %s", strings.TrimSpace(out))
	if got := r.files(1); got[0].Name != "binlog.000001" {
		t.Fatalf("a refused purge removed files: %s", got[0].Name)
	}
	out = r.mustCtl(2, "purge", "binlog.000005", "--force")
	if !strings.Contains(out, "forced") {
		t.Fatalf("forced purge: %s", out)
	}
	r.mustCtl(2, "remove", fmt.Sprint(ghost.ID))
	r.mustCtl(2, "purge", "binlog.000007")
	if err := fleet.Poll(bg(), wait, func() error {
		for _, id := range []uint64{1, 2, nm.ID} {
			if got := r.files(id); got[0].Name != "binlog.000007" {
				return fmt.Errorf("member %d starts at %s", id, got[0].Name)
			}
			if got := r.showBinaryLogs(id); got[0] != "binlog.000007" {
				return fmt.Errorf("SHOW BINARY LOGS on member %d starts at %s", id, got[0])
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m := r.metrics(2)
	for name, want := range map[string]float64{`binlogsvr_members_purges_total{result="refused"}`: 1,
		`binlogsvr_members_purges_total{result="forced"}`: 1, `binlogsvr_members_purges_total{result="ok"}`: 1} {
		if got, _ := metric(m, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
