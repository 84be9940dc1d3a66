package failover

import (
	"fmt"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
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
	VerdictLeaderStalled                     // this member was stalled: the lease restarted at the stall's end
	VerdictConfirming                        // the lease ran out on the leader's own evidence: ask another member
	VerdictSeenByPeer                        // the leader cannot reach the source but another member can
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
	case VerdictLeaderStalled:
		return "leader-stalled"
	case VerdictConfirming:
		return "confirming"
	case VerdictSeenByPeer:
		return "seen-by-peer"
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
	Fenced      bool   // the log's source is a failover's fence
	// LastContact is when the source was last seen alive: a probe answered
	// (when it started), the ingest stream brought an event or a
	// heartbeat, or the ingest ACKed a transaction. Zero: never, since
	// leading.
	LastContact time.Time
	Lease       time.Duration
	// Op is the unfinished operation recorded in the log, if any.
	Op *Operation

	// StallEnd is when this member's latest stall ended: its timers fired,
	// or its step loop ran, later than the stall threshold allows (a
	// process pause, a starved machine). Zero: none. The lease restarts
	// there, as it does for a new leader: what was not heard during a
	// stall is no evidence.
	StallEnd time.Time
	// Stall is that stall's measured length.
	Stall time.Duration
	// FailedProbes are the start times of the lease probes that failed
	// since the last one that answered, oldest first. Only those started
	// after the last contact and the last stall are evidence.
	FailedProbes []time.Time
	// Peers is how many other members the leader can ask to probe the
	// source for it (0: a single member decides on its own evidence).
	Peers int
	// Vantage is what the other members answered when last asked; nil:
	// not asked.
	Vantage *Vantage
}

// Vantage is the answer of the other members when the leader asked them
// to probe the source with their own connections.
type Vantage = api.Vantage

// MinFailedProbes is how many fresh failed probes a dead verdict needs.
const MinFailedProbes = 2

// LeaseStart is when the source's lease was last renewed: the latest of
// the last contact, the start of this leadership (a new leader does not
// know when its predecessor last heard from the source) and the end of
// this member's last stall.
func (o Observation) LeaseStart() time.Time {
	t := o.LeaderSince
	if o.LastContact.After(t) {
		t = o.LastContact
	}
	if o.StallEnd.After(t) {
		t = o.StallEnd
	}
	return t
}

// LeaseExpiry is when the source's lease runs out: one full lease after
// LeaseStart.
func (o Observation) LeaseExpiry() time.Time { return o.LeaseStart().Add(o.Lease) }

// freshFrom is the time after which evidence counts: a probe that
// started before the last contact or before the end of the last stall
// says nothing about the source now.
func (o Observation) freshFrom() time.Time {
	t := o.LastContact
	if o.StallEnd.After(t) {
		t = o.StallEnd
	}
	return t
}

// FreshFailures counts the failed probes that started after freshFrom.
func (o Observation) FreshFailures() int {
	from, n := o.freshFrom(), 0
	for _, p := range o.FailedProbes {
		if !p.Before(from) {
			n++
		}
	}
	return n
}

// vantageFresh: the other members were asked after the fresh point and
// within the last third of a lease.
func (o Observation) vantageFresh() bool {
	v := o.Vantage
	return v != nil && !v.Asked.Before(o.freshFrom()) && o.Now.Sub(v.Asked) <= o.Lease/3
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
	if o.Fenced {
		// NB: fenced with no operation: an operation was aborted by hand;
		// nothing pulls from a fenced source, so report it as dead.
		return VerdictDeadSource
	}
	switch {
	case held && !o.LastContact.IsZero() && o.Now.Sub(o.LastContact) <= o.Lease/3:
		return VerdictHealthy
	case held && o.StallEnd.After(o.LastContact) && !o.StallEnd.Before(o.LeaderSince):
		return VerdictLeaderStalled
	case held && o.LastContact.Before(o.LeaderSince):
		return VerdictLeaseGrace
	case held, o.FreshFailures() < MinFailedProbes:
		// NB: a lease that ran out without fresh failed probes (a probe
		// still in flight, or one that spanned a stall) waits for them.
		return VerdictSuspect
	case o.Peers > 0 && !o.vantageFresh():
		return VerdictConfirming
	case o.Peers > 0 && len(o.Vantage.Reached) > 0:
		return VerdictSeenByPeer
	}
	// NB: the other members could not reach the source either, or none
	// could be asked: the leader's own fresh evidence decides.
	return VerdictDeadSource
}

// noContact says since when the source is silent.
func (o Observation) noContact() string {
	if o.LastContact.IsZero() {
		return "no contact since this member began leading at " + o.LeaderSince.UTC().Format("15:04:05.000")
	}
	return "no contact since " + o.LastContact.UTC().Format("15:04:05.000")
}

// Explain says why o got verdict v, for the status and the log. Pure.
func Explain(o Observation, v Verdict) string {
	switch v {
	case VerdictLeaderStalled:
		return fmt.Sprintf("this member was stalled for %v (its timers ran late) until %s: the source's lease restarted there; no verdict before %s",
			o.Stall.Round(time.Millisecond), o.StallEnd.UTC().Format("15:04:05.000"), o.LeaseExpiry().UTC().Format("15:04:05.000"))
	case VerdictLeaseGrace:
		return fmt.Sprintf("this member leads since %s: no verdict before %s", o.LeaderSince.UTC().Format("15:04:05.000"), o.LeaseExpiry().UTC().Format("15:04:05.000"))
	case VerdictSuspect:
		if !o.Now.Before(o.LeaseExpiry()) {
			return fmt.Sprintf("the lease ran out but only %d fresh probe(s) failed (%d needed): waiting for fresh evidence", o.FreshFailures(), MinFailedProbes)
		}
		return fmt.Sprintf("%s; the lease runs out at %s", o.noContact(), o.LeaseExpiry().UTC().Format("15:04:05.000"))
	case VerdictConfirming:
		return "the lease ran out on this member's evidence: asking another member to probe the source"
	case VerdictSeenByPeer:
		return fmt.Sprintf("this member cannot reach the source but member(s) %v can, with their own connections: no failover "+
			"(the fault is between this member and the source; binlogctl transfer-leader ID moves the ingest to a member that reaches it)", o.Vantage.Reached)
	case VerdictDeadSource:
		if o.Fenced {
			return "the source is fenced"
		}
		msg := fmt.Sprintf("the source's lease ran out: %s, %d fresh probes failed", o.noContact(), o.FreshFailures())
		switch {
		case o.Peers == 0:
			msg += ", no other member to ask"
		case o.Vantage != nil && len(o.Vantage.Unreached) > 0:
			msg += fmt.Sprintf(", member(s) %v cannot reach it either", o.Vantage.Unreached)
		default:
			msg += ", no other member could be asked"
			if o.Vantage != nil && len(o.Vantage.Errors) > 0 {
				msg += " (" + strings.Join(o.Vantage.Errors, "; ") + ")"
			}
		}
		return msg
	}
	return v.String()
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
	// Unarmed, when set, says why an automatic failover could not act: it
	// has no account to log in to any server with, so it could fence the
	// source only in the log, never promote a replica nor re-admit the
	// source, and a source that merely restarted would stay fenced.
	Unarmed string
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
		if p.Unarmed != "" {
			return Decision{ActionBlocked, "the source's lease ran out but " + p.Unarmed}
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
