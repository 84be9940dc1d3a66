// Package binlog holds the byte-level handling of binlog events and the
// MySQL/MariaDB GTID flavor seam. It is pure: no I/O, no clock, no
// package-level mutable state, and every function is safe for concurrent use
// on distinct buffers.
//
// What it knows:
//
//   - header.go: the 19-byte common header, the event type and flag
//     constants, NewEvent (the one place events are assembled) and
//     SplitEvents;
//   - checksum.go: CRC32 verification, Relocate (the rewrite of log_pos that
//     moves an event into a fleet file) and the FDE's checksum algorithm;
//   - events.go: the events the fleet synthesizes itself: fake and real
//     ROTATE, HEARTBEAT v1 and v2, and the FDE copy that starts a fleet file;
//   - flavor.go, mysql.go, mariadb.go: the Flavor and Set interfaces and
//     their two implementations: GTID parsing, sets, the GTID of an event
//     and the file header event of each flavor; FlavorOfVersion, the one
//     detection of a server's flavor from its VERSION();
//   - gtidmath.go: Subtract, Count and Contains on go-mysql's GTID sets
//     and the failover's questions (GTIDMath: Missing, Extra, KeepGTIDs,
//     SplitTail);
//   - sql.go, sql_mysql.go, sql_mariadb.go: the SQL a replica sends
//     (ReplicaSQL, semisync) and an administrator sends (AdminSQL: the
//     failover's fence, promotion and repointing);
//   - quirks.go: the protocol and behaviour differences (Quirks): the dump
//     commands and flags, the greeting, the SHOW columns and variables a
//     server answers, what a server's GTID state means to the failover;
//   - errors.go: the sentinel errors, all prefixed "binlog: ".
//
// The Flavor is the one MySQL/MariaDB seam: other packages call its methods
// and never compare flavor names (TestOneSeam in seam_test.go fails naming
// the file and line of such a check).
//
// testdata holds two real binlog files written by MariaDB 10.11.19; the
// tests check this package against them byte for byte where the server is
// deterministic.
//
// The caller's duties:
//
//  1. Verify an event's checksum (VerifyChecksum) before trusting its body.
//     Relocate and PrepareFDE refuse an event whose checksum is already bad,
//     so they never bless a corrupted event with a fresh CRC.
//  2. Learn the checksum algorithm of a stream from its FDE (FDEChecksumAlg)
//     and pass it to every call that takes a ChecksumAlg.
//  3. Pass each Flavor only its own Sets; a Set of the other flavor is an
//     error (ErrFlavorMismatch), never a silent conversion.
//  4. Treat the slices returned by SplitEvents as views of the input: copy an
//     event before Relocate if the input must stay unchanged.
//
// Subpackage binlogtest builds realistic FDEs and transactions for tests
// and benchmarks.
package binlog
