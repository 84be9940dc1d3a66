package semisync

import (
	"context"
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
