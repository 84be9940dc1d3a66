// Package dumptest is test support for the dump server and anything that
// needs a fleet log holding a real source's transactions without running
// the ingest (semisync) and its semi-sync session:
//
//   - Feed copies a real MariaDB or MySQL source's binlog into a log, cut
//     into whole transactions with the source's raw event bytes and FDE,
//     through logger's Proposer, as the ingest does. It reads with
//     go-mysql's BinlogSyncer in asynchronous mode: fine for a test
//     feeder, never for the product's semi-sync ACK path.
//   - Serve starts a dump.Server over a log for the length of a test.
//   - Replica, Checksums and Workload drive real servers: point a real
//     replica at a fleet member, compare CHECKSUM TABLE, run a mixed
//     workload.
//
// Every helper registers its cleanup with t.Cleanup; nothing outlives the
// test.
package dumptest
