// Package learner manages the fleet's members: loggers (voting: they store
// every entry and count toward the ACK quorum) and learners (non-voting:
// they follow the committed log and serve dumps), and their lifecycle: add
// a learner, let it catch up (snapshot, then log), serve from it once it is
// caught up, promote it to logger, demote a logger, remove either, transfer
// leadership, and hand leadership to the heaviest caught-up logger.
//
// The package is a pure core and a thin shell:
//
//   - view.go: a member's Report of itself and the View of the group built
//     from the reports (lag in entries and bytes, caught up or not). Pure.
//   - policy.go: Check (is a change safe? refusals carry their reason) and
//     Handoff (who should lead, by weight, among caught-up loggers). Pure.
//   - progress.go: catch-up progress (percent, bytes, rate, ETA). Pure.
//   - ops.go: PlanPurge (what a group purge must keep, and why; pure) and
//     the Manager's operations.
//   - changes.go: the dragonboat calls (the membership read, retried
//     through elections; ordered configuration changes, leader transfer),
//     every dragonboat error classified in one place.
//   - holds.go: replica holds (ReplicaHolds is pure): a replica's files are
//     kept from group purges while it is connected and --replica-hold-ttl
//     after; the holds live in the log (Meta replica_hold.*), so they
//     survive a leader change.
//   - removed.go: a member removed from the group learns it (its replica
//     stops, or the leader tells it through Deps.Notify), says so, and
//     Run returns a *RemovedError; the marker it leaves in its data
//     directory makes CheckRemovedMarker refuse a restart.
//   - manager.go: the Manager, whose Run polls the members, logs progress,
//     opens the dump serving gate, and hands leadership off.
//
// Dragonboat never reuses a replica id and cannot turn a voter into a
// non-voter: a demoted logger leaves the group and rejoins as a learner
// under a new id (Check insists on it).
//
// Invariants:
//
//  1. A change is made only if Check allows it on a fresh View: promoting,
//     demoting or removing a logger keeps a reachable quorum of loggers,
//     the last logger is never removed, a removed id is never reused.
//     A refusal changes nothing.
//  2. A learner serves dumps only once caught up: the Gate's Reader is nil
//     until then.
//  3. A group purge (PlanPurge) never passes a file that a catching-up
//     learner, an unreachable member or a replica (connected, or within
//     --replica-hold-ttl of its disconnection) still needs, unless forced;
//     a member's own retention never moves the group's file names or
//     positions.
//  4. A member removed from the group never runs again on the same data
//     directory (the removed marker).
//
// The caller's duties:
//
//  1. Build a Config (RegisterFlags, Validate) and Deps; call New after the
//     log node started; give the dump server Manager.Gate() as its log, so
//     that a new learner serves only once it is caught up.
//  2. Serve SelfReport on the admin API (GET /members/self, ?files=1 adds
//     the file sizes) and make Deps.Fetch read it from the other members.
//  3. Run the Manager's Run(ctx) in a goroutine owned by the daemon's Run,
//     and join it; call Close when done. When Run returns a *RemovedError,
//     write the marker (WriteRemovedMarker) and exit; serve MarkRemoved to
//     the other members (Deps.Notify calls it), and check the marker
//     (CheckRemovedMarker) before starting the log.
//  4. Route admin requests to Apply and Purge; map refusals (IsRefusal,
//     ErrBadInput, ErrUnknownMember, ErrUnsafe) to client errors: they
//     changed nothing.
package learner
