package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// serverWatch samples a server's read_only and semi-sync source state
// every 50 ms on its own root connection and keeps every change, so that
// a test can show what the server did around a fence.
type serverWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	lines  []string
}

// watchServer starts sampling s; t0 is the zero of the logged times.
func watchServer(t *testing.T, s *sandbox.Server, t0 time.Time) *serverWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &serverWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		last := ""
		for ctx.Err() == nil {
			qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
			cur := sampleServer(qctx, s)
			qcancel()
			if cur != last {
				w.mu.Lock()
				w.lines = append(w.lines, fmt.Sprintf("%8.3fs %s", time.Since(t0).Seconds(), cur))
				w.mu.Unlock()
				last = cur
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *serverWatch) stop() {
	w.cancel()
	<-w.done
}

// String is every change seen, one a line.
func (w *serverWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

func sampleServer(ctx context.Context, s *sandbox.Server) string {
	res, err := s.Exec(ctx, "SELECT @@GLOBAL.read_only")
	if err != nil {
		return "error: " + errKind(err.Error())
	}
	ro, _ := res.GetString(0, 0)
	res, err = s.Exec(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_source_status', "+
		"'Rpl_semi_sync_master_clients', 'Rpl_semi_sync_source_clients', 'Rpl_semi_sync_master_no_tx', 'Rpl_semi_sync_source_no_tx', "+
		"'Rpl_semi_sync_master_yes_tx', 'Rpl_semi_sync_source_yes_tx', 'Rpl_semi_sync_master_wait_sessions', 'Rpl_semi_sync_source_wait_sessions')")
	if err != nil {
		return "error: " + errKind(err.Error())
	}
	parts := []string{"read_only=" + ro}
	for i := 0; i < res.RowNumber(); i++ {
		k, _ := res.GetString(i, 0)
		v, _ := res.GetString(i, 1)
		k = strings.TrimPrefix(strings.TrimPrefix(k, "Rpl_semi_sync_master_"), "Rpl_semi_sync_source_")
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}
