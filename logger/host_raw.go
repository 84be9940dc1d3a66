package logger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	sm "github.com/lni/dragonboat/v4/statemachine"
)

// A RawShard is a replica, on a Host, of a shard whose state machine is the
// caller's, not the log's SM: the fleet's catalog (logger/catalog) runs on
// one. It shares the host's NodeHost and raft transport with the log's
// shards, and is guarded like them: it enters the frame guard's shard set
// with a membership feed of its own before it starts, and leaves it after
// it stops (as a Node does, node.go). It has no metrics, no loops of its
// own besides the feed, and no data directory: its state machine is an
// in-memory sm.IStateMachine that dragonboat snapshots into the NodeHost's
// snapshot directory.
type RawShard struct {
	cfg  RawConfig
	log  *slog.Logger
	host *Host
	nh   *dragonboat.NodeHost
	feed *memberFeed // nil on transports without a guard

	ctx      context.Context // canceled by Close
	cancel   context.CancelFunc
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// RawConfig configures a RawShard: the fields mean what Config's do.
type RawConfig struct {
	ShardID   uint64
	ReplicaID uint64
	// Members bootstraps a new shard (replica id → raft address); Join
	// starts a replica the shard added; neither restarts one.
	Members map[uint64]string
	Join    bool
	Role    string // RoleLogger (the default) or RoleLearner

	ElectionRTT        uint64
	HeartbeatRTT       uint64
	SnapshotEntries    uint64
	CompactionOverhead uint64

	Logger *slog.Logger
}

// Validate checks the shard's fields.
func (c *RawConfig) Validate() error {
	switch {
	case c.ShardID == 0 || c.ReplicaID == 0:
		return errors.New("logger: a raw shard needs a shard id and a replica id")
	case c.Join && len(c.Members) > 0:
		return errors.New("logger: a raw shard joins (Join) or bootstraps (Members), not both")
	case c.Role != "" && c.Role != RoleLogger && c.Role != RoleLearner:
		return fmt.Errorf("logger: role must be %s or %s, got %q", RoleLogger, RoleLearner, c.Role)
	case c.ElectionRTT == 0 || c.HeartbeatRTT == 0 || c.ElectionRTT <= 2*c.HeartbeatRTT:
		return fmt.Errorf("logger: raw shard %d: election RTT %d must be more than twice the heartbeat RTT %d", c.ShardID, c.ElectionRTT, c.HeartbeatRTT)
	}
	if _, ok := c.Members[c.ReplicaID]; len(c.Members) > 0 && !ok {
		return fmt.Errorf("logger: raw shard %d: the members do not list replica %d", c.ShardID, c.ReplicaID)
	}
	return nil
}

// StartRawShard starts a replica of shard cfg.ShardID whose state machine
// create makes. The shard id must not run on the host already, as a Node
// or a RawShard. Close the RawShard to stop the replica (its raft data
// stays); closing the host stops it too.
func (h *Host) StartRawShard(cfg RawConfig, create sm.CreateStateMachineFunc) (*RawShard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = h.cfg.Logger
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &RawShard{cfg: cfg, log: cfg.Logger.With("shard", cfg.ShardID, "replica", cfg.ReplicaID), host: h, nh: h.nh}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if err := h.reserveRaw(r); err != nil {
		r.cancel()
		return nil, err
	}
	// NB: the same order as a Node's (startShard): the guard accepts the
	// shard's frames, checked against its feed, before the replica starts.
	if h.shards != nil {
		r.feed = newMemberFeed(cfg.ShardID, cfg.Members)
		r.feed.loop.Store(h.members)
		h.shards.add(shardEntry{shard: cfg.ShardID, replica: cfg.ReplicaID, peers: r.feed.peers})
	}
	rc := config.Config{
		ReplicaID: cfg.ReplicaID, ShardID: cfg.ShardID, CheckQuorum: true, PreVote: true,
		ElectionRTT: cfg.ElectionRTT, HeartbeatRTT: cfg.HeartbeatRTT,
		SnapshotEntries: cfg.SnapshotEntries, CompactionOverhead: cfg.CompactionOverhead,
		OrderedConfigChange: true, IsNonVoting: cfg.Role == RoleLearner,
	}
	members := map[uint64]dragonboat.Target{}
	for id, addr := range cfg.Members {
		members[id] = addr
	}
	if err := h.nh.StartReplica(members, cfg.Join, create, rc); err != nil {
		if r.feed != nil {
			h.shards.remove(cfg.ShardID, r.feed.peers)
		}
		h.releaseRaw(r)
		r.cancel()
		return nil, fmt.Errorf("logger: starting shard %d as member %d: %w", cfg.ShardID, cfg.ReplicaID, err)
	}
	// NB: the host's member loop keeps the feed fresh (h.feeds lists raw
	// shards' feeds too).
	return r, nil
}

// Raw returns the host's RawShard of shard id, or nil.
func (h *Host) Raw(id uint64) *RawShard {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.raw[id]
}

// reserveRaw claims r's shard id on the host.
func (h *Host) reserveRaw(r *RawShard) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if h.nodes[r.cfg.ShardID] != nil || h.raw[r.cfg.ShardID] != nil {
		return fmt.Errorf("logger: shard %d already runs on this host", r.cfg.ShardID)
	}
	if h.raw == nil {
		h.raw = map[uint64]*RawShard{}
	}
	h.raw[r.cfg.ShardID] = r
	return nil
}

// releaseRaw forgets r; it reports false once the host is closing.
func (h *Host) releaseRaw(r *RawShard) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.raw[r.cfg.ShardID] == r {
		delete(h.raw, r.cfg.ShardID)
	}
	return !h.closed
}

// rawShards returns the host's RawShards (for Close).
func (h *Host) rawShards() []*RawShard {
	out := make([]*RawShard, 0, len(h.raw))
	for _, r := range h.raw {
		out = append(out, r)
	}
	return out
}

// Config returns the replica's configuration.
func (r *RawShard) Config() RawConfig { return r.cfg }

// Host returns the host the replica runs on.
func (r *RawShard) Host() *Host { return r.host }

// NodeHost returns the dragonboat NodeHost (for membership calls and
// snapshots).
func (r *RawShard) NodeHost() *dragonboat.NodeHost { return r.nh }

// LeaderID returns the shard's current leader, if one is known.
func (r *RawShard) LeaderID() (uint64, bool) {
	id, _, ok, err := r.nh.GetLeaderID(r.cfg.ShardID)
	if err != nil || !ok {
		return 0, false
	}
	return id, true
}

// Propose proposes cmd and waits for the state machine's result. Any
// replica may propose: dragonboat forwards the proposal to the leader. An
// error is ErrRetry (the outcome is unknown: the command may have applied)
// or ErrStopped, as Node.Propose's. Without a deadline on ctx, it waits at
// most 10 s.
func (r *RawShard) Propose(ctx context.Context, cmd []byte) (sm.Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	res, err := r.nh.SyncPropose(ctx, r.nh.GetNoOPSession(r.cfg.ShardID), cmd)
	return res, classify(err)
}

// Read is a linearizable read: the state machine's Lookup(query) once this
// replica applied everything committed when the read began. Errors as
// Propose's; without a deadline on ctx, it waits at most 10 s.
func (r *RawShard) Read(ctx context.Context, query any) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	v, err := r.nh.SyncRead(ctx, r.cfg.ShardID, query)
	return v, classify(err)
}

// Close stops the replica (its raft data stays) and joins its feed.
func (r *RawShard) Close() {
	r.shutdown()
	if !r.host.releaseRaw(r) {
		return // the host is closing: it stops the replica
	}
	if err := r.nh.StopReplica(r.cfg.ShardID, r.cfg.ReplicaID); err != nil && !errors.Is(err, dragonboat.ErrShardNotFound) {
		r.log.Warn("stopping the shard's replica", "err", err)
	}
	if r.feed != nil && r.host.shards != nil {
		r.host.shards.remove(r.cfg.ShardID, r.feed.peers)
	}
}

// shutdown stops the feed and joins it (once).
func (r *RawShard) shutdown() {
	r.stopOnce.Do(func() {
		r.cancel()
		r.wg.Wait()
	})
}
