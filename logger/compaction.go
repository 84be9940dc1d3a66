package logger

import (
	"context"
	"errors"
	"time"

	"github.com/lni/dragonboat/v4"
)

// Snapshots by size.
//
// dragonboat snapshots every --snapshot-entries entries and then keeps
// --compaction-overhead entries of raft log; both count entries, and this
// log's entries are up to 8 MiB each. A member that is new or far behind
// but still within the log gets entries: the leader reads up to 64 MiB of
// them (dragonboat's settings.Soft.MaxEntrySize, which only a
// dragonboat-soft-settings.json file changes) inside its raft step loop,
// and while the member has not confirmed them it reads them again on every
// heartbeat response. That can stall the leader's heartbeats past the
// election timeout. A member behind the compacted log gets a snapshot
// instead, which dragonboat streams from its own goroutines.
//
// So the member also snapshots once the commands applied since its last
// size-triggered snapshot hold --snapshot-bytes, and compacts the raft log
// to the start of that window: about --snapshot-bytes of entries stay
// behind the snapshot for a member briefly behind (never more than
// --compaction-overhead entries). For this on-disk state machine a local
// snapshot is cheap: dragonboat calls Sync and writes its metadata; only a
// snapshot sent to another member streams the data (SaveSnapshot).
//
// NB: a member with its own retention does not snapshot by size. A snapshot
// it sends lacks the files it removed, so while it leads (briefly: the
// leader hands off to a member holding the whole log) a member behind
// should get entries rather than a snapshot, as often as it did before.

// applyMark is a point of a member's applied log: the index and the bytes
// of commands applied up to it since the state machine opened.
type applyMark struct{ Index, Bytes uint64 }

// sizePolicy decides the snapshots by size. Pure.
type sizePolicy struct {
	Every    uint64 // bytes applied between snapshots (0: never)
	Overhead uint64 // entries kept at most behind a snapshot
}

// due reports whether the commands applied since start hold Every bytes.
func (p sizePolicy) due(start, now applyMark) bool {
	return p.Every > 0 && now.Index > start.Index && now.Bytes-start.Bytes >= p.Every
}

// compactTo returns the index to compact the raft log to after a snapshot
// at or after now: the entries after start stay (about Every bytes; the
// last of them holding about Every bytes when the window holds more), but
// no more than Overhead of them. 0: compact as configured.
func (p sizePolicy) compactTo(start, now applyMark) uint64 {
	if now.Index == 0 {
		return 0
	}
	to := start.Index
	// NB: a loop that ran late (a slow snapshot, a retry) finds a window of
	// many budgets: keep only its last entries that hold about Every bytes
	// at the window's mean entry size, not the whole window.
	if n, b := now.Index-start.Index, now.Bytes-start.Bytes; p.Every > 0 && now.Index > start.Index && b > p.Every {
		keep := (p.Every*n + b - 1) / b
		to = max(to, now.Index-keep)
	}
	if now.Index > p.Overhead {
		to = max(to, now.Index-p.Overhead)
	}
	// NB: dragonboat compacts only below the snapshot's index.
	return min(to, now.Index-1)
}

// sizeSnapshotsOn reports whether this member snapshots by size.
func (c *Config) sizeSnapshotsOn() bool {
	r := c.Retention
	return c.SnapshotBytes > 0 && r.MaxFiles == 0 && r.MaxBytes == 0 && r.MaxAge == 0
}

// onApply runs on dragonboat's apply goroutine after every applied batch:
// it only hands the due snapshot to sizeSnapshotLoop.
func (n *Node) onApply(s *SM) {
	if n.snapDue == nil {
		return
	}
	if now, _ := s.applyMark(); now.Bytes >= n.snapAt.Load() {
		select {
		case n.snapDue <- struct{}{}:
		default:
		}
	}
}

// sizeSnapshotLoop requests the snapshots by size.
func (n *Node) sizeSnapshotLoop() {
	defer n.wg.Done()
	p := sizePolicy{Every: n.cfg.SnapshotBytes, Overhead: n.cfg.CompactionOverhead}
	var start, base applyMark
	for {
		select {
		case <-n.stop:
			return
		case <-n.snapDue:
		}
		s := n.SM()
		if s == nil {
			continue
		}
		now, b := s.applyMark()
		if b != base {
			// NB: opened or recovered from a snapshot since: count from there.
			start, base = b, b
		}
		n.snapAt.Store(start.Bytes + p.Every)
		if !p.due(start, now) {
			continue
		}
		opt := dragonboat.SnapshotOption{}
		if to := p.compactTo(start, now); to > 0 {
			opt.OverrideCompactionOverhead, opt.CompactionIndex = true, to
		}
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		index, err := n.nh.SyncRequestSnapshot(ctx, n.cfg.ShardID, opt)
		cancel()
		if err != nil {
			if n.ctx.Err() != nil {
				return
			}
			n.metrics.sizeSnapshots.WithLabelValues("error").Inc()
			log := n.log.Warn
			if errors.Is(err, dragonboat.ErrRejected) {
				log = n.log.Debug // NB: a snapshot at this index exists (one by count)
			}
			log("snapshot by size failed; retrying", "applied", now.Index, "bytes_since_last", now.Bytes-start.Bytes, "err", classify(err))
			// NB: retried on the next applied batch, at most once a second.
			select {
			case <-n.stop:
				return
			case <-time.After(time.Second):
			}
			continue
		}
		n.metrics.sizeSnapshots.WithLabelValues("ok").Inc()
		n.log.Debug("snapshot by size", "index", index, "compacted_to", opt.CompactionIndex, "bytes_since_last", now.Bytes-start.Bytes)
		start = now
		n.snapAt.Store(start.Bytes + p.Every)
	}
}
