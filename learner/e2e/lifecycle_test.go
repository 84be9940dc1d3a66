package e2e

import (
	"context"
	"errors"
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

// maxStall bounds how long one commit on the source may take while the
// membership changes: an election (300ms here) plus the new leader's
// reconnection to the source. Members built with -race run several times
// slower (make e2e runs this package so, beside two other lanes): twice
// the bound for them.
const maxStall = 8 * time.Second

// TestLifecycleUnderLoad: in front of a
// MariaDB semi-sync source under a write load, two learners are added (each
// catches up from a snapshot, with its progress shown, then serves a
// MariaDB replica that stays checksum-equal to the source); one is promoted
// to logger; a logger is demoted; a dead logger is removed (removing a live
// one then is refused); leadership is transferred. The source's commits
// never stall longer than an election and a reconnection, and none goes
// without the fleet's ACK.
func TestLifecycleUnderLoad(t *testing.T) {
	src := startSource(t)
	replicas := []*sandbox.Server{
		sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB}),
		sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB}),
	}
	// NB: small snapshot intervals: a member joining after a few hundred
	// entries must catch up from a snapshot.
	r := newRig(t, src, func(uint64) fleet.MemberSpec { return fleet.MemberSpec{Serve: true} },
		"--source-heartbeat", "500ms", "--snapshot-entries", "100", "--compaction-overhead", "20")
	r.waitStreaming()
	ld := r.startLoad("l", 4)
	defer func() {
		select {
		case <-ld.stop:
		default:
			ld.finish()
		}
	}()
	ctx := context.Background()
	if err := fleet.Poll(ctx, wait, func() error {
		if n, _ := ld.status(); n < 600 {
			return fmt.Errorf("%d commits so far", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Add two serving learners; each catches up from a snapshot.
	var learners []uint64
	for range 2 {
		m, err := r.f.NewMember(true)
		if err != nil {
			t.Fatal(err)
		}
		r.mustCtl(1, "add-learner", fmt.Sprint(m.ID), "--raft-addr", m.RaftAddr, "--admin-addr", m.AdminAddr)
		if err := r.f.Launch(m, true, "--role", "learner"); err != nil {
			t.Fatal(err)
		}
		learners = append(learners, m.ID)
	}
	sawProgress := false
	for _, id := range learners {
		r.waitView(1, fmt.Sprintf("learner %d catches up and serves", id), func(v binlogsvr.MembersStatus) error {
			if m, err := member(v, id); err == nil && m.Progress != nil {
				sawProgress = true
			}
			return caughtUp(id, learner.RoleLearner, true)(v)
		})
	}
	out := r.mustCtl(1, "members")
	for _, id := range learners {
		v, _ := r.view(1)
		m, _ := member(v, id)
		if m.Snapshots < 1 {
			t.Errorf("learner %d recovered %d snapshots; it should have caught up from one", id, m.Snapshots)
		}
		if !r.logHas(id, "member catching up") || !r.logHas(id, "caught up with the leader: serving dumps now") {
			t.Errorf("learner %d's log does not show its catch-up progress and the start of serving", id)
		}
	}
	if !strings.Contains(out, "learner") || !strings.Contains(out, "LAG BYTES") {
		t.Fatalf("binlogctl members:\n%s", out)
	}
	t.Logf("progress seen in the members view while catching up: %v", sawProgress)
	// The learners caught up from snapshots: the loggers (all running
	// still) counted sending them.
	// NB: polled: dragonboat publishes the event asynchronously.
	if err := fleet.Poll(ctx, 10*time.Second, func() error {
		var sent float64
		for _, id := range []uint64{1, 2, 3} {
			v, _ := metric(r.metrics(id), `binlogsvr_logger_snapshot_sends_total{result="completed"}`)
			sent += v
		}
		if sent < 1 {
			return errors.New("no logger counted a completed snapshot send (binlogsvr_logger_snapshot_sends_total)")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	// A MariaDB replica on each learner.
	files, err := r.f.Files(ctx, learners[0])
	if err != nil || len(files) == 0 {
		t.Fatalf("learner files %v %v", files, err)
	}
	for i, rep := range replicas {
		if start := files[0].StartGTIDs; start != "" {
			dumptest.Exec(t, rep, "SET GLOBAL gtid_slave_pos = '"+start+"'")
		}
		dumptest.PointReplica(t, rep, r.f.Member(learners[i]).DumpAddr, dumptest.ByGTID)
	}

	// Promote the first learner.
	r.mustCtl(2, "promote", fmt.Sprint(learners[0]))
	r.waitView(1, "the promoted learner is a logger", caughtUp(learners[0], learner.RoleLogger, true))

	// Demote logger 3 (or whichever of 2, 3 does not lead): it rejoins as a
	// learner under a new id at a new address.
	l := r.leader()
	demoted := uint64(3)
	if l == 3 {
		demoted = 2
	}
	nm, err := r.f.NewMember(false)
	if err != nil {
		t.Fatal(err)
	}
	r.mustCtl(1, "demote", fmt.Sprint(demoted), "--new-id", fmt.Sprint(nm.ID), "--raft-addr", nm.RaftAddr)
	if err := r.f.Stop(demoted); err != nil {
		t.Fatal(err)
	}
	if err := r.f.Launch(nm, true, "--role", "learner"); err != nil {
		t.Fatal(err)
	}
	r.waitView(1, "the demoted logger is a learner", caughtUp(nm.ID, learner.RoleLearner, false))

	// Kill a logger that does not lead; removing a live one is now unsafe,
	// removing the dead one is not.
	l = r.leader()
	var dead, other uint64
	for _, id := range []uint64{1, 2, learners[0]} {
		if id == demoted || id == l {
			continue
		}
		if dead == 0 {
			dead = id
		} else {
			other = id
		}
	}
	if other == 0 {
		other = l
	}
	if err := r.f.Kill(dead); err != nil {
		t.Fatal(err)
	}
	ask := l
	r.waitView(ask, "the killed logger is unreachable", func(v binlogsvr.MembersStatus) error {
		if m, err := member(v, dead); err != nil || m.Reachable {
			return fmt.Errorf("member %d still reachable (%v)", dead, err)
		}
		return nil
	})
	out, err = r.binlogctl(ask, "remove", fmt.Sprint(other))
	if err == nil || !strings.Contains(out, "below their quorum") {
		t.Fatalf("removing a live logger with another dead: %v\n%s", err, out)
	}
	t.Logf("refused as it should: %s", strings.TrimSpace(out))
	r.mustCtl(ask, "remove", fmt.Sprint(dead))
	r.waitView(ask, "the dead logger is gone", func(v binlogsvr.MembersStatus) error {
		if _, ok := v.Get(dead); ok {
			return fmt.Errorf("member %d still in the group", dead)
		}
		return nil
	})

	// Transfer leadership to the other live logger.
	l = r.leader()
	to := other
	if to == l {
		for _, m := range mustView(t, r, ask).Loggers() {
			if m.ID != l {
				to = m.ID
			}
		}
	}
	// NB: asked of a learner, which forwards it to the leader.
	r.mustCtl(learners[1], "transfer-leader", fmt.Sprint(to))
	if nl := r.leader(); nl != to {
		t.Fatalf("leader %d after transferring to %d", nl, to)
	}
	r.waitStreaming()
	time.Sleep(2 * time.Second)

	acked, pause, err := ld.finish()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d commits acknowledged under the changes; the longest took %v", acked, pause.Round(time.Millisecond))
	bound := maxStall
	if r.f.RaceBuilt() {
		bound *= 2
	}
	if pause > bound {
		t.Errorf("a commit stalled %v (> %v); it began at %s (the members' logs at %s)", pause, bound,
			ld.maxAt.UTC().Format("15:04:05.000"), r.f.LogPaths())
	}
	if no := r.semi("no_tx"); no != 0 {
		t.Errorf("no_tx %d: commits went without the fleet's ACK", no)
	}
	res, err := src.Exec(ctx, "SELECT COUNT(*) FROM test.l")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.GetInt(0, 0); n != acked {
		t.Errorf("the source holds %d rows, %d commits were acknowledged", n, acked)
	}
	for i, rep := range replicas {
		dumptest.WaitReplicated(t, src, rep, wait)
		dumptest.SameData(t, src, rep, []string{"test.l"})
		t.Logf("replica %d of learner %d is checksum-equal to the source", i+1, learners[i])
	}
	m := r.metrics(to)
	for _, name := range []string{`binlogsvr_members{role="logger"}`, `binlogsvr_members{role="learner"}`} {
		if _, ok := metric(m, name); !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	if v, ok := metric(m, fmt.Sprintf(`binlogsvr_members_lag_entries{member="%d",role="learner"}`, nm.ID)); !ok {
		t.Errorf("no lag metric for learner %d (%v)", nm.ID, v)
	}
	t.Logf("binlogctl members at the end:\n%s", r.mustCtl(ask, "members"))
}

func mustView(t *testing.T, r *rig, id uint64) binlogsvr.MembersStatus {
	t.Helper()
	v, err := r.view(id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
