package dump

import (
	"bytes"
	"math/rand"
	"runtime"
	"sync"
	"testing"

	"github.com/binlogsvr/binlogsvr/logger"
)

// memLog is a Log of one closed file (number 1) and an open one (2), held
// in memory; only what the chunk cache uses is implemented.
type memLog struct {
	Log
	files map[uint32][]byte
}

func (l *memLog) State() logger.State {
	return logger.State{File: 2, Pos: uint64(len(l.files[2]))}
}

func (l *memLog) ReadAtInto(dst []byte, n uint32, pos uint64, max int) ([]byte, logger.FileMeta, error) {
	f := l.files[n]
	m := logger.FileMeta{Number: n, Size: uint64(len(f)), Closed: n == 1}
	if pos > m.Size {
		return dst[:0], m, logger.ErrBadPos
	}
	end := min(uint64(len(f)), pos+uint64(max))
	return append(dst[:0], f[pos:end]...), m, nil
}

// TestChunkCacheSharesAndReuses: concurrent readers that read far more
// than the cache holds get the log's bytes (checked while they still hold
// them, after yielding to the others), the cache's memory is reused for
// new chunks once released, and the open file's growing end is read
// directly into the caller's buffer.
func TestChunkCacheSharesAndReuses(t *testing.T) {
	const size = 4096
	f1 := make([]byte, 200*size+123)
	rand.New(rand.NewSource(1)).Read(f1)
	lg := &memLog{files: map[uint32][]byte{1: f1, 2: bytes.Repeat([]byte{7}, size+10)}}
	c := newChunkCache(size, 4*size)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			var own []byte
			for pos := uint64(rng.Intn(len(f1))); pos < uint64(len(f1)); {
				want := 1 + rng.Intn(2*size)
				b, ch, _, err := c.readAt(lg, 1, pos, min(want, size), own)
				if err != nil || len(b) == 0 {
					t.Errorf("reader %d at %d: %d bytes, %v", g, pos, len(b), err)
					return
				}
				if ch == nil {
					own = b[:0]
				}
				runtime.Gosched()
				if !bytes.Equal(b, f1[pos:pos+uint64(len(b))]) {
					t.Errorf("reader %d at %d: wrong bytes", g, pos)
					return
				}
				c.release(ch)
				pos += uint64(len(b))
			}
		}(g)
	}
	wg.Wait()
	for c.ahead.Load() > 0 {
		runtime.Gosched() // reads ahead finish
	}
	hits, misses, direct, kept := c.stats()
	if kept > 4*size || misses == 0 || hits == 0 {
		t.Errorf("hits %d misses %d direct %d kept %d", hits, misses, direct, kept)
	}
	c.mu.Lock()
	free := len(c.free)
	for _, ch := range c.byKey {
		if ch.refs != 0 {
			t.Errorf("chunk %v still has %d references", ch.key, ch.refs)
		}
	}
	c.mu.Unlock()
	if free == 0 {
		t.Errorf("no chunk memory kept for reuse after %d misses", misses)
	}
	// The open file's last, growing chunk is read directly, into dst.
	dst := make([]byte, 0, 64)
	b, ch, _, err := c.readAt(lg, 2, size+2, 100, dst)
	if err != nil || ch != nil || len(b) != 8 || &b[:1][0] != &dst[:1][0] {
		t.Errorf("open file's end: %d bytes, chunk %v, %v", len(b), ch, err)
	}
	// Its first chunk is full, so it is cached.
	b, ch, _, err = c.readAt(lg, 2, 10, 100, nil)
	if err != nil || ch == nil || len(b) != 100 {
		t.Errorf("open file's full chunk: %d bytes, chunk %v, %v", len(b), ch, err)
	}
	c.release(ch)
	// Closed: the memory is given back, and reads still work, uncached.
	c.close()
	c.mu.Lock()
	if len(c.byKey) != 0 || len(c.free) != 0 || c.bytes != 0 {
		t.Errorf("after close: %d chunks, %d free, %d bytes", len(c.byKey), len(c.free), c.bytes)
	}
	c.mu.Unlock()
	b, ch, _, err = c.readAt(lg, 1, 5, 100, nil)
	if err != nil || ch != nil || !bytes.Equal(b, f1[5:105]) {
		t.Errorf("after close: %d bytes, chunk %v, %v", len(b), ch, err)
	}
}

// TestChunkCacheReadsAhead: a dump reading alone finds each next chunk
// already read (or being read) for it.
func TestChunkCacheReadsAhead(t *testing.T) {
	const size = 4096
	f1 := make([]byte, 50*size+7)
	rand.New(rand.NewSource(2)).Read(f1)
	lg := &memLog{files: map[uint32][]byte{1: f1, 2: nil}}
	c := newChunkCache(size, 8*size)
	defer c.close()
	for pos := uint64(0); pos < uint64(len(f1)); {
		b, ch, _, err := c.readAt(lg, 1, pos, size, nil)
		if err != nil || !bytes.Equal(b, f1[pos:pos+uint64(len(b))]) {
			t.Fatalf("at %d: %d bytes, %v", pos, len(b), err)
		}
		for c.ahead.Load() > 0 {
			runtime.Gosched() // the chunk is being sent meanwhile
		}
		c.release(ch)
		pos += uint64(len(b))
	}
	for c.ahead.Load() > 0 {
		runtime.Gosched()
	}
	if hits, misses, _, _ := c.stats(); misses != 51 || hits != 50 {
		t.Errorf("hits %d, misses %d: want each chunk read once, all but the first ahead of the reader", hits, misses)
	}
}
