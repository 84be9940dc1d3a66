package logger

import (
	"sync"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// tanStateFactory wraps dragonboat's tan LogDB so that it fsyncs only what
// raft needs durable.
//
// dragonboat's raft hands over a pb.Update's State only when it changed
// and leaves it empty otherwise. tan remembers the State of every update it
// writes, the empty ones too, and fsyncs an update whose term or vote
// differs from the one it remembers. So after every update that carried
// entries but no State, the next update that moves only the commit index
// (term and vote unchanged) compared against an empty State and was
// fsync'd, and so was the next update with nothing in it, written because
// its empty State differed. On this machine that was two or three fsyncs
// per member per raft round where one (the entries) is needed: raft needs
// entries, term and vote durable before it answers, never the commit
// index.
//
// The wrapper fills an empty State with the last State it handed to tan
// for that replica, so tan compares like with like: entries are fsync'd,
// a new term or vote is fsync'd, a commit-index move is written without an
// fsync, and an update with nothing to persist is not written at all. The
// State written is one already written before, so what tan holds after a
// crash is what it held without the wrapper, or newer.
type tanStateFactory struct{ inner config.LogDBFactory }

func (f tanStateFactory) Create(nhc config.NodeHostConfig, cb config.LogDBCallback, dirs, lldirs []string) (raftio.ILogDB, error) {
	db, err := f.inner.Create(nhc, cb, dirs, lldirs)
	if err != nil {
		return nil, err
	}
	return &tanState{ILogDB: db, last: map[raftio.NodeInfo]pb.State{}}, nil
}

func (f tanStateFactory) Name() string { return f.inner.Name() }

type tanState struct {
	raftio.ILogDB
	mu   sync.Mutex
	last map[raftio.NodeInfo]pb.State
	buf  []pb.Update
}

// SaveRaftState is called by the step worker of the shard's group; the
// lock only guards against several groups sharing one LogDB.
func (s *tanState) SaveRaftState(updates []pb.Update, shardID uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// NB: a copy: dragonboat goes on using its updates after this call.
	s.buf = append(s.buf[:0], updates...)
	for i := range s.buf {
		u := &s.buf[i]
		ni := raftio.NodeInfo{ShardID: u.ShardID, ReplicaID: u.ReplicaID}
		if pb.IsEmptyState(u.State) {
			// NB: unknown after a restart until raft hands one over: then
			// tan behaves as it does without the wrapper.
			if st, ok := s.last[ni]; ok {
				u.State = st
			}
			continue
		}
		s.last[ni] = u.State
	}
	err := s.ILogDB.SaveRaftState(s.buf, shardID)
	clear(s.buf) // drop the references to the entries
	return err
}

func (s *tanState) forget(shardID, replicaID uint64) {
	s.mu.Lock()
	delete(s.last, raftio.NodeInfo{ShardID: shardID, ReplicaID: replicaID})
	s.mu.Unlock()
}

func (s *tanState) RemoveNodeData(shardID, replicaID uint64) error {
	s.forget(shardID, replicaID)
	return s.ILogDB.RemoveNodeData(shardID, replicaID)
}

func (s *tanState) ImportSnapshot(ss pb.Snapshot, replicaID uint64) error {
	s.forget(ss.ShardID, replicaID)
	return s.ILogDB.ImportSnapshot(ss, replicaID)
}
