package logger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/plugin/tan"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
	lvfs "github.com/lni/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestIsTanLog(t *testing.T) {
	for name, want := range map[string]bool{
		"000001.log": true, "123456789.log": true,
		"000001.logtmp": false, "000001.index": false, "MANIFEST-000001": false, "00001.log": false,
		"member1.log": false, "x00001.log": false, spareName: false, spareTmpName: false,
	} {
		if got := isTanLog(name); got != want {
			t.Errorf("isTanLog(%q) = %v, want %v", name, got, want)
		}
	}
}

func mustWrite(t *testing.T, f lvfs.File, b []byte) {
	t.Helper()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// diskUsageFS reports avail bytes free (memory file systems report none).
type diskUsageFS struct {
	lvfs.FS
	avail uint64
}

func (fs diskUsageFS) GetDiskUsage(string) (lvfs.DiskUsage, error) {
	return lvfs.DiskUsage{AvailBytes: fs.avail, TotalBytes: 100 << 30}, nil
}

// testZeroedFS is a zeroedLogFS on a memory file system, zeroing 64 KiB
// per log file.
func testZeroedFS(fs lvfs.FS, minHalf time.Duration) *zeroedLogFS {
	z := newZeroedLogFS(fs, nil, true)
	z.size, z.force, z.pause, z.minHalf = 64<<10, true, 0, minHalf
	return z
}

func fileBytes(t *testing.T, fs lvfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && len(b) > 0 {
		t.Fatal(err)
	}
	return b
}

func allZero(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }

// The first log file since start is zeroed when created; a file half
// filled slowly enough has the next one prepared as a spare, which the next
// log file is; one filled fast does not, and the next file grows as it is
// appended to.
func TestZeroedLogFSFiles(t *testing.T) {
	mem := lvfs.NewMem()
	if err := mem.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	z := testZeroedFS(mem, 0)
	z.files = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "files"}, []string{"kind"})
	z.spares = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spares"}, []string{"result"})
	f, err := z.Create("/d/000001.log")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*logFile); !ok {
		t.Fatalf("log file is a %T, not wrapped", f)
	}
	if b := fileBytes(t, mem, "/d/000001.log"); len(b) != 64<<10 || !allZero(b) {
		t.Fatalf("first log file: %d bytes, all zero %v; want 64 KiB of zeros", len(b), allZero(b))
	}
	mustWrite(t, f, []byte("record one"))
	if off, err := f.Seek(0, 1); err != nil || off != 10 {
		t.Fatalf("Seek(0, current) = %d, %v; want 10", off, err)
	}
	mustWrite(t, f, bytes.Repeat([]byte{7}, 32<<10))
	b := fileBytes(t, mem, "/d/000001.log")
	if len(b) != 64<<10 || string(b[:10]) != "record one" || b[10] != 7 || b[10+32<<10-1] != 7 || !allZero(b[10+32<<10:]) {
		t.Fatalf("after two writes the file is %d bytes starting %q; want them over the zeros, zeros after", len(b), b[:10])
	}
	// NB: half full (minHalf 0): the spare is being prepared.
	z.waitSpare("/d")
	if b := fileBytes(t, mem, "/d/"+spareName); len(b) != 64<<10 || !allZero(b) {
		t.Fatalf("spare: %d bytes, all zero %v", len(b), allZero(b))
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = z.Create("/d/000002.log")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Stat("/d/" + spareName); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the spare is still there after the next log file was created: %v", err)
	}
	if b := fileBytes(t, mem, "/d/000002.log"); len(b) != 64<<10 || !allZero(b) {
		t.Fatalf("second log file: %d bytes; want the 64 KiB spare", len(b))
	}
	// NB: now filled fast (minHalf far away): no spare, the next file grows.
	z.minHalf = time.Hour
	mustWrite(t, f, make([]byte, 40<<10))
	f.Close()
	z.waitSpare("/d")
	if _, err := mem.Stat("/d/" + spareName); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a spare was prepared for a log filled fast: %v", err)
	}
	f, err = z.Create("/d/000003.log")
	if err != nil {
		t.Fatal(err)
	}
	if b := fileBytes(t, mem, "/d/000003.log"); len(b) != 0 {
		t.Fatalf("third log file: %d bytes; want an empty growing file", len(b))
	}
	mustWrite(t, f, []byte("appended"))
	if b := fileBytes(t, mem, "/d/000003.log"); string(b) != "appended" {
		t.Fatalf("third log file holds %q", b)
	}
	// NB: filled slowly again, on a nearly full disk: no spare either.
	z.minHalf = 0
	z.FS = diskUsageFS{FS: z.FS, avail: 512 << 20}
	mustWrite(t, f, make([]byte, 40<<10))
	f.Close()
	z.waitSpare("/d")
	if _, err := mem.Stat("/d/" + spareName); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a spare was prepared with 512 MiB free: %v", err)
	}
	for _, c := range []struct {
		vec   *prometheus.CounterVec
		label string
		want  float64
	}{{z.files, "zeroed", 2}, {z.files, "growing", 1}, {z.spares, "prepared", 1}, {z.spares, "disk_full", 1}, {z.spares, "failed", 0}} {
		if got := testutil.ToFloat64(c.vec.WithLabelValues(c.label)); got != c.want {
			t.Errorf("counter %s = %v, want %v", c.label, got, c.want)
		}
	}
	// Other files pass through.
	m, err := z.Create("/d/MANIFEST-000001")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, ok := m.(*logFile); ok {
		t.Fatal("a manifest was wrapped as a log file")
	}
}

// A log file on a file system that is not the operating system's is not
// zeroed unless forced (memory file systems in tests).
func TestZeroedLogFSOnlyOSFiles(t *testing.T) {
	mem := lvfs.NewMem()
	z := newZeroedLogFS(mem, nil, true)
	f, err := z.Create("/000001.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b := fileBytes(t, mem, "/000001.log"); len(b) != 0 {
		t.Fatalf("memory log file zeroed: %d bytes", len(b))
	}
}

// failWriteFS fails writes at or past limit bytes into a file, like a full
// disk.
type failWriteFS struct {
	lvfs.FS
	limit int64
}

type failWriteFile struct {
	lvfs.File
	limit int64
}

func (f failWriteFile) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.limit {
		return 0, errors.New("no space left on device")
	}
	return f.File.WriteAt(p, off)
}

func (fs failWriteFS) Create(name string) (lvfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return failWriteFile{File: f, limit: fs.limit}, nil
}

// Zeros that do not fit (a full disk) leave an ordinary growing file and a
// warning, not an error.
func TestZeroedLogFSFullDisk(t *testing.T) {
	mem := lvfs.NewMem()
	var logs bytes.Buffer
	z := testZeroedFS(failWriteFS{FS: mem, limit: 16 << 10}, 0)
	z.log = slog.New(slog.NewTextHandler(&logs, nil))
	f, err := z.Create("/000001.log")
	if err != nil {
		t.Fatalf("create on a full disk: %v", err)
	}
	mustWrite(t, f, []byte("record"))
	if b := fileBytes(t, mem, "/000001.log"); string(b) != "record" {
		t.Fatalf("log file holds %q, want only the record", b)
	}
	if !strings.Contains(logs.String(), "cannot fill a new log file with zeros") {
		t.Fatalf("no warning logged: %q", logs.String())
	}
}

// tan through the wrapper on a strict memory file system, with a zeroed
// region smaller than what is written (so records go over zeros and past
// them): what was fsync'd survives crashes, across a restart that starts
// a new log file from the spare.
func TestZeroedLogTanCrash(t *testing.T) {
	d := newTanDisk(t, true, nil)
	var z *zeroedLogFS
	prefill := true
	d.f = tanStateFactory{inner: tan.Factory, fs: func(fs config.IFS, _ *slog.Logger) *zeroedLogFS {
		z = testZeroedFS(fs, 0)
		z.size, z.prefill = 256<<10, prefill
		return z
	}}
	db := d.open()
	cmd := bytes.Repeat([]byte("e"), 16<<10)
	next := uint64(1)
	write := func(n int) {
		t.Helper()
		for range n {
			u := pb.Update{ShardID: 1, ReplicaID: 1, EntriesToSave: []pb.Entry{{Term: 2, Index: next, Cmd: cmd}}}
			if next == 1 {
				u.State = pb.State{Term: 2, Vote: 1}
			}
			if err := db.SaveRaftState([]pb.Update{u}, 1); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	check := func(when string) {
		t.Helper()
		rs, err := db.ReadRaftState(1, 1, 0)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if rs.State.Term != 2 || rs.State.Vote != 1 || rs.FirstIndex != 1 || rs.EntryCount != next-1 {
			t.Fatalf("%s: %+v, want term 2, vote 1, entries 1-%d", when, rs, next-1)
		}
		ents, _, err := db.IterateEntries(nil, 0, 1, 1, 1, next, 1<<30)
		if err != nil || uint64(len(ents)) != next-1 || !bytes.Equal(ents[len(ents)-1].Cmd, cmd) {
			t.Fatalf("%s: %d entries, %v", when, len(ents), err)
		}
	}
	logSizes := func() map[string]int64 {
		t.Helper()
		names, err := d.mem.List("/raft/tandb/node-1-1")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, n := range names {
			if isTanLog(n) {
				fi, err := d.mem.Stat("/raft/tandb/node-1-1/" + n)
				if err != nil {
					t.Fatal(err)
				}
				out[n] = fi.Size()
			}
		}
		return out
	}
	write(40) // 640 KiB: 256 KiB over zeros, the rest past them
	z.waitSpare("/raft/tandb/node-1-1")
	db = d.crash(db)
	check("after the first crash")
	// NB: the restart started a new log file: the spare prepared when the
	// first was half full, still 256 KiB of zeros before these writes.
	sizes := logSizes()
	if len(sizes) != 2 {
		t.Fatalf("log files after a restart: %v, want two", sizes)
	}
	for n, s := range sizes {
		if s < 256<<10 {
			t.Fatalf("log file %s is %d bytes, not zeroed (all: %v)", n, s, sizes)
		}
	}
	write(10)
	// NB: started again without prefill: the files written with it end in
	// zeros (a memory file system cannot cut them), and are still read.
	prefill = false
	db = d.crash(db)
	defer func() { db.Close() }()
	check("after the second crash, without prefill")
	write(5)
	check("after writing without prefill")
}

// The same on the operating system's disk with the real sizes: 70 MiB of
// entries fill a 64 MiB zeroed log file and go on into the spare; the
// records are read back after the database is reopened (tan copies the
// last log's records and starts a new file: the zeros are its end).
func TestZeroedLogTanRealDisk(t *testing.T) {
	dir := t.TempDir()
	var z *zeroedLogFS
	f := tanStateFactory{inner: tan.Factory, fs: func(fs config.IFS, _ *slog.Logger) *zeroedLogFS {
		z = newZeroedLogFS(fs, nil, true)
		z.minHalf, z.pause = 0, 0
		return z
	}}
	nhc := config.NodeHostConfig{Expert: config.ExpertConfig{LogDB: config.GetTinyMemLogDBConfig()}}
	nhc.Expert.LogDB.KVWriteBufferSize = 1 << 20
	open := func() raftio.ILogDB {
		t.Helper()
		db, err := f.Create(nhc, func(config.LogDBInfo) {}, []string{dir}, []string{dir})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	cmd := bytes.Repeat([]byte("r"), 1<<20)
	const n = 70
	for i := uint64(1); i <= n; i++ {
		u := pb.Update{ShardID: 1, ReplicaID: 1, EntriesToSave: []pb.Entry{{Term: 3, Index: i, Cmd: cmd}}}
		if i == 1 {
			u.State = pb.State{Term: 3, Vote: 2}
		}
		if err := db.SaveRaftState([]pb.Update{u}, 1); err != nil {
			t.Fatal(err)
		}
	}
	logDir := filepath.Join(dir, "tandb", "node-1-1")
	z.waitSpare(logDir)
	sizes := func() (names []string, sizes []int64) {
		t.Helper()
		ents, err := os.ReadDir(logDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if isTanLog(e.Name()) {
				fi, err := e.Info()
				if err != nil {
					t.Fatal(err)
				}
				names, sizes = append(names, e.Name()), append(sizes, fi.Size())
			}
		}
		return names, sizes
	}
	// NB: the first file was cut to its records when tan closed it; the
	// second holds ~6 MiB of records: it is the spare (this big) when the
	// spare was ready as the first filled, else a file grown by its records
	// (the spare is prepared asynchronously).
	logs, sz := sizes()
	grown := len(sz) == 2 && sz[1] > 6<<20 && sz[1] < 8<<20
	if len(logs) != 2 || sz[0] <= 64<<20 || sz[0] >= tanLogZeroBytes || (sz[1] != tanLogZeroBytes && !grown) {
		t.Fatalf("log files %v of %v bytes; want two, the first cut to its records past 64 MiB, the second the %d-byte spare or ~6 MiB of records", logs, sz, tanLogZeroBytes)
	}
	// NB: read across the two files by this process: the first is read to
	// its end, where zeros follow.
	ents, _, err := db.IterateEntries(nil, 0, 1, 1, 60, n+1, 1<<30)
	if err != nil || len(ents) != n-59 || !bytes.Equal(ents[len(ents)-1].Cmd, cmd) {
		t.Fatalf("entries 60-%d: %d, %v", n, len(ents), err)
	}
	db.Close()
	db = open()
	defer db.Close()
	rs, err := db.ReadRaftState(1, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rs.State.Term != 3 || rs.State.Vote != 2 || rs.EntryCount != n {
		t.Fatalf("after reopening: %+v, want term 3, vote 2, %d entries", rs, n)
	}
	// NB: reopening read the second file (now an older one) and cut its
	// zeros; the new log file is the spare prepared meanwhile... or a
	// growing one if the spare was not ready.
	if logs2, sz2 := sizes(); len(logs2) != 3 || sz2[0] != sz[0] || sz2[1] <= 6<<20 || sz2[1] >= 8<<20 {
		t.Fatalf("after reopening: log files %v of %v bytes; want the first unchanged, the second cut to its ~6 MiB of records, and a new one", logs2, sz2)
	}
	ents, _, err = db.IterateEntries(nil, 0, 1, 1, 60, n+1, 1<<30)
	if err != nil || len(ents) != n-59 || !bytes.Equal(ents[len(ents)-1].Cmd, cmd) {
		t.Fatalf("entries 60-%d after reopening: %d, %v", n, len(ents), err)
	}
}

// tanEncode lays records out as tan's writer does (internal/tan/record.go:
// 32 KiB blocks, 7-byte headers with tan's checksum, fewer than 7 bytes at
// a block's end padded with zeros).
func tanEncode(recs [][]byte) (out []byte, ends []int64) {
	for _, r := range recs {
		first := true
		for {
			left := tanBlockSize - len(out)%tanBlockSize
			if left < tanHeaderSize {
				out = append(out, make([]byte, left)...)
				left = tanBlockSize
			}
			n := min(len(r), left-tanHeaderSize)
			last := n == len(r)
			typ := byte(tanMiddleChunk)
			switch {
			case first && last:
				typ = tanFullChunk
			case first:
				typ = tanFirstChunk
			case last:
				typ = tanLastChunk
			}
			var h [tanHeaderSize]byte
			h[4], h[5], h[6] = byte(n), byte(n>>8), typ
			binary.LittleEndian.PutUint32(h[:], tanCRC(append([]byte{typ}, r[:n]...)))
			out = append(append(out, h[:]...), r[:n]...)
			r, first = r[n:], false
			if last {
				break
			}
		}
		ends = append(ends, int64(len(out)))
	}
	return out, ends
}

func logEndOf(t *testing.T, b []byte) (int64, error) {
	t.Helper()
	mem := lvfs.NewMem()
	f, err := mem.Create("/000001.log")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, b)
	f.Close()
	if f, err = mem.Open("/000001.log"); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return logEnd(f)
}

// logEnd finds where the records end, whatever their sizes: a record
// leaving less than a chunk header at a block's end, one ending on a block
// boundary, records spanning blocks; with zeros after them or without.
func TestLogEnd(t *testing.T) {
	const blk = tanBlockSize
	for _, tc := range []struct {
		name  string
		sizes []int
	}{
		{"empty", nil},
		{"one small", []int{10}},
		{"many small", slices.Repeat([]int{100}, 500)},
		{"padding left at a block end", []int{blk - tanHeaderSize - 3, 50}},
		{"padding left at the very end", []int{blk - tanHeaderSize - 3}},
		{"header fits, nothing else", []int{blk - 2*tanHeaderSize, 30}},
		{"ends on a block boundary", []int{blk - tanHeaderSize}},
		{"ends on a block boundary, then more", []int{blk - tanHeaderSize, 20}},
		{"spans blocks", []int{100 << 10, 5, 70 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var recs [][]byte
			for i, n := range tc.sizes {
				recs = append(recs, bytes.Repeat([]byte{byte(i + 1)}, n))
			}
			data, _ := tanEncode(recs)
			for _, zeros := range []int{0, 3, 100 << 10} {
				end, err := logEndOf(t, append(slices.Clone(data), make([]byte, zeros)...))
				if err != nil || end != int64(len(data)) {
					t.Fatalf("with %d zeros after %d bytes of records: logEnd = %d, %v", zeros, len(data), end, err)
				}
			}
		})
	}
}

// A crash during fdatasync over zeros can leave holes of zeros in the last
// record: the log ends before it. A broken record followed by a complete
// one is corruption, not a crash, and is reported.
func TestLogEndTornAndCorrupt(t *testing.T) {
	// NB: records of one full block each, so that each starts a block.
	var recs [][]byte
	for i := range 5 {
		recs = append(recs, bytes.Repeat([]byte{byte('a' + i)}, tanBlockSize-tanHeaderSize))
	}
	recs = append(recs, bytes.Repeat([]byte("z"), 200<<10)) // the last spans 7 blocks
	data, ends := tanEncode(recs)
	data = append(data, make([]byte, 64<<10)...)
	hole := func(off, n int64) []byte {
		b := slices.Clone(data)
		clear(b[off : off+n])
		return b
	}
	last := ends[4] // where the last record starts
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"a hole in the last record's first block", hole(last+100, 4096)},
		{"a hole in the last record's middle", hole(last+3*tanBlockSize+512, 4096)},
		{"a hole at the last record's start", hole(last, 4096)},
		{"a hole over a middle chunk's header", hole(last+2*tanBlockSize, 512)},
		{"the last record's end missing", data[:ends[5]-1000]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end, err := logEndOf(t, tc.b)
			if err != nil || end != last {
				t.Fatalf("logEnd = %d, %v; want %d (before the torn record)", end, err, last)
			}
		})
	}
	t.Run("a hole in a record followed by complete ones", func(t *testing.T) {
		end, err := logEndOf(t, hole(ends[1]+200, 512))
		if err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("logEnd = %d, %v; want a corruption error", end, err)
		}
	})
	t.Run("a flipped byte in a record followed by complete ones", func(t *testing.T) {
		b := slices.Clone(data)
		b[ends[0]+50] ^= 1
		if _, err := logEndOf(t, b); err == nil {
			t.Fatal("no error for a flipped byte in the second record")
		}
	})
}

// A reader of a log file sees it end where its records end, and sees what
// is written after it opened it; removing other files does not change that.
func TestZeroedLogFSReaders(t *testing.T) {
	mem := lvfs.NewMem()
	if err := mem.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	z := testZeroedFS(mem, time.Hour)
	w, err := z.Create("/d/000001.log")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	read := func(r lvfs.File) string {
		t.Helper()
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := r.Stat()
		if err != nil || fi.Size() != int64(len(b)) {
			t.Fatalf("Stat size %v (%v), read %d bytes", fi.Size(), err, len(b))
		}
		return string(b)
	}
	mustWrite(t, w, []byte("first "))
	r, err := z.Open("/d/000001.log")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := read(r); got != "first " {
		t.Fatalf("read %q, want the first record only (64 KiB of zeros follow)", got)
	}
	// NB: tan removes its temporary files with RemoveAll.
	if err := z.RemoveAll("/d/CURRENT.dbtmp"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, []byte("second"))
	r2, err := z.Open("/d/000001.log")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	for _, r := range []lvfs.File{r, r2} {
		if got := read(r); got != "first second" {
			t.Fatalf("read %q after the second write", got)
		}
	}
	// NB: only writes move the end readers see, not the writer's seeks.
	if _, err := w.Seek(40<<10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if got := read(r2); got != "first second" {
		t.Fatalf("read %q after the writer seeked ahead", got)
	}
	if n, err := r.ReadAt(make([]byte, 4), 10); n != 2 || err != io.EOF {
		t.Fatalf("ReadAt across the end: %d, %v; want 2, EOF", n, err)
	}
}
