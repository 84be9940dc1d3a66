package failover

import (
	"fmt"
	"time"
)

// Verdict is the analysis of one moment: one code per situation, as
// vtorc's analysis codes.
type Verdict int

// Verdicts.
const (
	VerdictNotLeader      Verdict = iota + 1 // another member judges the source
	VerdictNoSource                          // the log has no source yet
	VerdictHealthy                           // the source answers: the lease is held
	VerdictLeaseGrace                        // a new leader waits one full lease before judging
	VerdictSuspect                           // the source stopped answering; its lease has not run out
	VerdictDeadSource                        // the lease ran out: the source is dead or cut off
	VerdictInProgress                        // an unfinished failover or switchover is in the log
	VerdictStaleOperation                    // an unfinished failover that never fenced, while the source answers
)

func (v Verdict) String() string {
	switch v {
	case VerdictNotLeader:
		return "not-leader"
	case VerdictNoSource:
		return "no-source"
	case VerdictHealthy:
		return "healthy"
	case VerdictLeaseGrace:
		return "lease-grace"
	case VerdictSuspect:
		return "suspect"
	case VerdictDeadSource:
		return "dead-source"
	case VerdictInProgress:
		return "in-progress"
	case VerdictStaleOperation:
		return "stale-operation"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// Observation is everything Analyse looks at, gathered by the caller.
type Observation struct {
	Now         time.Time
	Leader      bool
	LeaderSince time.Time // when this member became leader
	Epoch       uint64
	Source      string // the log's source address
	// LastContact is when the source was last seen alive: a probe answered,
	// or the ingest ACKed a transaction. Zero: never, since leading.
	LastContact time.Time
	Lease       time.Duration
	// Op is the unfinished operation recorded in the log, if any.
	Op *Operation
}

// LeaseExpiry is when the source's lease runs out: one full lease after
// the later of the last contact and the start of this leadership (a new
// leader does not know when its predecessor last heard from the source).
func (o Observation) LeaseExpiry() time.Time {
	t := o.LeaderSince
	if o.LastContact.After(t) {
		t = o.LastContact
	}
	return t.Add(o.Lease)
}

// Analyse maps an observation to its verdict. Pure.
func Analyse(o Observation) Verdict {
	if !o.Leader {
		return VerdictNotLeader
	}
	held := o.Now.Before(o.LeaseExpiry())
	if o.Op != nil && !o.Op.Finished() {
		if o.Op.Kind == KindFailover && o.Epoch == o.Op.FromEpoch && held && !o.Op.Forced {
			// NB: decided by a leader that lost the source, never fenced,
			// and this leader can reach it: do not fence a live source on
			// another member's word.
			if !o.LastContact.IsZero() && o.LastContact.After(o.LeaderSince) {
				return VerdictStaleOperation
			}
		}
		return VerdictInProgress
	}
	if o.Epoch == 0 || o.Source == "" {
		return VerdictNoSource
	}
	if IsFenced(o.Source) {
		// NB: fenced with no operation: an operation was aborted by hand;
		// nothing pulls from a fenced source, so report it as dead.
		return VerdictDeadSource
	}
	switch {
	case !held:
		return VerdictDeadSource
	case !o.LastContact.IsZero() && o.Now.Sub(o.LastContact) <= o.Lease/3:
		return VerdictHealthy
	case o.LastContact.Before(o.LeaderSince) && o.Now.Before(o.LeaderSince.Add(o.Lease)):
		return VerdictLeaseGrace
	}
	return VerdictSuspect
}

// Action is what Decide asks the executor to do.
type Action int

// Actions.
const (
	ActionNone     Action = iota + 1
	ActionFailover        // start an automatic failover
	ActionResume          // continue the unfinished operation
	ActionAbort           // drop the stale operation
	ActionBlocked         // a failover is needed but not allowed now (Reason says why)
)

func (a Action) String() string {
	switch a {
	case ActionNone:
		return "none"
	case ActionFailover:
		return "failover"
	case ActionResume:
		return "resume"
	case ActionAbort:
		return "abort"
	case ActionBlocked:
		return "blocked"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Policy is what Decide weighs besides the verdict.
type Policy struct {
	Auto bool // automatic failover on
	// AntiFlap is the window after a failover in which no automatic one
	// starts.
	AntiFlap time.Duration
	// LastFailover is when the last failover or switchover finished.
	LastFailover time.Time
	// VetoedUntil: a pre-failover hook vetoed; do not ask again before.
	VetoedUntil time.Time
}

// Decision is Decide's answer.
type Decision struct {
	Action Action
	Reason string
}

// Decide maps a verdict to an action. Pure.
func Decide(v Verdict, now time.Time, p Policy) Decision {
	switch v {
	case VerdictInProgress:
		return Decision{ActionResume, "an unfinished operation is recorded in the log"}
	case VerdictStaleOperation:
		return Decision{ActionAbort, "the recorded failover never fenced and the source answers this leader"}
	case VerdictDeadSource:
		if !p.Auto {
			return Decision{ActionBlocked, "the source's lease ran out but automatic failover is off (--failover-auto); run binlogctl failover"}
		}
		if !p.LastFailover.IsZero() && now.Before(p.LastFailover.Add(p.AntiFlap)) {
			return Decision{ActionBlocked, fmt.Sprintf("anti-flap: the last failover finished at %s; no automatic failover before %s (binlogctl failover --force overrides)",
				p.LastFailover.UTC().Format(time.RFC3339), p.LastFailover.Add(p.AntiFlap).UTC().Format(time.RFC3339))}
		}
		if now.Before(p.VetoedUntil) {
			return Decision{ActionBlocked, fmt.Sprintf("the pre-failover hook vetoed; asking again at %s", p.VetoedUntil.UTC().Format(time.RFC3339))}
		}
		return Decision{ActionFailover, "the source's lease ran out"}
	}
	return Decision{ActionNone, v.String()}
}
