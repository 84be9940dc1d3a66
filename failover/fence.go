package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
)

// Deferred fences. A failover fences the old source in the log (the
// epoch: rule 5 holds whatever the server does), and then, best effort,
// on the server itself: read_only on, client sessions ended. A server that
// does not answer at that moment (a VM or GC pause, a partition) would
// otherwise come back writable, its clients still waiting for an ACK the
// fleet will never send, and once its semi-sync timeout ran out it would
// commit asynchronously what nobody will ever see. So a fence that did not
// complete is recorded in the log as a pending fence, and the leader (any
// leader: the record survives a change) retries it until the server
// answers, then fences it as the failover would have (fenceOldSource) and
// drops the record. A server that becomes the log's source again is never
// fenced: its pending fence is dropped first.

// KindFence is the audit kind of a deferred fence's records.
const KindFence = "fence"

// MetaPendingFencePrefix + address: JSON PendingFence, an old source whose
// fence did not complete.
const MetaPendingFencePrefix = "failover.pending-fence."

// ErrNoPendingFence: the address has no pending fence.
var ErrNoPendingFence = errors.New("failover: no pending fence for that server")

const (
	// maxPendingFences bounds the list: the oldest is dropped (logged and
	// audited) when a newer old source needs a fence.
	maxPendingFences = 16
	// fenceMaxRetry caps the retry interval, which starts at the probe
	// interval and doubles: a server that resumes is fenced within a few
	// seconds.
	fenceMaxRetry = 3 * time.Second
	// fenceBound bounds one fence attempt (login, kills, read_only).
	fenceBound = 2 * time.Second
	// fencePersistEvery: a failed attempt is written to the log when its
	// error differs from the recorded one, else at most this often (the
	// status shows every attempt; the log need not record each).
	fencePersistEvery = 30 * time.Second
)

// PendingFence is an old source whose fence (read_only, client sessions
// ended) did not complete, as recorded in the log and shown in
// /failover/status.
type PendingFence = api.PendingFence

// ParsePendingFences decodes a MetaPrefix(MetaPendingFencePrefix) read,
// oldest first.
func ParsePendingFences(m map[string][]byte) ([]PendingFence, error) {
	out := make([]PendingFence, 0, len(m))
	for k, v := range m {
		var p PendingFence
		if err := json.Unmarshal(v, &p); err != nil {
			return nil, fmt.Errorf("failover: pending fence %s: %v", k, err)
		}
		if p.Addr == "" {
			p.Addr = strings.TrimPrefix(k, MetaPendingFencePrefix)
		}
		out = append(out, p)
	}
	sortFences(out)
	return out, nil
}

func sortFences(l []PendingFence) {
	sort.Slice(l, func(i, j int) bool {
		if !l[i].Since.Equal(l[j].Since) {
			return l[i].Since.Before(l[j].Since)
		}
		return l[i].Addr < l[j].Addr
	})
}

// boundFences returns which of list (one entry per address) to keep and
// which to drop so that at most max remain: the oldest go first. Pure.
func boundFences(list []PendingFence, max int) (keep, drop []PendingFence) {
	l := append([]PendingFence(nil), list...)
	sortFences(l)
	if len(l) <= max {
		return l, nil
	}
	return l[len(l)-max:], l[:len(l)-max]
}

// nextFenceRetry is the retry interval after cur: first, doubling, capped
// at fenceMaxRetry. Pure.
func nextFenceRetry(cur, first time.Duration) time.Duration {
	if cur <= 0 {
		return min(max(first, time.Millisecond), fenceMaxRetry)
	}
	return min(2*cur, fenceMaxRetry)
}

// needPersist reports whether the live state of a pending fence, after a
// failed attempt, must be written over stored (the log's record): when
// the error changed, or fencePersistEvery after the recorded attempt.
// Pure.
func needPersist(stored, live PendingFence) bool {
	return errKey(stored.LastError) != errKey(live.LastError) || stored.LastAttempt.IsZero() ||
		live.LastAttempt.Sub(stored.LastAttempt) >= fencePersistEvery
}

// digits matches what errKey leaves out: ports and times change from one
// attempt to the next while the error stays the same.
var digits = regexp.MustCompile(`[0-9]+`)

// errKey is an error message without its numbers. Pure.
func errKey(msg string) string { return digits.ReplaceAllString(msg, "N") }

// fencePlan is what the fencer does with one pending fence this round.
type fencePlan int

const (
	planTry      fencePlan = iota // fence it now
	planWait                      // not due yet
	planDefer                     // an unfinished operation promotes it: leave it to that
	planIsSource                  // it is the log's source again: drop it, never fence it
)

// planFence decides, for the pending fence of addr, given the log's
// state, the unfinished operation (nil if none) and whether its retry is
// due. Pure.
func planFence(addr string, st logger.State, op *Operation, due bool) fencePlan {
	switch {
	case st.Source.Addr == addr && !st.Source.Fenced:
		return planIsSource
	case op != nil && !op.Finished() && op.Target == addr:
		return planDefer
	case !due:
		return planWait
	}
	return planTry
}

// fencerState is the fencer's own state (its goroutine only).
type fencerState struct {
	live map[string]*liveFence
}

// liveFence is one pending fence as this leader tries it (one attempt at
// a time).
type liveFence struct {
	pf       PendingFence // live values
	stored   PendingFence // as last written to the log
	interval time.Duration
	next     time.Time
	logged   string // the failure last logged (logged once per error text)
}

// fenceSync is what the fencer shares with the step loop and the API,
// under Manager.mu.
type fenceSync struct {
	// gen moves at every unpend: a fencer round that began before it
	// tries nothing.
	gen uint64
	// active: the attempt in flight per address, closed when it ended
	// and its result is recorded.
	active map[string]chan struct{}
	// sent: the fencer's last SET GLOBAL read_only per address.
	sent map[string]fenceResult
}

// addPendingFence records that the fence of op's old source did not
// complete (why), so that the leader retries it.
func (m *Manager) addPendingFence(ctx context.Context, op *Operation, why string) error {
	now := m.now()
	p := PendingFence{Addr: op.OldSource.Addr, Since: now, OpID: op.ID, Epoch: op.FenceEpoch, Attempts: 1, LastError: why, LastAttempt: now}
	if old, ok, _ := m.pendingFence(p.Addr); ok {
		p.Since, p.Attempts = old.Since, old.Attempts+1
	}
	if err := m.putPendingFence(ctx, p); err != nil {
		return err
	}
	m.writeRecord(ctx, Record{OpID: op.ID, Kind: KindFence, Step: "pending", Outcome: "failed", Epoch: op.FenceEpoch, OldSource: p.Addr,
		Message: fmt.Sprintf("the fence of %s did not complete (%s): it is retried until the server answers (binlogctl failover status)", p.Addr, why)})
	list, err := m.PendingFences()
	if err != nil {
		return nil // NB: the bound is enforced at the next add
	}
	_, drop := boundFences(list, maxPendingFences)
	for _, d := range drop {
		m.log.Warn("failover: too many pending fences: the oldest is dropped and will not be fenced", "server", d.Addr, "since", d.Since, "attempts", d.Attempts, "max", maxPendingFences)
		if err := m.delPendingFence(ctx, d.Addr); err == nil {
			m.writeRecord(ctx, Record{OpID: d.OpID, Kind: KindFence, Step: "dropped", Outcome: "failed", OldSource: d.Addr,
				Message: fmt.Sprintf("more than %d pending fences: %s (pending since %s, %d attempts, last error: %s) is no longer retried",
					maxPendingFences, d.Addr, d.Since.UTC().Format(time.RFC3339), d.Attempts, d.LastError)})
		}
	}
	return nil
}

// PendingFences returns the pending fences the log records, oldest first.
func (m *Manager) PendingFences() ([]PendingFence, error) {
	v, err := m.deps.Log.MetaPrefix(MetaPendingFencePrefix)
	if err != nil {
		return nil, err
	}
	return ParsePendingFences(v)
}

func (m *Manager) pendingFence(addr string) (PendingFence, bool, error) {
	v, ok, err := m.deps.Log.Meta(MetaPendingFencePrefix + addr)
	if err != nil || !ok || len(v) == 0 {
		return PendingFence{}, false, err
	}
	var p PendingFence
	if err := json.Unmarshal(v, &p); err != nil {
		return p, false, fmt.Errorf("failover: pending fence %s: %v", addr, err)
	}
	return p, true, nil
}

func (m *Manager) putPendingFence(ctx context.Context, p PendingFence) error {
	b, _ := json.Marshal(p)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := m.deps.Log.Propose(pctx, &logger.Meta{Key: MetaPendingFencePrefix + p.Addr, Value: b}); err != nil {
		return fmt.Errorf("failover: recording the pending fence of %s: %w", p.Addr, err)
	}
	return nil
}

func (m *Manager) delPendingFence(ctx context.Context, addr string) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := m.deps.Log.Propose(pctx, &logger.Meta{Key: MetaPendingFencePrefix + addr}); err != nil {
		return fmt.Errorf("failover: dropping the pending fence of %s: %w", addr, err)
	}
	return nil
}

// unpend drops the pending fence of addr, if any, before addr becomes the
// log's source (step, outcome and why go to the audit record) or at the
// operator's request. It waits for an attempt in flight, and for a
// read_only that attempt sent without success (it may still land) to be
// past lock_wait_timeout. It returns when the fencer last sent read_only
// to addr (zero: never), for a re-admission's settle.
func (m *Manager) unpend(ctx context.Context, addr, step, why string) (time.Time, error) {
	m.mu.Lock()
	m.fsync.gen++
	done := m.fsync.active[addr]
	m.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
	m.mu.Lock()
	sent := m.fsync.sent[addr]
	delete(m.fsync.sent, addr)
	m.mu.Unlock()
	if !sent.roSent.IsZero() && !sent.roOK {
		// NB: a SET GLOBAL read_only that timed out on our side may still
		// be waiting for the commit lock on the server, and would land
		// after addr is made writable.
		if d := sent.roSent.Add(fenceLockWait).Sub(m.now()); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			}
		}
	}
	p, ok, err := m.pendingFence(addr)
	if err != nil || !ok {
		return sent.roSent, err
	}
	if err := m.delPendingFence(ctx, addr); err != nil {
		return sent.roSent, err
	}
	m.log.Warn("failover: pending fence dropped", "server", addr, "why", why, "since", p.Since, "attempts", p.Attempts)
	if st, err := m.deps.Log.State(); err == nil {
		m.writeRecord(ctx, Record{OpID: p.OpID, Kind: KindFence, Step: step, Outcome: "ok", Epoch: st.Epoch, OldSource: addr,
			Message: fmt.Sprintf("pending fence of %s dropped (pending since %s, %d attempts): %s", addr, p.Since.UTC().Format(time.RFC3339), p.Attempts, why)})
	}
	m.setStatus(func(s *Status) {
		s.PendingFences = slicesDeleteFunc(s.PendingFences, func(q PendingFence) bool { return q.Addr == addr })
	})
	return sent.roSent, nil
}

// slicesDeleteFunc is slices.DeleteFunc on a copy (the status' slice is
// shared with callers of Status).
func slicesDeleteFunc(l []PendingFence, del func(PendingFence) bool) []PendingFence {
	var out []PendingFence
	for _, p := range l {
		if !del(p) {
			out = append(out, p)
		}
	}
	return out
}

// ForgetFence drops the pending fence of addr at the operator's request
// (a server gone for good): the fleet no longer tries to fence it.
func (m *Manager) ForgetFence(ctx context.Context, addr string) (PendingFence, error) {
	p, ok, err := m.pendingFence(addr)
	if err != nil {
		return p, err
	}
	if !ok {
		return p, fmt.Errorf("%w: %q (binlogctl failover status lists them)", ErrNoPendingFence, addr)
	}
	_, err = m.unpend(ctx, addr, "forgotten", "the operator asked to forget it (binlogctl failover forget-fence): the server is not fenced by the fleet; "+
		"if it comes back, make it read-only by hand")
	return p, err
}

// runFencer retries the pending fences while this member leads, until
// ctx ends.
func (m *Manager) runFencer(ctx context.Context) {
	t := time.NewTicker(m.cfg.ProbeInterval)
	defer t.Stop()
	for {
		m.fenceRound(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// fenceRound tries every pending fence that is due, in parallel, each
// bounded by fenceBound.
func (m *Manager) fenceRound(ctx context.Context) {
	fs := &m.fencer
	if !m.deps.Log.IsLeader() {
		fs.live = nil // NB: a new leadership tries every pending fence at once
		return
	}
	m.mu.Lock()
	gen := m.fsync.gen
	m.mu.Unlock()
	list, err := m.PendingFences()
	if err != nil {
		return
	}
	if fs.live == nil {
		fs.live = map[string]*liveFence{}
	}
	st, err := m.deps.Log.State()
	if err != nil {
		return
	}
	op, err := m.loadOp(MetaOperation)
	if err != nil {
		m.log.Warn("failover: pending fences wait: reading the operation", "err", err)
		return
	}
	now := m.now()
	present := map[string]bool{}
	var try []*liveFence
	for _, p := range list {
		present[p.Addr] = true
		lf := fs.live[p.Addr]
		if lf == nil || !lf.stored.Since.Equal(p.Since) {
			lf = &liveFence{pf: p, stored: p}
			fs.live[p.Addr] = lf
		}
		switch planFence(p.Addr, st, op, !now.Before(lf.next)) {
		case planIsSource:
			// NB: a safety net: every path that makes a server the source
			// drops its pending fence first.
			_, _ = m.unpend(ctx, p.Addr, "dropped", "it is the log's source again (epoch "+fmt.Sprint(st.Epoch)+")")
			delete(fs.live, p.Addr)
		case planTry:
			try = append(try, lf)
		}
	}
	for a := range fs.live {
		if !present[a] {
			delete(fs.live, a)
		}
	}
	// Register the attempts, unless an unpend came since the list was read.
	m.mu.Lock()
	if m.fsync.gen != gen {
		try = nil
	}
	if m.fsync.active == nil {
		m.fsync.active, m.fsync.sent = map[string]chan struct{}{}, map[string]fenceResult{}
	}
	done := make([]chan struct{}, len(try))
	for i, lf := range try {
		done[i] = make(chan struct{})
		m.fsync.active[lf.pf.Addr] = done[i]
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for i, lf := range try {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			r := m.fence(ctx, lf.pf.Addr, true)
			m.mu.Lock()
			if !r.roSent.IsZero() {
				m.fsync.sent[lf.pf.Addr] = r
			}
			m.mu.Unlock()
			m.fenceAttempted(ctx, lf, r)
			m.mu.Lock()
			delete(m.fsync.active, lf.pf.Addr)
			m.mu.Unlock()
		}()
	}
	wg.Wait()
	// The status: the log's list, with this leader's live attempts.
	if list, err = m.PendingFences(); err != nil {
		return
	}
	var shown []PendingFence
	for _, p := range list {
		if lf := fs.live[p.Addr]; lf != nil && lf.pf.Since.Equal(p.Since) && lf.pf.Attempts >= p.Attempts {
			p = lf.pf
		}
		shown = append(shown, p)
	}
	m.setStatus(func(s *Status) { s.PendingFences = shown })
}

// fenceAttempted records the result of one attempt: fenced (the record
// dropped, an audit record written), or failed (the backoff grows; the
// log's record is updated now and then).
func (m *Manager) fenceAttempted(ctx context.Context, lf *liveFence, r fenceResult) {
	now := m.now()
	p := &lf.pf
	p.Attempts++
	if r.done {
		if err := m.delPendingFence(ctx, p.Addr); err != nil {
			lf.next = now // NB: fenced, but the record stays: drop it next round
			return
		}
		msg := fmt.Sprintf("deferred fence of %s: %s, %v after the failover's fence (attempt %d; the last failure: %s); it can no longer commit",
			p.Addr, r.msg, now.Sub(p.Since).Round(time.Millisecond), p.Attempts, p.LastError)
		m.log.Warn("failover: deferred fence done: the old source answered and is fenced", "server", p.Addr, "result", r.msg,
			"pending", now.Sub(p.Since).Round(time.Millisecond), "attempts", p.Attempts)
		st, err := m.deps.Log.State()
		if err != nil {
			m.log.Warn("failover: deferred fence done; no audit record: the log is closed", "server", p.Addr)
			return
		}
		m.writeRecord(ctx, Record{OpID: p.OpID, Kind: KindFence, Step: "fenced", Outcome: "ok", Epoch: st.Epoch, OldSource: p.Addr, Message: msg})
		return
	}
	p.LastError, p.LastAttempt = r.msg, now
	if !r.roSent.IsZero() {
		// NB: it answers (read_only waited for the commit lock, or the
		// kills failed): try again soon, not after the backoff.
		lf.interval = 0
	}
	lf.interval = nextFenceRetry(lf.interval, m.cfg.ProbeInterval)
	lf.next = now.Add(lf.interval)
	if k := errKey(r.msg); lf.logged != k {
		lf.logged = k
		m.log.Warn("failover: the old source cannot be fenced yet; retrying", "server", p.Addr, "err", r.msg, "attempts", p.Attempts,
			"pending", now.Sub(p.Since).Round(time.Millisecond))
	}
	if needPersist(lf.stored, *p) {
		// NB: only while the record is there: an unpend may have dropped it.
		if _, ok, err := m.pendingFence(p.Addr); err == nil && ok && m.putPendingFence(ctx, *p) == nil {
			lf.stored = *p
		}
	}
}
