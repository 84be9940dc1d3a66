//go:build binlogsvr_acktrace

package logger

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The ACK path's trace (build tag binlogsvr_acktrace, for measuring only):
// wall-clock timestamps at the points of a raft round this module owns
// (proposal, raft log save, transport send and receive, commit notice,
// apply), so one round can be followed across the three processes on one
// machine. BINLOGSVR_ACKTRACE names a directory; each member appends its
// events to member-<id>.trace there once a second. tools/acktrace reads
// them.

type traceEvent struct {
	t    int64 // time.Now().UnixNano()
	kind string
	idx  uint64 // raft index (0 when unknown)
	peer uint64 // the other member (messages), 0 otherwise
}

var acktrace struct {
	mu   sync.Mutex
	evs  []traceEvent
	once sync.Once
	file string
}

func traceStart(replicaID uint64) {
	dir := os.Getenv("BINLOGSVR_ACKTRACE")
	if dir == "" {
		return
	}
	acktrace.once.Do(func() {
		acktrace.file = filepath.Join(dir, fmt.Sprintf("member-%d.trace", replicaID))
		acktrace.evs = make([]traceEvent, 0, 1<<16)
		go func() {
			for range time.Tick(time.Second) {
				traceFlush()
			}
		}()
	})
}

func traceFlush() {
	acktrace.mu.Lock()
	evs := acktrace.evs
	acktrace.evs = make([]traceEvent, 0, 1<<16)
	acktrace.mu.Unlock()
	if len(evs) == 0 {
		return
	}
	f, err := os.OpenFile(acktrace.file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	w := bufio.NewWriter(f)
	for _, e := range evs {
		fmt.Fprintf(w, "%d %s %d %d\n", e.t, e.kind, e.idx, e.peer)
	}
	w.Flush()
	f.Close()
}

// trace records one event (a no-op until traceStart found the variable).
func trace(kind string, idx, peer uint64) {
	if acktrace.file == "" {
		return
	}
	t := time.Now().UnixNano()
	acktrace.mu.Lock()
	acktrace.evs = append(acktrace.evs, traceEvent{t, kind, idx, peer})
	acktrace.mu.Unlock()
}

const traceOn = true
