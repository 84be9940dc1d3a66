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

// Membership read attempts: the first may take readAttempt, each later one
// twice as long as the one before, up to readAttemptMax; after a read that
// failed at once (no leader known) the next waits readPause, doubling up
// to readPauseMax.
const (
	readAttempt    = time.Second
	readAttemptMax = 4 * time.Second
	readPause      = 20 * time.Millisecond
	readPauseMax   = 250 * time.Millisecond
)

// Membership reads the group's membership: a linearizable read, which the
// leader answers once a quorum of loggers confirms it still leads (learners,
// reachable or not, play no part). It tries again while an election or a
// leader change explains the failure, until within has passed (or ctx's
// deadline, if sooner); the error then says that the group did not answer.
// Safe for concurrent use.
//
// NB: one attempt is not enough. A member that knows no leader drops the
// read at once; a read forwarded to a leader that is stepping down, or to a
// new leader that has not committed an entry in its term yet, is dropped
// there without a word back, and dragonboat reports it only when the
// read's own deadline passes. A single read with the whole budget thus
// failed after that budget whenever leadership moved meanwhile (under the
// race detector, elections come often).
func (c *Changer) Membership(ctx context.Context, within time.Duration) (*dragonboat.Membership, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	start := time.Now()
	attempt, pause := readAttempt, readPause
	for n := 1; ; n++ {
		actx, acancel := context.WithTimeout(ctx, attempt)
		t0 := time.Now()
		m, err := c.NH.SyncGetShardMembership(actx, c.Shard)
		acancel()
		if err == nil {
			return m, nil
		}
		if errors.Is(err, dragonboat.ErrInvalidDeadline) {
			err = dragonboat.ErrTimeout // NB: ctx's deadline passed before the read started
		}
		if !retryRead(err) {
			return nil, classify("reading the membership", err)
		}
		if time.Since(t0) < attempt/2 {
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
			pause = min(2*pause, readPauseMax)
		}
		if ctx.Err() != nil {
			return nil, classify(fmt.Sprintf("reading the membership: no answer from the group in %v (%d attempts; a quorum of loggers must answer)",
				time.Since(start).Round(time.Millisecond), n), err)
		}
		attempt = min(2*attempt, readAttemptMax)
	}
}

// retryRead reports whether a failed membership read may succeed if tried
// again (classify's ErrRetry: no leader yet, a timeout, busy), not because
// this member stopped or was removed.
func retryRead(err error) bool { return errors.Is(classify("", err), ErrRetry) }

// ConfigChangeID reads the current configuration change id.
func (c *Changer) ConfigChangeID(ctx context.Context) (uint64, error) {
	m, err := c.Membership(ctx, c.Timeout)
	if err != nil {
		return 0, err
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
