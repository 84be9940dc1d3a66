package logger_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
)

// TestReaderIndexesAndRetention checks the reads dump relies on (by GTID,
// by position, in arbitrary pieces) and that a member's own retention and
// the group's purge remove what they should, and only that.
func TestReaderIndexesAndRetention(t *testing.T) {
	c := loggertest.New(t, 3, loggertest.Options{RetentionFor: map[uint64]logger.Retention{3: {MaxFiles: 2}}})
	setSource(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if res, err := c.Leader(wait).Propose(ctx, &logger.Meta{Key: logger.MetaMaxFileSize, Value: []byte("8192")}); err != nil || res.Code != logger.ResultOK {
		t.Fatalf("meta: %v %+v", err, res)
	}
	f := &feeder{next: 1, pos: 4}
	appendN(t, c, f, 100, 300)
	sameEverywhere(t, c)
	r := c.Node(1).Reader()
	files, err := r.Files()
	if err != nil || len(files) < 4 {
		t.Fatalf("files %d, %v", len(files), err)
	}
	// Every transaction: found by GTID, its bytes start with its GTID event,
	// and Txns lists it at the same place.
	// NB: the records are collected first: Txns's callback must not call
	// the Reader (it deadlocked here once, 10 minutes, when an apply came
	// between the two read locks).
	n := 0
	for _, fm := range files {
		var recs []logger.TxnRecord
		err := r.Txns(fm.Number, 0, func(rec logger.TxnRecord) bool {
			recs = append(recs, rec)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			n++
			byG, err := r.FindGTID(rec.GTID)
			if err != nil || byG != rec {
				t.Fatalf("FindGTID(%s) = %+v, %v; Txns gave %+v", rec.GTID, byG, err, rec)
			}
			b, _, err := r.ReadAt(rec.File, rec.Pos, int(rec.End-rec.Pos))
			if err != nil {
				t.Fatal(err)
			}
			evs, err := binlog.SplitEvents(b)
			if err != nil {
				t.Fatal(err)
			}
			g, ok, err := binlog.MariaDB().GTIDOfEvent(evs[0], binlog.ChecksumCRC32)
			if err != nil || !ok || g != rec.GTID {
				t.Fatalf("bytes at %s:%d start with %q %v %v", logger.FileName(rec.File), rec.Pos, g, ok, err)
			}
		}
		// Reading in 97-byte pieces gives the same bytes as one read.
		whole, m, err := r.ReadAt(fm.Number, 0, 1<<30)
		if err != nil || uint64(len(whole)) != m.Size {
			t.Fatalf("%s: %d of %d bytes, %v", fm.Name(), len(whole), m.Size, err)
		}
		var pieces []byte
		for pos := uint64(0); pos < m.Size; {
			b, _, err := r.ReadAt(fm.Number, pos, 97)
			if err != nil || len(b) == 0 {
				t.Fatalf("%s at %d: %v", fm.Name(), pos, err)
			}
			pieces = append(pieces, b...)
			pos += uint64(len(b))
		}
		if !bytes.Equal(pieces, whole) {
			t.Fatalf("%s: pieces differ from the whole", fm.Name())
		}
	}
	if n != 100 {
		t.Fatalf("Txns listed %d transactions, want 100", n)
	}
	if _, err := r.FindGTID("0-1-999"); !errors.Is(err, logger.ErrNoGTID) {
		t.Fatalf("unknown GTID: %v", err)
	}
	if _, _, err := r.ReadAt(files[len(files)-1].Number+1, 0, 10); !errors.Is(err, logger.ErrNoFile) {
		t.Fatalf("file past the end: %v", err)
	}

	// Member 3 keeps 2 files; the others keep everything.
	if err := c.Node(3).EnforceRetention(time.Now()); err != nil {
		t.Fatal(err)
	}
	r3 := c.Node(3).Reader()
	kept, _ := r3.Files()
	if len(kept) != 2 || kept[1].Number != files[len(files)-1].Number {
		t.Fatalf("member 3 kept %d files", len(kept))
	}
	if _, _, err := r3.ReadAt(files[0].Number, 0, 10); !errors.Is(err, logger.ErrPurged) {
		t.Fatalf("reading a file past member 3's retention: %v", err)
	}
	if _, err := r3.FindGTID("0-1-1"); !errors.Is(err, logger.ErrPurged) && !errors.Is(err, logger.ErrNoGTID) {
		t.Fatalf("a GTID past member 3's retention: %v", err)
	}
	if all, _ := c.Node(1).Reader().Files(); len(all) != len(files) {
		t.Fatalf("member 1 lost files to member 3's retention")
	}
	// The group purges the first file on every member; the state stays equal.
	if res, err := c.Leader(wait).Propose(ctx, &logger.Purge{UpTo: files[1].Number}); err != nil || res.Code != logger.ResultOK {
		t.Fatalf("purge: %v %+v", err, res)
	}
	c.WaitApplied(wait, c.Leader(wait).Reader().Applied())
	for _, id := range []uint64{1, 2} {
		fs, _ := c.Node(id).Reader().Files()
		if len(fs) != len(files)-1 || fs[0].Number != files[1].Number {
			t.Fatalf("member %d holds %d files after the purge", id, len(fs))
		}
	}
	// Member 3's own retention survives a restart.
	c.Stop(3)
	c.Start(3)
	c.WaitApplied(wait, c.Leader(wait).Reader().Applied())
	if fs, _ := c.Node(3).Reader().Files(); len(fs) != 2 {
		t.Fatalf("member 3 holds %d files after a restart", len(fs))
	}
}

// TestReadAtInto: reading into a buffer gives ReadAt's bytes, reuses the
// buffer when it is large enough (no allocation), and otherwise allocates
// exactly what is read, however large max is.
func TestReadAtInto(t *testing.T) {
	c := loggertest.New(t, 1, loggertest.Options{})
	setSource(t, c)
	f := &feeder{next: 1, pos: 4}
	appendN(t, c, f, 20, 3000)
	r := c.Node(1).Reader()
	files, err := r.Files()
	if err != nil || len(files) == 0 {
		t.Fatalf("files %d, %v", len(files), err)
	}
	fm := files[0]
	whole, m, err := r.ReadAt(fm.Number, 0, 1<<30)
	if err != nil || uint64(len(whole)) != m.Size || cap(whole) != len(whole) {
		t.Fatalf("ReadAt: %d of %d bytes (cap %d), %v", len(whole), m.Size, cap(whole), err)
	}
	buf := make([]byte, 0, 4096)
	var pieces []byte
	for pos := uint64(0); pos < m.Size; {
		b, _, err := r.ReadAtInto(buf, fm.Number, pos, 1000)
		if err != nil || len(b) == 0 {
			t.Fatalf("at %d: %v", pos, err)
		}
		if &b[:1][0] != &buf[:1][0] {
			t.Fatalf("at %d: a buffer of cap %d was not reused for %d bytes", pos, cap(buf), len(b))
		}
		pieces = append(pieces, b...)
		pos += uint64(len(b))
	}
	if !bytes.Equal(pieces, whole) {
		t.Fatal("pieces read into a buffer differ from ReadAt's bytes")
	}
	// Too small a buffer: a new one of exactly the bytes read.
	b, _, err := r.ReadAtInto(make([]byte, 0, 10), fm.Number, 100, 1<<30)
	if err != nil || !bytes.Equal(b, whole[100:]) || cap(b) != len(b) {
		t.Fatalf("into a small buffer: %d bytes, cap %d, %v", len(b), cap(b), err)
	}
	// At the end: no bytes, the file's meta.
	b, m2, err := r.ReadAtInto(buf, fm.Number, m.Size, 100)
	if err != nil || len(b) != 0 || m2.Size != m.Size {
		t.Fatalf("at the end: %d bytes, %+v, %v", len(b), m2, err)
	}
	// Reading into a reused buffer allocates about the bytes read less
	// than ReadAt does (what pebble's iterator allocates is the same).
	const reads, size = 200, 8000
	allocated := func(f func()) uint64 {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for i := 0; i < reads; i++ {
			f()
		}
		runtime.ReadMemStats(&m1)
		return m1.TotalAlloc - m0.TotalAlloc
	}
	buf, _, _ = r.ReadAtInto(buf, fm.Number, 4, size)
	into := allocated(func() { buf, _, _ = r.ReadAtInto(buf, fm.Number, 4, size) })
	fresh := allocated(func() { _, _, _ = r.ReadAt(fm.Number, 4, size) })
	if into+reads*size/2 > fresh {
		t.Fatalf("%d reads of %d bytes allocated %d bytes into one buffer, %d with ReadAt", reads, size, into, fresh)
	}
}
