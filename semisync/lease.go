package semisync

import (
	"context"
	"errors"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
)

// sleepOrNewEpoch waits d before the next session, but returns at once when
// the log's epoch moves away from epoch: a failover set a new source, and
// the ingest must connect to it now, not after a backoff that grew while
// the old source was dead (the failover's RTO depends on it).
func sleepOrNewEpoch(ctx context.Context, d time.Duration, r *logger.Reader, epoch uint64) {
	if r == nil {
		sleep(ctx, d)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		ch := r.Changed()
		if r.State().Epoch != epoch {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-ch:
		}
	}
}

// errEpochMoved ends a session when the log's epoch moves away from the
// session's: a failover fenced its source or named a new one.
var errEpochMoved = errors.New("semisync: the log's epoch moved: a failover fenced this source")

// followEpoch cancels the session of epoch as soon as the log's epoch
// moves. NB: without it a session that waits on a partitioned source (a
// dial or login that never answers) would hold the ingest off the new
// source until its own timeout, and the failover's resume step with it.
// Whatever the session still proposes would be refused by the fence anyway.
func followEpoch(ctx context.Context, r *logger.Reader, epoch uint64, cancel context.CancelCauseFunc) {
	if r == nil {
		return
	}
	for {
		ch := r.Changed()
		if r.State().Epoch != epoch {
			cancel(errEpochMoved)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}
