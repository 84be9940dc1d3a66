// Package sandbox starts real MariaDB 10.11 and Oracle MySQL 9.7 servers in private directories on
// free 127.0.0.1 ports, for tests, the demo and benchmarks.
//
// The binaries come from tools/sandbox/install.sh (run it once, as root): MariaDB from Debian's
// bookworm packages, MySQL from Debian sid inside a debootstrap chroot (its packages need a newer C
// library than bookworm's). Available reports whether a flavor can start and, if not, what to run.
//
// Every server is started with the binary log on, ROW format, FULL row images, GTIDs (MySQL:
// gtid_mode=ON, enforce_gtid_consistency=ON; MariaDB: its native GTIDs), log_replica_updates ON,
// and optionally semi-sync (source and/or replica side). Two accounts exist from the first moment:
// an administrator (RootUser) and a replication account (ReplUser), both usable over TCP from
// go-mysql's client without TLS (MySQL 9.x's caching_sha2_password full authentication goes through
// the server's RSA public key, which go-mysql requests).
//
// Starting is fast because each flavor's freshly initialised data directory is built once (per
// binary version) into a template and copied for every new server; MySQL copies drop auto.cnf so
// each server gets its own server_uuid. Start performs no write, so a semi-sync source with no
// replica never blocks in Start.
//
// Caller's duties:
//
//  1. Close every Server (tests: use sandboxtest.Start, which registers the cleanup). Close kills
//     the process by its PID (no clean shutdown: the data goes) and removes its directory; use
//     Stop for a clean shutdown.
//  2. Servers are also bound to the life of the process that started them: if that process dies
//     (a panicking test binary, a go test timeout), the kernel kills them (PR_SET_PDEATHSIG), so a
//     crashed test never leaves a mysqld or mariadbd behind. Their directories may then remain in
//     os.TempDir() (MariaDB) or the chroot's /tmp (MySQL), named sbx-*.
//  3. MySQL needs root (chroot, and /proc mounted inside the chroot, which the package does once
//     and leaves mounted so concurrently running servers keep it).
//  4. Linux only (chroot, PR_SET_PDEATHSIG, flock).
//
// Layout of a server's directory (host paths from Dir, DataDir, BinlogDir, ErrorLog, Socket):
// data/, binlog/binlog.NNNNNN and binlog.index, tmp/, error.log, console.log (stdout/stderr),
// mysqld.sock, mysqld.pid. Relay logs (relay-bin.*) are in data/. Templates are cached under
// /var/cache/binlogsvr/templates (MariaDB; $BINLOGSVR_CACHE_DIR overrides) and
// <chroot>/var/lib/binlogsvr/templates (MySQL); they are rebuilt when the server binary changes.
package sandbox
