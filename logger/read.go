package logger

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// Read errors.
var (
	ErrClosed    = errors.New("logger: closed")
	ErrNoFile    = errors.New("logger: no such binlog file")
	ErrPurged    = errors.New("logger: binlog file purged")
	ErrBadPos    = errors.New("logger: position is not in the file")
	ErrNoGTID    = errors.New("logger: GTID not in the log")
	ErrCorrupted = errors.New("logger: stored data is corrupt")
)

// Reader reads committed data from one member's state machine. Everything it
// returns has been applied, and so committed on a majority. Safe for
// concurrent use.
type Reader struct {
	sm *SM
	// NB: where the last reads ended: the stored value a sequential read
	// continues in. Finding it with SeekLT makes Pebble copy the whole
	// value (reverse iteration keeps it aside), which for a 20 MiB
	// transaction read in pieces is 20 MiB per piece; a seek forward to a
	// known key copies nothing.
	hintMu sync.Mutex
	hints  [4]extent
	next   int
}

// extent is one stored value of a file: bytes [pos, pos+size).
type extent struct {
	file uint32
	pos  uint64
	size int
}

// Reader returns a reader over the state machine.
func (s *SM) Reader() *Reader { return &Reader{sm: s} }

// hint returns the start of a remembered value of file n that holds pos.
func (r *Reader) hint(n uint32, pos uint64) (uint64, bool) {
	r.hintMu.Lock()
	defer r.hintMu.Unlock()
	for _, e := range r.hints {
		if e.size > 0 && e.file == n && e.pos <= pos && pos < e.pos+uint64(e.size) {
			return e.pos, true
		}
	}
	return 0, false
}

// remember records a value a read stopped in.
func (r *Reader) remember(e extent) {
	r.hintMu.Lock()
	defer r.hintMu.Unlock()
	for _, h := range r.hints {
		if h == e {
			return
		}
	}
	r.hints[r.next] = e
	r.next = (r.next + 1) % len(r.hints)
}

// State returns a copy of the log's state.
func (s *SM) State() State {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st
}

// State returns a copy of the log's state.
func (r *Reader) State() State { return r.sm.State() }

// Applied returns the last applied raft index.
func (r *Reader) Applied() uint64 {
	r.sm.mu.RLock()
	defer r.sm.mu.RUnlock()
	return r.sm.applied
}

// Changed returns a channel closed at the next applied batch.
func (r *Reader) Changed() <-chan struct{} {
	r.sm.mu.RLock()
	defer r.sm.mu.RUnlock()
	return r.sm.changed
}

// view runs f with the database under the read lock.
func (r *Reader) view(f func(db *pebble.DB, st State, localFirst uint32) error) error {
	r.sm.mu.RLock()
	defer r.sm.mu.RUnlock()
	if r.sm.db == nil {
		return ErrClosed
	}
	lf, err := r.sm.localFirst()
	if err != nil {
		return err
	}
	return f(r.sm.db, r.sm.st, lf)
}

// localFirst is the oldest file this member still holds: the larger of the
// group-wide purge point and this member's own retention.
func (s *SM) localFirst() (uint32, error) {
	v, ok, err := s.get(keyLocalPurg)
	if err != nil || !ok {
		return s.st.FirstFile, err
	}
	if len(v) != 4 {
		return 0, fmt.Errorf("%w: local purge marker", ErrCorrupted)
	}
	if n := binary.BigEndian.Uint32(v); n > s.st.FirstFile {
		return n, nil
	}
	return s.st.FirstFile, nil
}

// Files returns the files this member holds, oldest first.
func (r *Reader) Files() ([]FileMeta, error) {
	var out []FileMeta
	err := r.view(func(db *pebble.DB, st State, lf uint32) error {
		it := db.NewIter(&pebble.IterOptions{LowerBound: fileKey(lf), UpperBound: []byte{prefixFile + 1}})
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			var m FileMeta
			if err := json.Unmarshal(it.Value(), &m); err != nil {
				return fmt.Errorf("%w: file meta %x: %v", ErrCorrupted, it.Key(), err)
			}
			out = append(out, m)
		}
		return it.Error()
	})
	return out, err
}

// File returns one file's meta.
func (r *Reader) File(n uint32) (FileMeta, error) {
	var m FileMeta
	err := r.view(func(db *pebble.DB, st State, lf uint32) error {
		var err error
		m, err = fileMeta(db, st, lf, n)
		return err
	})
	return m, err
}

func fileMeta(db *pebble.DB, st State, lf, n uint32) (FileMeta, error) {
	var m FileMeta
	if n == 0 || n > st.File {
		return m, fmt.Errorf("%w: %s (the last file is %s)", ErrNoFile, FileName(n), FileName(st.File))
	}
	if n < lf {
		return m, fmt.Errorf("%w: %s (the oldest file held here is %s)", ErrPurged, FileName(n), FileName(lf))
	}
	v, c, err := db.Get(fileKey(n))
	if err != nil {
		return m, fmt.Errorf("%w: %s: %v", ErrNoFile, FileName(n), err)
	}
	defer c.Close()
	if err := json.Unmarshal(v, &m); err != nil {
		return m, fmt.Errorf("%w: file meta of %s: %v", ErrCorrupted, FileName(n), err)
	}
	return m, nil
}

// ReadAt returns up to max bytes of file n from pos. Position 0 starts with
// the 4-byte binlog magic. A read at the file's end returns no bytes and no
// error; the caller learns from FileMeta.Closed whether more will come.
// The returned slice is newly allocated, of exactly the bytes read.
func (r *Reader) ReadAt(n uint32, pos uint64, max int) ([]byte, FileMeta, error) {
	return r.ReadAtInto(nil, n, pos, max)
}

// ReadAtInto is ReadAt that reads into dst's memory: it returns
// dst[:k] holding the k bytes read when cap(dst) is at least k, and
// otherwise a new slice of exactly k bytes. A caller that reads a file
// piece by piece passes the previous result back as dst and so reuses one
// buffer instead of allocating per read.
func (r *Reader) ReadAtInto(dst []byte, n uint32, pos uint64, max int) ([]byte, FileMeta, error) {
	out := dst[:0]
	var m FileMeta
	err := r.view(func(db *pebble.DB, st State, lf uint32) error {
		var err error
		if m, err = fileMeta(db, st, lf, n); err != nil {
			return err
		}
		if pos > m.Size {
			return fmt.Errorf("%w: %s has %d bytes, asked for position %d", ErrBadPos, FileName(n), m.Size, pos)
		}
		// NB: size the result once. Growing it by append (doubling) made
		// about as much garbage again as the bytes read.
		want := m.Size - pos
		if max < 0 {
			want = 0
		} else if uint64(max) < want {
			want = uint64(max)
		}
		if uint64(cap(out)) < want {
			out = make([]byte, 0, want)
		}
		for pos < uint64(len(binlog.Magic)) && len(out) < max {
			out = append(out, binlog.Magic[pos])
			pos++
		}
		if len(out) >= max || pos >= m.Size {
			return nil
		}
		it := db.NewIter(&pebble.IterOptions{LowerBound: dataKey(n, 0), UpperBound: dataKey(n+1, 0)})
		defer it.Close()
		ok := false
		if hpos, hit := r.hint(n, pos); hit && it.SeekGE(dataKey(n, hpos)) {
			_, cpos, err := decodePosKey(it.Key())
			ok = err == nil && cpos == hpos && pos < cpos+uint64(len(it.Value()))
		}
		if !ok && it.SeekGE(dataKey(n, pos)) {
			_, cpos, err := decodePosKey(it.Key())
			ok = err == nil && cpos == pos // NB: a value starts at pos
		}
		if !ok {
			ok = it.SeekLT(dataKey(n, pos+1))
		}
		var last extent
		for ; ok && len(out) < max && pos < m.Size; ok = it.Next() {
			_, cpos, err := decodePosKey(it.Key())
			if err != nil {
				return err
			}
			v := it.Value()
			if cpos > pos || pos > cpos+uint64(len(v)) {
				return fmt.Errorf("%w: %s has a gap at %d", ErrCorrupted, FileName(n), pos)
			}
			last = extent{n, cpos, len(v)}
			v = v[pos-cpos:]
			if len(v) > max-len(out) {
				v = v[:max-len(out)]
			}
			out = append(out, v...)
			pos += uint64(len(v))
		}
		if last.size > 0 && pos < last.pos+uint64(last.size) {
			r.remember(last) // NB: the next read continues in it
		}
		return it.Error()
	})
	return out, m, err
}

// FindGTID returns the record of the transaction with the given GTID.
func (r *Reader) FindGTID(gtid string) (TxnRecord, error) {
	var rec TxnRecord
	err := r.view(func(db *pebble.DB, st State, lf uint32) error {
		v, c, err := db.Get(gtidKey(gtid))
		if errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrNoGTID, gtid)
		} else if err != nil {
			return err
		}
		f, p, err := decodeFilePos(v)
		c.Close()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupted, err)
		}
		if f < lf {
			return fmt.Errorf("%w: %s is in %s", ErrPurged, gtid, FileName(f))
		}
		rec, err = txnRecord(db, f, p)
		return err
	})
	return rec, err
}

func txnRecord(db *pebble.DB, f uint32, p uint64) (TxnRecord, error) {
	var rec TxnRecord
	v, c, err := db.Get(txnKey(f, p))
	if errors.Is(err, pebble.ErrNotFound) {
		return rec, fmt.Errorf("%w: no transaction starts at %s:%d", ErrBadPos, FileName(f), p)
	} else if err != nil {
		return rec, err
	}
	defer c.Close()
	if rec, err = decodeTxnRecord(v); err != nil {
		return rec, fmt.Errorf("%w: transaction record at %s:%d: %v", ErrCorrupted, FileName(f), p, err)
	}
	return rec, nil
}

// Txns calls fn for the transactions of file n starting at or after pos, in
// order, until fn returns false. fn runs under the reader's lock: it must
// not call the Reader (a read lock taken again waits behind an apply
// waiting for the lock, and both wait forever).
func (r *Reader) Txns(n uint32, pos uint64, fn func(TxnRecord) bool) error {
	return r.view(func(db *pebble.DB, st State, lf uint32) error {
		if _, err := fileMeta(db, st, lf, n); err != nil {
			return err
		}
		it := db.NewIter(&pebble.IterOptions{LowerBound: txnKey(n, pos), UpperBound: txnKey(n+1, 0)})
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			rec, err := decodeTxnRecord(it.Value())
			if err != nil {
				return fmt.Errorf("%w: transaction record %x: %v", ErrCorrupted, it.Key(), err)
			}
			if !fn(rec) {
				return nil
			}
		}
		return it.Error()
	})
}

// Meta returns a metadata value set by a Meta command.
func (r *Reader) Meta(key string) ([]byte, bool, error) {
	var out []byte
	var ok bool
	err := r.view(func(db *pebble.DB, st State, lf uint32) error {
		v, c, err := db.Get(metaKey(key))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		out, ok = append([]byte(nil), v...), true
		return c.Close()
	})
	return out, ok, err
}

// MetaPrefix returns every metadata key and value under prefix.
func (r *Reader) MetaPrefix(prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := r.view(func(db *pebble.DB, st State, lf uint32) error {
		lo := metaKey(prefix)
		it := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			out[string(it.Key()[1:])] = append([]byte(nil), it.Value()...)
		}
		return it.Error()
	})
	return out, err
}
