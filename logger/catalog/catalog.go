package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/binlogsvr/binlogsvr/logger"
)

// Config configures one host's replica of the catalog shard.
type Config struct {
	ShardID   uint64 // ShardID on a fleet created multi-source
	ReplicaID uint64 // this host's replica of the catalog shard
	// Members bootstraps a new catalog, replica id → raft address; Join
	// starts a replica the catalog shard added; neither restarts one.
	Members map[uint64]string
	Join    bool
	// Learner runs a non-voting replica (hosts outside the placement).
	Learner bool

	ElectionRTT        uint64
	HeartbeatRTT       uint64
	SnapshotEntries    uint64 // snapshot every this many entries (0: only when asked)
	CompactionOverhead uint64 // entries kept behind a snapshot

	Logger *slog.Logger
}

// DefaultConfig returns the catalog's defaults: shard 1, the log's raft
// timing (logger.DefaultConfig), and a snapshot every 1000 changes.
func DefaultConfig() Config {
	lc := logger.DefaultConfig()
	return Config{ShardID: ShardID, ElectionRTT: lc.ElectionRTT, HeartbeatRTT: lc.HeartbeatRTT, SnapshotEntries: 1000, CompactionOverhead: 100}
}

// Validate checks the replica's fields (the raft timing is checked by
// the host when the replica starts).
func (c *Config) Validate() error {
	switch {
	case c.ShardID == 0 || c.ReplicaID == 0:
		return errors.New("catalog: the catalog's shard id and this host's replica id must be positive")
	case c.Join && len(c.Members) > 0:
		return errors.New("catalog: a replica joins the catalog (Join) or bootstraps it (Members), not both")
	case c.Learner && len(c.Members) > 0:
		return errors.New("catalog: a learner joins the catalog: the members bootstrap it")
	}
	if _, ok := c.Members[c.ReplicaID]; len(c.Members) > 0 && !ok {
		return fmt.Errorf("catalog: the members do not list this host's replica %d", c.ReplicaID)
	}
	return nil
}

// A Catalog is a host's replica of the catalog shard, and the client of
// the catalog. Safe for concurrent use.
type Catalog struct {
	cfg   Config
	shard *logger.RawShard
	sm    *stateMachine
}

// Start starts the host's replica of the catalog shard (see doc.go for
// Members and Join). It returns once the replica started; the shard may
// not have a leader yet.
func Start(h *logger.Host, cfg Config) (*Catalog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	role := logger.RoleLogger
	if cfg.Learner {
		role = logger.RoleLearner
	}
	c := &Catalog{cfg: cfg, sm: newStateMachine()}
	// NB: dragonboat makes the state machine once per start, inside
	// StartRawShard; it is made here so that Local answers from the start.
	create := func(uint64, uint64) sm.IStateMachine { return c.sm }
	shard, err := h.StartRawShard(logger.RawConfig{ShardID: cfg.ShardID, ReplicaID: cfg.ReplicaID, Members: cfg.Members, Join: cfg.Join,
		Role: role, ElectionRTT: cfg.ElectionRTT, HeartbeatRTT: cfg.HeartbeatRTT, SnapshotEntries: cfg.SnapshotEntries,
		CompactionOverhead: cfg.CompactionOverhead, Logger: cfg.Logger}, create)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c.shard = shard
	return c, nil
}

// Shard returns the replica's shard on its host (leader, membership,
// snapshots).
func (c *Catalog) Shard() *logger.RawShard { return c.shard }

// Propose proposes cmd through this replica (dragonboat forwards it to the
// leader) and returns its Result. A Result whose Code is not OK is a
// refusal with a nil error. An error is logger.ErrRetry (the outcome is
// unknown: cmd may have applied) or logger.ErrStopped. Without a deadline
// on ctx, it waits at most 10 s.
func (c *Catalog) Propose(ctx context.Context, cmd Command) (Result, error) {
	res, err := c.shard.Propose(ctx, Encode(cmd))
	if err != nil {
		return Result{}, fmt.Errorf("catalog: %s %q: %w", cmd.Op, cmd.Name, err)
	}
	var r Result
	if err := json.Unmarshal(res.Data, &r); err != nil {
		return Result{}, fmt.Errorf("catalog: decoding the result of %s %q: %w", cmd.Op, cmd.Name, err)
	}
	return r, nil
}

// Read returns the catalog as of now: a linearizable read, which needs the
// shard's quorum. Errors as Propose's. The State must not be changed.
func (c *Catalog) Read(ctx context.Context) (*State, error) {
	v, err := c.shard.Read(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("catalog: reading: %w", err)
	}
	return v.(*State), nil
}

// Local returns the catalog as this replica applied it: possibly stale, no
// quorum needed. The State must not be changed.
func (c *Catalog) Local() *State { return c.sm.state.Load() }

// Changed returns a channel closed when this replica's catalog next
// changes (applied a command or recovered a snapshot).
func (c *Catalog) Changed() <-chan struct{} { return c.sm.wait() }

// Watch waits until this replica's catalog is past version after, and
// returns it; or returns ctx's error. The reconcile loop calls it with the
// version it last acted on.
func (c *Catalog) Watch(ctx context.Context, after uint64) (*State, error) {
	for {
		ch := c.sm.wait()
		if s := c.Local(); s.Version > after {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// Close stops this replica (its raft data stays on the host).
func (c *Catalog) Close() { c.shard.Close() }

// AddHost adds host id, at raftAddr, to the catalog shard as a non-voting
// replica (a host outside the catalog's placement: it starts its replica
// with Join and Learner). Adding a host the shard already has at that
// address changes nothing; at another address it is refused.
func (c *Catalog) AddHost(ctx context.Context, id uint64, raftAddr string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	nh := c.shard.NodeHost()
	m, err := nh.SyncGetShardMembership(ctx, c.cfg.ShardID)
	if err != nil {
		return fmt.Errorf("catalog: reading the catalog's membership: %w", err)
	}
	for _, set := range []map[uint64]string{m.Nodes, m.NonVotings} {
		if addr, ok := set[id]; ok {
			if addr != raftAddr {
				return fmt.Errorf("catalog: host %d is in the catalog at %s, not %s", id, addr, raftAddr)
			}
			return nil
		}
	}
	if _, removed := m.Removed[id]; removed {
		return fmt.Errorf("catalog: host id %d was removed from the catalog and cannot come back: give the host a new --id", id)
	}
	// NB: ordered configuration changes: the change names the membership
	// it follows, so a concurrent change makes this one fail, not both apply.
	if err := nh.SyncRequestAddNonVoting(ctx, c.cfg.ShardID, id, raftAddr, m.ConfigChangeID); err != nil {
		return fmt.Errorf("catalog: adding host %d: %w", id, err)
	}
	return nil
}
