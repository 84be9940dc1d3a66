package logger

import (
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
// differs from the one it remembers. So after every update that carried
// entries but no State, the next update that moved only the commit index
// was compared against an empty State and fsync'd, and so was the next
// update with nothing in it: two or three fsyncs per member per raft round
// on this machine, where raft needs one (the entries).
//
// Writing commit-index moves without an fsync is not the fix: when tan
// moves to a new log file it fsyncs an index that points at the old file's
// last records without fsyncing that file, so after a power loss a State
// record written without an fsync can be missing where the index says it
// is, and the member cannot read its raft state at all.
//
// So the wrapper writes no update that moves only the commit index. An
// update with entries, a snapshot, a new term or a new vote carries the
// newest State raft handed over (its commit index included) and is
// fsync'd by tan as before; an update with nothing else is handed to tan
// with the State tan already holds, which tan does not write. The commit
// index on disk therefore lags by at most the entries committed since the
// last write. raft does not need it durable: a restarted member learns it
// from the leader, and dragonboat applies to an on-disk state machine only
// the entries after the index the state machine reports (Open), so a
// state machine ahead of the saved commit index is fine. Compaction keeps
// --compaction-overhead entries behind a snapshot, more than the lag.
type tanStateFactory struct{ inner config.LogDBFactory }

func (f tanStateFactory) Create(nhc config.NodeHostConfig, cb config.LogDBCallback, dirs, lldirs []string) (raftio.ILogDB, error) {
	db, err := f.inner.Create(nhc, cb, dirs, lldirs)
	if err != nil {
		return nil, err
	}
	return &tanState{ILogDB: db, reps: map[raftio.NodeInfo]*tanReplica{}}, nil
}

func (f tanStateFactory) Name() string { return f.inner.Name() }

// tanReplica is what the wrapper knows of one replica's State.
type tanReplica struct {
	latest  pb.State // the newest State raft handed over
	written pb.State // the State tan holds: the last one the wrapper let it write
	known   bool     // written is what tan holds (false after a snapshot record until the next write)
	before  pb.State // latest before the update at hand
}

type tanState struct {
	raftio.ILogDB
	mu   sync.Mutex // guards reps; never held across tan's writes
	reps map[raftio.NodeInfo]*tanReplica
}

// persisting reports whether tan must write u (entries, a snapshot, or a
// new term or vote), given what it holds.
func persisting(u *pb.Update, r *tanReplica) bool {
	if len(u.EntriesToSave) > 0 || !pb.IsEmptySnapshot(u.Snapshot) {
		return true
	}
	if pb.IsEmptyState(u.State) {
		return false
	}
	// NB: with tan's State unknown, compare with the newest one raft
	// handed over before: raft hands over a new term or vote as soon as
	// it has one.
	prev := r.written
	if !r.known {
		prev = r.before
	}
	return u.State.Term != prev.Term || u.State.Vote != prev.Vote
}

// load learns what tan holds for a replica the first time the wrapper sees
// it (a restarted member: the State raft was launched with).
func (s *tanState) load(shardID, replicaID uint64) {
	ni := raftio.NodeInfo{ShardID: shardID, ReplicaID: replicaID}
	s.mu.Lock()
	_, ok := s.reps[ni]
	s.mu.Unlock()
	if ok {
		return
	}
	r := &tanReplica{}
	if rs, err := s.ILogDB.ReadRaftState(shardID, replicaID, 0); err == nil && !pb.IsEmptyState(rs.State) {
		r.latest, r.written, r.known = rs.State, rs.State, true
	}
	s.mu.Lock()
	if _, ok := s.reps[ni]; !ok {
		s.reps[ni] = r
	}
	s.mu.Unlock()
}

// SaveRaftState rewrites each update's State as described on
// tanStateFactory and hands the updates to tan.
func (s *tanState) SaveRaftState(updates []pb.Update, shardID uint64) error {
	// NB: a copy: dragonboat goes on using its updates after this call.
	out := append([]pb.Update(nil), updates...)
	for i := range out {
		s.load(out[i].ShardID, out[i].ReplicaID)
	}
	s.mu.Lock()
	for i := range out {
		u := &out[i]
		r := s.reps[raftio.NodeInfo{ShardID: u.ShardID, ReplicaID: u.ReplicaID}]
		r.before = r.latest
		if !pb.IsEmptyState(u.State) {
			r.latest = u.State
		}
		switch {
		case persisting(u, r):
			if !pb.IsEmptyState(r.latest) {
				u.State = r.latest
			}
			if !pb.IsEmptyState(u.State) {
				r.written, r.known = u.State, true
			}
		case r.known:
			u.State = r.written
		default:
			// NB: tan's State is unknown (a snapshot was saved since):
			// nothing to write but the commit index, so write nothing.
			u.State = pb.State{}
		}
	}
	s.mu.Unlock()
	return s.ILogDB.SaveRaftState(out, shardID)
}

// SaveSnapshots records snapshots this member took. tan's own
// SaveSnapshots writes the snapshot record without a State. Here the
// record carries raft's newest State with a commit index at least the
// snapshot's (it applied that far, so that far is committed), written and
// fsync'd as one record through SaveRaftState, which tan writes the same
// way for a snapshot. Without it a member restarted before its next write
// could find a commit index below its snapshot on disk, which dragonboat
// refuses to start from.
func (s *tanState) SaveSnapshots(updates []pb.Update) error {
	out := make([]pb.Update, 0, len(updates))
	s.mu.Lock()
	for _, u := range updates {
		if pb.IsEmptySnapshot(u.Snapshot) {
			continue
		}
		w := pb.Update{ShardID: u.ShardID, ReplicaID: u.ReplicaID, Snapshot: u.Snapshot}
		if r := s.reps[raftio.NodeInfo{ShardID: u.ShardID, ReplicaID: u.ReplicaID}]; r != nil && !pb.IsEmptyState(r.latest) {
			st := r.latest
			st.Commit = max(st.Commit, u.Snapshot.Index)
			w.State = st
			r.latest, r.written, r.known = st, st, true
		}
		out = append(out, w)
	}
	s.mu.Unlock()
	// NB: worker 0: tan's per-worker buffers are the step workers'; with
	// no buffer of its own, tan allocates one for this call.
	return s.ILogDB.SaveRaftState(out, 0)
}

// RemoveEntriesTo: tan writes a compaction record and forgets the State it
// held.
func (s *tanState) RemoveEntriesTo(shardID, replicaID, index uint64) error {
	s.forget(shardID, replicaID)
	return s.ILogDB.RemoveEntriesTo(shardID, replicaID, index)
}

func (s *tanState) forget(shardID, replicaID uint64) {
	s.mu.Lock()
	if r := s.reps[raftio.NodeInfo{ShardID: shardID, ReplicaID: replicaID}]; r != nil {
		r.known = false
	}
	s.mu.Unlock()
}

func (s *tanState) RemoveNodeData(shardID, replicaID uint64) error {
	s.mu.Lock()
	delete(s.reps, raftio.NodeInfo{ShardID: shardID, ReplicaID: replicaID})
	s.mu.Unlock()
	return s.ILogDB.RemoveNodeData(shardID, replicaID)
}

func (s *tanState) ImportSnapshot(ss pb.Snapshot, replicaID uint64) error {
	s.mu.Lock()
	delete(s.reps, raftio.NodeInfo{ShardID: ss.ShardID, ReplicaID: replicaID})
	s.mu.Unlock()
	return s.ILogDB.ImportSnapshot(ss, replicaID)
}
