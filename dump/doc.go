// Package dump is the fleet as a source to replicas and CDC subscribers: a
// MySQL-protocol server on every serving member that answers the probe SQL
// real clients send and serves COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID and
// MariaDB GTID dumps from committed log entries only.
//
// Not built yet: this is the work of the dump issue. The log it will read
// is logger.Reader (files, positions, GTID index, committed bytes).
package dump
