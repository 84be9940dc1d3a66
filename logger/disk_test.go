package logger

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pvfs "github.com/cockroachdb/pebble/vfs"
	"github.com/lni/vfs"
)

// noSpace fails every write once armed, as a full disk does.
type noSpace struct {
	armed atomic.Bool
	errno syscall.Errno
}

func (s *noSpace) err(name string) error {
	if s.armed.Load() {
		return &os.PathError{Op: "write", Path: name, Err: s.errno}
	}
	return nil
}

type noSpaceFile struct {
	vfs.File
	s    *noSpace
	name string
}

func (f *noSpaceFile) Write(p []byte) (int, error) {
	if err := f.s.err(f.name); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *noSpaceFile) Sync() error {
	if err := f.s.err(f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

type noSpaceFS struct {
	vfs.FS
	s *noSpace
}

func (fs *noSpaceFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &noSpaceFile{File: f, s: fs.s, name: name}, nil
}

func testGuard(calls *[]*DiskFullError) *diskGuard {
	return &diskGuard{dir: "/data", usage: func(string) (vfs.DiskUsage, error) { return vfs.DiskUsage{AvailBytes: 4096}, nil },
		onFull: func(e *DiskFullError) { *calls = append(*calls, e) }}
}

func TestDiskFSCallsHandlerOnceOnNoSpace(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		var calls []*DiskFullError
		s := &noSpace{errno: errno}
		fs := newDiskFS(&noSpaceFS{FS: vfs.NewMem(), s: s}, testGuard(&calls))
		if err := fs.MkdirAll("/data/raft", 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := fs.Create("/data/raft/000001.log")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("fits")); err != nil || len(calls) != 0 {
			t.Fatalf("write with space: err %v, handler calls %d", err, len(calls))
		}
		s.armed.Store(true)
		_, err = f.Write([]byte("does not fit"))
		if !errors.Is(err, errno) {
			t.Fatalf("the error must reach the caller unchanged: %v", err)
		}
		if err := f.Sync(); !errors.Is(err, errno) {
			t.Fatalf("sync: %v", err)
		}
		if len(calls) != 1 {
			t.Fatalf("handler called %d times, want once", len(calls))
		}
		reason := map[syscall.Errno]string{syscall.ENOSPC: "no space left on device", syscall.EDQUOT: "disk quota exceeded"}[errno]
		want := "disk full: " + reason + " writing /data/raft/000001.log in /data (4096 bytes free); free space, then restart the member; " +
			"nothing committed is lost: every acknowledged entry was fsync'd before the ACK"
		if got := calls[0].Error(); got != want {
			t.Fatalf("message:\n got %s\nwant %s", got, want)
		}
	}
}

func TestDiskFSOtherErrorsPassThrough(t *testing.T) {
	var calls []*DiskFullError
	g := testGuard(&calls)
	for _, err := range []error{io.ErrShortWrite, &os.PathError{Op: "write", Path: "x", Err: syscall.EIO}, os.ErrNotExist} {
		if got := g.check("writing", "x", err); got != err {
			t.Fatalf("check changed %v into %v", err, got)
		}
	}
	if _, err := newDiskFS(vfs.NewMem(), g).Open("/missing"); err == nil {
		t.Fatal("opening a missing file succeeded")
	}
	if len(calls) != 0 {
		t.Fatalf("handler called for errors that are not a full disk: %v", calls)
	}
}

// The handler runs once even when several writers find the disk full at
// once, and the others wait for it (the daemon's exits the process: no
// writer may go on to a panic meanwhile).
func TestDiskGuardConcurrentWritersWaitForHandler(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	g := &diskGuard{dir: "/d", onFull: func(*DiskFullError) { n.Add(1); <-release }}
	full := &os.PathError{Op: "write", Path: "f", Err: syscall.ENOSPC}
	done := make(chan struct{}, 4)
	for i := 0; i < 4; i++ {
		go func() { _ = g.check("writing", "f", full); done <- struct{}{} }()
	}
	select {
	case <-done:
		t.Fatal("a writer returned while the handler ran")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	for i := 0; i < 4; i++ {
		<-done
	}
	if n.Load() != 1 {
		t.Fatalf("handler ran %d times", n.Load())
	}
}

type pebbleNoSpaceFS struct {
	pvfs.FS
	s *noSpace
}

type pebbleNoSpaceFile struct {
	pvfs.File
	s    *noSpace
	name string
}

func (f *pebbleNoSpaceFile) Write(p []byte) (int, error) {
	if err := f.s.err(f.name); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (fs *pebbleNoSpaceFS) Create(name string) (pvfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &pebbleNoSpaceFile{File: f, s: fs.s, name: name}, nil
}

func TestPebbleDiskFSCallsHandler(t *testing.T) {
	var calls []*DiskFullError
	s := &noSpace{errno: syscall.ENOSPC}
	fs := newPebbleDiskFS(&pebbleNoSpaceFS{FS: pvfs.NewMem(), s: s}, testGuard(&calls))
	if err := fs.MkdirAll("/data", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create("/data/000005.sst")
	if err != nil {
		t.Fatal(err)
	}
	s.armed.Store(true)
	if _, err := f.Write([]byte("x")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write: %v", err)
	}
	if len(calls) != 1 || calls[0].File != "/data/000005.sst" || calls[0].Op != "writing" {
		t.Fatalf("handler calls %+v", calls)
	}
}

// On the real disk the wrappers create directories 0700 and files 0600,
// whatever the caller asks for, and keep the descriptor visible (Pebble's
// and tan's sync_file_range and fadvise use it).
func TestDiskFSModesOnRealDisk(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	var calls []*DiskFullError
	g := testGuard(&calls)
	fs, pfs := newDiskFS(nil, g), newPebbleDiskFS(nil, g)
	if err := fs.MkdirAll(filepath.Join(dir, "raft"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := pfs.MkdirAll(filepath.Join(dir, "sm"), 0o777); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create(filepath.Join(dir, "raft", "000001.log"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(interface{ Fd() uintptr }); !ok {
		t.Fatal("the wrapped file hides its descriptor")
	}
	f.Close()
	pf, err := pfs.Create(filepath.Join(dir, "sm", "000001.sst"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pf.(interface{ Fd() uintptr }); !ok {
		t.Fatal("the wrapped Pebble file hides its descriptor")
	}
	pf.Close()
	l, err := pfs.Lock(filepath.Join(dir, "sm", "LOCK"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkModes(t, dir, true) // NB: the test's own directory, made under umask 0
}

// checkModes fails for any directory under dir (dir included unless
// skipRoot) that is not 0700 and any file that is not 0600.
func checkModes(t *testing.T, dir string, skipRoot bool) {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == dir && skipRoot {
			return nil
		}
		n++
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Fatalf("only %d paths under %s: nothing checked", n, dir)
	}
}

func TestTightenModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dir, "binlog", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "binlog", "x", "000001.sst"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tightenModes(dir, slog.New(slog.NewTextHandler(&b, nil))); err != nil {
		t.Fatal(err)
	}
	checkModes(t, dir, false)
	if !strings.Contains(b.String(), "removed group and other access") || !strings.Contains(b.String(), "paths=4") {
		t.Fatalf("log: %s", b.String())
	}
}

func TestDiskMonitorStatesAndGate(t *testing.T) {
	var free atomic.Uint64
	var b strings.Builder
	m, err := newDiskMonitor(DiskConfig{WarnBytes: 1000, ReserveBytes: 100}, "/data",
		func(string) (vfs.DiskUsage, error) { return vfs.DiskUsage{AvailBytes: free.Load()}, nil },
		slog.New(slog.NewTextHandler(&b, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		free  uint64
		state string
		gated bool
		log   string
	}{
		{5000, DiskOK, false, ""},
		{900, DiskLow, false, "below --disk-warn-bytes"},
		{99, DiskReserve, true, "below --disk-reserve-bytes"},
		{500, DiskLow, false, "below --disk-warn-bytes"},
		{2000, DiskOK, false, "back above"},
	}
	var gate <-chan struct{}
	for _, s := range steps {
		b.Reset()
		free.Store(s.free)
		if !m.measure() {
			t.Fatal("measure failed")
		}
		if st := m.status(); st.State != s.state || st.FreeBytes != s.free {
			t.Fatalf("free %d: status %+v, want %s", s.free, st, s.state)
		}
		g := m.gate()
		if (g != nil) != s.gated {
			t.Fatalf("free %d: gated %v", s.free, g != nil)
		}
		if g != nil {
			gate = g
		} else if gate != nil {
			select {
			case <-gate:
			default:
				t.Fatal("the gate was not opened when space returned")
			}
			gate = nil
		}
		if !strings.Contains(b.String(), s.log) {
			t.Fatalf("free %d: log %q lacks %q", s.free, b.String(), s.log)
		}
	}
}

// nopFile accepts every write; it isolates the guard's cost.
type nopFile struct{ vfs.File }

func (nopFile) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkDiskFileWrite: the guard's cost on the write path, over a file
// that does nothing (so the wrapper's overhead is all there is to measure).
func BenchmarkDiskFileWrite(b *testing.B) {
	p := make([]byte, 4096)
	for _, guarded := range []bool{false, true} {
		name := "raw"
		var f vfs.File = nopFile{}
		if guarded {
			name = "guarded"
			f = &diskFile{File: f, g: &diskGuard{}, name: "f"}
		}
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := f.Write(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
