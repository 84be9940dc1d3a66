package logger

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	pvfs "github.com/cockroachdb/pebble/vfs"
	"github.com/lni/vfs"
)

// A full disk, caught where the bytes are written.
//
// dragonboat panics when its raft log (tan) fails to write, an error from
// the state machine's Update or Sync crashes the process, and Pebble calls
// Fatalf (a panic) when it cannot write its manifest. Each of those ends
// the member with a stack trace that does not say what to do. So every file
// system the member writes through (dragonboat's, tan's, the state
// machine's Pebble) is wrapped by a diskGuard: an operation that fails with
// ENOSPC or EDQUOT calls one handler before the error goes back to
// dragonboat or Pebble. The daemon's handler logs one line and exits the
// process (binlogsvr), which is safe because every entry acknowledged was
// fsync'd on a quorum before the ACK, and a member restarted on the same
// data recovers as after any crash: tan drops a record torn by the failed
// write, and the state machine (no WAL) replays from its last flush.
//
// The wrappers cost one comparison of the error with nil per call; the
// classification runs only on an error.

// DiskFullError describes the write that found the disk full.
type DiskFullError struct {
	Op   string // "writing", "syncing", "creating", ...
	File string
	Dir  string // the member's data directory
	Free uint64 // bytes free for this process when it was caught (0: unknown)
	Err  error  // the operating system's error (ENOSPC or EDQUOT)
}

func (e *DiskFullError) Error() string {
	reason := "no space left on device"
	if errors.Is(e.Err, syscall.EDQUOT) {
		reason = "disk quota exceeded"
	}
	return fmt.Sprintf("disk full: %s %s %s in %s (%d bytes free); free space, then restart the member; "+
		"nothing committed is lost: every acknowledged entry was fsync'd before the ACK", reason, e.Op, e.File, e.Dir, e.Free)
}

func (e *DiskFullError) Unwrap() error { return e.Err }

// IsNoSpace reports whether err says the disk (or the user's quota) is
// full.
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// diskGuard calls onFull once, for the first operation that found the disk
// full. Operations that find it full while the handler runs wait for it to
// return (when it exits the process, they never return: nothing else can
// panic in the meantime); later ones return their error as it is.
type diskGuard struct {
	dir    string
	usage  func(string) (vfs.DiskUsage, error) // free space for the message; nil: unknown
	onFull func(*DiskFullError)

	once sync.Once
}

// check is called with the result of every operation that may allocate
// space. NB: the nil test is the whole cost on the write path.
func (g *diskGuard) check(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if IsNoSpace(err) {
		g.full(op, name, err)
	}
	return err
}

func (g *diskGuard) full(op, name string, err error) {
	g.once.Do(func() {
		e := &DiskFullError{Op: op, File: name, Dir: g.dir, Err: err}
		if g.usage != nil {
			if du, uerr := g.usage(g.dir); uerr == nil {
				e.Free = du.AvailBytes
			}
		}
		if g.onFull != nil {
			g.onFull(e)
		}
	})
}

// Modes of what the member creates: only its own user reads its data (the
// binlogs hold every row the source wrote, and the log holds credentials).
const (
	dirMode  os.FileMode = 0o700
	fileMode os.FileMode = 0o600
)

// chmodFile sets a file the member created to fileMode, on the operating
// system's file system (memory file systems have no modes). NB: the daemon
// also runs with umask 077; this covers library use, and files created
// through wrappers that hide the descriptor (tan's zeroed log files).
// Best effort: a file created is not failed for its mode.
func chmodFile(osBacked bool, name string) {
	if osBacked {
		_ = os.Chmod(name, fileMode)
	}
}

// ---- dragonboat's and tan's file system (lni/vfs) ----

// diskFS wraps dragonboat's file system with a diskGuard, and creates
// directories 0700 and files 0600.
type diskFS struct {
	vfs.FS
	g        *diskGuard
	osBacked bool // the operating system's disk: set modes
}

// newDiskFS wraps fs (nil: the operating system's).
func newDiskFS(fs vfs.FS, g *diskGuard) *diskFS {
	if fs == nil {
		fs = vfs.Default
	}
	return &diskFS{FS: fs, g: g, osBacked: fs == vfs.Default}
}

// with returns a diskFS over inner that shares d's guard (tan's zeroed-log
// wrapper goes between the guard and the disk: see tanStateFactory).
func (d *diskFS) with(inner vfs.FS) *diskFS { return &diskFS{FS: inner, g: d.g, osBacked: d.osBacked} }

func (d *diskFS) file(name string, f vfs.File, err error, op string) (vfs.File, error) {
	if err := d.g.check(op, name, err); err != nil {
		return nil, err
	}
	return vfs.WithFd(f, &diskFile{File: f, g: d.g, name: name}), nil
}

func (d *diskFS) Create(name string) (vfs.File, error) {
	f, err := d.FS.Create(name)
	if err == nil {
		chmodFile(d.osBacked, name)
	}
	return d.file(name, f, err, "creating")
}

func (d *diskFS) OpenForAppend(name string) (vfs.File, error) {
	f, err := d.FS.OpenForAppend(name)
	return d.file(name, f, err, "opening")
}

func (d *diskFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := d.FS.ReuseForWrite(oldname, newname)
	return d.file(newname, f, err, "reusing")
}

func (d *diskFS) OpenDir(name string) (vfs.File, error) {
	f, err := d.FS.OpenDir(name)
	return d.file(name, f, err, "opening")
}

func (d *diskFS) Link(oldname, newname string) error {
	return d.g.check("linking", newname, d.FS.Link(oldname, newname))
}

func (d *diskFS) Rename(oldname, newname string) error {
	return d.g.check("renaming", newname, d.FS.Rename(oldname, newname))
}

func (d *diskFS) MkdirAll(dir string, _ os.FileMode) error {
	return d.g.check("creating", dir, d.FS.MkdirAll(dir, dirMode))
}

func (d *diskFS) Lock(name string) (io.Closer, error) {
	c, err := d.FS.Lock(name)
	if err == nil {
		chmodFile(d.osBacked, name)
	}
	return c, d.g.check("locking", name, err)
}

type diskFile struct {
	vfs.File
	g    *diskGuard
	name string
}

func (f *diskFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	return n, f.g.check("writing", f.name, err)
}

func (f *diskFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	return n, f.g.check("writing", f.name, err)
}

func (f *diskFile) Sync() error { return f.g.check("syncing", f.name, f.File.Sync()) }

func (f *diskFile) Close() error { return f.g.check("closing", f.name, f.File.Close()) }

// ---- the state machine's Pebble (cockroachdb/pebble/vfs) ----

// pebbleDiskFS is diskFS for Pebble's file system interface.
type pebbleDiskFS struct {
	pvfs.FS
	g        *diskGuard
	osBacked bool
}

// newPebbleDiskFS wraps fs (nil: the operating system's).
func newPebbleDiskFS(fs pvfs.FS, g *diskGuard) *pebbleDiskFS {
	if fs == nil {
		fs = pvfs.Default
	}
	return &pebbleDiskFS{FS: fs, g: g, osBacked: fs == pvfs.Default}
}

func (d *pebbleDiskFS) file(name string, f pvfs.File, err error, op string) (pvfs.File, error) {
	if err := d.g.check(op, name, err); err != nil {
		return nil, err
	}
	return pvfs.WithFd(f, &pebbleDiskFile{File: f, g: d.g, name: name}), nil
}

func (d *pebbleDiskFS) Create(name string) (pvfs.File, error) {
	f, err := d.FS.Create(name)
	if err == nil {
		chmodFile(d.osBacked, name)
	}
	return d.file(name, f, err, "creating")
}

func (d *pebbleDiskFS) ReuseForWrite(oldname, newname string) (pvfs.File, error) {
	f, err := d.FS.ReuseForWrite(oldname, newname)
	return d.file(newname, f, err, "reusing")
}

func (d *pebbleDiskFS) OpenDir(name string) (pvfs.File, error) {
	f, err := d.FS.OpenDir(name)
	return d.file(name, f, err, "opening")
}

func (d *pebbleDiskFS) Link(oldname, newname string) error {
	return d.g.check("linking", newname, d.FS.Link(oldname, newname))
}

func (d *pebbleDiskFS) Rename(oldname, newname string) error {
	return d.g.check("renaming", newname, d.FS.Rename(oldname, newname))
}

func (d *pebbleDiskFS) MkdirAll(dir string, _ os.FileMode) error {
	return d.g.check("creating", dir, d.FS.MkdirAll(dir, dirMode))
}

func (d *pebbleDiskFS) Lock(name string) (io.Closer, error) {
	c, err := d.FS.Lock(name)
	if err == nil {
		chmodFile(d.osBacked, name)
	}
	return c, d.g.check("locking", name, err)
}

type pebbleDiskFile struct {
	pvfs.File
	g    *diskGuard
	name string
}

func (f *pebbleDiskFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	return n, f.g.check("writing", f.name, err)
}

func (f *pebbleDiskFile) Sync() error { return f.g.check("syncing", f.name, f.File.Sync()) }

func (f *pebbleDiskFile) Close() error { return f.g.check("closing", f.name, f.File.Close()) }
