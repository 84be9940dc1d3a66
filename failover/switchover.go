package failover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
)

// switchover is a planned change of source with zero loss: the old source
// turns read-only, the log is allowed to take everything it committed,
// then the same steps as a failover run (fence, catch up, promote,
// resume), and the old source becomes a replica of the fleet.
func (m *Manager) switchover(ctx context.Context, r Request, st logger.State) (*Operation, error) {
	if r.To == "" {
		return nil, errors.New("failover: a switchover needs a target (binlogctl promote --to HOST:PORT)")
	}
	if st.Epoch == 0 || st.Source.Fenced {
		return nil, fmt.Errorf("failover: the source %q is fenced or unset: use binlogctl failover", st.Source)
	}
	cands, err := m.Candidates(ctx)
	if err != nil {
		return nil, err
	}
	c, err := Choose(cands, r.To)
	if err != nil {
		return nil, err
	}
	now := m.now()
	op := &Operation{ID: fmt.Sprintf("%s-%d-%d", KindSwitchover, st.Epoch, now.Unix()), Kind: KindSwitchover, Reason: r.Reason,
		Step: StepStarted, Started: now, OldSource: st.Source, FromEpoch: st.Epoch, To: c.Addr}
	if out, err := m.hook(ctx, m.cfg.PreHook, op); err != nil {
		m.writeRecord(ctx, Record{OpID: op.ID, Kind: op.Kind, Step: "pre-hook", Outcome: "vetoed", Epoch: st.Epoch, OldSource: st.Source.Addr, Message: err.Error() + ": " + out})
		return nil, fmt.Errorf("%w: %v: %s", ErrVetoed, err, out)
	}
	if err := m.saveOp(ctx, op); err != nil {
		return nil, err
	}
	m.audit(ctx, op, StepStarted, "ok", fmt.Sprintf("switchover %s -> %s", st.Source.Addr, c.Addr))
	if err := m.drainOldSource(ctx, op); err != nil {
		op.Step, op.Message = StepAborted, err.Error()
		_ = m.saveOp(ctx, op)
		m.audit(ctx, op, StepAborted, "failed", err.Error())
		return op, err
	}
	return op, m.execute(ctx, op)
}

// drainOldSource makes the old source read-only and waits until the log
// holds every transaction it committed. On failure it makes the source
// writable again.
func (m *Manager) drainOldSource(ctx context.Context, op *Operation) error {
	dctx, cancel := context.WithTimeout(ctx, m.cfg.SwitchoverTimeout)
	defer cancel()
	c, err := m.candidate(op.OldSource.Addr)
	if err != nil {
		return fmt.Errorf("failover: the old source: %w", err)
	}
	s, err := m.connectAdmin(dctx, op.OldSource.Addr, c)
	if err != nil {
		return fmt.Errorf("failover: the old source: %w", err)
	}
	defer s.Close()
	wctx, wcancel := context.WithTimeout(dctx, m.cfg.SwitchoverTimeout/3)
	m.waitTargetClose(wctx, op.To)
	wcancel()
	if err := s.SetReadOnly(dctx, true); err != nil {
		return fmt.Errorf("failover: making the old source read-only: %w", err)
	}
	t0 := m.now()
	var info ServerInfo
	// NB: read the old source's state until the log holds it and it has
	// not moved since (a session with READ_ONLY ADMIN/SUPER ignores
	// read_only; what it commits after the fence is never ACKed, and the
	// rejoin check keeps such a server from replicating).
	var prev string
	for err == nil {
		if info, err = s.Info(dctx); err != nil {
			break
		}
		var st logger.State
		if st, err = m.deps.Log.State(); err != nil {
			break
		}
		var n uint64
		if n, err = Missing(st.Flavor, info.GTIDs, st.GTIDs); err != nil {
			break
		}
		if n == 0 && info.GTIDs == prev {
			break
		}
		if n == 0 {
			prev = info.GTIDs
			continue
		}
		if dctx.Err() != nil {
			err = fmt.Errorf("the log still lacks %d of the old source's transactions after %v (is the ingest streaming?)", n, m.cfg.SwitchoverTimeout)
			break
		}
		m.deps.Log.WaitApplied(10 * time.Millisecond)
	}
	if err != nil {
		uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ucancel()
		_ = s.SetReadOnly(uctx, false)
		return fmt.Errorf("failover: switchover abandoned, the old source is writable again: %w", err)
	}
	m.audit(ctx, op, "drained", "ok", fmt.Sprintf("%s is read-only; the log holds all it committed (%s) after %v", op.OldSource.Addr, info.GTIDs, m.now().Sub(t0).Round(time.Millisecond)))
	return nil
}

// waitTargetClose waits (bounded by ctx) until the switchover's target is
// at most 50 transactions behind the log, so that the writes pause only
// for the last ones: a replica far behind would make them wait for all.
func (m *Manager) waitTargetClose(ctx context.Context, addr string) {
	c, err := m.candidate(addr)
	if err != nil {
		return
	}
	s, err := m.connectAdmin(ctx, addr, c)
	if err != nil {
		return
	}
	defer s.Close()
	for ctx.Err() == nil {
		info, err := s.Info(ctx)
		if err != nil {
			return
		}
		st, err := m.deps.Log.State()
		if err != nil {
			return
		}
		if n, err := Missing(st.Flavor, st.GTIDs, info.GTIDs); err != nil || n <= 50 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
