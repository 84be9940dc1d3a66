package logger

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
)

// wait bounds waits for a group (liveness, not speed: the machine is shared).
const wait = 60 * time.Second

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
	// A failed read is retried after memberRetry, or memberMinGap when a
	// sender was not found.
	f.mu.Lock()
	f.failed, f.last = true, now
	f.mu.Unlock()
	f.want.Store(false) // NB: the refusals above asked for a read
	f.setLocal(dragonboat.ShardInfo{ShardID: 1, Replicas: map[uint64]string{1: "a:1", 2: "b:1"}, ConfigChangeIndex: 14})
	if f.needsRead(now.Add(memberRetry/2)) || !f.needsRead(now.Add(memberRetry)) {
		t.Fatal("a failed read is not retried after memberRetry")
	}
	f.want.Store(true)
	if !f.needsRead(now.Add(memberMinGap)) {
		t.Fatal("a sender not found waits memberRetry after a failed read")
	}
	// A pending shard (nothing applied) leaves the view as it is.
	before := f.peers.Members()
	f.setLocal(dragonboat.ShardInfo{ShardID: 1, Pending: true})
	if !maps.Equal(before, f.peers.Members()) {
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

// TestHostMemberLoop: three hosts on the tcp transport run one shard;
// no host runs a goroutine per shard for the guard; a learner the group
// adds is admitted by every host's guard, and a logger and a learner the
// group removes stop being admitted within memberPoll of being applied.
func TestHostMemberLoop(t *testing.T) {
	const shard = 7
	addrs := map[uint64]string{}
	for id := uint64(1); id <= 3; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[id] = ln.Addr().String()
		ln.Close()
	}
	log := slog.New(slog.DiscardHandler)
	hosts := map[uint64]*Host{}
	for id := uint64(1); id <= 3; id++ {
		c := DefaultConfig()
		c.ShardID, c.ReplicaID, c.Members = shard, id, addrs
		c.DataDir, c.RaftAddr, c.Insecure, c.LogPrefill, c.Logger = t.TempDir(), addrs[id], true, false, log
		c.RTTMillisecond, c.ElectionRTT, c.HeartbeatRTT = 5, 50, 2
		h, err := StartHost(c.Host())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		c.Registry = prometheus.NewRegistry()
		if _, err := h.StartShard(c); err != nil {
			t.Fatal(err)
		}
		hosts[id] = h
	}
	// poll waits until every running host's guard holds want for shard.
	poll := func(what string, within time.Duration, want func(map[uint64]string) bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			ok := true
			for _, h := range hosts {
				e, found := h.shards.get(shard)
				if !found || !want(e.peers.Members()) {
					ok = false
				}
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				for id, h := range hosts {
					e, _ := h.shards.get(shard)
					t.Logf("host %d: %v", id, e.peers.Members())
				}
				t.Fatalf("%s: not within %v", what, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	nh := hosts[1].NodeHost()
	// change runs a membership change (ordered: it names the
	// configuration it follows), retrying until wait.
	change := func(f func(ctx context.Context, ccid uint64) error) {
		t.Helper()
		for deadline := time.Now().Add(wait); ; {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			m, err := nh.SyncGetShardMembership(ctx, shard)
			if err == nil {
				err = f(ctx, m.ConfigChangeID)
			}
			cancel()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	poll("every logger admitted", wait, func(m map[uint64]string) bool { return maps.Equal(m, addrs) })
	// NB: once every host read the membership its replica applied, an
	// idle shard costs no more reads (a raft round each, which kept
	// quiesced shards awake).
	idle := func() bool {
		for _, h := range hosts {
			e, _ := h.shards.get(shard)
			f := h.Shard(shard).feed
			f.mu.Lock()
			done := f.synced != nil && f.local != nil && f.synced.index >= f.local.index && !f.inflight
			f.mu.Unlock()
			if !done || e.peers == nil {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(wait); !idle(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the hosts did not read the shard's membership")
		}
	}
	before := map[uint64]int64{}
	for id, h := range hosts {
		before[id] = h.members.reads.Load()
	}
	time.Sleep(3 * memberPoll)
	for id, h := range hosts {
		if n := h.members.reads.Load() - before[id]; n != 0 {
			t.Errorf("host %d read an idle shard's membership %d times in %v", id, n, 3*memberPoll)
		}
	}
	if buf := make([]byte, 1<<20); bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("memberFeed).run")) {
		t.Fatal("a per-shard member feed goroutine runs")
	}
	// A learner at an address no host listens on: the group still commits.
	change(func(ctx context.Context, cc uint64) error {
		return nh.SyncRequestAddNonVoting(ctx, shard, 4, "127.0.0.1:9", cc)
	})
	poll("the learner admitted", 10*time.Second, func(m map[uint64]string) bool { return m[4] == "127.0.0.1:9" })
	change(func(ctx context.Context, cc uint64) error { return nh.SyncRequestDeleteReplica(ctx, shard, 4, cc) })
	change(func(ctx context.Context, cc uint64) error { return nh.SyncRequestDeleteReplica(ctx, shard, 3, cc) })
	// NB: the bound is from when each host applied the removals, which
	// is after the calls return on host 1 only: some slack for the others.
	delete(hosts, 3)
	poll("the removed learner and logger refused", memberPoll+2*time.Second, func(m map[uint64]string) bool {
		_, l := m[4]
		_, r := m[3]
		return !l && !r && len(m) == 2
	})
}
