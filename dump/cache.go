package dump

import (
	"container/list"
	"sync"
	"sync/atomic"

	"github.com/binlogsvr/binlogsvr/logger"
)

// chunkCache keeps recently read, aligned chunks of the log's files, shared
// by every dump of the server: many clients reading the same bytes cost one
// read of the log. NB: sound because committed bytes never change (rule 3:
// a file and position name the same bytes forever); only chunks that can no
// longer grow are kept (full ones, or the last one of a closed file).
//
// Chunks live outside the Go heap (mapChunk). A chunk's memory is reused
// for another chunk, or given back to the system, once it has left the
// cache and no dump holds it (readAt takes a reference, release drops
// it): dumps that read more than the cache holds make no garbage, and the
// cache's bytes do not count in the live heap that the garbage collector
// lets the heap grow to twice of. NB: a chunk's bytes must not be touched
// after its release: they may be another chunk's, or unmapped.
type chunkCache struct {
	size int   // chunk size
	max  int64 // bytes kept at most

	// hits: reads served from a kept (or in-flight) chunk; misses: chunks
	// read from the log (for a reader, or ahead of one); direct: reads
	// passed to the log (the open file's growing end, or larger than a
	// chunk).
	hits, misses, direct atomic.Uint64
	ahead                atomic.Int32 // reads ahead in flight

	mu     sync.Mutex
	lru    *list.List // of *chunk, most recent first
	byKey  map[chunkKey]*chunk
	bytes  int64
	free   []chunkBuf // buffers of cap size, ready for the next chunk
	closed bool       // by close: no more chunks are kept
}

// chunkBuf is a chunk's memory: mapped (outside the Go heap) or not.
type chunkBuf struct {
	b      []byte
	mapped bool
}

// maxDirect bounds one read of the open file's growing end, which goes to
// the caller's own buffer: 100 clients catching up there hold 100 of them.
const maxDirect = 64 << 10

// maxAhead bounds the chunks read ahead at once.
const maxAhead = 2

// maxFree bounds the buffers kept for reuse beyond the cache's own bytes.
const maxFree = 4

type chunkKey struct {
	file  uint32
	start uint64
}

type chunk struct {
	key     chunkKey
	data    []byte
	err     error
	counted bool          // its bytes are in chunkCache.bytes
	done    chan struct{} // closed once data/err are set
	elem    *list.Element
	refs    int  // readers holding data (under chunkCache.mu)
	gone    bool // no longer in the cache: data is reused once refs is 0
	mapped  bool // data is mapped memory (mapChunk)
}

func newChunkCache(chunkSize int, maxBytes int64) *chunkCache {
	return &chunkCache{size: chunkSize, max: maxBytes, lru: list.New(), byKey: map[chunkKey]*chunk{}}
}

// readAt returns up to max bytes of file n from pos, as Log.ReadAt does.
// The bytes are either a slice of a shared chunk, returned with the chunk
// (callers must not modify the bytes, and must call release once nothing
// of theirs refers to them any more), or were read into dst's memory as
// Log.ReadAtInto does (ch is nil; the caller's own buffer, to pass again
// as dst). The FileMeta is only meaningful when no bytes are returned.
func (c *chunkCache) readAt(lg Log, n uint32, pos uint64, max int, dst []byte) (b []byte, ch *chunk, m logger.FileMeta, err error) {
	if c == nil || c.max <= 0 || max > c.size {
		if c != nil {
			c.direct.Add(1)
		}
		b, m, err = lg.ReadAtInto(dst, n, pos, max)
		return b, nil, m, err
	}
	key := chunkKey{n, pos - pos%uint64(c.size)}
	st := lg.State()
	if n == st.File && key.start+uint64(c.size) > st.Pos {
		// NB: the open file's last chunk is still growing, so it is never
		// kept; read only what the caller lacks, into its own buffer
		// (tailing clients read a few new bytes, not the whole chunk), at
		// most maxDirect at a time so that the buffer stays small.
		c.direct.Add(1)
		b, m, err = lg.ReadAtInto(dst, n, pos, min(max, maxDirect))
		return b, nil, m, err
	}
	ch, fresh := c.get(key)
	if ch == nil {
		c.direct.Add(1)
		b, m, err = lg.ReadAtInto(dst, n, pos, max)
		return b, nil, m, err
	}
	if fresh {
		c.fill(lg, ch)
	} else {
		c.hits.Add(1)
	}
	<-ch.done
	// NB: read ahead: the next chunk is read while this one is sent, so a
	// dump alone does not wait for the log between chunks (a full chunk
	// has a next one in a closed file, or up to the open file's end).
	if next := (chunkKey{n, key.start + uint64(c.size)}); ch.err == nil && len(ch.data) == c.size &&
		(n < st.File || next.start+uint64(c.size) <= st.Pos) && c.ahead.Load() < maxAhead {
		if nch := c.absent(next); nch != nil {
			c.ahead.Add(1)
			go func() {
				defer c.ahead.Add(-1)
				c.fill(lg, nch)
				c.release(nch)
			}()
		}
	}
	if ch.err != nil || pos-key.start >= uint64(len(ch.data)) {
		// NB: an error, or the end: ask the log.
		c.release(ch)
		c.direct.Add(1)
		b, m, err = lg.ReadAtInto(dst, n, pos, max)
		return b, nil, m, err
	}
	b = ch.data[pos-key.start:]
	if len(b) > max {
		b = b[:max]
	}
	return b, ch, logger.FileMeta{}, nil
}

// get returns the chunk of key with a reference taken: the cache's (fresh
// false; its data is ready once done is closed), or a new one that the
// caller must fill (fresh). Nil once the cache is closed.
func (c *chunkCache) get(key chunkKey) (ch *chunk, fresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, false
	}
	if ch, ok := c.byKey[key]; ok {
		ch.refs++
		c.lru.MoveToFront(ch.elem)
		return ch, false
	}
	ch = &chunk{key: key, done: make(chan struct{}), refs: 1}
	ch.elem = c.lru.PushFront(ch)
	c.byKey[key] = ch
	return ch, true
}

// absent returns a new chunk of key to fill, with a reference taken, if
// the cache has none (nil if it has, or is closed).
func (c *chunkCache) absent(key chunkKey) *chunk {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[key]; ok || c.closed {
		return nil
	}
	ch := &chunk{key: key, done: make(chan struct{}), refs: 1}
	ch.elem = c.lru.PushFront(ch)
	c.byKey[key] = ch
	return ch
}

// fill reads a fresh chunk from the log, keeps it if it can no longer
// grow, and evicts what the bound requires.
func (c *chunkCache) fill(lg Log, ch *chunk) {
	c.mu.Lock()
	var buf chunkBuf
	if k := len(c.free); k > 0 {
		buf, c.free[k-1] = c.free[k-1], chunkBuf{}
		c.free = c.free[:k-1]
	}
	c.mu.Unlock()
	if buf.b == nil {
		buf.b, buf.mapped = mapChunk(c.size)
	}
	ch.mapped = buf.mapped
	c.misses.Add(1)
	// NB: cap(buf.b) is c.size, so the bytes are read into it.
	data, meta, err := lg.ReadAtInto(buf.b, ch.key.file, ch.key.start, c.size)
	if cap(data) != cap(buf.b) || (cap(data) > 0 && &data[:1][0] != &buf.b[:1][0]) {
		// NB: not read into the buffer (cannot happen: its capacity is
		// the most a read returns); the data is then Go memory.
		if buf.mapped {
			unmapChunk(buf.b)
		}
		ch.mapped = false
	}
	ch.data, ch.err = data, err
	final := err == nil && (len(data) == c.size || (meta.Closed && ch.key.start+uint64(len(data)) == meta.Size))
	close(ch.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	if final && !ch.gone {
		ch.counted = true
		c.bytes += int64(len(data))
		for e := c.lru.Back(); c.bytes > c.max && e != nil; {
			old := e.Value.(*chunk)
			e = e.Prev()
			if old.counted {
				c.remove(old)
			}
		}
	} else {
		c.remove(ch)
	}
}

// release drops a reference readAt returned; nil is a no-op. The chunk's
// bytes must not be used after.
func (c *chunkCache) release(ch *chunk) {
	if ch == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ch.refs--
	c.reuse(ch)
}

// remove drops a chunk from the cache; called with mu held.
func (c *chunkCache) remove(ch *chunk) {
	if c.byKey[ch.key] != ch {
		return
	}
	delete(c.byKey, ch.key)
	c.lru.Remove(ch.elem)
	if ch.counted {
		c.bytes -= int64(len(ch.data))
	}
	ch.gone = true
	c.reuse(ch)
}

// reuse keeps the memory of a chunk that left the cache and that nobody
// holds for the next chunk, or gives it back; called with mu held.
func (c *chunkCache) reuse(ch *chunk) {
	if !ch.gone || ch.refs > 0 || ch.data == nil {
		return
	}
	if !c.closed && cap(ch.data) == c.size && len(c.free) < maxFree {
		c.free = append(c.free, chunkBuf{ch.data[:0], ch.mapped})
	} else if ch.mapped {
		unmapChunk(ch.data)
	}
	ch.data = nil
}

// close gives back the memory of every chunk (the server's dumps have all
// ended); later reads go to the log.
func (c *chunkCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, ch := range c.byKey {
		c.remove(ch)
	}
	for _, fb := range c.free {
		if fb.mapped {
			unmapChunk(fb.b)
		}
	}
	c.free = nil
}

// stats returns the counters and the bytes kept.
func (c *chunkCache) stats() (hits, misses, direct uint64, kept int64) {
	if c == nil {
		return 0, 0, 0, 0
	}
	c.mu.Lock()
	kept = c.bytes
	c.mu.Unlock()
	return c.hits.Load(), c.misses.Load(), c.direct.Load(), kept
}
