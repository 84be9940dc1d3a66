// Package semisync makes the fleet the source's semi-sync replica. It runs on
// the group's leader only: it connects to the source with the replica
// account, checks it, pulls its binlog, cuts it into whole transactions,
// proposes them through a logger.Proposer, and sends the semi-sync ACK for a
// transaction only after the log reports it committed and applied.
//
// Files: probe.go (the connect-time checks a source must pass before the
// log's first source is seeded from it), session.go (one replication
// session: handshake, the event stream, the acker), cutter.go (events into
// whole transactions), codec.go (the semi-sync packets), flavor.go (the
// MySQL/MariaDB differences of the replica side), lease.go (waits between
// sessions that end early when the epoch moves), ingest.go (the sessions'
// owner and its status), metrics.go (the ACK latency, by stage too).
//
// The caller's duties: run Ingester.Run on every member (it ingests only
// while its member leads, and stops a session when leadership or the
// epoch moves); give it the logger.Node whose log it feeds; never send
// an ACK of its own (rule 1 of DESIGN.md: only the acker ACKs, and only
// after the log reports the transaction committed and applied).
package semisync
