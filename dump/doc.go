// Package dump is the fleet as a source to replicas and CDC subscribers: a
// MySQL-protocol server on every serving member that answers the probe SQL
// real clients send and serves COM_BINLOG_DUMP (file/position),
// COM_BINLOG_DUMP_GTID (MySQL GTID sets) and MariaDB GTID dumps
// (@slave_connect_state) from committed log entries only. What differs
// between a MySQL and a MariaDB log (dump commands and flags, greeting and
// authentication, SHOW columns, variables) is asked of the log's
// binlog.Flavor (binlog.Quirks), never decided here by its name.
//
// Layout, a pure core in a thin I/O shell:
//
//   - request.go: decoding of COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID and
//     COM_REGISTER_SLAVE (pure);
//   - sqllex.go, query.go, vars.go: the SQL the fleet answers itself, from
//     a queryEnv (pure given it): SET of user variables, SELECT of variables
//     and known functions, SHOW MASTER/BINARY LOG STATUS, SHOW BINARY LOGS,
//     SHOW BINLOG EVENTS, SHOW VARIABLES, SHOW SLAVE HOSTS/REPLICAS, KILL.
//     Schema SQL is passed to Config.SchemaEndpoint; anything else gets an
//     error naming the statement;
//   - start.go: where a dump starts (file/position, MariaDB GTID state,
//     MySQL GTID set) and which groups it skips, with MySQL's and MariaDB's
//     error texts (1236) for purged files and GTIDs not in the log;
//   - streamcore.go: the event sequence a source sends (fake ROTATE, FDE
//     with created/log_pos zeroed as a source does, file header event, the
//     artificial GTID_LIST of MariaDB GTID dumps, real and fake ROTATE at a
//     file switch, HEARTBEAT v1 or MySQL v2 when idle, EOF for
//     non-blocking dumps), decided by streamCore (pure: what the log
//     returned in, packets and the next read or wait out; its invariants
//     in its comment) and driven by streamer.run in stream.go, which
//     reads, writes, waits and counts; wire.go frames it (events over
//     16 MiB span several packets); cache.go shares the chunks of the log
//     that several dumps read (outside the Go heap, reused once released:
//     a dump holds a chunk for one step of the core only);
//   - login.go, throttle.go: the connection phase, done here rather than
//     by go-mysql's server package so that it can be bounded: greeting,
//     TLS switch (certificate files re-read on change, or a self-signed
//     one; --dump-require-tls refuses plaintext with 3159), authentication
//     (mysql_native_password for a MariaDB log, caching_sha2_password for a
//     MySQL log; never a cleartext plugin). Before login a packet is at
//     most 64 KiB (refused from its header), the login has a deadline
//     (--dump-login-timeout), and connections still logging in count
//     toward --dump-max-clients. Failed logins block an address for a
//     doubling backoff (--dump-login-failures), in a bounded table;
//   - server.go, session.go, env.go, schema.go: the shell. After login the
//     session owns the connection: its own command loop (commands bounded
//     by --dump-max-packet and a server-wide budget for large ones;
//     go-mysql's server.Conn encodes the answers), and during a dump its
//     own packet sequence and a reader goroutine that notices a client
//     that leaves. Prepared statements are emulated (zongji reads table
//     metadata that way) by inlining parameters, at most
//     --dump-max-prepared-stmts per session. Schema SQL goes to
//     --dump-schema-endpoint (user@host:port; the password from
//     $BINLOGSVR_SCHEMA_PASSWORD or --dump-schema-password-file) through
//     logger/mysqltls (--dump-schema-ssl-mode);
//   - status.go: ClientStatus and the binlogsvr_dump_* metrics;
//   - semisync.go: semi-sync toward the fleet's own replicas (pure): who
//     asked for it (@rpl_semi_sync_replica, @rpl_semi_sync_slave), where
//     transactions end (the events that ask for an ACK), the ACK's codec.
//     With Config.SemiSync (the default) the probe of the source-side
//     switch answers enabled; a dump that asked gets the 2-byte header on
//     every event, the last event of each transaction asks for an ACK,
//     and the dump's reader goroutine records the ACKs (ClientStatus
//     ack_file, ack_pos, ack_time). Nothing waits for them: the fleet's
//     ACK to its source depends on its own quorum alone. A malformed ACK
//     ends that dump with error 1236.
//
// The fleet's server_id and server_uuid are Config's, the same on every
// member.
//
// Invariants:
//
//  1. A dump sends only what the log's Reader returns: applied, so
//     committed, entries (rule 3 of DESIGN.md). A dump that reaches the end
//     of the committed log waits on Reader.Changed (heartbeats meanwhile);
//     one that asks for transactions this member does not hold yet waits
//     up to --dump-ahead-wait for them rather than failing.
//  2. The bytes sent are the log's, at the log's (file, position); only
//     the events a source synthesizes itself (fake ROTATE, the FDE's
//     created and log_pos, heartbeats, the artificial GTID_LIST) are made
//     here. Because committed bytes never change, the chunk cache may
//     share them between dumps.
//  3. Nothing a client sends before login costs more than a bounded
//     packet, a bounded time and a place counted in --dump-max-clients;
//     a malformed command gets a MySQL error, never a crash.
//
// The caller's duties:
//
//  1. Fill Config (Addr, User, Password from the daemon's --dump-addr,
//     --dump-user and $BINLOGSVR_DUMP_PASSWORD; the rest from
//     RegisterFlags; LoadSecrets for the schema endpoint's password, which
//     New also does if the caller did not) and call New with a
//     ReaderSource, a logger and a registry. The daemon passes learner's
//     Manager.Gate, whose Reader is nil until a new learner has caught up,
//     so that it serves no dump before; a *logger.Node serves at once.
//     New listens at once, so Addr is known.
//  2. Call Run(ctx) exactly once; it serves until ctx ends, then closes
//     every connection and returns after all goroutines have ended.
//  3. Report Clients() in /status (and binlogctl status).
//
// tools/dumptest holds the test support (a feeder that fills a log from a
// real source, synthetic transactions, a raw dump client, replica helpers);
// tools/bench/dumpbench is the benchmark tools/bench runs. Both start real
// servers, so they live under tools/, above the packages they drive.
package dump
