package logger

import (
	"errors"
	"fmt"

	"github.com/lni/dragonboat/v4"
)

// Proposal errors. Every dragonboat error is classified here, in one place.
var (
	// ErrRetry: the outcome of the proposal is unknown or it was dropped
	// (timeout, busy, no leader yet). Proposing again is safe: appends are
	// idempotent.
	ErrRetry = errors.New("logger: proposal outcome unknown, retry")
	// ErrStopped: this member is shutting down or was removed.
	ErrStopped = errors.New("logger: member stopped")
	// ErrRejected is returned by the Proposer when the log rejected an
	// Append; the *RejectedError carries the result.
	ErrRejected = errors.New("logger: append rejected")
)

// RejectedError carries the result of a rejected command.
type RejectedError struct{ Result Result }

func (e *RejectedError) Error() string {
	return fmt.Sprintf("logger: append rejected: %s: %s", e.Result.Code, e.Result.Message)
}

// Unwrap makes errors.Is(err, ErrRejected) true.
func (e *RejectedError) Unwrap() error { return ErrRejected }

// classify maps dragonboat's errors onto ErrRetry and ErrStopped.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dragonboat.ErrTimeout), errors.Is(err, dragonboat.ErrSystemBusy),
		errors.Is(err, dragonboat.ErrShardNotReady), errors.Is(err, dragonboat.ErrShardNotInitialized),
		errors.Is(err, dragonboat.ErrCanceled), errors.Is(err, dragonboat.ErrAborted),
		errors.Is(err, dragonboat.ErrRejected):
		return fmt.Errorf("%w: %v", ErrRetry, err)
	case errors.Is(err, dragonboat.ErrClosed), errors.Is(err, dragonboat.ErrShardClosed),
		errors.Is(err, dragonboat.ErrReplicaRemoved), errors.Is(err, dragonboat.ErrShardNotFound):
		return fmt.Errorf("%w: %v", ErrStopped, err)
	}
	return fmt.Errorf("logger: %w", err)
}

// Retryable reports whether proposing again may succeed.
func Retryable(err error) bool { return errors.Is(err, ErrRetry) }
