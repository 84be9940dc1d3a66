package failover

import (
	"context"
	"errors"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
)

// Log is the replicated log as the failover uses it. Methods are safe for
// concurrent use; reads see this member's applied state.
type Log interface {
	// State returns the log's state; logger.ErrClosed before the log is
	// open and after it closed.
	State() (logger.State, error)
	IsLeader() bool
	LeaderID() uint64
	// Propose proposes one command and waits for its result (a rejection
	// is a Result code with a nil error).
	Propose(ctx context.Context, c logger.Command) (logger.Result, error)
	Meta(key string) ([]byte, bool, error)
	MetaPrefix(prefix string) (map[string][]byte, error)
	// HasGTID reports whether the log holds (or held before a purge) the
	// exact GTID.
	HasGTID(gtid string) (bool, error)
	// StartGTIDs is the GTID state of the oldest file held: what came
	// before is not in the log's index.
	StartGTIDs() (string, error)
	// WaitApplied returns when the state changed or d passed.
	WaitApplied(d time.Duration)
}

// NodeLog adapts a logger.Node.
func NodeLog(n *logger.Node) Log { return nodeLog{n} }

type nodeLog struct{ n *logger.Node }

func (l nodeLog) State() (logger.State, error) {
	r := l.n.Reader()
	if r == nil {
		return logger.State{}, logger.ErrClosed
	}
	return r.State(), nil
}

func (l nodeLog) IsLeader() bool { return l.n.IsLeader() }

func (l nodeLog) LeaderID() uint64 { id, _ := l.n.LeaderID(); return id }

func (l nodeLog) Propose(ctx context.Context, c logger.Command) (logger.Result, error) {
	return l.n.Propose(ctx, c)
}

func (l nodeLog) Meta(key string) ([]byte, bool, error) {
	r := l.n.Reader()
	if r == nil {
		return nil, false, logger.ErrClosed
	}
	return r.Meta(key)
}

func (l nodeLog) MetaPrefix(prefix string) (map[string][]byte, error) {
	r := l.n.Reader()
	if r == nil {
		return nil, logger.ErrClosed
	}
	return r.MetaPrefix(prefix)
}

func (l nodeLog) HasGTID(gtid string) (bool, error) {
	r := l.n.Reader()
	if r == nil {
		return false, logger.ErrClosed
	}
	_, err := r.FindGTID(gtid)
	switch {
	case err == nil, errors.Is(err, logger.ErrPurged):
		return true, nil
	case errors.Is(err, logger.ErrNoGTID):
		return false, nil
	}
	return false, err
}

func (l nodeLog) StartGTIDs() (string, error) {
	r := l.n.Reader()
	if r == nil {
		return "", logger.ErrClosed
	}
	files, err := r.Files()
	if err != nil || len(files) == 0 {
		return "", err
	}
	return files[0].StartGTIDs, nil
}

func (l nodeLog) WaitApplied(d time.Duration) {
	r := l.n.Reader()
	if r == nil {
		time.Sleep(min(d, 50*time.Millisecond))
		return
	}
	select {
	case <-r.Changed():
	case <-time.After(d):
	}
}
