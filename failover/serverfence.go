package failover

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// The fence on the server (the epoch is the fence in the log). Its order
// is what makes it safe, and comes from how a semi-sync source commits:
//
//   - A commit group's leader waits for the ACK on behalf of its whole
//     group (AFTER_SYNC; "Waiting for semi-sync ACK" in the process list,
//     its followers in "Commit"). It stops waiting when it is killed, and
//     then the whole group commits without an ACK (Rpl_semi_sync_*_no_tx)
//     while semi-sync stays ON. A follower that was not killed returns
//     success to its client. A killed session that later leads a group
//     does not wait at all, and releases its followers the same way.
//   - SET GLOBAL read_only waits for the commit lock, which the waiting
//     groups hold; it waits until they end. While it waits (MariaDB's
//     backup lock, MySQL's global read lock) no new write statement
//     begins: the sessions that can still commit are those already in a
//     statement or in the commit pipeline.
//
// So ending the sessions first, then setting read_only, lets every session
// that connects in between commit with success (each kill of a waiting
// leader releases a group; the clients reconnect at once). The fence is
// therefore:
//
//  1. semi-sync keeps waiting (HoldSemiSync: wait with no replica, a long
//     timeout), so a commit that reaches the wait from now on waits;
//  2. SET GLOBAL read_only (MySQL: super_read_only) is sent on one session,
//     and the fence waits until the server shows it waiting for its lock
//     (or done): from then on no new write begins;
//  3. on a second session, the client sessions that can still commit are
//     ended, those that do not wait for the ACK first and the waiting
//     leaders last, so that no session that a leader releases is still
//     alive to be told "OK"; read_only then gets its lock;
//  4. once read_only is on, the client sessions that remain (blocked
//     writes, idle ones) and the fleet's dump threads are ended.
//
// The commits released in 3 are in the server's binlog and never in the
// log: their clients saw their connection end, never a success (they are
// the old source's unacknowledged tail, which rejoin lists).

// fenceResult is one fence attempt on a server.
type fenceResult struct {
	msg string
	// done: read_only is on and the client sessions are ended.
	done bool
	// roSent is when SET GLOBAL read_only was sent (zero: not sent);
	// roOK whether it returned success. One that did not may still land
	// on the server, up to lock_wait_timeout later.
	roSent time.Time
	roOK   bool
}

// roPendingWait bounds how long a fence waits to see its read_only wait
// for its lock before it ends sessions anyway.
const roPendingWait = 500 * time.Millisecond

// ackWaiting reports whether a session waits for a semi-sync ACK
// (MariaDB "... from slave", MySQL "... from replica").
func ackWaiting(s Session) bool { return strings.HasPrefix(s.State, "Waiting for semi-sync ACK") }

// isDump reports whether a session is a binlog dump thread.
func isDump(s Session) bool { return strings.HasPrefix(s.Command, "Binlog Dump") }

// ownThread reports whether a session is one of the server's own threads
// (never ended).
func ownThread(s Session) bool {
	return s.User == "system user" || s.User == "event_scheduler" || s.Command == "Daemon" ||
		strings.HasPrefix(s.Command, "Slave_") || strings.HasPrefix(s.Command, "Replica_")
}

// fenceKills returns the sessions of l a fence ends, in that order:
// client sessions (clients) that do not wait for a semi-sync ACK, then
// those that wait, then binlog dump threads (dumps). It never names the
// server's own threads or the sessions in skip (the fence's own). Pure.
func fenceKills(l []Session, skip map[uint64]bool, clients, dumps bool) []uint64 {
	var first, waiters, dumpIDs []uint64
	for _, s := range l {
		switch {
		case skip[s.ID] || ownThread(s):
		case isDump(s):
			if dumps {
				dumpIDs = append(dumpIDs, s.ID)
			}
		case !clients:
		case ackWaiting(s):
			waiters = append(waiters, s.ID)
		default:
			first = append(first, s.ID)
		}
	}
	return append(append(first, waiters...), dumpIDs...)
}

// roWaiting reports whether session id of l is a SET GLOBAL read_only
// that waits for its lock: while it does, no new write statement begins.
// Pure.
func roWaiting(l []Session, id uint64) bool {
	for _, s := range l {
		if s.ID == id {
			return strings.Contains(strings.ToLower(s.Info), "read_only") && strings.HasPrefix(s.State, "Waiting for")
		}
	}
	return false
}

// fence makes addr read-only and ends its client sessions (clients) and
// its dump threads, bounded by fenceBound, in the order above. In a
// switchover (clients false) the server is read-only already: only the
// dump threads are ended.
func (m *Manager) fence(ctx context.Context, addr string, clients bool) fenceResult {
	fctx, cancel := context.WithTimeout(ctx, fenceBound)
	defer cancel()
	ro, err := m.connectAdmin(fctx, addr, Candidate{})
	if err != nil {
		return fenceResult{msg: "unreachable (" + err.Error() + ")"}
	}
	defer ro.Close()
	killer, err := m.connectAdmin(fctx, addr, Candidate{})
	if err != nil {
		return fenceResult{msg: "answered, but a second session failed (" + err.Error() + ")"}
	}
	defer killer.Close()
	skip := map[uint64]bool{ro.ConnID(): true, killer.ConnID(): true}
	var notes []string
	if clients {
		if err := ro.HoldSemiSync(fctx); err != nil {
			notes = append(notes, "semi-sync not held: "+err.Error())
		}
	}
	r := fenceResult{roSent: m.now()}
	roDone := make(chan error, 1)
	go func() { roDone <- ro.SetReadOnly(fctx, true) }()
	var roErr error
	finished := false
	n := 0
	if clients {
		// Wait until read_only holds back new writes (or is on).
		l, err := killer.Sessions(fctx)
		for wait := time.Now().Add(roPendingWait); err == nil && !roWaiting(l, ro.ConnID()) && time.Now().Before(wait); {
			select {
			case roErr = <-roDone:
				finished = true
			case <-time.After(10 * time.Millisecond):
			}
			if finished {
				break
			}
			l, err = killer.Sessions(fctx)
		}
		if !finished && err == nil {
			if !roWaiting(l, ro.ConnID()) {
				notes = append(notes, "read_only not seen waiting")
			}
			k, _ := killer.Kill(fctx, fenceKills(l, skip, true, false))
			n += k
			// NB: on MySQL the killed leaders still wait for their ACK (a
			// KILL does not end that wait), holding the commit lock.
			if err := killer.ReleaseAckWaits(fctx); err != nil {
				notes = append(notes, "ACK waits not released: "+err.Error())
			}
		}
	}
	if !finished {
		roErr = <-roDone
	}
	// NB: also when read_only failed: a server left writable must not be
	// left committing without waiting for an ACK.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	if err := killer.RestoreAckWaits(rctx); err != nil {
		notes = append(notes, "semi-sync left off: "+err.Error())
	}
	rcancel()
	if roErr != nil {
		r.msg = "answered, but read_only failed: " + roErr.Error()
		if n > 0 {
			notes = append(notes, fmt.Sprintf("%d sessions ended", n))
		}
		if len(notes) > 0 {
			r.msg += " (" + strings.Join(notes, "; ") + ")"
		}
		return r
	}
	r.roOK = true
	l, err := killer.Sessions(fctx)
	if err == nil {
		var k int
		k, err = killer.Kill(fctx, fenceKills(l, skip, clients, true))
		n += k
	}
	if err != nil {
		r.msg = "read-only; ending sessions failed: " + err.Error()
		return r
	}
	r.msg, r.done = fmt.Sprintf("read-only, %d sessions ended", n), true
	if len(notes) > 0 {
		r.msg += " (" + strings.Join(notes, "; ") + ")"
	}
	return r
}
