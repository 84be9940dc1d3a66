package failover

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
)

// Re-admission. A failover that finds no candidate to promote would leave
// the fenced source read-only for good: a false verdict (or a forced
// failover with no candidate) becomes a full write outage. Instead, the
// fleet looks at the fenced source itself: it is the most caught-up
// server there is. If it answers, holds all of the log and nothing else
// but its own unacknowledged tail, it is re-admitted as the source under a
// new epoch, as a promotion of the same server would be. If it does not
// answer, or holds what the log may never take, the operator gets one
// status line saying what to do, and the retries back off.

// fenceLockWait bounds how long a fence's SET GLOBAL read_only may wait
// for the commit lock: the session's lock_wait_timeout (sqlserver.go) and
// a margin.
const fenceLockWait = 6 * time.Second

// KindReadmit is the audit kind of a re-admission.
const KindReadmit = "readmit"

// StepReadmitted: no candidate could be promoted; the fenced source was
// recorded as the log's source again under a new epoch (still read-only)
// and the target is that source. Next: once the log holds all the source
// committed, it is made writable.
const StepReadmitted = "readmitted"

// errWaiting marks a failover that waits, with nothing to promote, for
// the operator or for the source to come back: the retries back off and
// the situation is logged once (Status.Advice says what to do).
var errWaiting = errors.New("failover: waiting: no candidate can be promoted")

// Backoff of the retries while nothing can be promoted: from the probe
// interval, doubling up to stuckMaxRetry.
const stuckMaxRetry = 30 * time.Second

// stuckState is the no-candidate wait of one operation. Run's goroutine
// only.
type stuckState struct {
	op       string        // the operation waiting
	key      string        // the situation (advice) last seen
	interval time.Duration // the retry interval now
	next     time.Time     // the next retry
	cands    string        // the candidates' fingerprint at the last retry
	// refused: the fenced source's GTID state at a re-admission that failed
	// (the log did not take its tail): not tried again until it changes.
	refused string
	// lastFence: when noCandidate last set read_only on the source (its
	// SET GLOBAL may wait for the commit lock up to lock_wait_timeout).
	lastFence time.Time
}

// retryDue reports whether the unfinished op may be retried now: always,
// unless it waits for a candidate or the source and its backoff has not run
// out. A change of the stored candidates ends the wait at once.
func (m *Manager) retryDue(op *Operation) bool {
	s := &m.stuck
	if op == nil || s.op != op.ID || op.Step != StepFenced {
		return true
	}
	if fp := m.candidatesFingerprint(); fp != s.cands {
		s.interval, s.cands = 0, fp
		return true
	}
	return !m.now().Before(s.next)
}

// candidatesFingerprint is the stored candidates' records, joined.
func (m *Manager) candidatesFingerprint() string {
	v, err := m.deps.Log.MetaPrefix(MetaCandidatePrefix)
	if err != nil {
		return ""
	}
	var parts []string
	for k, b := range v {
		parts = append(parts, k+"="+string(b))
	}
	sort.Strings(parts)
	return strings.Join(parts, ";")
}

// wait records that op waits with nothing to promote: advice is the one
// line for the operator (detail, the error behind it, is only audited). The first time a situation is seen it is logged
// and audited (auditOnce); after that only the backoff grows. It returns errWaiting
// wrapped with the advice.
func (m *Manager) wait(ctx context.Context, op *Operation, advice string, detail error) error {
	s := &m.stuck
	now := m.now()
	if s.op != op.ID || s.key != advice {
		s.op, s.key, s.interval = op.ID, advice, 0
		msg := advice
		if detail != nil {
			msg += " [" + detail.Error() + "]"
		}
		m.auditOnce(ctx, Record{OpID: op.ID, Kind: op.Kind, Step: "choose", Outcome: "waiting", OldSource: op.OldSource.Addr, Message: msg})
	}
	s.interval = nextRetry(s.interval, m.cfg.ProbeInterval)
	s.next = now.Add(s.interval)
	s.cands = m.candidatesFingerprint()
	iv := s.interval
	m.setStatus(func(st *Status) { st.Advice, st.RetryInterval = advice, iv.String() })
	return fmt.Errorf("%w: %s", errWaiting, advice)
}

// nextRetry is the retry interval after cur: first, doubling, capped at
// stuckMaxRetry. Pure.
func nextRetry(cur, first time.Duration) time.Duration {
	if cur <= 0 {
		return max(first, time.Millisecond)
	}
	return min(2*cur, stuckMaxRetry)
}

// unstick forgets the wait (something moved) and clears the status line.
func (m *Manager) unstick() {
	m.stuck = stuckState{refused: m.stuck.refused, lastFence: m.stuck.lastFence}
	m.setStatus(func(st *Status) { st.Advice, st.RetryInterval = "", "" })
}

// readmitCheck is what the fenced source was found to be. Pure data.
type readmitCheck struct {
	info ServerInfo
	// held: every GTID it holds (its binlog's back to the log, and its
	// GTID state), as the rejoin check reads them.
	held string
	// missing: how many of the log's transactions it lacks.
	missing uint64
	// tail: what it holds that the log lacks, binlogged after all the log
	// holds (never acknowledged: the ingest takes it from the log's
	// position). errant: what it holds that the log lacks otherwise.
	tail, errant []string
}

// noCandidate handles a failover with nothing to promote (cause): it
// re-admits the fenced source when it may, else waits.
func (m *Manager) noCandidate(ctx context.Context, op *Operation, cause error) error {
	addr := op.OldSource.Addr
	why := strings.TrimPrefix(strings.TrimPrefix(cause.Error(), ErrNoCandidate.Error()), ": ")
	// stays is the audit's detail: the choice's own error and what keeps
	// the source fenced.
	stays := func(e error) error {
		if e == nil {
			return fmt.Errorf("%w; the source stays fenced", cause)
		}
		return fmt.Errorf("%w; the source stays fenced: %w", cause, e)
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s, err := m.connectAdmin(cctx, addr, Candidate{})
	if err != nil {
		return m.wait(ctx, op, fmt.Sprintf("the source %s is fenced and unreachable and no candidate can be promoted (%s): "+
			"add one with binlogctl candidates add HOST:PORT --credential NAME, or bring the source back (it is re-admitted once it answers)", addr, why), stays(err))
	}
	defer s.Close()
	st, err := m.deps.Log.State()
	if err != nil {
		return err
	}
	kctx, kcancel := context.WithTimeout(cctx, 5*time.Second)
	chk, err := m.checkReadmit(kctx, s, st)
	kcancel()
	if err != nil {
		detail := err
		if chk.info.Flavor != "" && !chk.info.ReadOnly {
			// NB: it is writable (a source that restarted: read_only is
			// not persisted) and reading it failed: its clients' commits
			// wait for an ACK, which blocks reading its binlog (MariaDB).
			// Fence it again: ending them commits them unacknowledged (its
			// tail); the next retry reads it.
			m.stuck.lastFence = m.now()
			detail = fmt.Errorf("%w; it was writable: fenced again: %s", err, m.fenceOldSource(ctx, addr, true))
		}
		return m.wait(ctx, op, fmt.Sprintf("the source %s is fenced and no candidate can be promoted (%s); it answers but cannot be checked yet "+
			"(binlogctl history has why): add a candidate with binlogctl candidates add HOST:PORT --credential NAME; "+
			"the source is re-admitted once it can be checked", addr, why), stays(detail))
	}
	switch {
	case chk.info.Flavor != st.Flavor && st.Flavor != "":
		return m.wait(ctx, op, fmt.Sprintf("the source %s is fenced and no candidate can be promoted (%s); it answers but is %s and the log holds %s: "+
			"add a candidate with binlogctl candidates add HOST:PORT --credential NAME", addr, why, chk.info.Flavor, st.Flavor), stays(nil))
	case chk.missing > 0:
		return m.wait(ctx, op, fmt.Sprintf("the source %s is fenced and no candidate can be promoted (%s); it answers but lacks %d of the log's transactions, "+
			"so it is not re-admitted: add a candidate with binlogctl candidates add HOST:PORT --credential NAME", addr, why, chk.missing), stays(nil))
	case len(chk.errant) > 0:
		return m.wait(ctx, op, fmt.Sprintf("the source %s is fenced and no candidate can be promoted (%s); it answers but holds %d transactions the log lacks "+
			"and cannot take (%s), so it is not re-admitted: add a candidate with binlogctl candidates add HOST:PORT --credential NAME, "+
			"or remove them from it (binlogctl rejoin-check %s says how); it is re-admitted once it holds nothing the log lacks",
			addr, why, len(chk.errant), strings.Join(chk.errant, ","), addr), stays(nil))
	case m.stuck.refused != "" && m.stuck.refused == chk.info.GTIDs:
		return m.wait(ctx, op, fmt.Sprintf("the source %s is fenced and no candidate can be promoted (%s); its re-admission failed: the log did not take "+
			"its unacknowledged transactions (%s) within %v (binlogctl history): add a candidate with binlogctl candidates add HOST:PORT --credential NAME",
			addr, why, strings.Join(chk.tail, ","), m.cfg.ResumeTimeout), stays(nil))
	}
	return m.readmit(ctx, op, s, st, chk, why)
}

// checkReadmit reads the fenced source and compares it with the log.
func (m *Manager) checkReadmit(ctx context.Context, s Server, st logger.State) (readmitCheck, error) {
	var chk readmitCheck
	info, err := s.Info(ctx)
	if err != nil {
		return chk, err
	}
	chk.info = info
	if st.Flavor != "" && info.Flavor != st.Flavor {
		return chk, nil
	}
	if chk.held, err = m.heldGTIDs(ctx, s, info); err != nil {
		return chk, err
	}
	// NB: against what it holds, binlog included: a MySQL commit that the
	// log stored but whose ACK the fence stopped waits, binlogged but not
	// yet in gtid_executed; it commits once the re-admitted ingest ACKs it.
	if chk.missing, err = Missing(st.Flavor, st.GTIDs, chk.held); err != nil {
		return chk, err
	}
	extra, err := m.unlogged(st, chk.held)
	if err != nil {
		return chk, err
	}
	chk.tail, chk.errant, err = splitTail(st.Flavor, st.GTIDs, info.UUID, extra)
	return chk, err
}

// heldGTIDs is every GTID s holds, as the rejoin check reads them: its
// binlog's back to the first one the log holds (MySQL leaves a commit that
// waits for its ACK out of gtid_executed), and its GTID state.
func (m *Manager) heldGTIDs(ctx context.Context, s Server, info ServerInfo) (string, error) {
	g, err := s.BinlogGTIDs(ctx, func(g string) bool { in, err := m.deps.Log.HasGTID(g); return err == nil && in })
	if err != nil {
		return "", err
	}
	held := append(g, splitList(info.Held)...)
	if f, err := flavorNamed(info.Flavor); err == nil && f.CurrentPosHeld() {
		held = append(held, splitList(info.GTIDs)...)
	}
	return strings.Join(held, ","), nil
}

// unlogged lists the GTIDs of held that the log st lacks.
func (m *Manager) unlogged(st logger.State, held string) ([]string, error) {
	start, err := m.deps.Log.StartGTIDs()
	if err != nil {
		return nil, err
	}
	extra, err := Extra(st.Flavor, st.GTIDs, start, held, m.deps.Log.HasGTID)
	return dedupe(extra), err
}

// splitTail sorts the GTIDs a fenced source holds that the log lacks
// (extra) into its tail, which the ingest takes when it resumes from the
// log's position, and the rest. MariaDB: a tail GTID is in a domain the
// log holds, past the log's position there. MySQL: a tail run is the
// source's own (its server_uuid): auto-positioning sends all the log
// lacks. Pure.
func splitTail(flavor, log, uuid string, extra []string) (tail, errant []string, err error) {
	f, err := flavorNamed(flavor)
	if err != nil {
		return nil, nil, err
	}
	return f.SplitTail(log, uuid, extra)
}

// readmit records the fenced source as the log's source again under a new
// epoch, still read-only: the ingest resumes from it and takes its tail.
func (m *Manager) readmit(ctx context.Context, op *Operation, s Server, st logger.State, chk readmitCheck, why string) error {
	addr := op.OldSource.Addr
	if st.Epoch != op.FenceEpoch {
		op.Step, op.Message = StepAborted, fmt.Sprintf("the epoch moved to %d (source %s) outside this operation", st.Epoch, st.Source)
		_ = m.saveOp(ctx, op)
		m.audit(ctx, op, StepAborted, "failed", op.Message)
		return errors.New("failover: " + op.Message)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// NB: never fence the source: its pending fence is dropped before it
	// is the log's source again; a read_only the fencer sent is waited
	// out before it is made writable (stepWritable).
	sent, err := m.unpend(pctx, addr, "dropped", "it is re-admitted as the source ("+op.ID+")")
	if err != nil {
		return err
	}
	if sent.After(m.stuck.lastFence) {
		m.stuck.lastFence = sent
	}
	// NB: semi-sync on before it can be writable, as at a promotion: no
	// commit returns before the fleet stores it.
	if err := s.EnableSemiSyncSource(pctx, m.cfg.SemiSyncTimeout); err != nil {
		return err
	}
	src := logger.Source{Addr: addr, UUID: chk.info.UUID, ServerID: chk.info.ServerID, Flavor: chk.info.Flavor}
	res, err := m.deps.Log.Propose(pctx, &logger.SetSource{ExpectedEpoch: op.FenceEpoch, NewEpoch: op.FenceEpoch + 1, Source: src})
	if err != nil {
		return fmt.Errorf("failover: re-admitting %s: %w", addr, err)
	}
	if !res.Code.Stored() {
		if now, err := m.deps.Log.State(); err != nil || now.Epoch != op.FenceEpoch+1 || now.Source.Addr != addr || now.Source.Fenced {
			return fmt.Errorf("failover: re-admitting %s: %s: %s", addr, res.Code, res.Message)
		}
	}
	op.Target, op.NewEpoch, op.NewSource = addr, op.FenceEpoch+1, src
	tail := "nothing the log lacks"
	if len(chk.tail) > 0 {
		n, _ := countGTIDs(chk.info.Flavor, chk.tail)
		tail = fmt.Sprintf("its %d unacknowledged transactions (%s) are taken into the log before it is writable", n, strings.Join(chk.tail, ","))
	}
	msg := fmt.Sprintf("no candidate can be promoted (%s); the fenced source %s answers, holds all of the log (%s) and %s: "+
		"re-admitted as the source under epoch %d (read-only until the log holds all it committed)", why, addr, st.GTIDs, tail, op.NewEpoch)
	m.unstick()
	return m.advanceReadmit(ctx, op, StepReadmitted, msg)
}

// advanceReadmit records a re-admission step: the operation's step, and an
// audit record of kind readmit.
func (m *Manager) advanceReadmit(ctx context.Context, op *Operation, step, msg string) error {
	op.Step, op.Message = step, msg
	if err := m.saveOp(ctx, op); err != nil {
		return err
	}
	m.mu.Lock()
	m.onceAudits = nil
	m.mu.Unlock()
	st, err := m.deps.Log.State()
	if err != nil {
		return err
	}
	r := Record{OpID: op.ID, Kind: KindReadmit, Step: step, Outcome: "ok", Epoch: st.Epoch, OldSource: op.OldSource.Addr, NewSource: op.Target,
		GTIDs: st.GTIDs, Message: msg, Elapsed: m.now().Sub(op.Started).Round(time.Millisecond).String()}
	m.writeRecord(ctx, r)
	m.log.Warn("failover: re-admission", "op", op.ID, "step", step, "msg", msg)
	return nil
}

// stepWritable waits until the ingest streams from the re-admitted source
// and the log holds all it committed, then makes it writable. If the log
// does not take its tail in time, the source is fenced again.
func (m *Manager) stepWritable(ctx context.Context, op *Operation) error {
	st, err := m.deps.Log.State()
	if err != nil {
		return err
	}
	if st.Epoch != op.NewEpoch || st.Source.Addr != op.Target || st.Source.Fenced {
		op.Step, op.Message = StepAborted, fmt.Sprintf("the epoch moved to %d (source %s) outside this operation", st.Epoch, st.Source)
		_ = m.saveOp(ctx, op)
		m.audit(ctx, op, StepAborted, "failed", op.Message)
		return errors.New("failover: " + op.Message)
	}
	t0 := m.now()
	wctx, cancel := context.WithTimeout(ctx, m.cfg.ResumeTimeout)
	defer cancel()
	s, err := m.connectAdmin(wctx, op.Target, Candidate{})
	if err != nil {
		return err // NB: retried; the source stays read-only meanwhile
	}
	defer s.Close()
	info, err := s.Info(wctx)
	if err != nil {
		return err
	}
	held, err := m.heldGTIDs(wctx, s, info)
	if err != nil {
		return err
	}
	var lacks []string
	for {
		if st, err = m.deps.Log.State(); err != nil {
			return err
		}
		if lacks, err = m.unlogged(st, held); err != nil {
			return err
		}
		in := m.deps.Ingest()
		if len(lacks) == 0 && in.Streaming && in.Source == op.Target {
			// NB: what it commits from now on is binlogged after what the
			// log now holds, and the ingest streams it in order (a commit
			// waits for the fleet's ACK once it is writable).
			break
		}
		if wctx.Err() != nil {
			return m.refence(ctx, op, info.GTIDs, fmt.Sprintf("after %v the log still lacks %d of its transactions (%s); ingest: streaming %v from %q (%s)",
				m.cfg.ResumeTimeout, len(lacks), strings.Join(lacks, ","), in.Streaming, in.Source, in.LastError))
		}
		m.deps.Log.WaitApplied(20 * time.Millisecond)
	}
	if err := s.SetReadOnly(wctx, false); err != nil {
		return err
	}
	writable := m.now()
	// NB: a fence's SET GLOBAL read_only that waited for the commit lock
	// (held by commits that waited for an ACK, which the ingest now sends)
	// may still land, for up to lock_wait_timeout after it was sent: until
	// then, keep the source writable.
	settle := op.Started
	if m.stuck.lastFence.After(settle) {
		settle = m.stuck.lastFence
	}
	for settle = settle.Add(fenceLockWait); m.now().Before(settle) && wctx.Err() == nil; {
		time.Sleep(100 * time.Millisecond)
		if i, err := s.Info(wctx); err == nil && i.ReadOnly {
			if err := s.SetReadOnly(wctx, false); err != nil {
				return err
			}
		}
	}
	m.mu.Lock()
	m.lastContact = m.now()
	m.mu.Unlock()
	if st, err = m.deps.Log.State(); err != nil {
		return err
	}
	return m.advanceReadmit(ctx, op, StepResumed, fmt.Sprintf("%s is writable again (read_only off), semi-sync on; the log holds all it committed (log: %s) "+
		"and the ingest streams from it under epoch %d; writable %v after the failover started (%v after the re-admission)",
		op.Target, st.GTIDs, op.NewEpoch, writable.Sub(op.Started).Round(time.Millisecond), writable.Sub(t0).Round(time.Millisecond)))
}

// refence fences the re-admitted source again after the log failed to
// take its tail; it is not re-admitted again while its GTID state is gtids.
func (m *Manager) refence(ctx context.Context, op *Operation, gtids, why string) error {
	src := op.OldSource
	src.Fenced = true
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := m.deps.Log.Propose(pctx, &logger.SetSource{ExpectedEpoch: op.NewEpoch, NewEpoch: op.NewEpoch + 1, Source: src})
	if err != nil {
		return fmt.Errorf("failover: fencing %s again: %w", op.OldSource.Addr, err)
	}
	st, err := m.deps.Log.State()
	if err != nil {
		return fmt.Errorf("failover: fencing %s again: %w", op.OldSource.Addr, err)
	}
	if !res.Code.Stored() && !(st.Epoch == op.NewEpoch+1 && st.Source.Fenced) {
		return fmt.Errorf("failover: fencing %s again: %s: %s", op.OldSource.Addr, res.Code, res.Message)
	}
	m.stuck.refused = gtids
	msg := fmt.Sprintf("re-admission of %s abandoned: %s; fenced again (epoch %d -> %d)", op.OldSource.Addr, why, op.NewEpoch, st.Epoch)
	op.FenceEpoch, op.LogGTIDs, op.Target, op.NewEpoch, op.NewSource = st.Epoch, st.GTIDs, "", 0, logger.Source{}
	op.Step, op.Message = StepFenced, msg
	if err := m.saveOp(ctx, op); err != nil {
		return err
	}
	m.writeRecord(ctx, Record{OpID: op.ID, Kind: KindReadmit, Step: "readmit", Outcome: "failed", Epoch: st.Epoch, OldSource: op.OldSource.Addr, GTIDs: st.GTIDs, Message: msg})
	return errors.New("failover: " + msg)
}
