package logger_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	pb "github.com/lni/dragonboat/v4/raftpb"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/catalog"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
)

// A RawShard (the catalog, shard 1) runs beside a log shard (2) on three
// hosts: each host refuses a second replica of either shard id; a
// stranger's frames for the catalog shard are rejected by every host's
// guard (reason sender) while both shards commit, and do not move the
// catalog's term; once a host closes its catalog replica, frames for it
// are rejected as another shard's while its log shard runs on.
func TestHostsRawShard(t *testing.T) {
	h := loggertest.NewHosts(t, 3)
	h.StartShard(2, 1, 2, 3)
	members := map[uint64]string{1: h.Addr(1), 2: h.Addr(2), 3: h.Addr(3)}
	cats := map[uint64]*catalog.Catalog{}
	for id := uint64(1); id <= 3; id++ {
		cfg := catalog.DefaultConfig()
		cfg.ReplicaID, cfg.Members, cfg.ElectionRTT, cfg.HeartbeatRTT = id, members, 50, 2
		c, err := catalog.Start(h.Host(id), cfg)
		if err != nil {
			t.Fatalf("host %d: %v", id, err)
		}
		cats[id] = c
	}
	host := h.Host(1)
	if got := slices.Sorted(slices.Values(host.Shards())); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("host 1 runs shards %v, want [1 2]", got)
	}
	if host.Raw(1) != cats[1].Shard() || host.Shard(1) != nil || host.Raw(2) != nil {
		t.Fatal("host 1 does not tell its raw shard from its Node")
	}
	// One replica per shard id, whatever its state machine.
	create := func(uint64, uint64) sm.IStateMachine { t.Fatal("a refused shard made its state machine"); return nil }
	if _, err := host.StartRawShard(logger.RawConfig{ShardID: 2, ReplicaID: 1, ElectionRTT: 50, HeartbeatRTT: 2}, create); err == nil {
		t.Fatal("a raw shard started over the log shard 2")
	}
	cfg := logger.DefaultConfig()
	cfg.ShardID, cfg.ReplicaID = 1, 1
	if _, err := host.StartShard(cfg); err == nil {
		t.Fatal("a log shard started over the catalog's shard 1")
	}
	setSourceOn(t, h.Leader(2, wait))

	leaderOf := func(id uint64) (uint64, uint64) {
		lid, term, ok, err := cats[id].Shard().NodeHost().GetLeaderID(catalog.ShardID)
		if err != nil || !ok {
			return 0, 0
		}
		return lid, term
	}
	var leader1, term1 uint64
	if err := loggertest.Poll(t.Context(), wait, func() error {
		leader1, term1 = leaderOf(1)
		if l2, _ := leaderOf(2); leader1 == 0 || l2 != leader1 {
			return dragonboat.ErrShardNotReady
		}
		return nil
	}); err != nil {
		t.Fatalf("no catalog leader: %v", err)
	}
	var added atomic.Int64
	addSource := func(via uint64) {
		t.Helper()
		n := added.Add(1)
		name := fmt.Sprintf("s%d", n)
		err := loggertest.Poll(t.Context(), wait, func() error {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			res, err := cats[via].Propose(ctx, catalog.Command{Op: catalog.OpAdd, Name: name, SourceAddr: "db:3306", Loggers: []uint64{1, 2, 3}})
			if err == nil && res.Code != catalog.OK && res.Code != catalog.Exists {
				t.Fatalf("add %s: %s", name, res)
			}
			return err
		})
		if err != nil {
			t.Fatalf("add %s through host %d: %v", name, via, err)
		}
	}

	// A stranger (replica 9, at an address no member has) votes in term
	// +1000 for the catalog shard, and a member speaks from a wrong
	// address, to every host, while both shards commit.
	rounds, stop := strangerFrames(t, members, term1)
	f2 := &feeder{next: 1, pos: 4}
	for n := 0; n == 0 || rounds[1].Load() < 5 || rounds[2].Load() < 5 || rounds[3].Load() < 5; n++ {
		addSource(uint64(n%3 + 1))
		appendVia(t, func() *logger.Node { return h.Leader(2, wait) }, f2, 5, 200)
		time.Sleep(20 * time.Millisecond) // NB: a few dozen rounds, not thousands
	}
	stop()
	for id := uint64(1); id <= 3; id++ {
		got := counter(t, h.Registry(id), "binlogsvr_logger_raft_frames_rejected_total", map[string]string{"reason": "sender"})
		if got == 0 {
			t.Fatalf("host %d rejected no frame of the stranger", id)
		}
		if lid, term := leaderOf(id); lid != leader1 || term >= term1+1000 {
			t.Fatalf("host %d: the catalog's leader %d in term %d after the stranger's frames (was %d in term %d)", id, lid, term, leader1, term1)
		}
	}
	t.Logf("%d sources added, %d transactions appended under the stranger's frames", added.Load(), f2.next-1)
	shardSame(t, h, 2, 1, 2, 3)

	// Host 3 stops its catalog replica: the guard no longer accepts the
	// shard's frames there, and the log shard runs on.
	v := cats[1].Local().Version
	cats[3].Close()
	if got := h.Host(3).Shards(); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("host 3 runs shards %v after closing the catalog, want [2]", got)
	}
	before := counter(t, h.Registry(3), "binlogsvr_logger_raft_frames_rejected_total", map[string]string{"reason": "shard"})
	sendRaw(t, members[3], batchFrame(t, members[1], 1, 3, pb.Heartbeat, term1), nil)
	if err := loggertest.Poll(t.Context(), wait, func() error {
		if counter(t, h.Registry(3), "binlogsvr_logger_raft_frames_rejected_total", map[string]string{"reason": "shard"}) == before {
			return dragonboat.ErrShardNotFound
		}
		return nil
	}); err != nil {
		t.Fatal("host 3 did not reject a frame for the catalog shard it stopped")
	}
	addSource(1)
	appendVia(t, func() *logger.Node { return h.Leader(2, wait) }, f2, 5, 200)
	if got := cats[1].Local().Version; got <= v {
		t.Fatalf("the catalog is at version %d after an add on two hosts, was %d", got, v)
	}
	shardSame(t, h, 2, 1, 2, 3)
}
