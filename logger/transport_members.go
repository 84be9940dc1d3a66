package logger

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
)

// memberFeed keeps the tcp transport's peerSet (the addresses it accepts
// raft messages from) equal to the group's membership:
//
//   - at start, the configured initial members (--members), if any;
//   - the voting members as this member applied them (dragonboat's local
//     shard info, no quorum needed), read whenever a sender is not found,
//     so a logger just added is accepted on its first message;
//   - loggers and learners from a linearizable membership read every
//     memberPoll and whenever a sender was not found (the local shard info
//     lists voters only; a learner just added is accepted once the read
//     returns, and raft resends until then).
//
// A joining member knows no membership until the group's snapshot or
// configuration entries reach it; the peerSet pins senders meanwhile.
type memberFeed struct {
	shard uint64
	peers *peerSet
	nh    atomic.Pointer[dragonboat.NodeHost]
	poke  chan struct{}

	mu     sync.Mutex
	synced map[uint64]string // the last linearizable read: loggers and learners
}

const (
	memberPoll    = 2 * time.Second
	memberTimeout = time.Second
	memberMinGap  = 200 * time.Millisecond
)

func newMemberFeed(shard uint64, initial map[uint64]string) *memberFeed {
	f := &memberFeed{shard: shard, peers: newPeerSet(initial), poke: make(chan struct{}, 1)}
	f.peers.refresh = f.refreshLocal
	return f
}

// refreshLocal merges the voters this member knows into the peerSet and
// asks the loop for a full read. Called by the transport's goroutines.
func (f *memberFeed) refreshLocal() {
	select {
	case f.poke <- struct{}{}:
	default:
	}
	nh := f.nh.Load()
	if nh == nil {
		return
	}
	info := nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
	for _, si := range info.ShardInfoList {
		if si.ShardID != f.shard || si.Pending || len(si.Replicas) == 0 {
			continue
		}
		f.mu.Lock()
		m := maps.Clone(f.synced)
		f.mu.Unlock()
		if m == nil {
			m = map[uint64]string{}
		}
		maps.Copy(m, si.Replicas)
		f.peers.Set(m)
	}
}

// run reads the membership every memberPoll or when poked, until ctx ends.
func (f *memberFeed) run(ctx context.Context) {
	t := time.NewTicker(memberPoll)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.poke:
			// NB: pokes come from senders not found, which a stranger can
			// send in a loop: at most a read per memberMinGap.
			if time.Since(last) < memberMinGap {
				continue
			}
		}
		last = time.Now()
		nh := f.nh.Load()
		if nh == nil {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, memberTimeout)
		m, err := nh.SyncGetShardMembership(rctx, f.shard)
		cancel()
		if err != nil {
			continue // no quorum or not started yet: the local voters still count
		}
		all := maps.Clone(m.Nodes)
		if all == nil {
			all = map[uint64]string{}
		}
		maps.Copy(all, m.NonVotings)
		maps.Copy(all, m.Witnesses)
		f.mu.Lock()
		f.synced = all
		f.mu.Unlock()
		f.peers.Set(all)
	}
}
