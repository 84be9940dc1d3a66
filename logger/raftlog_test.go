package logger

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/plugin/tan"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
	lvfs "github.com/lni/vfs"
)

// syncCountFS counts fsyncs of raft log files (*.log).
type syncCountFS struct {
	lvfs.FS
	syncs atomic.Int64
}

type syncCountFile struct {
	lvfs.File
	fs *syncCountFS
}

func (f syncCountFile) Sync() error {
	f.fs.syncs.Add(1)
	return f.File.Sync()
}

func (fs *syncCountFS) wrap(name string, f lvfs.File, err error) (lvfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return syncCountFile{File: f, fs: fs}, nil
}

func (fs *syncCountFS) Create(name string) (lvfs.File, error) {
	f, err := fs.FS.Create(name)
	return fs.wrap(name, f, err)
}

func (fs *syncCountFS) OpenForAppend(name string) (lvfs.File, error) {
	f, err := fs.FS.OpenForAppend(name)
	return fs.wrap(name, f, err)
}

func (fs *syncCountFS) ReuseForWrite(oldname, newname string) (lvfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	return fs.wrap(newname, f, err)
}

// tanDisk is a raft log directory on a strict memory file system: writes
// not fsync'd are lost in a crash, as in a power loss.
type tanDisk struct {
	t   *testing.T
	mem *lvfs.MemFS
	nhc config.NodeHostConfig
	f   config.LogDBFactory
}

// newTanDisk returns a tanDisk whose LogDB is tan, wrapped or not; fs, when
// not nil, wraps the memory file system (it must pass everything to it).
func newTanDisk(t *testing.T, wrapped bool, fs func(lvfs.FS) lvfs.FS) *tanDisk {
	d := &tanDisk{t: t, mem: lvfs.NewStrictMem(), f: tan.Factory}
	var vfs lvfs.FS = d.mem
	if fs != nil {
		vfs = fs(d.mem)
	}
	d.nhc = config.NodeHostConfig{Expert: config.ExpertConfig{FS: vfs, LogDB: config.GetTinyMemLogDBConfig()}}
	d.nhc.Expert.LogDB.KVWriteBufferSize = 1 << 20
	if wrapped {
		d.f = tanStateFactory{inner: tan.Factory}
	}
	return d
}

func (d *tanDisk) open() raftio.ILogDB {
	d.t.Helper()
	db, err := d.f.Create(d.nhc, func(config.LogDBInfo) {}, []string{"/raft"}, []string{"/raft"})
	if err != nil {
		d.t.Fatal(err)
	}
	return db
}

// crash drops every write of db not fsync'd and reopens the log.
func (d *tanDisk) crash(db raftio.ILogDB) raftio.ILogDB {
	d.t.Helper()
	d.mem.SetIgnoreSyncs(true)
	db.Close()
	d.mem.ResetToSyncedState()
	d.mem.SetIgnoreSyncs(false)
	return d.open()
}

// The raft log fsyncs entries and a new term or vote, and writes nothing
// else: not a move of the commit index, not an update with nothing in it.
// Bare tan fsyncs both after an update whose State raft left empty (see
// tanStateFactory); if it stops doing so, the wrapper can go.
func TestTanStateFsyncs(t *testing.T) {
	ent := func(term, index uint64) pb.Entry { return pb.Entry{Term: term, Index: index, Cmd: []byte("cmd")} }
	steps := []struct {
		name string
		u    pb.Update
		sync int64 // fsyncs expected with the wrapper
	}{
		{"entries and a first state", pb.Update{State: pb.State{Term: 2, Vote: 1, Commit: 0}, EntriesToSave: []pb.Entry{ent(2, 1), ent(2, 2)}}, 1},
		{"entries, state unchanged", pb.Update{EntriesToSave: []pb.Entry{ent(2, 3)}}, 1},
		{"commit index only", pb.Update{State: pb.State{Term: 2, Vote: 1, Commit: 3}}, 0},
		{"nothing", pb.Update{}, 0},
		{"entries after a commit move", pb.Update{EntriesToSave: []pb.Entry{ent(2, 4)}}, 1},
		{"commit index only again", pb.Update{State: pb.State{Term: 2, Vote: 1, Commit: 4}}, 0},
		{"new term and vote", pb.Update{State: pb.State{Term: 3, Vote: 2, Commit: 4}}, 1},
		{"new term alone", pb.Update{State: pb.State{Term: 4, Vote: 0, Commit: 4}}, 1},
		{"new vote alone", pb.Update{State: pb.State{Term: 4, Vote: 3, Commit: 4}}, 1},
		{"commit index only at the end", pb.Update{State: pb.State{Term: 4, Vote: 3, Commit: 5}}, 0},
	}
	run := func(t *testing.T, wrapped bool) (total int64) {
		var fs *syncCountFS
		d := newTanDisk(t, wrapped, func(mem lvfs.FS) lvfs.FS { fs = &syncCountFS{FS: mem}; return fs })
		check := func(db raftio.ILogDB, when string, want pb.State, entries uint64) {
			t.Helper()
			rs, err := db.ReadRaftState(1, 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			if rs.State.Term != want.Term || rs.State.Vote != want.Vote || rs.State.Commit != want.Commit || rs.FirstIndex != 1 || rs.EntryCount != entries {
				t.Fatalf("%s: %+v, want %+v and entries 1-%d", when, rs, want, entries)
			}
			ents, _, err := db.IterateEntries(nil, 0, 1, 1, 1, entries+1, 1<<20)
			if err != nil || uint64(len(ents)) != entries || ents[entries-1].Index != entries || string(ents[entries-1].Cmd) != "cmd" {
				t.Fatalf("%s: %d entries, %v", when, len(ents), err)
			}
		}
		db := d.open()
		for i, s := range steps {
			u := s.u
			u.ShardID, u.ReplicaID = 1, 1
			before := fs.syncs.Load()
			if err := db.SaveRaftState([]pb.Update{u}, 1); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			got := fs.syncs.Load() - before
			total += got
			if wrapped && got != s.sync {
				t.Errorf("%s: %d fsyncs of the raft log, want %d", s.name, got, s.sync)
			}
			if s.name == "commit index only again" {
				// Every entry, term and vote survive a crash; the commit
				// index written since the last fsync may not (raft does not
				// need it: a restarted member learns it from the leader).
				db = d.crash(db)
				commit := uint64(3)
				if !wrapped {
					commit = 4
				}
				check(db, fmt.Sprintf("after a crash at step %d", i+1), pb.State{Term: 2, Vote: 1, Commit: commit}, 4)
			}
		}
		db = d.crash(db)
		check(db, "after a crash at the end", pb.State{Term: 4, Vote: 3, Commit: 4}, 4)
		db.Close()
		return total
	}
	var bare, wrapped int64
	t.Run("tan", func(t *testing.T) { bare = run(t, false) })
	t.Run("wrapped", func(t *testing.T) { wrapped = run(t, true) })
	t.Logf("fsyncs of the raft log over %d updates: tan %d, wrapped %d", len(steps), bare, wrapped)
	if bare <= wrapped {
		t.Fatalf("bare tan fsynced %d times, the wrapper %d: tan no longer fsyncs what raft does not need; drop tanStateFactory", bare, wrapped)
	}
}

// tan fsyncs an index pointing into the old log file when it moves to a
// new one, without fsyncing that file, so a record written there without
// an fsync can be gone after a power loss while the index still points at
// it. The wrapper writes no record without an fsync: a crash right after
// a move to a new file leaves every entry, and the State written with the
// last one, readable.
func TestTanStateAcrossLogFiles(t *testing.T) {
	d := newTanDisk(t, true, nil)
	db := d.open()
	cmd := make([]byte, 1<<20)
	save := func(u pb.Update) {
		t.Helper()
		u.ShardID, u.ReplicaID = 1, 1
		if err := db.SaveRaftState([]pb.Update{u}, 1); err != nil {
			t.Fatal(err)
		}
	}
	// NB: 68 MiB of entries: tan moves to a new log file at 64 MiB, in the
	// middle of the commit-index moves that follow each entry.
	const n = 68
	for i := uint64(1); i <= n; i++ {
		u := pb.Update{EntriesToSave: []pb.Entry{{Term: 2, Index: i, Cmd: cmd}}}
		if i == 1 {
			u.State = pb.State{Term: 2, Vote: 1}
		}
		save(u)
		save(pb.Update{State: pb.State{Term: 2, Vote: 1, Commit: i}})
		save(pb.Update{})
	}
	logs, err := d.mem.List("/raft/tandb/node-1-1")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(slices.DeleteFunc(logs, func(f string) bool { return !strings.HasSuffix(f, ".log") })); n < 2 {
		t.Fatalf("%d log files: tan never moved to a new one, the test proves nothing", n)
	}
	db = d.crash(db)
	defer db.Close()
	rs, err := db.ReadRaftState(1, 1, 0)
	if err != nil {
		t.Fatalf("reading the raft state after a crash: %v", err)
	}
	if rs.State.Term != 2 || rs.State.Vote != 1 || rs.State.Commit != n-1 || rs.EntryCount != n {
		t.Fatalf("after a crash: %+v, want term 2, vote 1, commit %d (the one written with the last entry), %d entries", rs, n-1, n)
	}
}

// A snapshot this member takes is recorded with a commit index at least
// its own, even though the wrapper wrote no commit move since the last
// entries: dragonboat refuses to start a member whose saved commit index
// is below its snapshot.
func TestTanStateSnapshotCommit(t *testing.T) {
	d := newTanDisk(t, true, nil)
	db := d.open()
	ents := []pb.Entry{{Term: 2, Index: 1, Cmd: []byte("a")}, {Term: 2, Index: 2, Cmd: []byte("b")}, {Term: 2, Index: 3, Cmd: []byte("c")}}
	for _, u := range []pb.Update{
		{State: pb.State{Term: 2, Vote: 1}, EntriesToSave: ents},
		{State: pb.State{Term: 2, Vote: 1, Commit: 2}},
	} {
		u.ShardID, u.ReplicaID = 1, 1
		if err := db.SaveRaftState([]pb.Update{u}, 1); err != nil {
			t.Fatal(err)
		}
	}
	// NB: applied to 3 before the step loop handed over commit 3.
	ss := pb.Snapshot{Index: 3, Term: 2, Filepath: "/snap", Membership: pb.Membership{Addresses: map[uint64]string{1: "a:1"}}}
	if err := db.SaveSnapshots([]pb.Update{{ShardID: 1, ReplicaID: 1, Snapshot: ss}}); err != nil {
		t.Fatal(err)
	}
	db = d.crash(db)
	defer db.Close()
	got, err := db.GetSnapshot(1, 1)
	if err != nil || got.Index != 3 {
		t.Fatalf("snapshot after a crash: %+v, %v", got, err)
	}
	rs, err := db.ReadRaftState(1, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if rs.State.Term != 2 || rs.State.Vote != 1 || rs.State.Commit < 3 {
		t.Fatalf("after a crash: %+v, want term 2, vote 1 and a commit index of at least the snapshot's 3", rs.State)
	}
}

// After a restart a snapshot can be saved before the replica's first
// update (dragonboat applies before it saves): it still carries a State.
func TestTanStateSnapshotFirstAfterRestart(t *testing.T) {
	d := newTanDisk(t, true, nil)
	db := d.open()
	ents := []pb.Entry{{Term: 2, Index: 1}, {Term: 2, Index: 2}, {Term: 2, Index: 3}}
	if err := db.SaveRaftState([]pb.Update{{ShardID: 1, ReplicaID: 1, State: pb.State{Term: 2, Vote: 1, Commit: 1}, EntriesToSave: ents}}, 1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = d.open()
	ss := pb.Snapshot{Index: 3, Term: 2, Filepath: "/snap", Membership: pb.Membership{Addresses: map[uint64]string{1: "a:1"}}}
	if err := db.SaveSnapshots([]pb.Update{{ShardID: 1, ReplicaID: 1, Snapshot: ss}}); err != nil {
		t.Fatal(err)
	}
	db = d.crash(db)
	defer db.Close()
	rs, err := db.ReadRaftState(1, 1, 3)
	if err != nil || rs.State.Term != 2 || rs.State.Vote != 1 || rs.State.Commit < 3 {
		t.Fatalf("after a crash: %+v, %v; want term 2, vote 1, commit at least 3", rs.State, err)
	}
}

// The step worker's updates and the snapshot worker's snapshots, at once:
// whenever it stops, the saved State names no entry that is not saved and
// no commit below the newest snapshot (run with -race).
func TestTanStateConcurrentSnapshots(t *testing.T) {
	d := newTanDisk(t, true, nil)
	db := d.open()
	var applied atomic.Uint64 // what the "state machine" applied: snapshots go up to it
	done := make(chan struct{})
	var snaps atomic.Uint64
	go func() {
		defer close(done)
		for last := uint64(0); ; {
			a := applied.Load()
			if a >= 600 {
				return
			}
			if a > last {
				ss := pb.Snapshot{Index: a, Term: 2, Filepath: "/snap", Membership: pb.Membership{Addresses: map[uint64]string{1: "a:1"}}}
				if err := db.SaveSnapshots([]pb.Update{{ShardID: 1, ReplicaID: 1, Snapshot: ss}}); err != nil {
					t.Error(err)
					return
				}
				last = a
				snaps.Add(1)
			}
		}
	}()
	for i := uint64(1); i <= 600; i++ {
		u := pb.Update{ShardID: 1, ReplicaID: 1, EntriesToSave: []pb.Entry{{Term: 2, Index: i}}}
		if i == 1 {
			u.State = pb.State{Term: 2, Vote: 1}
		}
		if err := db.SaveRaftState([]pb.Update{u}, 1); err != nil {
			t.Fatal(err)
		}
		// Commit and apply entry i: the commit move itself is not written.
		if err := db.SaveRaftState([]pb.Update{{ShardID: 1, ReplicaID: 1, State: pb.State{Term: 2, Vote: 1, Commit: i}}}, 1); err != nil {
			t.Fatal(err)
		}
		applied.Store(i)
	}
	<-done
	db = d.crash(db)
	defer db.Close()
	ss, err := db.GetSnapshot(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := db.ReadRaftState(1, 1, ss.Index)
	if err != nil {
		t.Fatal(err)
	}
	last := rs.FirstIndex + rs.EntryCount - 1
	if rs.State.Commit < ss.Index || rs.State.Commit > 600 {
		t.Fatalf("after a crash: commit %d, snapshot %d, entries to %d (%d snapshots saved)", rs.State.Commit, ss.Index, last, snaps.Load())
	}
	t.Logf("%d snapshots saved; after a crash: commit %d, snapshot %d", snaps.Load(), rs.State.Commit, ss.Index)
}
