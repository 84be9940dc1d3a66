package logger

import (
	"os"
	"syscall"

	"github.com/lni/vfs"
)

// dataSync is fdatasync for operating system files: the data and the
// metadata needed to read it back, not the timestamps.
func dataSync(f vfs.File) error {
	if o, ok := f.(*os.File); ok {
		for {
			err := syscall.Fdatasync(int(o.Fd()))
			if err != syscall.EINTR {
				if err != nil {
					return &os.PathError{Op: "fdatasync", Path: o.Name(), Err: err}
				}
				return nil
			}
		}
	}
	return f.Sync()
}

// prealloc reserves size bytes of blocks for f without changing its size,
// as tan does for its log files; best effort.
func prealloc(f vfs.File, size int64) {
	if o, ok := f.(*os.File); ok {
		_ = syscall.Fallocate(int(o.Fd()), 1 /* FALLOC_FL_KEEP_SIZE */, 0, size)
	}
}
