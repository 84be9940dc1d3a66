//go:build unix

package dump

import "syscall"

// mapChunk returns an empty buffer of capacity n outside the Go heap
// (anonymous memory), and whether it is; unmapChunk gives such memory back
// to the system at once. The chunk cache's bytes live there: as Go heap
// they counted in the live heap that the garbage collector lets the whole
// heap grow to twice of, and freed chunks stayed resident until the
// runtime returned them.
func mapChunk(n int) ([]byte, bool) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, 0, n), false
	}
	return b[:0], true
}

func unmapChunk(b []byte) { _ = syscall.Munmap(b[:cap(b)]) }
