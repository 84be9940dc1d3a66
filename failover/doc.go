// Package failover holds the source's lease, fences a dead source by epoch,
// and promotes the most caught-up replica: analyse and decide (pure),
// execute (behind small interfaces), audit (records in the log), and an
// anti-flap window. The fence is logger.SetSource, a compare-and-set on the
// epoch: an Append of any other epoch is rejected with
// logger.ResultStaleEpoch.
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
//
// The Manager (manager.go) is the I/O shell: it probes, reads the ingest's
// contact times, measures stalls (StallDetector), asks the other members,
// builds the Observation and carries out the Decision.
package failover
