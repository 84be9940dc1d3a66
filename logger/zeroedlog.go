package logger

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/vfs"
	"github.com/prometheus/client_golang/prometheus"
)

// zeroedLogFS hands dragonboat's tan LogDB log files that are already
// written full of zeros, and syncs them with fdatasync.
//
// tan appends every raft update to a 64 MiB log file and fsyncs it, once
// per raft round on every member. It preallocates the file with
// fallocate(FALLOC_FL_KEEP_SIZE), so each append still turns unwritten
// extents into written ones and grows the file's size, and each fsync
// commits the file system's journal as well as the data. On ext4,
// appending 8 KiB and fsyncing costs p50 345-460 µs and 210-320 µs of CPU;
// the same write over blocks already written with zeros, then fdatasync,
// p50 215-250 µs and 140-185 µs of CPU (fallocate without KEEP_SIZE does
// not help: its extents are still unwritten). Databases do the same for
// their logs (InnoDB's redo files, RocksDB's recycled WALs).
//
// Zeroing costs as many bytes written as the log itself. A log of small
// transactions is bound by fsync latency and gains (tools/bench: 64
// proposers of 200 bytes, one proposer); a log of large ones is bound by
// the disk's bandwidth and loses (1 MiB transactions: 12-30% slower in
// tools/bench with every file zeroed). So the first log file after start is
// zeroed when tan creates it, and a spare for the next is zeroed in the
// background only when the current file filled its first half slowly
// (minHalf); a file with no spare ready grows as tan appends to it, as it
// does without this file system.
//
// Safety:
//   - fdatasync writes a file's data and the metadata needed to read it
//     (its size, new blocks): a complete sync of what tan wrote. tan syncs
//     the directory after creating a file.
//   - A spare is renamed into place only after its zeros are synced, so a
//     log file never holds anything past tan's records but zeros, never a
//     stale record that could pass for a new one.
//   - tan reads a log file's records until the file ends, and reads an
//     all-zero chunk header as an error (ErrZeroedChunk) everywhere but in
//     the recovery of its last log. So readers (Open) see a log file end
//     where its records end: the writer's offset for a file this process
//     writes, and for an older one the first all-zero chunk header
//     (logEnd), which is also where tan's recovery stops.
//   - tan never appends to a log file it did not create in this process
//     (it copies the last log's records on open and starts a new file).
//
// Only tan's log files ("NNNNNN.log") on the operating system's file
// system are zeroed; every other file (and every file of an in-memory file
// system in tests, unless forced) is passed through.
type zeroedLogFS struct {
	vfs.FS
	log *slog.Logger
	// prefill: zero log files (--raft-log-prefill). Without it the
	// wrapper only reads and cuts files an earlier run zeroed.
	prefill bool
	// size is how many bytes of zeros a log file gets: tan's maximum log
	// size and the slack it preallocates (its last record may end past the
	// maximum; writes past the zeros are ordinary appends).
	size int64
	// force zeroes files that are not *os.File (tests on memory FSes).
	force bool
	// pause is slept between the MiBs of a spare, so that preparing one
	// does not hold the disk against the members' fsyncs.
	pause time.Duration
	// minHalf: the next spare is prepared when the current log file is
	// half full, if that took at least this long. Zeroing doubles the
	// bytes written, which a log written faster than it can afford (large
	// transactions, bandwidth-bound: 1 MiB transactions lose 12-30% in
	// tools/bench) while a log of small transactions is bound by fsync
	// latency. 2 s for half a file is 16 MiB/s.
	minHalf time.Duration

	// files and spares count log files by kind and spares by result
	// (nil: not counted).
	files, spares *prometheus.CounterVec

	mu      sync.Mutex
	prep    map[string]chan struct{} // directory → closed when its spare is prepared
	created map[string]bool          // directories with a log file created since start
	// ends holds where the records of each log file end: for a file
	// written by this process the writer's offset, for an older one what
	// logEnd found. Readers see the file as ending there (boundedFile).
	ends map[string]*atomic.Int64
}

// tanLogZeroBytes is tan's MaxLogFileSize (64 MiB) plus the index block it
// preallocates beyond it (128 KiB).
const tanLogZeroBytes = 64<<20 + 128<<10

// spareHeadroom is the free space a spare must leave on its disk.
const spareHeadroom = 1 << 30

const (
	spareName    = "binlogsvr-zeroed-log.spare"
	spareTmpName = spareName + ".tmp"
)

func newZeroedLogFS(fs vfs.FS, log *slog.Logger, prefill bool) *zeroedLogFS {
	if fs == nil {
		fs = vfs.Default
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &zeroedLogFS{FS: fs, log: log, prefill: prefill, size: tanLogZeroBytes, pause: 2 * time.Millisecond, minHalf: 2 * time.Second,
		prep: map[string]chan struct{}{}, created: map[string]bool{}, ends: map[string]*atomic.Int64{}}
}

// isTanLog reports whether base names one of tan's log files: six or more
// digits and ".log".
func isTanLog(base string) bool {
	const ext = ".log"
	if len(base) < 6+len(ext) || base[len(base)-len(ext):] != ext {
		return false
	}
	for _, c := range base[:len(base)-len(ext)] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (z *zeroedLogFS) zeroable(f vfs.File) bool {
	_, ok := f.(*os.File)
	return ok || z.force
}

// Create creates name. A tan log file is the spare full of zeros renamed to
// name if one is ready; the first log file since start is zeroed now if
// none is; otherwise it is an ordinary file that grows as tan appends.
//
// NB: tan creates a log file in its step loop, holding its lock: Create
// never waits for a spare being zeroed.
func (z *zeroedLogFS) Create(name string) (_ vfs.File, err error) {
	if !isTanLog(z.FS.PathBase(name)) {
		return z.FS.Create(name)
	}
	dir := z.FS.PathDir(name)
	z.mu.Lock()
	first := !z.created[dir]
	z.created[dir] = true
	z.mu.Unlock()
	lf := &logFile{z: z, dir: dir, end: new(atomic.Int64)}
	defer func() {
		if err != nil {
			return
		}
		kind := "growing"
		if lf.zeroed {
			kind = "zeroed"
		}
		count(z.files, kind)
		lf.created = time.Now()
		z.mu.Lock()
		z.ends[name] = lf.end
		z.mu.Unlock()
	}()
	spare := z.FS.PathJoin(dir, spareName)
	if fi, err := z.FS.Stat(spare); z.prefill && err == nil && fi.Size() == z.size {
		if f, err := z.FS.ReuseForWrite(spare, name); err != nil {
			z.log.Warn("raft log: cannot use the zeroed spare log file", "file", name, "err", err)
		} else {
			lf.File, lf.zeroed = f, true
			return lf, nil
		}
	}
	f, err := z.FS.Create(name)
	if err != nil {
		return nil, err
	}
	if z.prefill && first && z.zeroable(f) {
		if err := zeroFill(f, z.size, 0); err == nil {
			lf.File, lf.zeroed = f, true
			return lf, nil
		} else {
			// NB: e.g. a full disk: a file that grows as it is appended to,
			// as tan's own, still works.
			z.log.Warn("raft log: cannot fill a new log file with zeros; appending to a growing file instead", "file", name, "err", err)
			if err := f.Close(); err != nil {
				return nil, err
			}
			if f, err = z.FS.Create(name); err != nil {
				return nil, err
			}
		}
	}
	// NB: what tan does for the files it creates itself (it cannot see
	// through the wrapper): blocks reserved, size unchanged.
	prealloc(f, z.size)
	lf.File = f
	return lf, nil
}

// zeroFill writes size bytes of zeros from the start of f, a MiB at a
// time with pause between them, and syncs them.
func zeroFill(f vfs.File, size int64, pause time.Duration) error {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	return dataSync(f)
}

func (z *zeroedLogFS) waitSpare(dir string) {
	z.mu.Lock()
	ch := z.prep[dir]
	z.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func count(c *prometheus.CounterVec, label string) {
	if c != nil {
		c.WithLabelValues(label).Inc()
	}
}

// waitAll waits for every spare being prepared.
func (z *zeroedLogFS) waitAll() {
	z.mu.Lock()
	var chs []chan struct{}
	for _, ch := range z.prep {
		chs = append(chs, ch)
	}
	z.mu.Unlock()
	for _, ch := range chs {
		<-ch
	}
}

// startSpare prepares the next log file of dir in the background.
func (z *zeroedLogFS) startSpare(dir string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if _, busy := z.prep[dir]; busy {
		return
	}
	ch := make(chan struct{})
	z.prep[dir] = ch
	go func() {
		defer func() {
			z.mu.Lock()
			delete(z.prep, dir)
			z.mu.Unlock()
			close(ch)
		}()
		if err := z.makeSpare(dir); err != nil {
			count(z.spares, "failed")
			z.log.Warn("raft log: cannot prepare a zeroed spare log file; the next one grows as it is appended to", "dir", dir, "err", err)
		}
	}()
}

func (z *zeroedLogFS) makeSpare(dir string) (err error) {
	tmp, spare := z.FS.PathJoin(dir, spareTmpName), z.FS.PathJoin(dir, spareName)
	if fi, err := z.FS.Stat(spare); err == nil && fi.Size() == z.size {
		return nil
	}
	// NB: a spare takes 64 MiB tan would not hold; on a nearly full disk
	// the database and tan's own files need it more.
	if du, err := z.FS.GetDiskUsage(dir); err == nil && du.AvailBytes < uint64(z.size+spareHeadroom) {
		count(z.spares, "disk_full")
		z.log.Info("raft log: not preparing a zeroed spare log file: the disk is nearly full", "dir", dir, "free_bytes", du.AvailBytes)
		return nil
	}
	f, err := z.FS.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = z.FS.Remove(tmp)
			return
		}
		// NB: renamed only once its zeros are synced: a spare never holds
		// anything else.
		if err = z.FS.Rename(tmp, spare); err == nil {
			count(z.spares, "prepared")
		}
	}()
	if !z.zeroable(f) {
		return fmt.Errorf("%s is not an operating system file", tmp)
	}
	return zeroFill(f, z.size, z.pause)
}

// logFile is one of tan's log files: zeroed, it appends by writing over its
// zeros; either way it syncs with fdatasync and, once half full, has the
// next spare prepared if it filled slowly enough (minHalf).
type logFile struct {
	vfs.File
	z       *zeroedLogFS
	dir     string
	zeroed  bool
	off     int64
	end     *atomic.Int64 // off, for readers
	created time.Time
	half    bool // the half-way check was made
}

func (f *logFile) Write(p []byte) (n int, err error) {
	if f.zeroed {
		n, err = f.File.WriteAt(p, f.off)
	} else {
		n, err = f.File.Write(p)
	}
	f.off += int64(n)
	f.end.Store(f.off)
	if !f.half && f.off >= f.z.size/2 {
		f.half = true
		if time.Since(f.created) >= f.z.minHalf {
			f.z.startSpare(f.dir)
		}
	}
	return n, err
}

// Seek moves the append offset (tan's record writer asks for it once).
func (f *logFile) Seek(offset int64, whence int) (int64, error) {
	if !f.zeroed {
		o, err := f.File.Seek(offset, whence)
		if err == nil {
			f.off = o
		}
		return o, err
	}
	// NB: a file written over zeros has no end to seek from.
	o, err := seekOffset(offset, whence, f.off, -1)
	if err == nil {
		f.off = o
	}
	return o, err
}

// seekOffset is io.Seeker's arithmetic over an offset kept by the caller;
// end < 0 refuses io.SeekEnd.
func seekOffset(offset int64, whence int, cur, end int64) (int64, error) {
	switch {
	case whence == io.SeekStart:
	case whence == io.SeekCurrent:
		offset += cur
	case whence == io.SeekEnd && end >= 0:
		offset += end
	default:
		return 0, fmt.Errorf("logger: raft log file: seek whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("logger: raft log file: negative offset %d", offset)
	}
	return offset, nil
}

func (f *logFile) Sync() error { return dataSync(f.File) }

// Close cuts a zeroed file's zeros off first, so that it ends where its
// records end for any reader, tan without this wrapper included (a member
// started again with --raft-log-prefill=false, or an older build). Best
// effort: this process's readers and logEnd do not need it.
func (f *logFile) Close() error {
	if f.zeroed {
		f.z.cut(f.File, f.off, "closed")
	}
	return f.File.Close()
}

// Open opens name; a tan log file is seen as ending where its records end,
// not at the end of its zeros. tan reads a log file's records until the
// file ends, and reads an all-zero chunk header as an error (ErrZeroedChunk)
// everywhere but in the recovery of the last log: a file that went on with
// zeros would fail every read that runs to its end.
func (z *zeroedLogFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := z.FS.Open(name, opts...)
	if err != nil || !isTanLog(z.FS.PathBase(name)) {
		return f, err
	}
	z.mu.Lock()
	end := z.ends[name]
	z.mu.Unlock()
	if end == nil {
		// NB: written before this process started (tan never appends to
		// those), or a file tan rebuilt: its records end where they end.
		e, err := logEnd(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("logger: raft log %s: %w", name, err)
		}
		if fi, err := f.Stat(); err == nil && fi.Size() > e {
			if w, err := z.FS.OpenForAppend(name); err == nil {
				z.cut(w, e, "older")
				w.Close()
			}
		}
		end = new(atomic.Int64)
		end.Store(e)
		z.mu.Lock()
		if cur := z.ends[name]; cur != nil {
			end = cur
		} else {
			z.ends[name] = end
		}
		z.mu.Unlock()
	}
	return &boundedFile{File: f, end: end}, nil
}

func (z *zeroedLogFS) forget(names ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, n := range names {
		delete(z.ends, n)
	}
}

func (z *zeroedLogFS) Remove(name string) error {
	z.forget(name)
	return z.FS.Remove(name)
}

func (z *zeroedLogFS) RemoveAll(name string) error {
	z.mu.Lock()
	for n := range z.ends {
		if n == name || strings.HasPrefix(n, strings.TrimSuffix(name, "/")+"/") {
			delete(z.ends, n)
		}
	}
	z.mu.Unlock()
	return z.FS.RemoveAll(name)
}

func (z *zeroedLogFS) Rename(oldname, newname string) error {
	z.forget(oldname, newname)
	return z.FS.Rename(oldname, newname)
}

// cut truncates f to end and syncs it, where the file system allows.
func (z *zeroedLogFS) cut(f vfs.File, end int64, which string) {
	t, ok := f.(interface{ Truncate(int64) error })
	if !ok {
		return
	}
	err := t.Truncate(end)
	if err == nil {
		err = dataSync(f)
	}
	if err != nil {
		z.log.Warn("raft log: cannot cut the zeros after a log file's records", "which", which, "end", end, "err", err)
	}
}

// boundedFile is a log file opened for reading that ends at end.
type boundedFile struct {
	vfs.File
	end *atomic.Int64
	off int64
}

func (f *boundedFile) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *boundedFile) ReadAt(p []byte, off int64) (int, error) {
	end := f.end.Load()
	if off >= end {
		return 0, io.EOF
	}
	short := false
	if rem := end - off; int64(len(p)) > rem {
		p, short = p[:rem], true
	}
	n, err := f.File.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

func (f *boundedFile) Seek(offset int64, whence int) (int64, error) {
	o, err := seekOffset(offset, whence, f.off, f.end.Load())
	if err == nil {
		f.off = o
	}
	return o, err
}

func (f *boundedFile) Stat() (os.FileInfo, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return nil, err
	}
	return boundedInfo{FileInfo: fi, size: f.end.Load()}, nil
}

type boundedInfo struct {
	os.FileInfo
	size int64
}

func (i boundedInfo) Size() int64 { return i.size }
