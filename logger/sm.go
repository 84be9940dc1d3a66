package logger

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	sm "github.com/lni/dragonboat/v4/statemachine"
)

// SM is the log's dragonboat IOnDiskStateMachine over its own Pebble
// database. Update, Sync, PrepareSnapshot and Close are called by dragonboat
// from one goroutine; reads (Reader) run concurrently from any goroutine.
type SM struct {
	shardID, replicaID uint64
	dir                string
	fs                 vfs.FS
	log                *slog.Logger
	onApply            func(*SM)
	// onNewer is called with a *NewerEncodingError instead of applying an
	// entry this member cannot decode (Config.OnNewerEncoding).
	onNewer func(*NewerEncodingError)
	maxEnc  byte // the newest encoding it reads (Config.MaxEncoding)

	db *pebble.DB

	mu      sync.RWMutex
	st      State
	applied uint64
	changed chan struct{} // closed and replaced after every applied batch
	// bytes counts the commands (len(Cmd)) applied since Open; base is the
	// mark of the last Open or snapshot recovery. The size-triggered
	// snapshot counts from them (compaction.go). Node-local, in memory.
	bytes uint64
	base  applyMark

	recovered atomic.Int64 // snapshots this member recovered from
}

// SnapshotsRecovered counts the snapshots this member caught up from since
// it started.
func (s *SM) SnapshotsRecovered() int64 { return s.recovered.Load() }

var _ sm.IOnDiskStateMachine = (*SM)(nil)

// snapshotMagic starts every snapshot stream of this state machine.
const snapshotMagic = "binlogsvr-sm-1\n"

func newSM(shardID, replicaID uint64, dir string, fs vfs.FS, log *slog.Logger) *SM {
	return &SM{shardID: shardID, replicaID: replicaID, dir: dir, fs: fs, log: log, changed: make(chan struct{}), maxEnc: MaxEncoding}
}

// Open opens the Pebble database and returns the last applied index.
func (s *SM) Open(stopc <-chan struct{}) (uint64, error) {
	// NB: no WAL. Every applied entry is already fsync'd in the raft log,
	// and dragonboat compacts that log only after Sync, which flushes the
	// memtable: after a crash, Open reports the last flushed applied index
	// and dragonboat replays the entries after it. This halves the writes.
	// NB: every flush holds keys of every prefix (file bytes, indexes,
	// state), so each L0 compaction rewrites the base level's files it
	// overlaps. Compacting L0 less often (8 files, not 4) into a larger base
	// level (256 MiB, not 64) cut the bytes compacted for 1.6 million
	// 200-byte transactions from 1,188 MB to 455 MB (418 MB flushed).
	opts := &pebble.Options{FS: s.fs, Logger: pebbleLogger{s.log}, DisableWAL: true, MemTableSize: 16 << 20,
		L0CompactionThreshold: 8, L0StopWritesThreshold: 24, LBaseMaxBytes: 256 << 20,
		Levels: []pebble.LevelOptions{{Compression: pebble.NoCompression}}}
	if err := s.fs.MkdirAll(s.dir, 0o755); err != nil {
		return 0, fmt.Errorf("logger: creating %s: %w", s.dir, err)
	}
	db, err := pebble.Open(s.dir, opts)
	if err != nil {
		return 0, fmt.Errorf("logger: opening state machine database %s: %w", s.dir, err)
	}
	// NB: under the lock: the member's Readers may already be reading
	// (they get ErrClosed until the database is set).
	s.mu.Lock()
	s.db = db
	s.mu.Unlock()
	if _, ok, err := s.get(keyRecovery); err != nil {
		return 0, err
	} else if ok {
		// NB: a snapshot recovery was cut short. Wipe the partial data and
		// report index 0, so that dragonboat recovers from the snapshot again.
		s.log.Warn("state machine: discarding a partial snapshot recovery", "dir", s.dir)
		if err := s.wipe(); err != nil {
			return 0, err
		}
		return 0, nil
	}
	return s.load()
}

func (s *SM) load() (uint64, error) {
	var st State
	if v, ok, err := s.get(keyState); err != nil {
		return 0, err
	} else if ok {
		if err := json.Unmarshal(v, &st); err != nil {
			return 0, fmt.Errorf("logger: stored state in %s is corrupt: %w", s.dir, err)
		}
		st.Source = legacySource(st.Source) // NB: stored before EncodingV2

	}
	if _, err := newApplier(st); err != nil {
		return 0, fmt.Errorf("logger: stored state in %s: %w", s.dir, err)
	}
	var applied uint64
	if v, ok, err := s.get(keyApplied); err != nil {
		return 0, err
	} else if ok {
		if len(v) != 8 {
			return 0, fmt.Errorf("logger: stored applied index in %s is corrupt", s.dir)
		}
		applied = binary.BigEndian.Uint64(v)
	}
	s.mu.Lock()
	s.st, s.applied = st, applied
	s.base = applyMark{Index: applied, Bytes: s.bytes}
	s.mu.Unlock()
	return applied, nil
}

// NewerEncodingError: the entry at Index is in an encoding this member
// does not read. The member stops applying there.
type NewerEncodingError struct {
	Index    uint64
	Encoding byte
	Reads    byte // the newest encoding this member reads
	Err      error
}

func (e *NewerEncodingError) Error() string {
	return fmt.Sprintf("log entry %d is in encoding %d, and this binlogsvr reads up to %d: a newer member wrote it. "+
		"This member stopped applying before it (nothing is lost: the entry stays in the raft log). "+
		"Install the newer binlogsvr on this member and start it again", e.Index, e.Encoding, e.Reads)
}

func (e *NewerEncodingError) Unwrap() error { return e.Err }

// stopOnNewer hands e to the daemon (which logs it and exits); without a
// handler the error goes to dragonboat, which stops the process with it.
func (s *SM) stopOnNewer(e *NewerEncodingError) error {
	if s.onNewer != nil {
		s.onNewer(e)
	}
	return e
}

// applyMark returns the last applied index with the bytes applied up to
// it, and the mark of the last Open or snapshot recovery.
func (s *SM) applyMark() (now, base applyMark) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return applyMark{Index: s.applied, Bytes: s.bytes}, s.base
}

func (s *SM) get(k []byte) ([]byte, bool, error) {
	v, c, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("logger: reading %q: %w", k, err)
	}
	out := append([]byte(nil), v...)
	c.Close()
	return out, true, nil
}

// batchView reads through a pending indexed batch.
type batchView struct{ b *pebble.Batch }

func (v batchView) FileGTIDs(file uint32) ([]string, error) {
	it := v.b.NewIter(&pebble.IterOptions{LowerBound: txnKey(file, 0), UpperBound: txnKey(file+1, 0)})
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		r, err := decodeTxnRecord(it.Value())
		if err != nil {
			return nil, fmt.Errorf("transaction record %x: %w", it.Key(), err)
		}
		out = append(out, r.GTID)
	}
	return out, it.Error()
}

// Update applies entries. Rejections are result codes; the only errors are
// failures of the local disk, on which dragonboat stops the process (the
// entries are safe in the raft log and are applied again on restart).
func (s *SM) Update(ents []sm.Entry) ([]sm.Entry, error) {
	if traceOn && len(ents) > 0 {
		trace("ap0", ents[len(ents)-1].Index, 0)
		defer trace("ap1", ents[len(ents)-1].Index, 0)
	}
	s.mu.RLock()
	st := s.st
	s.mu.RUnlock()
	a, err := newApplier(st)
	if err != nil {
		return nil, err
	}
	cmds := make([]Command, len(ents))
	errs := make([]error, len(ents))
	indexed := false
	var size uint64
	var newer *NewerEncodingError
	for i := range ents {
		cmds[i], errs[i] = decodeUpTo(ents[i].Cmd, s.maxEnc)
		if errors.Is(errs[i], ErrNewerEncoding) {
			// NB: the entries before it apply; this one and the rest wait
			// for a binary that reads it. A rejection here would be a
			// result the other members did not return.
			newer = &NewerEncodingError{Index: ents[i].Index, Encoding: ents[i].Cmd[0], Reads: s.maxEnc, Err: errs[i]}
			ents, cmds, errs = ents[:i], cmds[:i], errs[:i]
			break
		}
		size += uint64(len(ents[i].Cmd))
		_, purge := cmds[i].(*Purge)
		indexed = indexed || purge
	}
	if newer != nil && len(ents) == 0 {
		return nil, s.stopOnNewer(newer)
	}
	// NB: only a Purge reads back what the batch holds (the GTIDs of the
	// files it removes); an indexed batch costs a skiplist insert per key,
	// so appends get a plain one.
	b := s.db.NewBatch()
	if indexed {
		b = s.db.NewIndexedBatch()
	}
	defer b.Close()
	for i := range ents {
		var r Result
		cmd, err := cmds[i], errs[i]
		if err != nil {
			r = Result{Code: ResultMalformed, Message: err.Error()}
			r.Epoch, r.Source, r.LastGTID, r.File, r.Pos = a.st.Epoch, a.st.Source.String(), a.st.LastGTID, a.st.File, a.st.Pos
		} else {
			r = a.apply(cmd, batchView{b})
		}
		if i == len(ents)-1 {
			a.finish()
		}
		for _, o := range a.ops {
			switch o.kind {
			case opPut:
				err = b.Set(o.key, o.val, nil)
			case opDelete:
				err = b.Delete(o.key, nil)
			case opDeleteRange:
				err = b.DeleteRange(o.key, o.end, nil)
			}
			if err != nil {
				return nil, fmt.Errorf("logger: batch write: %w", err)
			}
		}
		a.ops = a.ops[:0]
		ents[i].Result = sm.Result{Value: uint64(r.Code), Data: r.encode()}
	}
	last := ents[len(ents)-1].Index
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], last)
	if err := b.Set(keyApplied, idx[:], nil); err != nil {
		return nil, fmt.Errorf("logger: batch write: %w", err)
	}
	// NB: NoSync is safe: the entries are fsync'd in the raft log, which is
	// replayed from the last applied index this database holds after a crash.
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("logger: committing applied entries to %s: %w", s.dir, err)
	}
	s.mu.Lock()
	s.st, s.applied = a.st, last
	s.bytes += size
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if s.onApply != nil {
		s.onApply(s)
	}
	if newer != nil {
		return nil, s.stopOnNewer(newer)
	}
	return ents, nil
}

// Lookup answers LookupState with a copy of the State; other queries are
// read directly through Reader.
func (s *SM) Lookup(q interface{}) (interface{}, error) {
	switch q.(type) {
	case LookupState:
		return s.State(), nil
	}
	return nil, fmt.Errorf("logger: unknown lookup %T", q)
}

// LookupState asks SM.Lookup for the State.
type LookupState struct{}

// Sync makes every applied write durable in the state machine's database
// (a memtable flush: the database runs without a WAL).
func (s *SM) Sync() error {
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("logger: syncing %s: %w", s.dir, err)
	}
	return nil
}

// PrepareSnapshot pins a Pebble snapshot of the applied state.
func (s *SM) PrepareSnapshot() (interface{}, error) { return s.db.NewSnapshot(), nil }

// SaveSnapshot streams every key of the pinned snapshot: a magic line, then
// (uvarint key length, key, uvarint value length, value) pairs, then a zero
// key length.
func (s *SM) SaveSnapshot(ctx interface{}, w io.Writer, done <-chan struct{}) error {
	snap, ok := ctx.(*pebble.Snapshot)
	if !ok {
		return fmt.Errorf("logger: snapshot context is %T", ctx)
	}
	defer snap.Close()
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return err
	}
	it := snap.NewIter(nil)
	defer it.Close()
	var lb [binary.MaxVarintLen64]byte
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) == 1 && it.Key()[0] == prefixRecovery {
			continue
		}
		if n++; n%1024 == 0 {
			select {
			case <-done:
				return sm.ErrSnapshotStopped
			default:
			}
		}
		for _, f := range [][]byte{it.Key(), it.Value()} {
			if _, err := bw.Write(lb[:binary.PutUvarint(lb[:], uint64(len(f)))]); err != nil {
				return err
			}
			if _, err := bw.Write(f); err != nil {
				return err
			}
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("logger: reading snapshot: %w", err)
	}
	if err := bw.WriteByte(0); err != nil {
		return err
	}
	return bw.Flush()
}

// RecoverFromSnapshot replaces the database with a snapshot's keys.
func (s *SM) RecoverFromSnapshot(r io.Reader, done <-chan struct{}) error {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return fmt.Errorf("logger: not a binlogsvr state machine snapshot (magic %q, %v)", magic, err)
	}
	if err := s.db.Set(keyRecovery, []byte{1}, pebble.NoSync); err != nil {
		return fmt.Errorf("logger: marking recovery: %w", err)
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("logger: marking recovery: %w", err)
	}
	if err := s.wipe(); err != nil {
		return err
	}
	b := s.db.NewBatch()
	for n := 0; ; n++ {
		if n%1024 == 0 {
			select {
			case <-done:
				b.Close()
				return sm.ErrSnapshotStopped
			default:
			}
		}
		k, err := readField(br)
		if err != nil {
			b.Close()
			return fmt.Errorf("logger: reading snapshot: %w", err)
		}
		if len(k) == 0 {
			break
		}
		v, err := readField(br)
		if err != nil {
			b.Close()
			return fmt.Errorf("logger: reading snapshot: %w", err)
		}
		if err := b.Set(k, v, nil); err != nil {
			b.Close()
			return err
		}
		if b.Len() > 8<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("logger: writing snapshot: %w", err)
			}
			b = s.db.NewBatch()
		}
	}
	if err := b.Delete(keyRecovery, nil); err != nil {
		b.Close()
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("logger: writing snapshot: %w", err)
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("logger: writing snapshot: %w", err)
	}
	if _, err := s.load(); err != nil {
		return err
	}
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.recovered.Add(1)
	s.log.Info("state machine: recovered from a snapshot", "applied", s.applied)
	return nil
}

func readField(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > 1<<30 {
		return nil, fmt.Errorf("field of %d bytes", n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// wipe deletes every key but the recovery marker.
func (s *SM) wipe() error {
	if err := s.db.DeleteRange([]byte{0}, []byte{prefixRecovery}, pebble.NoSync); err != nil {
		return fmt.Errorf("logger: wiping %s: %w", s.dir, err)
	}
	if err := s.db.DeleteRange([]byte{prefixRecovery + 1}, []byte{0xff, 0xff}, pebble.NoSync); err != nil {
		return fmt.Errorf("logger: wiping %s: %w", s.dir, err)
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("logger: wiping %s: %w", s.dir, err)
	}
	s.mu.Lock()
	s.st, s.applied = State{}, 0
	s.base = applyMark{Bytes: s.bytes}
	s.mu.Unlock()
	return nil
}

// Close closes the database. Readers get ErrClosed afterwards.
func (s *SM) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// PurgeLocal removes this member's own copy of the files below upTo: the
// member-local retention. It never removes the open file, and the group's
// state (and so every position) is unchanged. It returns the new oldest file.
func (s *SM) PurgeLocal(upTo uint32) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return 0, ErrClosed
	}
	if upTo >= s.st.File {
		upTo = s.st.File // NB: the open file is never purged
	}
	lf, err := s.localFirst()
	if err != nil {
		return 0, err
	}
	if upTo <= lf {
		return lf, nil
	}
	b := s.db.NewIndexedBatch()
	defer b.Close()
	for f := lf; f < upTo; f++ {
		gs, err := batchView{b}.FileGTIDs(f)
		if err != nil {
			return 0, err
		}
		for _, g := range gs {
			if err := b.Delete(gtidKey(g), nil); err != nil {
				return 0, err
			}
		}
		for _, r := range [][2][]byte{{dataKey(f, 0), dataKey(f+1, 0)}, {txnKey(f, 0), txnKey(f+1, 0)}} {
			if err := b.DeleteRange(r[0], r[1], nil); err != nil {
				return 0, err
			}
		}
		if err := b.Delete(fileKey(f), nil); err != nil {
			return 0, err
		}
	}
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], upTo)
	if err := b.Set(keyLocalPurg, v[:], nil); err != nil {
		return 0, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, fmt.Errorf("logger: local purge in %s: %w", s.dir, err)
	}
	if err := s.db.Flush(); err != nil {
		return 0, fmt.Errorf("logger: local purge in %s: %w", s.dir, err)
	}
	return upTo, nil
}

// pebbleLogger routes Pebble's own logs to the member's logger.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...interface{}) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...interface{}) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic(msg) // NB: Pebble's contract: Fatalf does not return
}
