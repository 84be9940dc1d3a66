package logger

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/spf13/pflag"
)

func TestMemberView(t *testing.T) {
	voters := map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1"}
	all := map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1", 4: "d:1"}
	for _, tc := range []struct {
		name          string
		local, synced *shardMembers
		want          map[uint64]string
	}{
		{"nothing known", nil, nil, nil},
		{"applied voters only", &shardMembers{voters, 5}, nil, voters},
		{"a read, nothing applied seen yet", nil, &shardMembers{all, 5}, all},
		{"a read as new as the applied configuration", &shardMembers{voters, 5}, &shardMembers{all, 5}, all},
		{"a read newer than the applied one seen", &shardMembers{voters, 5}, &shardMembers{all, 7}, all},
		// NB: the read may list a member removed since: only the voters count.
		{"a read older than the applied configuration", &shardMembers{voters, 9}, &shardMembers{all, 5}, voters},
	} {
		if got := memberView(tc.local, tc.synced); !maps.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestMemberFeedRemoval: a member removed (a learner, which the local
// shard info never lists, or a logger) is refused as soon as the feed
// sees the configuration this replica applied, before any read.
func TestMemberFeedRemoval(t *testing.T) {
	f := newMemberFeed(1, map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1"})
	now := time.Now()
	if !f.needsRead(now) {
		t.Fatal("a feed never read does not ask for a read")
	}
	f.setLocal(dragonboat.ShardInfo{ShardID: 1, Replicas: map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1"}, ConfigChangeIndex: 10})
	f.setSynced(&dragonboat.Membership{Nodes: map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1"},
		NonVotings: map[uint64]string{4: "d:1"}, ConfigChangeID: 10})
	if !f.peers.admit(4, "d:1") || !f.peers.admit(3, "c:1") {
		t.Fatal("the learner or a logger of the read was refused")
	}
	if f.needsRead(now) {
		t.Fatal("a feed read at the applied configuration asks for a read")
	}
	// Logger 3 and learner 4 removed, as applied here; no read since.
	f.setLocal(dragonboat.ShardInfo{ShardID: 1, Replicas: map[uint64]string{1: "a:1", 2: "b:1"}, ConfigChangeIndex: 12})
	if f.peers.admit(4, "d:1") || f.peers.admit(3, "c:1") || !f.peers.admit(2, "b:1") {
		t.Fatalf("after the removals were applied: %v", f.peers.Members())
	}
	if !f.needsRead(now.Add(memberMinGap)) {
		t.Fatal("a feed behind the applied configuration does not ask for a read")
	}
	// An older local view (a stale shard info) does not undo the newer.
	f.setLocal(dragonboat.ShardInfo{ShardID: 1, Replicas: map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1"}, ConfigChangeIndex: 10})
	if f.peers.admit(3, "c:1") {
		t.Fatal("an older shard info brought back a removed logger")
	}
	// The next read brings a learner added since.
	f.setSynced(&dragonboat.Membership{Nodes: map[uint64]string{1: "a:1", 2: "b:1"},
		NonVotings: map[uint64]string{5: "e:1"}, ConfigChangeID: 13})
	if !f.peers.admit(5, "e:1") || f.peers.admit(4, "d:1") {
		t.Fatalf("after the read: %v", f.peers.Members())
	}
	// A pending shard (nothing applied) leaves the view as it is.
	f.setLocal(dragonboat.ShardInfo{ShardID: 1, Pending: true})
	if !f.peers.admit(5, "e:1") {
		t.Fatal("a pending shard info changed the view")
	}
}

func TestApplyWorkers(t *testing.T) {
	c := DefaultConfig()
	c.ReplicaID, c.DataDir, c.RaftAddr, c.Insecure = 1, t.TempDir(), "127.0.0.1:1", true
	h := c.Host()
	if got := h.applyWorkers(true); got != startApplyWorkers {
		t.Errorf("Start's default: %d workers", got)
	}
	if got := h.applyWorkers(false); got != DefaultHostApplyWorkers {
		t.Errorf("StartHost's default: %d workers", got)
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--raft-apply-workers=5"}); err != nil {
		t.Fatal(err)
	}
	if h := c.Host(); h.applyWorkers(true) != 5 || h.applyWorkers(false) != 5 || c.Validate() != nil {
		t.Errorf("--raft-apply-workers=5: %d workers, %v", h.applyWorkers(true), c.Validate())
	}
	for _, n := range []int{-1, 257} {
		c.ApplyWorkers = n
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--raft-apply-workers") {
			t.Errorf("--raft-apply-workers=%d: %v", n, err)
		}
	}
	c.ApplyWorkers = 256
	if err := c.Validate(); err != nil {
		t.Errorf("--raft-apply-workers=256: %v", err)
	}
}
