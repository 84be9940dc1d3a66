package learner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lni/dragonboat/v4"
)

// Errors of the dragonboat calls, classified here, in one place.
var (
	// ErrConflict: another membership change was ordered first (dragonboat's
	// ordered config change rejected this one); read the membership again.
	ErrConflict = errors.New("learner: another membership change came first")
	// ErrRetry: the outcome is unknown (timeout, no leader, busy).
	ErrRetry = errors.New("learner: outcome unknown, retry")
	// ErrStopped: this member is shutting down or was removed.
	ErrStopped = errors.New("learner: member stopped")
)

// classify maps dragonboat's errors onto this package's.
func classify(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dragonboat.ErrRejected):
		return fmt.Errorf("%w: %s: the group rejected the change (a concurrent change, or dragonboat refuses it: %v)", ErrConflict, op, err)
	case errors.Is(err, dragonboat.ErrInvalidAddress), errors.Is(err, dragonboat.ErrInvalidTarget), errors.Is(err, dragonboat.ErrInvalidOperation):
		return refuse(ErrBadInput, "%s: %v", op, err)
	case errors.Is(err, dragonboat.ErrTimeout), errors.Is(err, dragonboat.ErrSystemBusy),
		errors.Is(err, dragonboat.ErrShardNotReady), errors.Is(err, dragonboat.ErrCanceled),
		errors.Is(err, dragonboat.ErrAborted), errors.Is(err, dragonboat.ErrShardNotInitialized),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %s: %v", ErrRetry, op, err)
	case errors.Is(err, dragonboat.ErrClosed), errors.Is(err, dragonboat.ErrShardClosed),
		errors.Is(err, dragonboat.ErrReplicaRemoved), errors.Is(err, dragonboat.ErrShardNotFound):
		return fmt.Errorf("%w: %s: %v", ErrStopped, op, err)
	}
	return fmt.Errorf("learner: %s: %w", op, err)
}

// Changer makes the group's membership changes through dragonboat. Every
// change is ordered: it names the configuration change id it was decided
// on, so a concurrent change makes it fail (ErrConflict) instead of both
// applying. Safe for concurrent use; each call has a deadline.
type Changer struct {
	NH      *dragonboat.NodeHost
	Shard   uint64
	Timeout time.Duration
}

func (c *Changer) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.Timeout)
}

// ConfigChangeID reads the current configuration change id.
func (c *Changer) ConfigChangeID(ctx context.Context) (uint64, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	m, err := c.NH.SyncGetShardMembership(ctx, c.Shard)
	if err != nil {
		return 0, classify("reading the membership", err)
	}
	return m.ConfigChangeID, nil
}

// AddLearner adds a non-voting member.
func (c *Changer) AddLearner(ctx context.Context, ccid, id uint64, addr string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return classify("adding a learner", c.NH.SyncRequestAddNonVoting(ctx, c.Shard, id, addr, ccid))
}

// Promote makes a learner a voting member (at its own address).
func (c *Changer) Promote(ctx context.Context, ccid, id uint64, addr string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return classify("promoting a learner", c.NH.SyncRequestAddReplica(ctx, c.Shard, id, addr, ccid))
}

// Remove deletes a member, voting or not.
func (c *Changer) Remove(ctx context.Context, ccid, id uint64) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return classify("removing a member", c.NH.SyncRequestDeleteReplica(ctx, c.Shard, id, ccid))
}

// TransferLeader asks the leader to hand leadership to id and waits until
// this member sees id lead, or the deadline.
func (c *Changer) TransferLeader(ctx context.Context, id uint64) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	var asked time.Time
	for {
		l, _, ok, err := c.NH.GetLeaderID(c.Shard)
		if err == nil && ok && l == id {
			return nil
		}
		// NB: the target skips its campaign while it has a configuration
		// change it has not applied yet (right after a membership change),
		// and the leader then gives the transfer up: ask again.
		if time.Since(asked) > time.Second {
			if err := c.NH.RequestLeaderTransfer(c.Shard, id); err != nil && !errors.Is(err, dragonboat.ErrShardNotReady) {
				return classify("transferring leadership", err)
			}
			asked = time.Now()
		}
		select {
		case <-ctx.Done():
			return classify("transferring leadership", fmt.Errorf("member %d did not take over: %w", id, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
