// Package semisync makes the fleet the source's semi-sync replica. It runs on
// the group's leader only: it connects to the source with the replica
// account, checks it, pulls its binlog, cuts it into whole transactions,
// proposes them through a logger.Proposer, and sends the semi-sync ACK for a
// transaction only after the log reports it committed and applied.
//
// Files: probe.go (the connect-time checks a source must pass, also used
// to seed the log's first source), session.go (one replication session:
// handshake, the event stream, the acker), ackcore.go (the acker's rule:
// which position to ACK, and when; no I/O), cutter.go (events into whole
// transactions), codec.go (the replication packets and the semi-sync ACK),
// register.go (COM_REGISTER_SLAVE), lease.go
// (waits between sessions that end early when the epoch moves), ingest.go
// (the sessions' owner and its status), metrics.go (the ACK latency, by
// stage too: binlogsvr_semisync_ack_stage_seconds{stage}). The
// MySQL/MariaDB differences of the replica side (session variables,
// semi-sync names, the dump command, the probe's GTID queries) are the
// source's binlog.Flavor (binlog.ReplicaSQL), detected by Probe with
// binlog.FlavorOfVersion.
//
// Invariants:
//
//  1. A transaction is ACKed only once its Ticket reported nil: committed
//     on a majority and applied (session.acker; rule 1 of DESIGN.md). The
//     acker takes outcomes in stream order and ACKs the newest stored
//     transaction that asked for an ACK, naming the source's (file, end
//     position) the transaction carries. A session's first ACK may be of
//     the log's last transaction of this epoch (storedAck): a previous
//     leader stored it and may have died before ACKing it.
//  2. A transaction the log did not store is never ACKed: the session
//     ends, and the next one dumps from the log's GTID state, so nothing
//     is applied twice and nothing is skipped.
//  3. A session proposes at the epoch and for the source it started with,
//     and ends as soon as this member stops leading (followLeadership) or
//     the epoch moves (followEpoch); what it proposes after a fence is
//     refused by the log anyway.
//  4. Nothing is pulled from a server that fails Probe (binary log on, ROW
//     format, CRC32 or no checksum, a non-zero server_id, GTID mode on for
//     MySQL) or that is not the log's recorded source (checkIdentity:
//     server_uuid, server_id).
//  5. The stream is read with this package's own packet reader, never
//     go-mysql's BinlogSyncer, which ACKs on receipt.
//
// The caller's duties: run Ingester.Run on every member (it ingests only
// while its member leads, and stops a session when leadership or the
// epoch moves); give it the logger.Node whose log it feeds; never send
// an ACK of its own (only the acker ACKs, and only after the log reports
// the transaction committed and applied); serve Ingester.Status in
// /status.
package semisync
