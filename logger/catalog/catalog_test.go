package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
)

const wait = 60 * time.Second

// fleet runs the catalog on hosts of a loggertest.Hosts.
type fleet struct {
	t    *testing.T
	h    *loggertest.Hosts
	cats map[uint64]*Catalog
}

// newFleet starts hosts 1..n, and the catalog on hosts 1..voters.
func newFleet(t *testing.T, n, voters int) *fleet {
	f := &fleet{t: t, h: loggertest.NewHosts(t, n), cats: map[uint64]*Catalog{}}
	members := map[uint64]string{}
	for id := uint64(1); id <= uint64(voters); id++ {
		members[id] = f.h.Addr(id)
	}
	for id := uint64(1); id <= uint64(voters); id++ {
		f.start(id, members)
	}
	return f
}

// start starts host id's catalog replica: a new one with members, a
// restart without.
func (f *fleet) start(id uint64, members map[uint64]string) *Catalog {
	f.t.Helper()
	cfg := DefaultConfig()
	cfg.ReplicaID, cfg.Members = id, members
	return f.startCfg(id, cfg)
}

func (f *fleet) startCfg(id uint64, cfg Config) *Catalog {
	f.t.Helper()
	cfg.ElectionRTT, cfg.HeartbeatRTT = 50, 2 // NB: as loggertest's shards, at its 5 ms RTT
	cfg.SnapshotEntries, cfg.CompactionOverhead = 0, 5
	c, err := Start(f.h.Host(id), cfg)
	if err != nil {
		f.t.Fatalf("starting the catalog on host %d: %v", id, err)
	}
	f.cats[id] = c
	return c
}

// stop closes host id (and its catalog replica).
func (f *fleet) stop(id uint64) {
	delete(f.cats, id)
	f.h.StopHost(id)
}

// restart starts host id again, and its catalog replica from its data.
func (f *fleet) restart(id uint64) *Catalog {
	f.h.StartHost(id)
	return f.start(id, nil)
}

// leader waits until the running replicas agree on a leader and returns
// its host.
func (f *fleet) leader() uint64 {
	f.t.Helper()
	var lid uint64
	if err := loggertest.Poll(f.t.Context(), wait, func() error {
		lid = 0
		for id, c := range f.cats {
			l, ok := c.Shard().LeaderID()
			if !ok || (lid != 0 && l != lid) {
				return fmt.Errorf("host %d: leader %d (known %v), others say %d", id, l, ok, lid)
			}
			lid = l
		}
		if f.cats[lid] == nil {
			return fmt.Errorf("the leader %d is not running", lid)
		}
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	return lid
}

// propose proposes cmd through host id's replica, retrying while the
// outcome is unknown, and wants it applied.
func (f *fleet) propose(id uint64, cmd Command) Result {
	f.t.Helper()
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(f.t.Context(), 5*time.Second)
		r, err := f.cats[id].Propose(ctx, cmd)
		cancel()
		switch {
		case err == nil && r.Code == Exists && try > 1:
			return r // NB: an earlier try applied: its result was lost
		case err == nil:
			if !r.OK() {
				f.t.Fatalf("%s %q through host %d: %s", cmd.Op, cmd.Name, id, r)
			}
			return r
		case !logger.Retryable(err) || try == 10:
			f.t.Fatalf("%s %q through host %d: %v", cmd.Op, cmd.Name, id, err)
		}
	}
}

// same waits until every running replica's linearizable read and local
// state are at version v, and returns their (identical) JSON.
func (f *fleet) same(v uint64) string {
	f.t.Helper()
	var want string
	for id, c := range f.cats {
		ctx, cancel := context.WithTimeout(f.t.Context(), wait)
		local, err := c.Watch(ctx, v-1)
		cancel()
		if err != nil {
			f.t.Fatalf("host %d: waiting for version %d (at %d): %v", id, v, c.Local().Version, err)
		}
		var read *State
		if err := loggertest.Poll(f.t.Context(), wait, func() error {
			ctx, cancel := context.WithTimeout(f.t.Context(), 5*time.Second)
			defer cancel()
			read, err = c.Read(ctx)
			return err
		}); err != nil {
			f.t.Fatalf("host %d: reading the catalog: %v", id, err)
		}
		for _, s := range []*State{local, read} {
			if s.Version != v {
				f.t.Fatalf("host %d: the catalog is at version %d, want %d", id, s.Version, v)
			}
			b, _ := json.Marshal(s)
			if want == "" {
				want = string(b)
			} else if string(b) != want {
				f.t.Fatalf("host %d holds\n%s\nanother\n%s", id, b, want)
			}
		}
	}
	return want
}

func addCmd(name string, port int) Command {
	return Command{Op: OpAdd, Name: name, SourceAddr: fmt.Sprintf("db-%s:3306", name), Loggers: []uint64{1, 2, 3},
		DumpAddrs: map[uint64]string{1: fmt.Sprintf(":%d", port), 2: fmt.Sprintf(":%d", port), 3: fmt.Sprintf(":%d", port)}}
}

// snapshot makes host id's replica snapshot now and compact its raft log
// up to the snapshot.
func (f *fleet) snapshot(id uint64) uint64 {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.t.Context(), wait)
	defer cancel()
	idx, err := f.cats[id].Shard().NodeHost().SyncRequestSnapshot(ctx, ShardID,
		dragonboat.SnapshotOption{OverrideCompactionOverhead: true, CompactionOverhead: 0})
	if err != nil && !errors.Is(err, dragonboat.ErrRejected) { // NB: rejected: nothing new since the last one
		f.t.Fatalf("host %d: snapshot: %v", id, err)
	}
	return idx
}

// Three hosts run the catalog shard over real TCP: sources added through
// any replica read back the same everywhere; a stale compare-and-set is
// refused; a fourth host joins as a learner, catches up and proposes; with
// the leader's host closed the other two go on, and it catches up when it
// comes back; a replica restarts from its own snapshot, and one that fell
// behind a compacted log catches up from the leader's.
func TestCatalogThreeHosts(t *testing.T) {
	f := newFleet(t, 4, 3)
	lead := f.leader()
	var others []uint64
	for id := uint64(1); id <= 3; id++ {
		if id != lead {
			others = append(others, id)
		}
	}
	// Through the leader, then through each follower (dragonboat forwards
	// their proposals to the leader).
	for i, c := range []struct {
		via  uint64
		name string
	}{{lead, "orders"}, {others[0], "billing"}, {others[1], "events"}} {
		res := f.propose(c.via, addCmd(c.name, 3307+i))
		if want := FirstSourceShard + uint64(i); res.ShardID != want || res.Version != uint64(i+1) {
			t.Fatalf("add %s through host %d: %s shard %d, want shard %d at version %d", c.name, c.via, res, res.ShardID, want, i+1)
		}
	}
	t.Logf("3 sources added: %d bytes of JSON, the same on every host", len(f.same(3)))
	if on := f.cats[1].Local().OnHost(1); len(on) != 3 || on[2] != 1 || on[3] != 1 || on[4] != 1 {
		t.Fatalf("host 1 runs %v, want shards 2, 3 and 4 as replica 1", on)
	}

	// A stale compare-and-set is refused, identically: nothing changes.
	res, err := f.cats[others[0]].Propose(t.Context(), addCmd("late", 3400).At(2))
	if err != nil || res.Code != StaleVersion || res.Version != 3 {
		t.Fatalf("a CAS at version 2 of a catalog at 3: %s, %v; want stale-version at 3", res, err)
	}

	// Host 4, outside the placement, joins as a learner (the leader adds
	// it to the shard first), catches up, and proposes through it.
	// NB: the shards order their configuration changes
	// (OrderedConfigChange): the change names the membership it follows.
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	nh := f.cats[lead].Shard().NodeHost()
	m, err := nh.SyncGetShardMembership(ctx, ShardID)
	if err == nil {
		err = nh.SyncRequestAddNonVoting(ctx, ShardID, 4, f.h.Addr(4), m.ConfigChangeID)
	}
	cancel()
	if err != nil {
		t.Fatalf("adding host 4 as a learner: %v", err)
	}
	cfg := DefaultConfig()
	cfg.ReplicaID, cfg.Join, cfg.Learner = 4, true, true
	f.startCfg(4, cfg)
	f.same(3)
	f.propose(4, Command{Op: OpRemove, Name: "events"}.At(3))
	f.same(4)

	// The leader's host closes: the other two go on.
	f.stop(lead)
	res = f.propose(others[0], addCmd("metrics", 3410))
	if res.ShardID != 5 || res.Version != 5 {
		t.Fatalf("add metrics on two hosts: %s, shard %d; want shard 5 at version 5", res, res.ShardID)
	}
	f.same(5)
	// It comes back and catches up.
	f.restart(lead)
	f.same(5)

	// A replica snapshots, restarts, and recovers from its snapshot.
	a, b := others[0], others[1]
	idx := f.snapshot(a)
	f.stop(a)
	ca := f.restart(a)
	f.same(5)
	if ca.sm.recoveries.Load() == 0 {
		t.Fatalf("host %d restarted without recovering its snapshot at index %d", a, idx)
	}
	t.Logf("host %d recovered from its snapshot at index %d", a, idx)

	// A replica falls behind; the others snapshot and compact their logs;
	// it catches up from the leader's snapshot.
	f.stop(b)
	f.leader()
	ra := f.cats[a].sm.recoveries.Load()
	f.propose(a, addCmd("audit", 3420))
	f.propose(a, Command{Op: OpDrop, Name: "events"})
	for id := range f.cats {
		f.snapshot(id)
	}
	c := f.restart(b)
	final := f.same(7)
	if c.sm.recoveries.Load() == 0 {
		t.Fatalf("host %d caught up without a snapshot", b)
	}
	if f.cats[a].sm.recoveries.Load() != ra {
		t.Fatalf("host %d recovered a snapshot while running", a)
	}
	t.Logf("host %d caught up from the leader's snapshot to version 7", b)
	s := f.cats[b].Local()
	if s.Source("events") != nil || s.Source("audit").ShardID != 6 || s.NextShard != 7 {
		t.Fatalf("after the catch-up: %s", final)
	}
}

func TestConfigValidate(t *testing.T) {
	members := map[uint64]string{1: "h1:1", 2: "h2:1", 3: "h3:1"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		err  string
	}{
		{"bootstrap", func(c *Config) { c.Members = members }, ""},
		{"restart", func(c *Config) {}, ""},
		{"join as a learner", func(c *Config) { c.Join, c.Learner = true, true }, ""},
		{"no replica id", func(c *Config) { c.ReplicaID = 0 }, "catalog: the catalog's shard id and this host's replica id must be positive"},
		{"no shard id", func(c *Config) { c.ShardID = 0 }, "catalog: the catalog's shard id and this host's replica id must be positive"},
		{"join and members", func(c *Config) { c.Join, c.Members = true, members }, "catalog: a replica joins the catalog (Join) or bootstraps it (Members), not both"},
		{"learner with members", func(c *Config) { c.Learner, c.Members = true, members }, "catalog: a learner joins the catalog: the members bootstrap it"},
		{"not a member", func(c *Config) { c.ReplicaID, c.Members = 4, members }, "catalog: the members do not list this host's replica 4"},
	} {
		c := DefaultConfig()
		c.ReplicaID = 1
		tc.edit(&c)
		if err := c.Validate(); fmt.Sprint(err) != fmt.Sprint(errOrNil(tc.err)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
}
