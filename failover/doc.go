// Package failover holds the source's lease, fences a dead source by epoch,
// and promotes the most caught-up replica: analyse and decide (pure),
// execute (behind small interfaces), audit (records in the log), and an
// anti-flap window. The fence is logger.SetSource, a compare-and-set on the
// epoch, to the old source with Source.Fenced set: an Append of any other
// epoch is rejected with logger.ResultStaleEpoch, and one to a fenced log
// with logger.ResultWrongSource.
//
// MySQL and MariaDB differ only through binlog.Flavor: a server's flavor
// is detected once from VERSION() (SQLConnector), its statements are the
// flavor's binlog.AdminSQL, and the GTID math (gtid.go, rejoin.go,
// readmit.go) is the flavor's binlog.GTIDMath.
//
// Invariants: the epoch is the fence (rule 5 of DESIGN.md: once the
// fence's SetSource applied, no Append from the old source is accepted,
// whatever the old server does); a replica is promoted only once it has
// applied every transaction the log held at the fence (stepCatchUp, and
// again at stepPromote: rule 4), and never one holding errant transactions
// the log does not; every step of an operation is recorded in the log
// before the next begins, and is idempotent, so a new leader resumes it.
//
// The caller's duties:
//
//  1. Build a Config (DefaultConfig, RegisterFlags, Validate) and Deps:
//     the log (NodeLog), the connectors (SQLConnector; the lease probe
//     with the source's TLS, the rest with --failover-ssl-mode), the
//     ingest's view (contact times), AskPeers (the other members'
//     ProbeSource); call New.
//  2. Run the Manager's Run on every member, in a goroutine the daemon
//     owns, and join it; it acts only while its member leads.
//  3. Send operators' failovers and switchovers through Do (it runs them
//     on Run's goroutine; ErrNotLeader: ask the leader); serve Status,
//     History, Candidates, RejoinCheck, Rejoin and ProbeSource; map the
//     package's sentinel errors to client errors.
//  4. Read the log's state with Log.State and handle its error: a closed
//     log is no state, never epoch 0.
//
// # The lease expires only on evidence
//
// The leader judges the source; the rule is Analyse, a pure function of an
// Observation:
//
//  1. Contact renews the lease: a lease probe that answered (a SQL ping on
//     the leader's own connection, every --failover-probe-interval, 500ms;
//     counted from when it started), and every event and heartbeat of the
//     ingest stream and every transaction it ACKed (--source-heartbeat, 1s,
//     keeps an idle stream talking).
//  2. The lease runs for --failover-lease (3s) from the latest of: the last
//     contact, the start of this leadership (a new leader does not know when
//     its predecessor last heard from the source), and the end of this
//     member's last stall.
//  3. A stall is this process running late: a 100 ms timer that fires late,
//     or the Manager's step loop waiting longer than one probe interval,
//     by more than a third of the lease (StallThreshold). A process pause,
//     a starved machine or a stuck step loop hears nothing from anyone, so
//     the silence is no evidence: the lease restarts at the stall's end
//     (verdict leader-stalled; logged once with the measured stall, shown
//     as last_stall in /failover/status).
//  4. When the lease has run out, a dead verdict also needs MinFailedProbes
//     (2) failed probes that started after the last contact and the end of
//     the last stall: a probe that spanned a stall is stale.
//  5. Where the fleet has other members, the leader then asks them (GET
//     /failover/probe-source over member-certificate TLS) to probe the
//     source named by their own log with their own connections. If one
//     reaches it there is no failover (verdict seen-by-peer: the fault is
//     between the leader and the source). If they cannot reach it either,
//     or none can be asked (down, cut off), the leader's own fresh evidence
//     decides: dead-source, and Decide fails over (--failover-auto,
//     anti-flap and the pre-hook permitting).
//  6. An automatic failover needs an account to act with: an admin
//     password or a --failover-credentials-file. Without one it could fence
//     the source only in the log, never on the server, never promote a
//     replica and never re-admit the source, so a source that merely
//     restarted would stay fenced: the decision is blocked instead (it
//     says so, and warns at start), and the ingest reconnects when the
//     source is back.
//
// # A fence that did not complete is retried
//
// The failover's fence is the epoch (rule 5 holds whatever the old source
// does); then, best effort and bounded by 2 s, the old source is fenced on
// the server (serverfence.go), in an order that lets no client commit
// return success once it began:
//
//  1. semi-sync keeps waiting (wait with no replica, a timeout of at least
//     an hour), so a commit that reaches the wait from now on waits;
//  2. SET GLOBAL read_only (MySQL super_read_only) is sent on one session,
//     and the fence waits until it waits for its lock: from then on no new
//     write begins (the sessions that can commit are those already in a
//     statement or in the commit pipeline);
//  3. on a second session those are killed, the ones that wait for a
//     semi-sync ACK last: a killed group-commit leader commits its whole
//     group without an ACK (MariaDB), and a follower still alive would be
//     told "OK". MySQL's ACK wait ignores KILL, so its semi-sync source
//     side is then turned off (and back on once read_only returned) to let
//     the killed commits end and read_only take its lock;
//  4. once read_only is on, the remaining client sessions and the fleet's
//     dump threads are ended.
//
// The commits that 3 completes reach the old source's binlog, never the
// log; their clients saw their connection end. In a switchover the source
// is read-only already: only its dump threads are ended.
//
// When that does not complete
// (the server is paused or cut off), the server is recorded in the log as
// a pending fence (MetaPendingFencePrefix), and:
//
//  1. The leader's fencer (a goroutine of Run) retries each one, from the
//     probe interval doubling to 3 s, every try bounded; once the server
//     answers it is fenced as at the failover, an audit record of kind
//     fence is written and the entry dropped. Any leader does this: the
//     list is in the log.
//  2. A server that becomes the log's source again is never fenced: every
//     path that makes one the source (promotion, re-admission) calls
//     unpend first, and the fencer drops an entry that names the source.
//  3. At most 16 are kept; the oldest is dropped, logged and audited.
//  4. Status.PendingFences shows them (/failover/status, binlogctl
//     failover status); ForgetFence (binlogctl failover forget-fence) drops
//     one at the operator's request. The caller (the daemon) registers
//     binlogsvr_failover_pending_fences from PendingFences, and routes
//     POST /failover/forget-fence with the operate role.
//
// The Manager (manager.go) is the I/O shell: it probes, reads the ingest's
// contact times, measures stalls (StallDetector), asks the other members,
// builds the Observation and carries out the Decision.
package failover
