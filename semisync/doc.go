// Package semisync makes the fleet the source's semi-sync replica. It runs on
// the group's leader only: it connects to the source with the replica
// account, checks it, pulls its binlog, cuts it into whole transactions,
// proposes them through a logger.Proposer, and sends the semi-sync ACK for a
// transaction only after the log reports it committed and applied.
//
// This package so far holds the source probe (probe.go): the connect-time
// checks that the log's first source is seeded from. The ingest session and
// the acker are the work of the semisync issue.
package semisync
