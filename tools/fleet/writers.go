package fleet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/binlogsvr/binlogsvr/semisync"
)

// WriterOptions configures StartWriters.
type WriterOptions struct {
	Clients        int
	User, Password string
	// Target names the server to write to: dial is the address to connect
	// to, label the one Acked reports (they differ behind a proxy); dial ""
	// means none yet (the writer waits and asks again). refresh is true
	// after an error: the source may have moved.
	Target func(refresh bool) (dial, label string)
	// Acked is called after each acknowledged commit: client c's n-th row,
	// on the server labelled at.
	Acked func(c, n int, at string, when time.Time)
	// Pace is a pause after each commit (0: as fast as possible).
	Pace time.Duration
}

// Writers are application clients that each INSERT their next row into
// test.acked (c, n, v) only once the previous commit returned, as a
// semi-sync source's sessions wait for their ACK, reconnecting to whatever
// Target names after an error. What Acked was told is exactly the set of
// acknowledged commits.
type Writers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartWriters starts o.Clients writers until Stop or ctx ends.
func StartWriters(ctx context.Context, o WriterOptions) *Writers {
	w := &Writers{}
	ctx, w.cancel = context.WithCancel(ctx)
	for c := 0; c < o.Clients; c++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			var conn *client.Conn
			var at string
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for n := 0; ctx.Err() == nil; n++ {
				if conn == nil {
					dial, label := o.Target(n > 0)
					if dial == "" {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					cn, err := semisync.Dial(cctx, dial, o.User, o.Password)
					cancel()
					if err != nil {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					conn, at = cn, label
				}
				// NB: a commit waiting for its ACK is cut off when the writers
				// stop; it is not reported (it may still commit later).
				stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
				_ = conn.SetDeadline(time.Now().Add(time.Minute))
				_, err := conn.Execute(fmt.Sprintf("INSERT INTO test.acked (c, n, v) VALUES (%d, %d, 'client %d commit %d')", c, n, c, n))
				stop()
				if err != nil {
					conn.Close()
					conn = nil
					time.Sleep(20 * time.Millisecond)
					continue
				}
				o.Acked(c, n, at, time.Now())
				if o.Pace > 0 {
					time.Sleep(o.Pace)
				}
			}
		}()
	}
	return w
}

// Stop stops the writers and waits for them.
func (w *Writers) Stop() {
	w.cancel()
	w.wg.Wait()
}
