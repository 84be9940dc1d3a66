package logger

import (
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"sync"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// tanStateFactory wraps dragonboat's tan LogDB so that everything it
// writes is fsync'd, and it fsyncs once per raft round.
//
// dragonboat's raft hands over a pb.Update's State only when it changed
// and leaves it empty otherwise. tan remembers the State of every update it
// writes, the empty ones too, and fsyncs an update whose term or vote
// differs from the one it remembers. So after every update that carries
// entries but no State, the next update that moves only the commit index
// is compared against an empty State and fsync'd, and so is the next
// update with nothing in it: unwrapped, tan makes two or three fsyncs per
// member per raft round where raft needs one (the entries).
//
// Writing commit-index moves without an fsync is not the fix: when tan
// moves to a new log file it fsyncs an index that points at the old file's
// last records without fsyncing that file, so after a power loss a State
// record written without an fsync can be missing where the index says it
// is, and the member cannot read its raft state at all.
//
// So the wrapper hands tan no update that moves only the commit index (or
// carries nothing). An update with entries, a snapshot, a new term or a
// new vote carries the newest State raft handed over (its commit index
// included) and is fsync'd by tan as before. The commit index on disk
// therefore lags by at most the entries committed since the last write.
// raft does not need it durable: a restarted member learns it from the
// leader, and dragonboat applies to an on-disk state machine only the
// entries after the index the state machine reports (Open), so a state
// machine ahead of the saved commit index is fine. What dragonboat does
// need is a saved commit index no lower than the member's snapshot: see
// SaveSnapshots.
type tanStateFactory struct {
	inner config.LogDBFactory
	log   *slog.Logger
	// fs, if set, wraps the file system tan writes its files through
	// (zeroedLogFS).
	fs func(config.IFS, *slog.Logger) *zeroedLogFS
	// multiplexed: inner is multiplexedTan (tanmux.go), whose step
	// workers each save one group of shards: see tanState.locks.
	multiplexed bool
}

func (f tanStateFactory) Create(nhc config.NodeHostConfig, cb config.LogDBCallback, dirs, lldirs []string) (raftio.ILogDB, error) {
	l := f.log
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	var z *zeroedLogFS
	if f.fs != nil {
		// NB: nil is the operating system's (newZeroedLogFS). The full-disk
		// guard stays outermost: a spare that cannot be zeroed for want of
		// space is the wrapper's to handle, not a full disk.
		base := nhc.Expert.FS
		d, guarded := base.(*diskFS)
		if guarded {
			base = d.FS
		}
		z = f.fs(base, l)
		nhc.Expert.FS = z
		if guarded {
			nhc.Expert.FS = d.with(z)
		}
	}
	db, err := f.inner.Create(nhc, cb, dirs, lldirs)
	if err != nil {
		if z != nil {
			z.waitAll()
		}
		return nil, err
	}
	groups := 1
	if f.multiplexed {
		groups = multiplexExecShards
	}
	return &tanState{ILogDB: db, log: l, reps: map[raftio.NodeInfo]*tanReplica{}, zfs: z, locks: make([]sync.Mutex, groups)}, nil
}

func (f tanStateFactory) Name() string { return f.inner.Name() }

// tanReplica is what the wrapper knows of one replica's State.
type tanReplica struct {
	latest  pb.State // the newest State raft handed over
	written pb.State // the last State the wrapper let tan write
}

type tanState struct {
	raftio.ILogDB
	zfs *zeroedLogFS // nil: tan writes through the file system it was given
	log *slog.Logger
	// NB: a lock is held across tan's writes, so that a snapshot record
	// (the snapshot worker) and an update (the step worker) of one replica
	// are decided and written one after the other: the snapshot's State
	// then never names entries not yet on disk, and an update never writes
	// a State older than a snapshot's. Shard S's lock is locks[S %
	// len(locks)]. Per-shard tan has one: the host's two step workers save
	// one after the other (a host of one shard: nothing else waits on it).
	// Multiplexed tan has one per step worker (16, tanmux.go), which is
	// one per log file: the workers save and fsync at once, as their
	// files are apart, and a replica's update and snapshot still take the
	// same lock.
	locks []sync.Mutex
	// mu guards reps, the map only (a tanReplica is its shard's lock's).
	mu   sync.Mutex
	reps map[raftio.NodeInfo]*tanReplica
}

// lock takes the locks of the shards of updates, in order, and returns
// the function that releases them. A step worker's round is of one lock.
func (s *tanState) lock(updates []pb.Update) func() {
	n := uint64(len(s.locks))
	if n == 1 || len(updates) == 1 {
		l := &s.locks[0]
		if len(updates) > 0 {
			l = s.shardLock(updates[0].ShardID)
		}
		l.Lock()
		return l.Unlock
	}
	var held []int
	for _, u := range updates {
		held = append(held, int(u.ShardID%n))
	}
	slices.Sort(held)
	held = slices.Compact(held)
	for _, i := range held {
		s.locks[i].Lock()
	}
	return func() {
		for _, i := range held {
			s.locks[i].Unlock()
		}
	}
}

// shardLock returns shard id's lock.
func (s *tanState) shardLock(id uint64) *sync.Mutex { return &s.locks[id%uint64(len(s.locks))] }

// persisting reports whether tan must write u: entries, a snapshot, or a
// new term or vote.
func persisting(u *pb.Update, r *tanReplica) bool {
	if len(u.EntriesToSave) > 0 || !pb.IsEmptySnapshot(u.Snapshot) {
		return true
	}
	if pb.IsEmptyState(u.State) {
		return false
	}
	return u.State.Term != r.written.Term || u.State.Vote != r.written.Vote
}

// replica returns what the wrapper knows of a replica, learning what tan
// holds the first time (a restarted member: the State raft was launched
// with). Called with the shard's lock held.
func (s *tanState) replica(shardID, replicaID uint64) *tanReplica {
	ni := raftio.NodeInfo{ShardID: shardID, ReplicaID: replicaID}
	s.mu.Lock()
	r, ok := s.reps[ni]
	s.mu.Unlock()
	if ok {
		return r
	}
	r = &tanReplica{}
	rs, err := s.ILogDB.ReadRaftState(shardID, replicaID, 0)
	switch {
	case err == nil && !pb.IsEmptyState(rs.State):
		r.latest, r.written = rs.State, rs.State
	case err != nil && !errors.Is(err, raftio.ErrNoSavedLog):
		// NB: unknown: commit moves are not written until the next
		// entries, term or vote, which carry raft's newest State.
		s.log.Warn("reading the raft log's saved state", "shard", shardID, "replica", replicaID, "err", err)
	}
	s.mu.Lock()
	s.reps[ni] = r
	s.mu.Unlock()
	return r
}

// SaveRaftState rewrites the updates as described on tanStateFactory and
// hands tan those with something to write.
func (s *tanState) SaveRaftState(updates []pb.Update, shardID uint64) error {
	defer s.lock(updates)()
	// NB: a new slice: dragonboat goes on using its updates.
	out := make([]pb.Update, 0, len(updates))
	for _, u := range updates {
		r := s.replica(u.ShardID, u.ReplicaID)
		if !pb.IsEmptyState(u.State) {
			r.latest = u.State
		}
		if !persisting(&u, r) {
			continue // only the commit index moved, or nothing: not written
		}
		if !pb.IsEmptyState(r.latest) {
			u.State = r.latest
		}
		if !pb.IsEmptySnapshot(u.Snapshot) && !pb.IsEmptyState(u.State) {
			// NB: raft moves its commit to an installed snapshot; make sure.
			u.State.Commit = max(u.State.Commit, u.Snapshot.Index)
			r.latest = u.State
		}
		if !pb.IsEmptyState(u.State) {
			r.written = u.State
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil
	}
	// NB: dragonboat's step worker queued this round's Replicate messages
	// for the transport's sender goroutines just before this save (raft
	// thesis 10.2.1: the leader sends before it persists). A goroutine
	// readied that way waits in this P's next slot, and this goroutine is
	// about to block in write and fdatasync: the sender would then run
	// only once sysmon takes the P from the blocked thread (20 µs to
	// 10 ms; 129 µs p50 in a trace at one proposer) or another thread
	// steals it. Yielding first lets the senders write now, on this
	// thread; the save starts a send later (~20 µs), the follower's copy
	// a whole stall earlier.
	runtime.Gosched()
	if traceOn {
		var last uint64
		for _, u := range out {
			if n := len(u.EntriesToSave); n > 0 {
				last = max(last, u.EntriesToSave[n-1].Index)
			}
		}
		trace("sv0", last, 0)
		defer trace("sv1", last, 0)
	}
	return s.ILogDB.SaveRaftState(out, shardID)
}

// SaveSnapshots records snapshots this member took. tan's own
// SaveSnapshots writes the snapshot record without a State. Here the
// record carries the newest State raft handed over, with a commit index at
// least the snapshot's (it applied that far, so that far is committed),
// written and fsync'd as one record through SaveRaftState, which tan
// writes the same way for a snapshot. Without it a member restarted before
// its next write could find a commit index below its snapshot on disk,
// which dragonboat refuses to start from.
func (s *tanState) SaveSnapshots(updates []pb.Update) error {
	defer s.lock(updates)()
	out := make([]pb.Update, 0, len(updates))
	for _, u := range updates {
		if pb.IsEmptySnapshot(u.Snapshot) {
			continue
		}
		w := pb.Update{ShardID: u.ShardID, ReplicaID: u.ReplicaID, Snapshot: u.Snapshot}
		if r := s.replica(u.ShardID, u.ReplicaID); !pb.IsEmptyState(r.latest) {
			st := r.latest
			st.Commit = max(st.Commit, u.Snapshot.Index)
			w.State = st
			r.latest, r.written = st, st
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil
	}
	// NB: worker 0: tan's per-worker buffers are the step workers'; with
	// no buffer of its own, tan allocates one for this call.
	return s.ILogDB.SaveRaftState(out, 0)
}

func (s *tanState) RemoveNodeData(shardID, replicaID uint64) error {
	l := s.shardLock(shardID)
	l.Lock()
	defer l.Unlock()
	s.forget(shardID, replicaID)
	return s.ILogDB.RemoveNodeData(shardID, replicaID)
}

func (s *tanState) ImportSnapshot(ss pb.Snapshot, replicaID uint64) error {
	l := s.shardLock(ss.ShardID)
	l.Lock()
	defer l.Unlock()
	s.forget(ss.ShardID, replicaID)
	return s.ILogDB.ImportSnapshot(ss, replicaID)
}

func (s *tanState) forget(shardID, replicaID uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.reps, raftio.NodeInfo{ShardID: shardID, ReplicaID: replicaID})
}

// Close closes tan and waits for a spare log file being zeroed.
func (s *tanState) Close() error {
	err := s.ILogDB.Close()
	if s.zfs != nil {
		s.zfs.waitAll()
	}
	return err
}
