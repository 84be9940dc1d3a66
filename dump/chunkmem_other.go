//go:build !unix

package dump

func mapChunk(n int) ([]byte, bool) { return make([]byte, 0, n), false }

func unmapChunk([]byte) {}
