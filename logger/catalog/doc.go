// Package catalog is the fleet's catalog of sources: which sources the
// fleet serves, the raft shard of each, and the hosts that run it
// (docs/MULTISOURCE.md). It is a small raft shard of its own (ShardID, 1 on
// a fleet created multi-source) on 3 or 5 hosts of the fleet, run on a
// logger.Host beside the sources' log shards.
//
// The package is a pure core and a thin shell:
//
//   - state.go, command.go, apply.go: the catalog State, its Commands and
//     their encoding, and Apply, the apply rules: pure and deterministic,
//     table-tested by the scripts in testdata/apply;
//   - placement.go: Place, which hosts a new source goes to when the
//     operator names none (pure);
//   - sm.go: the dragonboat state machine over Apply;
//   - catalog.go: the Catalog, one host's replica of the catalog shard and
//     its client API (Start, Propose, Read, Local, Watch, Close).
//
// # Commands
//
// Every command may carry IfVersion (Command.At): it then applies only at
// that Version, and is refused with StaleVersion otherwise, before any
// other check. An applied command bumps Version by one; a refused one
// changes nothing and its Result says why (a Code and a message), the same
// on every replica.
//
//   - OpAdd: a new source. Its name is a DNS label (1-63 of a-z, 0-9, '-',
//     starting with a letter), unique among the sources (Exists). Its
//     source address is host:port. It has 3 or 5 loggers (even counts add
//     no fault tolerance; one is no fault tolerance at all, and a one-host
//     fleet runs the one-source path, logger.Start, without a catalog) and
//     up to MaxLearners learners, all distinct hosts with ids in
//     1..MaxHost. Dump addresses are host:port (an empty host: every
//     interface), only for its hosts, and none may clash on a host with
//     another source's, a removing one's or a move's incoming one's
//     (AddrInUse: the same port on the same IP or a wildcard). It gets the
//     next shard id (from FirstSourceShard, never reused) and each host
//     its replica id in the shard.
//   - OpRemove: an active source without a move in progress becomes
//     Removing. Its hosts stop its shard and delete its data; its name and
//     dump addresses stay taken until OpDrop.
//   - OpDrop: deletes a Removing source. Its shard id is not handed out
//     again; its name may be added again, as a new shard.
//   - OpMoveBegin: a logger's move from host From to host To, which must
//     not run the source already. To gets its replica id now, and its dump
//     address (if any) is reserved.
//   - OpMoveStep: records that a step was done in the source's shard, in
//     order: MoveLearner (To was added as a learner), MovePromoted (To
//     votes), MoveRemoved (From was removed). Recording the current step
//     again is an OK no-op that keeps the Version, so a retried proposal
//     does not fail.
//   - OpMoveEnd: once From was removed, To replaces From among the loggers
//     (and its dump address From's). With Abort, before To was promoted,
//     the move is given up.
//
// Replica ids: host H's replica in a shard is H the first time H holds
// the shard, then H + ReplicaStride·k: dragonboat never lets a removed
// replica id rejoin its shard, so each (shard, host) counts the ids it was
// given (Source.Held), aborted moves' too.
//
// # The state machine
//
// The catalog is a plain in-memory sm.IStateMachine: its State is a few
// KB, dragonboat keeps the raft log and the snapshots (the State's JSON)
// in the host's NodeHost, and a replica that restarts recovers from its
// last snapshot and replays the entries after it. An on-disk state machine
// over Pebble, as the log's (docs/MULTISOURCE.md first proposed that),
// would add a database per host and its recovery rules for no gain at this
// size. The State is immutable once applied (Apply returns a new one), so
// reads take it without a lock.
//
// # Caller's duties
//
//  1. Start the catalog on each host of its placement: with Members (the
//     catalog's initial hosts, host id → raft address) on a new fleet, with
//     neither Members nor Join on a restart, with Join on a host added to
//     the catalog shard (a learner on hosts outside the placement).
//  2. Propose from any replica: dragonboat forwards a proposal to the
//     leader. An error (logger.ErrRetry) means the outcome is unknown and
//     the command may have applied: read the catalog, or propose with
//     IfVersion so that a command applied twice is refused the second time
//     (StaleVersion). A Result whose Code is not OK is a refusal, not an
//     error.
//  3. Read with Read (linearizable: it needs a quorum) before a decision
//     that must see every committed change, such as placing a source; use
//     Local (this replica's applied State, possibly stale, no quorum) for
//     status pages and for the reconcile loop.
//  4. Reconcile from Watch: each time the Version moves, compare
//     State.OnHost(this host) with the shards the host runs. The catalog
//     records intents and steps; the membership changes of a source's
//     shard are made in that shard, by the caller, and recorded after they
//     happened (OpMoveStep).
//  5. Close the Catalog before its host (or close the host, which stops
//     it).
package catalog
