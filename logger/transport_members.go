package logger

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
)

// memberFeed keeps the tcp transport's peerSet of one shard (the addresses
// it accepts that shard's raft messages from) equal to the shard's
// membership as this replica applied it. It has no goroutine of its own:
// the host's memberLoop updates every shard's feed. Its sources are:
//
//   - at start, the configured initial members (--members), if any;
//   - the voting members as this replica applied them, with the index of
//     the last configuration change applied (dragonboat's local shard
//     info: no raft round, so it keeps no idle shard awake), read by the
//     host loop every memberPoll, on each MembershipChanged event, and
//     whenever a sender is not found (so a logger just added is accepted
//     on its first message);
//   - loggers and learners from a linearizable membership read, done only
//     for a shard whose applied configuration changed since its last read
//     (the local shard info lists voters only: a learner just added is
//     accepted once the read returns, and raft resends until then), whose
//     membership was never read, or whose sender was not found.
//
// A joining member knows no membership until the group's snapshot or
// configuration entries reach it; the peerSet pins senders meanwhile.
//
// NB: the guard admits the full read's loggers and learners only while
// that read is as new as the configuration this replica applied
// (memberView); past it, only the applied voters. So a member removed
// from the shard stops being admitted at most memberPoll after this
// replica applied its removal, with or without a quorum to read from.
type memberFeed struct {
	shard uint64
	peers *peerSet
	loop  atomic.Pointer[memberLoop] // set once the shard runs on a host
	want  atomic.Bool                // a sender was not found: read now

	mu       sync.Mutex
	local    *shardMembers // the voters this replica applied; nil: not known yet
	synced   *shardMembers // the last linearizable read: loggers and learners
	inflight bool          // a read is running
	failed   bool          // the last read failed
	last     time.Time     // when the last read started
}

// shardMembers is a membership and the raft index of the configuration
// change it is as of (dragonboat's ConfigChangeIndex / ConfigChangeID).
type shardMembers struct {
	members map[uint64]string
	index   uint64
}

const (
	// memberPoll is how often the host loop reads every shard's local
	// membership: the bound on how long a removed member stays admitted
	// after this replica applied its removal (a MembershipChanged event
	// usually makes it much shorter).
	memberPoll    = time.Second
	memberTimeout = time.Second
	memberMinGap  = 200 * time.Millisecond
	// memberRetry spaces the reads of a shard whose last read failed (no
	// quorum, or this replica was removed from the shard), unless a
	// sender was not found: what the old per-shard poll cost.
	memberRetry = 2 * time.Second
)

func newMemberFeed(shard uint64, initial map[uint64]string) *memberFeed {
	f := &memberFeed{shard: shard, peers: newPeerSet(initial)}
	f.peers.refresh = f.refreshLocal
	return f
}

// memberView is the membership the guard admits, given the voters this
// replica applied (local) and the last linearizable read (synced); nil
// leaves the peerSet as it is. Pure.
//
// NB: a read as new as the applied configuration is the whole membership.
// An older read may list a member removed since, so then only the
// applied voters count (a learner is not admitted until the next read,
// which the host loop starts at once; raft resends meanwhile).
func memberView(local, synced *shardMembers) map[uint64]string {
	switch {
	case synced != nil && (local == nil || synced.index >= local.index):
		return synced.members
	case local != nil:
		return local.members
	}
	return nil
}

// needsRead reports whether the host loop should start a linearizable
// read of the feed's shard now.
func (f *memberFeed) needsRead(now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	want := f.want.Load()
	gap := memberMinGap
	if f.failed && !want {
		gap = memberRetry
	}
	if f.inflight || now.Sub(f.last) < gap {
		// NB: pokes come from senders not found, which a stranger can
		// send in a loop: at most a read per memberMinGap per shard.
		return false
	}
	return want || f.synced == nil || (f.local != nil && f.local.index > f.synced.index)
}

// setLocal records the voters this replica applied (si: its shard info)
// and updates the peerSet.
func (f *memberFeed) setLocal(si dragonboat.ShardInfo) {
	if si.Pending || len(si.Replicas) == 0 {
		return // nothing applied yet: the initial members or pins hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.local == nil || si.ConfigChangeIndex >= f.local.index {
		f.local = &shardMembers{members: maps.Clone(si.Replicas), index: si.ConfigChangeIndex}
	}
	f.peers.Set(memberView(f.local, f.synced))
}

// setSynced records a linearizable read and updates the peerSet.
func (f *memberFeed) setSynced(m *dragonboat.Membership) {
	all := maps.Clone(m.Nodes)
	if all == nil {
		all = map[uint64]string{}
	}
	maps.Copy(all, m.NonVotings)
	maps.Copy(all, m.Witnesses)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.synced == nil || m.ConfigChangeID >= f.synced.index {
		f.synced = &shardMembers{members: all, index: m.ConfigChangeID}
	}
	f.peers.Set(memberView(f.local, f.synced))
}

// refreshLocal merges the voters this replica applied into the peerSet
// and asks the host loop for a full read. Called by the transport's
// goroutines when a sender is not found (at most every refreshEvery).
func (f *memberFeed) refreshLocal() {
	f.want.Store(true)
	l := f.loop.Load()
	if l == nil {
		return // the shard is not started yet
	}
	l.wake()
	if si, ok := l.local()[f.shard]; ok {
		f.setLocal(si)
	}
}

// memberLoop is the host's one goroutine that keeps every shard's
// memberFeed current (it replaced a goroutine per shard that did a
// linearizable read every 2 s, which kept every idle shard busy; see
// docs/MULTISOURCE.md).
type memberLoop struct {
	nh    *dragonboat.NodeHost // set before run
	feeds func() []*memberFeed // the feeds of the shards the host runs
	poke  chan struct{}
	wg    sync.WaitGroup // reads in flight
	reads atomic.Int64   // linearizable reads started (tests)
}

func newMemberLoop(feeds func() []*memberFeed) *memberLoop {
	return &memberLoop{feeds: feeds, poke: make(chan struct{}, 1)}
}

// wake makes the loop look at every shard now. Never blocks: called from
// the transport's and dragonboat's event goroutines.
func (l *memberLoop) wake() {
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

// local returns the shard info of every shard on the host, read without
// a raft round.
//
// NB: NodeHost.GetNodeHostInfo (dragonboat v4 nodehost.go:1359) builds
// ShardInfoList from each node's getShardInfo (nodehost.go:1815,
// node.go:1612): an atomic load of the ShardInfo that notifyConfigChange
// (node.go:1589-1609) stores each time this replica applies a
// configuration change (node.go:302) or restores a snapshot (node.go:361).
// Its Replicas are the voting members only (m.Addresses; no non-voting or
// witness members, internal/registry/view.go:36-64), and ConfigChangeIndex
// is the same ConfigChangeId a linearizable read returns
// (nodehost.go:652-676). SkipLogInfo skips the LogDB scan.
func (l *memberLoop) local() map[uint64]dragonboat.ShardInfo {
	info := l.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
	if info == nil {
		return nil // the NodeHost is closed
	}
	m := make(map[uint64]dragonboat.ShardInfo, len(info.ShardInfoList))
	for _, si := range info.ShardInfoList {
		m[si.ShardID] = si
	}
	return m
}

// run updates every feed every memberPoll and when woken, until ctx
// ends; it returns once its reads have returned.
func (l *memberLoop) run(ctx context.Context) {
	defer l.wg.Wait()
	t := time.NewTicker(memberPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.poke:
		}
		infos := l.local()
		now := time.Now()
		for _, f := range l.feeds() {
			if si, ok := infos[f.shard]; ok {
				f.setLocal(si)
			}
			if f.needsRead(now) {
				l.read(ctx, f, now)
			}
		}
	}
}

// read starts a linearizable membership read of f's shard.
//
// NB: one goroutine per read, not the loop's: a shard without a quorum
// takes memberTimeout to fail, which must not delay another shard's read.
func (l *memberLoop) read(ctx context.Context, f *memberFeed, now time.Time) {
	f.mu.Lock()
	f.inflight, f.last = true, now
	f.mu.Unlock()
	f.want.Store(false)
	l.reads.Add(1)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		rctx, cancel := context.WithTimeout(ctx, memberTimeout)
		m, err := l.nh.SyncGetShardMembership(rctx, f.shard)
		cancel()
		if err == nil {
			f.setSynced(m)
		}
		// else: no quorum or not started yet; the applied voters still
		// count, and the loop reads again after memberRetry.
		f.mu.Lock()
		f.inflight, f.failed = false, err != nil
		f.mu.Unlock()
	}()
}

// feeds returns the memberFeeds of the shards running on the host.
func (h *Host) feeds() []*memberFeed {
	h.mu.Lock()
	defer h.mu.Unlock()
	fs := make([]*memberFeed, 0, len(h.nodes)+len(h.raw))
	for _, n := range h.nodes {
		if n.feed != nil {
			fs = append(fs, n.feed)
		}
	}
	for _, r := range h.raw {
		if r.feed != nil {
			fs = append(fs, r.feed)
		}
	}
	return fs
}

// startMembers starts the host's member loop (on the tcp transport: the
// guard's; none on the others).
func (h *Host) startMembers() {
	if h.members == nil {
		return
	}
	h.members.nh = h.nh
	ctx, cancel := context.WithCancel(context.Background())
	h.membersStop, h.membersDone = cancel, make(chan struct{})
	go func() {
		defer close(h.membersDone)
		h.members.run(ctx)
	}()
}

// stopMembers stops the member loop and waits for its reads (before the
// NodeHost closes under them).
func (h *Host) stopMembers() {
	if h.membersStop == nil {
		return
	}
	h.membersStop()
	h.membersStop = nil
	<-h.membersDone
}
