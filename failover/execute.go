package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
)

// failover starts a failover away from the log's current source.
func (m *Manager) failover(ctx context.Context, r Request, st logger.State) (*Operation, error) {
	now := m.now()
	old := st.Source
	old.Fenced = false
	op := &Operation{ID: fmt.Sprintf("%s-%d-%d", r.Kind, st.Epoch, now.Unix()), Kind: KindFailover, Forced: r.Force, Reason: r.Reason,
		Step: StepStarted, Started: now, OldSource: old, FromEpoch: st.Epoch, To: r.To}
	if st.Source.Fenced {
		op.FenceEpoch = st.Epoch // NB: already fenced (an aborted operation): continue from the fence
		op.Step = StepFenced
		op.LogGTIDs = st.GTIDs
	}
	if out, err := m.hook(ctx, m.cfg.PreHook, op); err != nil {
		m.mu.Lock()
		m.vetoedUntil = m.now().Add(m.cfg.Lease)
		m.mu.Unlock()
		m.auditOnce(ctx, Record{OpID: op.ID, Kind: op.Kind, Step: "pre-hook", Outcome: "vetoed", Epoch: st.Epoch, OldSource: old.Addr, Message: err.Error() + ": " + out})
		return nil, fmt.Errorf("%w: %v", ErrVetoed, err)
	}
	if err := m.saveOp(ctx, op); err != nil {
		return nil, err
	}
	m.audit(ctx, op, StepStarted, "ok", r.Reason)
	return op, m.execute(ctx, op)
}

// execute runs op's remaining steps. Every step is idempotent and recorded
// before the next begins, so a new leader resumes from the record.
func (m *Manager) execute(ctx context.Context, op *Operation) error {
	for !op.Finished() {
		var err error
		switch op.Step {
		case StepStarted:
			err = m.stepFence(ctx, op)
		case StepFenced:
			err = m.stepChoose(ctx, op)
		case StepChosen:
			err = m.stepCatchUp(ctx, op)
		case StepCaughtUp:
			err = m.stepPromote(ctx, op)
		case StepPromoted:
			err = m.stepResume(ctx, op)
		case StepReadmitted:
			err = m.stepWritable(ctx, op)
		case StepResumed:
			err = m.stepFinish(ctx, op)
		default:
			return fmt.Errorf("failover: operation %s has unknown step %q", op.ID, op.Step)
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) advance(ctx context.Context, op *Operation, step, msg string) error {
	op.Step, op.Message = step, msg
	if err := m.saveOp(ctx, op); err != nil {
		return err
	}
	m.mu.Lock()
	m.onceAudits = nil
	m.mu.Unlock()
	m.unstick()
	m.audit(ctx, op, step, "ok", msg)
	m.log.Info("failover step", "op", op.ID, "step", step, "msg", msg)
	return nil
}

// stepFence moves the epoch to a fence: from now on the log accepts
// nothing from the old source, so the old source can never get an ACK
// (rule 5). Then, best effort, the old source is fenced on the server
// (serverfence.go).
func (m *Manager) stepFence(ctx context.Context, op *Operation) error {
	st, err := m.deps.Log.State()
	if err != nil {
		return fmt.Errorf("failover: fencing: %w", err)
	}
	switch {
	case st.Epoch == op.FromEpoch:
		src := op.OldSource
		src.Fenced = true
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := m.deps.Log.Propose(pctx, &logger.SetSource{ExpectedEpoch: op.FromEpoch, NewEpoch: op.FromEpoch + 1, Source: src})
		cancel()
		if err != nil {
			return fmt.Errorf("failover: fencing: %w", err)
		}
		if !res.Code.Stored() && res.Code != logger.ResultStaleEpoch {
			return fmt.Errorf("failover: fencing: %s: %s", res.Code, res.Message)
		}
		return m.stepFence(ctx, op) // NB: re-read the state either way
	case st.Epoch == op.FromEpoch+1 && st.Source.Fenced:
		op.FenceEpoch = st.Epoch
	default:
		op.Step, op.Message = StepAborted, fmt.Sprintf("the epoch moved to %d (source %s) outside this operation", st.Epoch, st.Source)
		_ = m.saveOp(ctx, op)
		m.audit(ctx, op, StepAborted, "failed", op.Message)
		return errors.New("failover: " + op.Message)
	}
	op.LogGTIDs = st.GTIDs
	msg := fmt.Sprintf("epoch %d -> %d: nothing more is accepted from %s; the log holds %s", op.FromEpoch, op.FenceEpoch, op.OldSource.Addr, st.GTIDs)
	clients := op.Kind == KindFailover
	r := m.fence(ctx, op.OldSource.Addr, clients)
	msg += "; old source: " + r.msg
	if !r.done && clients {
		// NB: recorded before the step, so that a new leader resuming
		// from StepStarted tries the fence again and records it.
		if err := m.addPendingFence(ctx, op, r.msg); err != nil {
			return err
		}
		msg += "; its fence is retried until it answers (pending_fences in binlogctl failover status)"
	}
	return m.advance(ctx, op, StepFenced, msg)
}

// fenceOldSource makes the old source read-only and ends its client
// sessions, if it answers within a short bound, in the order that lets no
// client commit return success (serverfence.go), and says what it did.
// In a switchover it is read-only already: only the fleet's own dump
// session is ended, so that the ingest leaves it at once.
func (m *Manager) fenceOldSource(ctx context.Context, addr string, clients bool) string {
	return m.fence(ctx, addr, clients).msg
}

// Candidates observes every stored candidate against the log.
func (m *Manager) Candidates(ctx context.Context) ([]CandidateState, error) {
	cands, err := m.ListCandidates()
	if err != nil {
		return nil, err
	}
	st, err := m.deps.Log.State()
	if err != nil {
		return nil, err
	}
	start, err := m.deps.Log.StartGTIDs()
	if err != nil {
		return nil, err
	}
	out := make([]CandidateState, len(cands))
	var wg sync.WaitGroup
	for i, c := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = m.observe(ctx, c, st, start)
		}()
	}
	wg.Wait()
	return out, nil
}

func (m *Manager) observe(ctx context.Context, c Candidate, st logger.State, start string) CandidateState {
	cs := CandidateState{Candidate: c, IsSource: c.Addr == st.Source.Addr}
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := m.connectAdmin(octx, c.Addr, c)
	if err != nil {
		cs.Error = err.Error()
		return Judge(cs)
	}
	defer s.Close()
	info, err := s.Info(octx)
	if err != nil {
		cs.Reachable, cs.Error = true, err.Error()
		return Judge(cs)
	}
	cs.Reachable, cs.ServerID, cs.UUID, cs.GTIDs = true, info.ServerID, info.UUID, info.GTIDs
	if info.Flavor != st.Flavor && st.Flavor != "" {
		cs.Error = fmt.Sprintf("it is %s, the log holds %s", info.Flavor, st.Flavor)
		return Judge(cs)
	}
	if cs.Missing, err = Missing(st.Flavor, st.GTIDs, info.GTIDs); err != nil {
		cs.Error = err.Error()
	}
	if cs.Errant, err = m.errant(st, start, info.Held); err != nil {
		cs.Error = err.Error()
	}
	if cs.IsSource {
		cs.Missing = 0
	}
	return Judge(cs)
}

// errant returns what server GTIDs held hold that the log does not. NB:
// st was read before the server's GTIDs: the server may have replicated,
// from the fleet, transactions the log took in since. So a MySQL set is
// checked against the log as it is now (read after the server's), and
// again after the next apply, before anything is called errant (MariaDB's
// check looks each GTID up in the log as it is now anyway).
func (m *Manager) errant(st logger.State, start, held string) ([]string, error) {
	for try := 0; ; try++ {
		now, err := m.deps.Log.State()
		if err != nil {
			return nil, err
		}
		if now.Flavor == "" {
			now = st
		}
		extra, err := Extra(st.Flavor, now.GTIDs, start, held, m.deps.Log.HasGTID)
		if err != nil || len(extra) == 0 || try == 1 {
			return extra, err
		}
		m.deps.Log.WaitApplied(500 * time.Millisecond)
	}
}

// stepChoose picks the candidate. With none eligible the fenced source
// itself may be re-admitted (readmit.go); else it stays fenced, and the
// record and the status say why.
func (m *Manager) stepChoose(ctx context.Context, op *Operation) error {
	cands, err := m.Candidates(ctx)
	if err != nil {
		return err
	}
	c, err := Choose(cands, op.To)
	if errors.Is(err, ErrNoCandidate) {
		return m.noCandidate(ctx, op, err)
	}
	if err != nil {
		m.auditOnce(ctx, Record{OpID: op.ID, Kind: op.Kind, Step: "choose", Outcome: "waiting", OldSource: op.OldSource.Addr,
			Message: err.Error() + "; the source stays fenced"})
		return err
	}
	op.Target = c.Addr
	return m.advance(ctx, op, StepChosen, fmt.Sprintf("%s (priority %d, missing %d of the log's transactions)", c.Addr, c.Priority, c.Missing))
}

// stepCatchUp waits until the target has applied every transaction of the
// log (it replicates from the fleet), then stops its replication (rule 4).
func (m *Manager) stepCatchUp(ctx context.Context, op *Operation) error {
	c, err := m.candidate(op.Target)
	if err != nil {
		return m.rechoose(ctx, op, err)
	}
	cctx, cancel := context.WithTimeout(ctx, m.cfg.CatchUpTimeout)
	defer cancel()
	s, err := m.connectAdmin(cctx, c.Addr, c)
	if err != nil {
		return m.rechoose(ctx, op, err)
	}
	defer s.Close()
	st, err := m.deps.Log.State()
	if err != nil {
		return err
	}
	start, err := m.deps.Log.StartGTIDs()
	if err != nil {
		return err
	}
	t0 := m.now()
	started := false
	var first uint64
	defer m.setStatus(func(s *Status) { s.CatchUp = nil })
	for {
		info, err := s.Info(cctx)
		if err != nil {
			return m.rechoose(ctx, op, err)
		}
		extra, err := Extra(st.Flavor, op.LogGTIDs, start, info.Held, m.deps.Log.HasGTID)
		if err != nil {
			return m.rechoose(ctx, op, err)
		}
		if len(extra) > 0 {
			return m.rechoose(ctx, op, fmt.Errorf("%w: %s holds %s", ErrErrant, c.Addr, strings.Join(extra, ",")))
		}
		missing, err := Missing(st.Flavor, op.LogGTIDs, info.GTIDs)
		if err != nil {
			return m.rechoose(ctx, op, err)
		}
		if first == 0 {
			first = missing
		}
		cu := catchUpProgress(c.Addr, t0, first, missing, m.now())
		m.setStatus(func(s *Status) { s.CatchUp = &cu })
		if missing == 0 {
			if info.Replica.Configured || info.Replica.IORunning {
				if err := s.StopReplication(cctx); err != nil {
					return m.rechoose(ctx, op, err)
				}
				continue // NB: read once more after the stop
			}
			return m.advance(ctx, op, StepCaughtUp, fmt.Sprintf("%s applied the whole log (%s) in %v; its replication stopped",
				c.Addr, info.GTIDs, m.now().Sub(t0).Round(time.Millisecond)))
		}
		if !started && (!info.Replica.SQLRunning || !info.Replica.IORunning) && info.Replica.Configured {
			// NB: a stopped replica (a lagging SQL thread) is started, and
			// promoted only once it has caught up.
			_ = s.StartReplication(cctx)
			started = true
		}
		if info.Replica.LastError != "" && !info.Replica.SQLRunning {
			return m.rechoose(ctx, op, fmt.Errorf("%s: replication error: %s", c.Addr, info.Replica.LastError))
		}
		select {
		case <-cctx.Done():
			return m.rechoose(ctx, op, fmt.Errorf("%w: %s still misses %d transactions after %v", ErrNotCaughtUp, c.Addr, missing, m.cfg.CatchUpTimeout))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// rechoose goes back to choosing after the target failed.
func (m *Manager) rechoose(ctx context.Context, op *Operation, cause error) error {
	m.audit(ctx, op, "catch-up", "failed", cause.Error())
	op.Target = ""
	op.Step, op.Message = StepFenced, cause.Error()
	if err := m.saveOp(ctx, op); err != nil {
		return err
	}
	return cause
}

func (m *Manager) candidate(addr string) (Candidate, error) {
	v, ok, err := m.deps.Log.Meta(MetaCandidatePrefix + addr)
	if err != nil || !ok {
		return Candidate{Addr: addr}, err // NB: e.g. the old source in a switchover
	}
	var c Candidate
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("failover: candidate %s: %v", addr, err)
	}
	return c, nil
}

// stepPromote makes the target a semi-sync source, writable, and the
// log's source.
func (m *Manager) stepPromote(ctx context.Context, op *Operation) error {
	st, err := m.deps.Log.State()
	if err != nil {
		return err
	}
	if st.Epoch == op.FenceEpoch+1 && st.Source.Addr == op.Target && !st.Source.Fenced {
		op.NewEpoch, op.NewSource = st.Epoch, st.Source
		return m.advance(ctx, op, StepPromoted, "already the log's source")
	}
	if st.Epoch != op.FenceEpoch {
		op.Step, op.Message = StepAborted, fmt.Sprintf("the epoch moved to %d (source %s) outside this operation", st.Epoch, st.Source)
		_ = m.saveOp(ctx, op)
		m.audit(ctx, op, StepAborted, "failed", op.Message)
		return errors.New("failover: " + op.Message)
	}
	c, err := m.candidate(op.Target)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// NB: never fence the source: a pending fence of the target (an old
	// source promoted again) is dropped before it is made writable.
	if _, err := m.unpend(pctx, c.Addr, "dropped", "it is promoted to be the source ("+op.ID+")"); err != nil {
		return err
	}
	s, err := m.connectAdmin(pctx, c.Addr, c)
	if err != nil {
		return err
	}
	defer s.Close()
	// NB: semi-sync before writable: no commit returns before the fleet
	// stores it, even the first one.
	if err := s.EnableSemiSyncSource(pctx, m.cfg.SemiSyncTimeout); err != nil {
		return err
	}
	if err := s.SetReadOnly(pctx, false); err != nil {
		return err
	}
	info, err := s.Info(pctx)
	if err != nil {
		return err
	}
	if n, err := Missing(st.Flavor, op.LogGTIDs, info.GTIDs); err != nil || n > 0 {
		return m.rechoose(ctx, op, fmt.Errorf("%w: %s misses %d transactions at promotion (%v)", ErrNotCaughtUp, c.Addr, n, err))
	}
	src := logger.Source{Addr: c.Addr, UUID: info.UUID, ServerID: info.ServerID, Flavor: info.Flavor}
	res, err := m.deps.Log.Propose(pctx, &logger.SetSource{ExpectedEpoch: op.FenceEpoch, NewEpoch: op.FenceEpoch + 1, Source: src})
	if err != nil {
		return fmt.Errorf("failover: set-source to %s: %w", c.Addr, err)
	}
	if !res.Code.Stored() {
		return m.stepPromote(ctx, op) // NB: stale epoch: re-read; a retry may have applied it
	}
	op.NewEpoch, op.NewSource = op.FenceEpoch+1, src
	return m.advance(ctx, op, StepPromoted, fmt.Sprintf("%s is writable with semi-sync on (AFTER_SYNC, timeout %v); epoch %d, server_id %d",
		c.Addr, m.cfg.SemiSyncTimeout, op.NewEpoch, info.ServerID))
}

// stepResume waits until the ingest streams from the new source.
func (m *Manager) stepResume(ctx context.Context, op *Operation) error {
	deadline := m.now().Add(m.cfg.ResumeTimeout)
	for {
		in := m.deps.Ingest()
		if in.Streaming && in.Source == op.Target {
			break
		}
		if m.now().After(deadline) {
			m.audit(ctx, op, "resume", "failed", fmt.Sprintf("the ingest does not stream from %s after %v (%s); it keeps retrying", op.Target, m.cfg.ResumeTimeout, in.LastError))
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	m.mu.Lock()
	m.lastContact = m.now()
	m.mu.Unlock()
	msg := "the ingest streams from " + op.Target
	if op.Kind == KindSwitchover {
		msg += "; old source: " + m.demoteOldSource(ctx, op)
	}
	return m.advance(ctx, op, StepResumed, msg)
}

// demoteOldSource makes the old source of a switchover a replica of the
// fleet.
func (m *Manager) demoteOldSource(ctx context.Context, op *Operation) string {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep, err := m.RejoinCheck(dctx, op.OldSource.Addr)
	if err != nil {
		return "read-only; not re-pointed: " + err.Error()
	}
	if !rep.Safe {
		return "read-only; not re-pointed: " + rep.Advice
	}
	c, err := m.candidate(op.OldSource.Addr)
	if err != nil {
		return "not re-pointed: " + err.Error()
	}
	s, err := m.connectAdmin(dctx, op.OldSource.Addr, c)
	if err != nil {
		return "unreachable: " + err.Error()
	}
	defer s.Close()
	if err := s.DisableSemiSyncSource(dctx); err != nil {
		return err.Error()
	}
	if m.deps.FleetAddr == "" {
		return "read-only; not re-pointed: no fleet dump address (--failover-fleet-addr or --dump-addr)"
	}
	if err := s.ReplicateFrom(dctx, m.deps.FleetAddr, m.deps.FleetCred, true); err != nil {
		return err.Error()
	}
	return "replicates from the fleet at " + m.deps.FleetAddr
}

// stepFinish runs the post hook and closes the operation.
func (m *Manager) stepFinish(ctx context.Context, op *Operation) error {
	msg := fmt.Sprintf("%s -> %s in %v", op.OldSource.Addr, op.Target, m.now().Sub(op.Started).Round(time.Millisecond))
	if out, err := m.hook(ctx, m.cfg.PostHook, op); err != nil {
		msg += "; post-failover hook failed: " + err.Error() + ": " + out
	} else if m.cfg.PostHook != "" {
		msg += "; post-failover hook ran"
	}
	return m.advance(ctx, op, StepDone, msg)
}

// catchUpProgress is the target's progress: it lacked first of the log's
// transactions at since and lacks missing at now.
func catchUpProgress(target string, since time.Time, first, missing uint64, now time.Time) api.CatchUp {
	cu := api.CatchUp{Target: target, Since: since, Missing: missing, Total: max(first, missing), ETASeconds: -1}
	if missing == 0 {
		cu.ETASeconds = 0
	}
	el := now.Sub(since).Seconds()
	if done := cu.Total - missing; done > 0 && el > 0 {
		cu.Rate = float64(done) / el
		if missing > 0 {
			cu.ETASeconds = float64(missing) / cu.Rate
		}
	}
	return cu
}
