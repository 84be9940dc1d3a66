package learner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
)

// Outcome is what a membership change did.
type Outcome = api.Outcome

// Apply checks a change against a fresh view and carries it out. A refusal
// is a *RefusedError (ErrBadInput, ErrUnknownMember, ErrUnsafe) and changes
// nothing.
func (mg *Manager) Apply(ctx context.Context, c Change) (Outcome, error) {
	mg.opMu.Lock()
	defer mg.opMu.Unlock()
	out, err := mg.apply(ctx, c)
	mg.m.changes.WithLabelValues(c.Op, result(err)).Inc()
	if err != nil {
		mg.log.Warn("membership change not made", "op", c.Op, "id", c.ID, "err", err)
	} else {
		mg.log.Info("membership change made", "op", c.Op, "id", c.ID, "new_id", c.NewID, "addr", c.Addr, "result", out.Message)
	}
	return out, err
}

func (mg *Manager) apply(ctx context.Context, c Change) (Outcome, error) {
	out := Outcome{Op: c.Op, ID: c.ID, NewID: c.NewID, Addr: c.Addr}
	// NB: the configuration change id is read before the view, so a change
	// made by someone else in between fails the ordered change (ErrConflict)
	// instead of slipping past the check.
	ccid, err := mg.ch.ConfigChangeID(ctx)
	if err != nil {
		return out, err
	}
	v, err := mg.Refresh(ctx)
	if err != nil {
		return out, err
	}
	if c.Op == OpDemote && c.NewID == 0 {
		c.NewID = NextID(v)
		out.NewID = c.NewID
	}
	if err := Check(v, c, mg.cfg.Limits()); err != nil {
		return out, err
	}
	m, _ := v.Get(c.ID)
	switch c.Op {
	case OpAddLearner:
		if c.AdminAddr != "" {
			if err := ValidateAddr(c.AdminAddr); err != nil {
				return out, err
			}
		}
		if err := mg.ch.AddLearner(ctx, ccid, c.ID, c.Addr); err != nil {
			return out, err
		}
		if c.AdminAddr != "" {
			// NB: the member overwrites it with its own once it runs.
			res, err := mg.d.Node.Propose(ctx, &logger.Meta{Key: fmt.Sprintf(MetaAdminAddr, c.ID), Value: []byte(c.AdminAddr)})
			if err != nil || !res.Code.Stored() {
				mg.log.Warn("cannot record the new learner's admin address; its progress shows once it registers", "id", c.ID, "err", err, "result", res.Code)
			}
		}
		out.Message = fmt.Sprintf("member %d added as a learner at %s; start it with --id %d --raft-addr %s --join --role learner", c.ID, c.Addr, c.ID, c.Addr)
	case OpPromote:
		if err := mg.ch.Promote(ctx, ccid, c.ID, m.RaftAddr); err != nil {
			return out, err
		}
		out.Message = fmt.Sprintf("member %d is a logger now (it votes and counts toward the ACK quorum)", c.ID)
	case OpRemove, OpDemote:
		if m.Leader {
			to, err := mg.moveLeadership(ctx, v, c.ID)
			if err != nil {
				return out, err
			}
			if ccid, err = mg.ch.ConfigChangeID(ctx); err != nil {
				return out, err
			}
			out.Leader = to
		}
		addr := c.Addr
		if addr == "" {
			addr = m.RaftAddr
		}
		next := removedNext(c.ID)
		if c.Op == OpDemote {
			next = demotedNext(c.NewID, addr)
		}
		mg.recordRemoval(ctx, c, next)
		if err := mg.ch.Remove(ctx, ccid, c.ID); err != nil {
			mg.forgetRemoval(ctx, c.ID)
			return out, err
		}
		out.Message = fmt.Sprintf("member %d removed from the group (its process logs so and exits)", c.ID)
		if c.Op == OpDemote {
			out.Addr = addr
			if err := mg.addLearnerAfterRemoval(ctx, c.NewID, addr); err != nil {
				return out, fmt.Errorf("logger %d was removed, but adding it back as learner %d failed (add it with add-learner): %w", c.ID, c.NewID, err)
			}
			out.Message = fmt.Sprintf("logger %d demoted: it left the voters and rejoins as learner %d at %s; restart its process with --id %d --join --role learner and a fresh --data-dir",
				c.ID, c.NewID, addr, c.NewID)
		}
	case OpTransferLeader:
		if m.Leader {
			out.Leader, out.Message = c.ID, fmt.Sprintf("member %d leads already", c.ID)
			return out, nil
		}
		if err := mg.ch.TransferLeader(ctx, c.ID); err != nil {
			return out, err
		}
		out.Leader, out.Message = c.ID, fmt.Sprintf("member %d leads now", c.ID)
	case OpWeight:
		if err := mg.setWeight(ctx, c.ID, c.Weight); err != nil {
			return out, err
		}
		out.Message = fmt.Sprintf("member %d weighs %d now", c.ID, c.Weight)
	}
	return out, nil
}

// moveLeadership hands leadership from the member about to leave to the
// best other caught-up logger, so the change does not cost an election.
func (mg *Manager) moveLeadership(ctx context.Context, v View, leaving uint64) (uint64, error) {
	var best Member
	for _, m := range v.Loggers() {
		if m.ID == leaving || !m.CaughtUp || !m.Reachable {
			continue
		}
		if best.ID == 0 || m.Weight > best.Weight {
			best = m
		}
	}
	if best.ID == 0 {
		return 0, refuse(ErrUnsafe, "member %d leads and no other logger is caught up to take over", leaving)
	}
	mg.mu.Lock()
	mg.lastHandoff = time.Now() // NB: no weight-based handoff right after
	mg.mu.Unlock()
	if err := mg.ch.TransferLeader(ctx, best.ID); err != nil {
		return 0, err
	}
	return best.ID, nil
}

// Hold is a file the group purge must keep, and why.
type Hold = api.Hold

// PurgePlan is the answer to a purge request.
type PurgePlan = api.PurgePlan

// PlanPurge decides how far a group purge up to upTo may go: never past a
// file a catching-up learner has not applied, a replica of any member
// still reads (or read when it disconnected, within --replica-hold-ttl:
// View.ReplicaHolds), or, for a member whose position is unknown,
// anything. Pure.
func PlanPurge(v View, upTo uint32) PurgePlan {
	p := PurgePlan{Requested: upTo, UpTo: upTo}
	hold := func(f uint32, by, why string) {
		if f < upTo {
			p.Holds = append(p.Holds, Hold{File: f, Name: logger.FileName(max(f, 1)), By: by, Why: why})
			p.UpTo = min(p.UpTo, f)
		}
	}
	if !v.Complete {
		hold(0, "the group", "the leader's state is unknown: no purge without a leader")
	}
	for _, m := range v.Members {
		who := fmt.Sprintf("member %d (%s)", m.ID, m.Role)
		switch {
		case !m.Reachable:
			hold(0, who, "unreachable: what it still needs is unknown (remove it, or force)")
			continue
		case m.Role == RoleLearner && !m.CaughtUp:
			hold(m.File, who, fmt.Sprintf("catching up: it has applied up to %s:%d", logger.FileName(max(m.File, 1)), m.Pos))
		}
		for _, r := range m.Replicas {
			if r.File == 0 {
				continue
			}
			hold(r.File, fmt.Sprintf("replica server_id %d (%s) of member %d", r.ServerID, r.Remote, m.ID), fmt.Sprintf("it reads %s:%d", logger.FileName(r.File), r.Pos))
		}
	}
	for _, h := range v.ReplicaHolds {
		if h.Connected {
			continue // NB: held above, through its member's report
		}
		age := time.Duration(h.AgeSeconds * float64(time.Second)).Round(time.Second)
		from := fmt.Sprintf("member %d", h.Member)
		if h.Remote != "" {
			from = h.Remote + " of " + from
		}
		hold(h.File, fmt.Sprintf("replica server_id %d (%s, disconnected %v ago)", h.ServerID, from, age),
			fmt.Sprintf("it had read up to %s:%d; held until %s (--replica-hold-ttl), or until it reconnects and reads on",
				logger.FileName(h.File), h.Pos, h.Expires.UTC().Format(time.RFC3339)))
	}
	return p
}

// Purge removes the files below upTo from every member, unless a hold
// keeps them: then it purges nothing and says why, or, with force, purges
// anyway. dry only plans.
func (mg *Manager) Purge(ctx context.Context, upTo uint32, force, dry bool) (PurgePlan, error) {
	mg.opMu.Lock()
	defer mg.opMu.Unlock()
	v, err := mg.Refresh(ctx)
	if err != nil {
		return PurgePlan{}, err
	}
	rd := mg.d.Node.Reader()
	if rd == nil {
		return PurgePlan{}, fmt.Errorf("%w: the log is not open yet", ErrRetry)
	}
	st := rd.State()
	if upTo == 0 || upTo > st.File {
		return PurgePlan{}, refuse(ErrBadInput, "purge up to %s: the log's files are %s .. %s (the open file is never purged)",
			logger.FileName(max(upTo, 1)), logger.FileName(max(st.FirstFile, 1)), logger.FileName(max(st.File, 1)))
	}
	p := PlanPurge(v, upTo)
	target := p.UpTo
	if force {
		target, p.Forced = upTo, len(p.Holds) > 0
	}
	switch {
	case target <= st.FirstFile && len(p.Holds) > 0 && !force:
		p.Message = fmt.Sprintf("nothing purged: every file below %s is held", logger.FileName(upTo))
		mg.m.purges.WithLabelValues("refused").Inc()
		return p, refuse(ErrUnsafe, "purge up to %s refused: %s (binlogctl purge --force overrides)", logger.FileName(upTo), holdsText(p.Holds))
	case target <= st.FirstFile:
		p.Message = fmt.Sprintf("nothing to purge: the group's oldest file is %s", logger.FileName(max(st.FirstFile, 1)))
		return p, nil
	case dry:
		p.Message = fmt.Sprintf("would purge the files below %s", logger.FileName(target))
		return p, nil
	}
	if len(p.Holds) > 0 && !force && target < upTo {
		// NB: purge what is safe, and say what is held.
		p.Message = fmt.Sprintf("purged below %s only: %s", logger.FileName(target), holdsText(p.Holds))
	}
	pctx, cancel := context.WithTimeout(ctx, mg.cfg.Timeout)
	defer cancel()
	res, err := mg.d.Node.Propose(pctx, &logger.Purge{UpTo: target})
	if err != nil {
		mg.m.purges.WithLabelValues("error").Inc()
		return p, fmt.Errorf("%w: proposing the purge: %v", ErrRetry, err)
	}
	if !res.Code.Stored() {
		mg.m.purges.WithLabelValues("error").Inc()
		return p, refuse(ErrBadInput, "the log refused the purge: %s: %s", res.Code, res.Message)
	}
	p.Done = true
	p.FirstFile = logger.FileName(target)
	label := "ok"
	if p.Forced {
		label = "forced"
		p.Message = fmt.Sprintf("forced: purged below %s despite: %s", logger.FileName(target), holdsText(p.Holds))
		mg.log.Warn("forced purge", "up_to", logger.FileName(target), "overrode", holdsText(p.Holds))
	} else if p.Message == "" {
		p.Message = fmt.Sprintf("purged the files below %s on every member", logger.FileName(target))
	} else {
		label = "partial"
	}
	mg.m.purges.WithLabelValues(label).Inc()
	mg.log.Info("group purge", "up_to", logger.FileName(target), "message", p.Message)
	return p, nil
}

func holdsText(hs []Hold) string {
	s := ""
	for i, h := range hs {
		if i > 0 {
			s += "; "
		}
		s += fmt.Sprintf("%s is held by %s: %s", h.Name, h.By, h.Why)
	}
	return s
}

// IsRefusal reports whether err is a refusal (nothing was changed).
func IsRefusal(err error) bool {
	var re *RefusedError
	return errors.As(err, &re)
}

// addLearnerAfterRemoval adds learner id right after a removal. The
// leader's raft drops a configuration change proposed while the previous
// one is still pending there ("dropped config change, pending change"),
// which can outlast the removal's own result by a moment; the dropped add
// then times out. So an add whose outcome is unknown is retried, with the
// configuration change id read again, until the membership shows the
// learner or two more attempts have failed too.
func (mg *Manager) addLearnerAfterRemoval(ctx context.Context, id uint64, addr string) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		// NB: a moment for the leader's raft to take the removal in; a
		// dropped add costs a whole change timeout.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		var ccid uint64
		if ccid, err = mg.ch.ConfigChangeID(ctx); err == nil {
			if err = mg.ch.AddLearner(ctx, ccid, id, addr); err == nil {
				return nil
			}
		}
		if !errors.Is(err, ErrRetry) && !errors.Is(err, ErrConflict) {
			return err
		}
		// NB: the add may have been applied after all.
		if m, merr := mg.ch.Membership(ctx, mg.cfg.Timeout); merr == nil {
			if got, ok := m.NonVotings[id]; ok && got == addr {
				return nil
			}
		}
	}
	return err
}
