package learner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lni/dragonboat/v4"

	"github.com/binlogsvr/binlogsvr/logger"
)

// A member removed from the group (remove, or the old id of a demoted
// logger) can never take part again under its id: dragonboat stops its
// replica when it applies its own removal. The member then says so, once,
// in its log and status, and its daemon exits (ExitRemoved); the marker
// file it leaves in its data directory makes a restart on the same data
// directory refuse to start with the same message instead of looping.

// MetaRemoved holds, per member id, who removed it and what to do next
// (a Removal in JSON). It is written just before the configuration change,
// so the removed member has applied it when it applies its own removal.
const MetaRemoved = "member.%d.removed"

// RemovedMarker is the file a removed member leaves in its data directory.
const RemovedMarker = "REMOVED"

// Removal says who removed a member, when, and what the operator does next.
type Removal struct {
	ID uint64 `json:"id"`
	// Op is the operation (remove, demote); By who asked, through which
	// member (the admin caller, as the audit trail names it).
	Op string    `json:"op"`
	By string    `json:"by,omitempty"`
	At time.Time `json:"at,omitzero"`
	// Next is what to do to bring the machine back into the group.
	Next string `json:"next"`
	// Notified: the removed member confirmed it was told (Deps.Notify).
	Notified bool `json:"notified,omitempty"`
}

// Message is the one line a removed member logs, shows in its status and
// refuses to restart with.
func (r Removal) Message() string {
	by := r.By
	if by == "" {
		by = "a membership change (see the leader's log and binlogctl history)"
	}
	at := ""
	if !r.At.IsZero() {
		at = " at " + r.At.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("member %d was removed from the group (%s) by %s%s; it no longer stores or serves the log. %s", r.ID, orOp(r.Op), by, at, r.Next)
}

func orOp(op string) string {
	if op == "" {
		return OpRemove
	}
	return op
}

// removedNext is the advice for a member removed with remove.
func removedNext(id uint64) string {
	return fmt.Sprintf("To bring this machine back: wipe its --data-dir, add it again under a new id (binlogctl add-learner NEW_ID --raft-addr HOST:PORT; id %d is never reused) and start it with --id NEW_ID --join --role learner", id)
}

// RemovedError is returned by Manager.Run when this member was removed,
// and by CheckRemovedMarker for a data directory of a removed member.
type RemovedError struct{ Removal Removal }

func (e *RemovedError) Error() string { return e.Removal.Message() }

// ErrRemoved is the class of RemovedError (errors.Is).
var ErrRemoved = errors.New("learner: member removed from the group")

func (e *RemovedError) Is(target error) bool { return target == ErrRemoved }

// WriteRemovedMarker leaves the marker in dir (fsync'd).
func WriteRemovedMarker(dir string, r Removal) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(dir, RemovedMarker)
	f, err := os.OpenFile(p+".tmp", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// CheckRemovedMarker returns a *RemovedError if dir belongs to a member
// that was removed from the group, nil otherwise.
func CheckRemovedMarker(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, RemovedMarker))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("learner: reading %s: %w", filepath.Join(dir, RemovedMarker), err)
	}
	var r Removal
	if err := json.Unmarshal(b, &r); err != nil || r.ID == 0 {
		return fmt.Errorf("learner: %s is not a removal record (%v): this data directory belonged to a member removed from the group; wipe it to reuse the machine",
			filepath.Join(dir, RemovedMarker), err)
	}
	return &RemovedError{Removal: r}
}

// recordRemoval writes who removes member id into the log before the
// configuration change.
func (mg *Manager) recordRemoval(ctx context.Context, c Change, next string) {
	r := Removal{ID: c.ID, Op: c.Op, By: c.By, At: time.Now().UTC(), Next: next}
	b, _ := json.Marshal(r)
	pctx, cancel := context.WithTimeout(ctx, mg.cfg.Timeout)
	defer cancel()
	res, err := mg.d.Node.Propose(pctx, &logger.Meta{Key: fmt.Sprintf(MetaRemoved, c.ID), Value: b})
	if err != nil || !res.Code.Stored() {
		// NB: the removal goes ahead; the removed member then names no caller.
		mg.log.Warn("cannot record who removes the member; it is removed all the same", "id", c.ID, "err", err, "result", res.Code)
	}
}

// forgetRemoval deletes the record of a removal that did not happen.
func (mg *Manager) forgetRemoval(ctx context.Context, id uint64) {
	pctx, cancel := context.WithTimeout(ctx, mg.cfg.Timeout)
	defer cancel()
	_, _ = mg.d.Node.Propose(pctx, &logger.Meta{Key: fmt.Sprintf(MetaRemoved, id)})
}

// selfRemoved reports whether this member's replica was removed from the
// group, given the error of a membership read: dragonboat stopped the
// replica after it applied its own removal (its calls fail with
// ErrStopped while the daemon still runs).
func (mg *Manager) selfRemoved(err error) (Removal, bool) {
	self := mg.d.Node.Config().ReplicaID
	if err == nil || !errors.Is(err, ErrStopped) {
		return Removal{}, false
	}
	if !mg.removedInLocalView() {
		return Removal{}, false
	}
	r := Removal{ID: self, Op: OpRemove, Next: removedNext(self)}
	if rec := mg.selfRec.Load(); rec != nil {
		r = *rec
	}
	if rd := mg.d.Node.Reader(); rd != nil {
		if b, ok, err := rd.Meta(fmt.Sprintf(MetaRemoved, self)); err == nil && ok {
			var rec Removal
			if json.Unmarshal(b, &rec) == nil && rec.ID == self {
				r = rec
			}
		}
	}
	return r, true
}

// cacheRemoval keeps the log's record of this member's removal, seen by
// a refresh before the removal stops the replica (and closes its log).
func (mg *Manager) cacheRemoval(id uint64, v []byte) {
	if id != mg.d.Node.Config().ReplicaID {
		return
	}
	var rec Removal
	if json.Unmarshal(v, &rec) == nil && rec.ID == id {
		mg.selfRec.Store(&rec)
	}
}

// removedInLocalView reports whether dragonboat no longer runs this
// member's replica of the shard while the NodeHost still runs: it stops a
// replica (and forgets its shard) when the replica applies its own
// removal, and nothing else stops one before the daemon closes the node.
func (mg *Manager) removedInLocalView() bool {
	info := mg.d.Node.NodeHost().GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
	if info == nil {
		return false // NB: the NodeHost is closing
	}
	shard := mg.d.Node.Config().ShardID
	for _, si := range info.ShardInfoList {
		if si.ShardID == shard {
			return false
		}
	}
	return true
}

// MarkRemoved is how the group tells this member it was removed (the
// leader calls Deps.Notify, which reaches it through the admin API): a
// member removed while it was down or cut off never applies its own
// removal, and would otherwise wait for the group for ever. Run then
// returns the *RemovedError.
func (mg *Manager) MarkRemoved(r Removal) error {
	if self := mg.d.Node.Config().ReplicaID; r.ID != self {
		return refuse(ErrBadInput, "this is member %d, not member %d", self, r.ID)
	}
	if r.Next == "" {
		r.Next = removedNext(r.ID)
	}
	// NB: replaces a removal this member noticed itself without the record
	// of who removed it.
	for {
		cur := mg.removal.Load()
		if (cur != nil && cur.By != "") || mg.removal.CompareAndSwap(cur, &r) {
			break
		}
	}
	select {
	case mg.removedCh <- struct{}{}:
	default:
	}
	return nil
}

// Notification of removed members: the leader tells each member removed in
// the last notifyFor, every notifyEvery, until it confirms.
const (
	notifyEvery = 10 * time.Second
	notifyFor   = 24 * time.Hour
)

// notifyRemoved tells the removed members that have not confirmed yet
// (leader only; in the background, one round at a time).
func (mg *Manager) notifyRemoved(ctx context.Context, v View) {
	if mg.d.Notify == nil || v.Leader != mg.d.Node.Config().ReplicaID || len(v.Removed) == 0 || !mg.notifying.CompareAndSwap(false, true) {
		return
	}
	rd := mg.d.Node.Reader()
	if rd == nil {
		mg.notifying.Store(false)
		return
	}
	type target struct {
		addr string
		rec  Removal
	}
	var ts []target
	now := time.Now()
	for _, id := range v.Removed {
		b, ok, err := rd.Meta(fmt.Sprintf(MetaRemoved, id))
		var rec Removal
		if err != nil || !ok || json.Unmarshal(b, &rec) != nil || rec.Notified || now.Sub(rec.At) > notifyFor || now.Sub(mg.notifyTry[id]) < notifyEvery {
			continue
		}
		addr, ok, err := rd.Meta(fmt.Sprintf(MetaAdminAddr, id))
		if err != nil || !ok {
			continue
		}
		mg.notifyTry[id] = now
		ts = append(ts, target{string(addr), rec})
	}
	if len(ts) == 0 {
		mg.notifying.Store(false)
		return
	}
	go func() {
		defer mg.notifying.Store(false)
		for _, t := range ts {
			nctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := mg.d.Notify(nctx, t.addr, t.rec)
			cancel()
			if err != nil {
				mg.log.Debug("telling a removed member", "id", t.rec.ID, "admin_addr", t.addr, "err", err)
				continue
			}
			mg.log.Info("told the removed member it was removed; it exits", "id", t.rec.ID, "admin_addr", t.addr)
			t.rec.Notified = true
			b, _ := json.Marshal(t.rec)
			pctx, cancel := context.WithTimeout(ctx, mg.cfg.Timeout)
			_, _ = mg.d.Node.Propose(pctx, &logger.Meta{Key: fmt.Sprintf(MetaRemoved, t.rec.ID), Value: b})
			cancel()
		}
	}()
}

// Removed returns this member's removal, once it was removed.
func (mg *Manager) Removed() (Removal, bool) {
	r := mg.removal.Load()
	if r == nil {
		return Removal{}, false
	}
	return *r, true
}

// demotedNext is the advice for the old id of a demoted logger.
func demotedNext(newID uint64, addr string) string {
	return fmt.Sprintf("It rejoins as learner %d at %s: wipe its --data-dir and start it with --id %d --join --role learner", newID, addr, newID)
}
