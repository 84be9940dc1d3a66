// Package logger is the replicated binlog log: one dragonboat v4 shard per
// source cluster, whose state machine is an IOnDiskStateMachine over its own
// Pebble database.
//
// The package is a pure core and a thin shell:
//
//   - entry.go: the versioned binary encoding of the log's commands (Append,
//     SetSource, Purge, Rotate, Meta); gate.go: the version gate that
//     decides which encoding a member may write;
//   - apply.go: the apply rules, pure and deterministic. They turn the state
//     and one command into a Result and a list of key writes. No clock, no
//     randomness, no node-local state;
//   - state.go, keys.go: the replicated State, the result codes, and the key
//     schema of the Pebble database;
//   - sm.go: the dragonboat IOnDiskStateMachine over Pebble (the shell);
//     read.go: the Reader of committed data, for dump, status and failover;
//   - host.go: the Host, what the shards of one process share (the
//     dragonboat NodeHost, the raft transport and its guard, the data
//     directory and its disk watch, the host's metrics);
//   - host_raw.go: a RawShard, a replica on a Host of a shard whose state
//     machine is the caller's (the catalog's, logger/catalog), guarded by
//     the frame guard as a Node is;
//   - node.go, proposer.go, errors.go: one shard's replica on a Host, the
//     batching Proposer that turns many transactions into few Append
//     entries, and the one place dragonboat's errors are classified;
//   - compaction.go: snapshots by size, so that the raft log is compacted by
//     its bytes too and a member far behind gets a snapshot, not tens of MiB
//     of entries read in the leader's step loop;
//   - transport*.go: the tcp raft transport (dragonboat's wire format in
//     fewer system calls; every frame checked by the guard before
//     dragonboat sees it) and mutual TLS on either transport;
//     raftlog.go, zeroedlog.go, tanrecord.go: the raft log's storage (tan,
//     fsync'd once per raft round, on files written with zeros ahead);
//     disk.go, diskfs.go: free space and a full disk.
//
// Invariants:
//
//  1. Update is deterministic: the same entries applied to the same state
//     give the same writes and results on every member. A bad or stale
//     command is a result code (ResultStaleEpoch, ResultWrongSource,
//     ResultWrongPredecessor, ...) returned identically on every member,
//     never an error: an error from Update stops the process, and is
//     returned only for a local disk failure or an entry in an encoding
//     this member does not read (NewerEncodingError).
//  2. Update writes the data and the applied index in one Pebble batch.
//     The batch is not fsync'd: the entries are fsync'd in the raft log and
//     replayed from the applied index after a crash.
//  3. The epoch moves only through SetSource, a compare-and-set on it. An
//     Append is accepted only at the current epoch, from the current,
//     unfenced source, and as the exact continuation of the log's last
//     transaction (after skipping the leading transactions the log holds
//     already, which makes a retried Append a ResultDuplicate).
//  4. File names and positions are assigned at apply time, identically on
//     every member; events are rewritten only in log_pos and checksum
//     (binlog.Relocate, which refuses an event whose checksum is bad); a
//     transaction is never split across files; a new source starts a new
//     file.
//  5. A Reader returns only applied entries, and an applied entry is
//     committed on a majority of the voting members.
//  6. A member writes an encoding above EncodingV1 only once every member
//     has reported in the log that it reads it (gate.go); a member that
//     meets an encoding it does not read applies the entries before it and
//     stops, never returning a result the others did not.
//
// The caller's duties:
//
//  1. Call RouteDragonboatLogs once, then Start a Node with a Config
//     (DefaultConfig, RegisterFlags, Validate): one shard on a Host of its
//     own. Several shards share a host through StartHost and
//     Host.StartShard, each with its own metrics registry (or a labelled
//     one). Set Config.OnNewerEncoding and Config.Disk.OnFull: the
//     daemon exits with a clear line instead of dragonboat's panic.
//  2. Propose Appends through a Proposer, on the leader only, one per
//     source and epoch (ProposerConfig). When it fails with ErrRetry or
//     ErrProposerStopped, start a new one from the log's state and submit
//     again: duplicates are skipped. Other commands go through
//     Node.Propose, whose error means "outcome unknown" and whose result
//     code says what the log did.
//  3. Treat every result code other than ResultOK and ResultDuplicate
//     (Code.Stored) as "not stored"; never ACK a transaction whose Submit
//     or Ticket did not report nil (rule 1 of DESIGN.md).
//  4. Read committed data through Node.Reader (nil until the state machine
//     is open); wait for new entries on Reader.Changed.
//  5. Close the Node on shutdown; it joins its goroutines.
package logger
