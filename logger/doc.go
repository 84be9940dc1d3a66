// Package logger is the replicated binlog log: one dragonboat v4 shard per
// source cluster, whose state machine is an IOnDiskStateMachine over its own
// Pebble database.
//
// The package is split into a pure core and a thin shell:
//
//   - entry.go: the versioned binary encoding of the log's commands (Append,
//     SetSource, Purge, Rotate, Meta);
//   - apply.go: the apply rules, pure and deterministic. They turn the state
//     and one command into a result code and a list of key writes. No clock,
//     no randomness, no node-local state. A bad or stale command is a result
//     code, never an error: an error from Update crashes the process.
//   - keys.go: the key schema of the Pebble database;
//   - sm.go: the dragonboat IOnDiskStateMachine over Pebble (the shell);
//   - read.go: reads of committed data for dump and status;
//   - node.go, proposer.go: the dragonboat NodeHost wrapper and the batching
//     proposer that turns many transactions into few Append entries;
//   - compaction.go: snapshots by size, so that the raft log is compacted by
//     its bytes too and a member far behind gets a snapshot, not tens of MiB
//     of entries read in the leader's step loop.
//
// The caller's duties:
//
//  1. Start a Node with a Config (Validate first); one per process per shard.
//  2. Propose through a Proposer on the leader only. Treat every result code
//     other than ResultOK and ResultDuplicate as "not stored"; never ACK a
//     transaction whose Submit did not return nil (rule 1 of DESIGN.md).
//  3. Read committed data through Node.Reader; it never exposes an entry that
//     is not applied, and an applied entry is committed on a majority.
//  4. Close the Node on shutdown; it joins its goroutines.
package logger
