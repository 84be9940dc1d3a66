// Package binlogtest builds realistic binlog events for tests and
// benchmarks: the FORMAT_DESCRIPTION_EVENT of a MySQL 9.7 or MariaDB 10.11
// source, and whole transactions as such a source writes them, with CRC32
// checksums and log positions.
//
// Output is deterministic: every event carries the header timestamp
// Timestamp, so the same arguments give the same bytes. Functions panic on
// invalid arguments (a bad GTID), as test helpers do.
//
// Transactions are statement-based, so a replica can apply them: run
// SetupSQL on it first.
package binlogtest
