package learner

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// Config configures a member's part in the fleet's membership: its weight,
// when a member counts as caught up, and the loops of the Manager.
type Config struct {
	// Weight seeds this member's leadership weight in the log when the log
	// holds none for it yet (afterwards the log's value, set with
	// `binlogctl weight`, wins). -1: do not seed (the default weight 1).
	Weight int
	// CaughtUpEntries and CaughtUpBytes: a member within both of the leader
	// is caught up (it may be promoted, lead, serve dumps).
	CaughtUpEntries uint64
	CaughtUpBytes   uint64
	// WatchInterval is how often the members are polled; ProgressInterval
	// how often a catching-up member's progress is logged.
	WatchInterval    time.Duration
	ProgressInterval time.Duration
	// HandoffDelay: a leader hands leadership to a heavier caught-up logger
	// only after leading this long (0 disables the handoff).
	HandoffDelay time.Duration
	// ReachableWithin: a member not heard from for longer is unreachable.
	ReachableWithin time.Duration
	// Timeout bounds one membership change or leader transfer, and the
	// membership read (retried through elections) that an operator's
	// request starts with.
	Timeout time.Duration
	// ReplicaHoldTTL: a disconnected replica's files are kept from group
	// purges this long after it was last seen (0: only while connected).
	ReplicaHoldTTL time.Duration
}

// DefaultConfig returns the flags' defaults.
func DefaultConfig() Config {
	return Config{Weight: -1, CaughtUpEntries: 2000, CaughtUpBytes: 16 << 20, WatchInterval: time.Second,
		ProgressInterval: 3 * time.Second, HandoffDelay: 5 * time.Second, ReachableWithin: 5 * time.Second, Timeout: 15 * time.Second,
		ReplicaHoldTTL: 24 * time.Hour}
}

// RegisterFlags registers the membership flags.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.IntVar(&c.Weight, "weight", c.Weight, "this logger's leadership weight, seeded into the log if it holds none for this member (the leader hands off to the heaviest caught-up logger; binlogctl weight changes it later; -1: default 1)")
	fs.Uint64Var(&c.CaughtUpEntries, "caught-up-entries", c.CaughtUpEntries, "a member at most this many log entries behind the leader is caught up (may be promoted, lead, serve)")
	fs.Uint64Var(&c.CaughtUpBytes, "caught-up-bytes", c.CaughtUpBytes, "a member at most this many binlog bytes behind the leader is caught up")
	fs.DurationVar(&c.WatchInterval, "members-poll-interval", c.WatchInterval, "how often every member's progress is polled")
	fs.DurationVar(&c.ProgressInterval, "catch-up-log-interval", c.ProgressInterval, "how often a catching-up member's progress is logged")
	fs.DurationVar(&c.HandoffDelay, "leader-handoff-delay", c.HandoffDelay, "a leader hands off to a heavier caught-up logger after leading this long (0: never hand off)")
	fs.DurationVar(&c.ReachableWithin, "member-unreachable-after", c.ReachableWithin, "a member not heard from for this long counts as unreachable in safety checks")
	fs.DurationVar(&c.ReplicaHoldTTL, "replica-hold-ttl", c.ReplicaHoldTTL, "a replica that disconnected (or that --dump-write-timeout dropped) keeps its binlog files from binlogctl purge this long after it was last seen, keyed by its server_id (and uuid); set it the same on every member (0: only while connected)")
	fs.DurationVar(&c.Timeout, "membership-timeout", c.Timeout, "deadline of one membership change or leader transfer, and of the membership read a purge or change starts with")
}

// Validate checks the Config and names the flag to fix.
func (c *Config) Validate() error {
	switch {
	case c.Weight < -1 || c.Weight > 1000:
		return fmt.Errorf("learner: --weight must be between 0 and 1000 (or -1: unset), got %d", c.Weight)
	case c.WatchInterval < 50*time.Millisecond:
		return errors.New("learner: --members-poll-interval must be at least 50ms")
	case c.ProgressInterval < 100*time.Millisecond:
		return errors.New("learner: --catch-up-log-interval must be at least 100ms")
	case c.ReachableWithin < c.WatchInterval:
		return errors.New("learner: --member-unreachable-after must be at least --members-poll-interval")
	case c.Timeout < time.Second:
		return errors.New("learner: --membership-timeout must be at least 1s")
	case c.HandoffDelay < 0:
		return errors.New("learner: --leader-handoff-delay must not be negative")
	case c.ReplicaHoldTTL < 0:
		return errors.New("learner: --replica-hold-ttl must not be negative (0: hold a replica's files only while it is connected)")
	}
	return nil
}

// Limits returns the caught-up thresholds.
func (c *Config) Limits() Limits {
	return Limits{Entries: c.CaughtUpEntries, Bytes: c.CaughtUpBytes, ReachableWithin: c.ReachableWithin}
}
