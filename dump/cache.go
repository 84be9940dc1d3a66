package dump

import (
	"container/list"
	"sync"

	"github.com/binlogsvr/binlogsvr/logger"
)

// chunkCache keeps recently read, aligned chunks of the log's files, shared
// by every dump of the server: many clients reading the same bytes cost one
// read of the log. NB: sound because committed bytes never change (rule 3:
// a file and position name the same bytes forever); only chunks that can no
// longer grow are kept (full ones, or the last one of a closed file).
type chunkCache struct {
	size int   // chunk size
	max  int64 // bytes kept at most

	mu    sync.Mutex
	lru   *list.List // of *chunk, most recent first
	byKey map[chunkKey]*chunk
	bytes int64
}

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
}

func newChunkCache(chunkSize int, maxBytes int64) *chunkCache {
	return &chunkCache{size: chunkSize, max: maxBytes, lru: list.New(), byKey: map[chunkKey]*chunk{}}
}

// readAt returns up to max bytes of file n from pos, as Log.ReadAt does.
// The slice may be shared: callers must not modify it. The FileMeta is only
// meaningful when no bytes are returned.
func (c *chunkCache) readAt(lg Log, n uint32, pos uint64, max int) ([]byte, logger.FileMeta, error) {
	if c == nil || c.max <= 0 || max > c.size {
		return lg.ReadAt(n, pos, max)
	}
	key := chunkKey{n, pos - pos%uint64(c.size)}
	c.mu.Lock()
	ch, ok := c.byKey[key]
	if ok {
		c.lru.MoveToFront(ch.elem)
		c.mu.Unlock()
		<-ch.done
	} else {
		ch = &chunk{key: key, done: make(chan struct{})}
		ch.elem = c.lru.PushFront(ch)
		c.byKey[key] = ch
		c.mu.Unlock()
		data, meta, err := lg.ReadAt(n, key.start, c.size)
		ch.data, ch.err = data, err
		final := err == nil && (len(data) == c.size || (meta.Closed && key.start+uint64(len(data)) == meta.Size))
		close(ch.done)
		c.mu.Lock()
		if final {
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
		c.mu.Unlock()
	}
	if ch.err != nil || pos-key.start >= uint64(len(ch.data)) {
		// NB: the tail of an open file, an error, or the end: ask the log.
		return lg.ReadAt(n, pos, max)
	}
	b := ch.data[pos-key.start:]
	if len(b) > max {
		b = b[:max]
	}
	return b, logger.FileMeta{}, nil
}

// remove drops a chunk; called with mu held.
func (c *chunkCache) remove(ch *chunk) {
	if c.byKey[ch.key] != ch {
		return
	}
	delete(c.byKey, ch.key)
	c.lru.Remove(ch.elem)
	if ch.counted {
		c.bytes -= int64(len(ch.data))
	}
}
