package learner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/logger"
)

// Meta keys this package keeps in the log. The admin address is written by
// the daemon (binlogsvr); the weight by this package.
const (
	MetaAdminAddr = "member.%d.admin_addr"
	MetaWeight    = "member.%d.weight"
)

// Deps are what a Manager needs from the daemon.
type Deps struct {
	Node *logger.Node
	// Fetch asks the member at an admin address for its Report.
	Fetch func(ctx context.Context, adminAddr string, files bool) (Report, error)
	// Replicas lists this member's dump clients (nil: it serves none).
	Replicas func() []Replica
	// DumpAddr is where this member serves dumps ("" : it does not).
	DumpAddr string
	// Notify tells the member at an admin address that it was removed
	// (optional; see Manager.MarkRemoved).
	Notify   func(ctx context.Context, adminAddr string, r Removal) error
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// Manager runs this member's part of the membership: it watches every
// member's progress, logs catch-up progress, opens this member's dump
// serving once it is caught up, hands leadership to the heaviest caught-up
// logger, and carries out membership changes after Check allows them.
type Manager struct {
	cfg     Config
	d       Deps
	log     *slog.Logger
	ch      *Changer
	m       *metrics
	tracker *Tracker
	gate    Gate

	opMu sync.Mutex // one membership change at a time from this member

	mu          sync.Mutex
	view        View
	contact     map[uint64]time.Time
	leaderSince time.Time
	lastHandoff time.Time
	lastLog     map[uint64]time.Time

	removal   atomic.Pointer[Removal] // set once this member was removed
	selfRec   atomic.Pointer[Removal] // the log's record of this member's removal, read ahead
	removedCh chan struct{}           // MarkRemoved wakes Run
	notifyTry map[uint64]time.Time    // removed members told (leader; Run's goroutine)
	notifying atomic.Bool

	recorded map[string]ReplicaHold // holds this member wrote (Run's goroutine)
	holdRecs map[string]ReplicaHold // the log's holds at the last refresh (mu)
	expired  []ReplicaHold          // expired holds at the last refresh (mu)
}

// New returns a Manager; Run runs it.
func New(cfg Config, d Deps) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Node == nil || d.Fetch == nil {
		return nil, errors.New("learner: Deps.Node and Deps.Fetch are required")
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	nc := d.Node.Config()
	mg := &Manager{cfg: cfg, d: d, log: d.Log.With("component", "members"), tracker: NewTracker(10 * time.Second),
		ch:      &Changer{NH: d.Node.NodeHost(), Shard: nc.ShardID, Timeout: cfg.Timeout},
		contact: map[uint64]time.Time{}, lastLog: map[uint64]time.Time{}, removedCh: make(chan struct{}, 1), notifyTry: map[uint64]time.Time{},
		recorded: map[string]ReplicaHold{}}
	mg.gate.node = d.Node
	// NB: a logger serves at once (it was part of the quorum); a member
	// that starts as a learner serves only once it has caught up.
	if nc.Role != logger.RoleLearner {
		mg.gate.open.Store(true)
	}
	m, err := newMetrics(d.Registry, mg)
	if err != nil {
		return nil, err
	}
	mg.m = m
	return mg, nil
}

// Gate is the log as the dump server may see it: nil until this member is
// caught up (a dump then waits; SQL answers "not ready"). It satisfies the
// dump package's ReaderSource.
type Gate struct {
	node *logger.Node
	open atomic.Bool
}

// Reader returns the member's log once it serves, else nil.
func (g *Gate) Reader() *logger.Reader {
	if !g.open.Load() {
		return nil
	}
	return g.node.Reader()
}

// Open reports whether the gate is open.
func (g *Gate) Open() bool { return g.open.Load() }

// Gate returns the serving gate for the dump server.
func (mg *Manager) Gate() *Gate { return &mg.gate }

// Close unregisters the metrics.
func (mg *Manager) Close() { mg.m.unregister() }

// View returns the latest view of the group.
func (mg *Manager) View() View {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	return mg.view
}

// Run watches the group until ctx ends. It returns a *RemovedError
// (ErrRemoved) once this member was removed from the group: the daemon
// then says so and exits.
func (mg *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(mg.cfg.WatchInterval)
	defer t.Stop()
	seeded := mg.cfg.Weight < 0
	if !mg.gate.Open() {
		applied := uint64(0)
		if rd := mg.d.Node.Reader(); rd != nil {
			applied = rd.Applied()
		}
		mg.log.Info("member catching up: started as a learner; it serves dumps once it has caught up with the leader",
			"catching_up", mg.d.Node.Config().ReplicaID, "applied", applied, "dump_addr", mg.d.DumpAddr)
		mg.lastLog[mg.d.Node.Config().ReplicaID] = time.Now()
	}
	for {
		v, err := mg.refresh(ctx, mg.pollTimeout())
		if err != nil || !v.Complete {
			mg.waiting(err)
		}
		if rem, ok := mg.selfRemoved(err); ok && ctx.Err() == nil {
			mg.removal.CompareAndSwap(nil, &rem)
			mg.gate.open.Store(false)
			if rem.By == "" {
				// NB: the record of who removed it was not readable (the
				// replica's log closes with it): the leader's notification
				// carries it, within notifyEvery.
				select {
				case <-ctx.Done():
				case <-mg.removedCh:
				case <-time.After(notifyEvery + 5*time.Second):
				}
			}
			return &RemovedError{Removal: *mg.removal.Load()}
		}
		if err != nil {
			mg.log.Debug("members: refreshing the view", "err", err)
		} else {
			mg.afterRefresh(ctx, v)
			mg.mu.Lock()
			recs, expired := mg.holdRecs, mg.expired
			mg.mu.Unlock()
			mg.trackHolds(ctx, recs)
			mg.dropExpired(ctx, v, expired)
			if !seeded {
				seeded = mg.seedWeight(ctx)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-mg.removedCh:
			mg.gate.open.Store(false)
			return &RemovedError{Removal: *mg.removal.Load()}
		case <-t.C:
		}
	}
}

// waiting logs, every ProgressInterval, that a member that started as a
// learner waits for the group: before its snapshot is recovered it cannot
// read the group's members from its own log yet.
func (mg *Manager) waiting(err error) {
	self := mg.d.Node.Config().ReplicaID
	now := time.Now()
	if mg.gate.Open() || now.Sub(mg.lastLog[self]) < mg.cfg.ProgressInterval {
		return
	}
	mg.lastLog[self] = now
	leader, _ := mg.d.Node.LeaderID()
	applied := uint64(0)
	if rd := mg.d.Node.Reader(); rd != nil {
		applied = rd.Applied()
	}
	why := "the leader's progress is unknown yet"
	if err != nil {
		why = err.Error()
	}
	mg.log.Info("member catching up: waiting for the leader's snapshot and log", "catching_up", self, "leader", leader,
		"applied", applied, "on_disk", Bytes(dirSize(mg.d.Node.Config().DataDir)), "why", why)
}

// SelfReport is this member's own Report.
func (mg *Manager) SelfReport(files bool) Report {
	nc := mg.d.Node.Config()
	r := Report{ID: nc.ReplicaID, Role: nc.Role, Serving: mg.d.DumpAddr != "" && mg.gate.Open(), DumpAddr: mg.d.DumpAddr,
		Retention: Retention{Files: nc.Retention.MaxFiles, Bytes: nc.Retention.MaxBytes, AgeSeconds: nc.Retention.MaxAge.Seconds()}}
	r.Profile = ProfileLogOnly
	if mg.d.DumpAddr != "" {
		r.Profile = ProfileServing
	}
	r.Leader, _ = mg.d.Node.LeaderID()
	if s := mg.d.Node.SM(); s != nil {
		r.Snapshots = s.SnapshotsRecovered()
	}
	if rd := mg.d.Node.Reader(); rd != nil {
		st := rd.State()
		r.Applied, r.File, r.Pos = rd.Applied(), st.File, st.Pos
		if fl, err := rd.Files(); err == nil {
			for _, f := range fl {
				if r.FirstFile == 0 {
					r.FirstFile = f.Number
				}
				r.HeldBytes += f.Size
				if files {
					r.Files = append(r.Files, FileSize{Number: f.Number, Size: f.Size})
				}
			}
		}
	}
	if r.File == 0 {
		r.DiskBytes = dirSize(nc.DataDir)
	}
	if mg.d.Replicas != nil {
		r.Replicas = mg.d.Replicas()
	}
	return r
}

func dirSize(dir string) uint64 {
	var n uint64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += uint64(fi.Size())
			}
		}
		return nil
	})
	return n
}

// Refresh polls every member and rebuilds the view now, for an operator's
// request (the view, a membership change, a purge): the membership read
// retries through an election for up to --membership-timeout; each member
// then has pollTimeout to report. A deadline on ctx bounds both: the read
// gets what the reports leave of it (at least a second).
func (mg *Manager) Refresh(ctx context.Context) (View, error) {
	within := mg.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		within = max(min(within, time.Until(dl)-mg.pollTimeout()), time.Second)
	}
	return mg.refresh(ctx, within)
}

// pollTimeout bounds the watch loop's membership read, and one member's
// report.
func (mg *Manager) pollTimeout() time.Duration { return max(mg.cfg.WatchInterval, 2*time.Second) }

// refresh reads the membership within readWithin, then polls the members.
func (mg *Manager) refresh(ctx context.Context, readWithin time.Duration) (View, error) {
	node := mg.d.Node
	ms, err := mg.ch.Membership(ctx, readWithin)
	if err != nil {
		return View{}, err
	}
	// NB: the reports get a deadline of their own, started after the read:
	// sharing one deadline, a slow read (an election) left them no time, the
	// leader's report went missing, and a purge was held for it. A member
	// that does not answer in time is reported as such (Errors).
	ctx, cancel := context.WithTimeout(ctx, mg.pollTimeout())
	defer cancel()
	self := node.Config().ReplicaID
	leader, _ := node.LeaderID()
	in := Inputs{Loggers: ms.Nodes, Learners: ms.NonVotings, Removed: ms.Removed, Leader: leader,
		Reports: map[uint64]Report{}, Errors: map[uint64]string{}, Admin: map[uint64]string{}, Weights: map[uint64]int{},
		Limits: mg.cfg.Limits()}
	var recs map[string]ReplicaHold
	if rd := node.Reader(); rd != nil {
		recs, _ = readHolds(rd)
		if kv, err := rd.MetaPrefix("member."); err == nil {
			for k, v := range kv {
				parts := strings.Split(k, ".")
				if len(parts) != 3 {
					continue
				}
				id, err := strconv.ParseUint(parts[1], 10, 64)
				if err != nil {
					continue
				}
				switch parts[2] {
				case "admin_addr":
					in.Admin[id] = string(v)
				case "weight":
					if w, err := strconv.Atoi(string(v)); err == nil {
						in.Weights[id] = w
					}
				case "removed":
					mg.cacheRemoval(id, v)
				}
			}
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	now := time.Now()
	for _, ids := range []map[uint64]string{ms.Nodes, ms.NonVotings} {
		for id := range ids {
			// NB: under mu: fetches started by earlier iterations write to
			// the same maps (a member crashed on "concurrent map writes").
			if id == self {
				r := mg.SelfReport(id == leader)
				mu.Lock()
				in.Reports[id] = r
				mu.Unlock()
				continue
			}
			addr, ok := in.Admin[id]
			if !ok {
				mu.Lock()
				in.Errors[id] = "admin address not registered in the log yet"
				mu.Unlock()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := mg.d.Fetch(ctx, addr, id == leader)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					in.Errors[id] = err.Error()
					return
				}
				in.Reports[id] = r
			}()
		}
	}
	wg.Wait()
	mg.mu.Lock()
	defer mg.mu.Unlock()
	mg.contact[self] = now
	for id := range in.Reports {
		mg.contact[id] = now
	}
	in.Contact = map[uint64]time.Time{}
	for id, t := range mg.contact {
		in.Contact[id] = t
	}
	in.Now = time.Now()
	v := Build(in)
	var total uint64
	if lr, ok := in.Reports[leader]; ok {
		total = BytesBetween(lr.Files, 0, 0, lr.File, lr.Pos)
	}
	keep := map[uint64]bool{}
	for i := range v.Members {
		keep[v.Members[i].ID] = true
		if m := v.Members[i]; v.Complete && m.Reachable && m.Error == "" {
			v.Members[i].Progress = mg.tracker.Observe(m, total, in.Now)
		}
	}
	mg.tracker.Forget(keep)
	var rs []ReplicaHold
	for _, h := range recs {
		rs = append(rs, h)
	}
	v.ReplicaHolds, mg.expired = ReplicaHolds(rs, v.Members, in.Now, mg.cfg.ReplicaHoldTTL)
	v.HoldTTLSeconds = mg.cfg.ReplicaHoldTTL.Seconds()
	mg.holdRecs = recs
	if leader == self {
		if mg.leaderSince.IsZero() {
			mg.leaderSince = in.Now
		}
	} else {
		mg.leaderSince = time.Time{}
	}
	mg.view = v
	return v, nil
}

// afterRefresh acts on a new view: metrics, the serving gate, progress
// lines, the leader's handoff.
func (mg *Manager) afterRefresh(ctx context.Context, v View) {
	mg.m.observe(v)
	mg.notifyRemoved(ctx, v)
	self := mg.d.Node.Config().ReplicaID
	me, ok := v.Get(self)
	if ok && v.Complete && me.CaughtUp && !mg.gate.Open() {
		mg.gate.open.Store(true)
		mg.log.Info("caught up with the leader: serving dumps now", "lag_entries", me.LagEntries, "lag_bytes", me.LagBytes,
			"snapshots_recovered", me.Snapshots, "dump_addr", mg.d.DumpAddr)
	}
	if ok && v.Complete {
		switch {
		case me.CaughtUp || me.Leader:
			mg.m.setProgress(1)
		case me.Progress != nil:
			mg.m.setProgress(me.Progress.Percent / 100)
		}
	}
	now := time.Now()
	for _, m := range v.Members {
		if m.Progress == nil || (m.ID != self && v.Leader != self) {
			continue
		}
		if now.Sub(mg.lastLog[m.ID]) < mg.cfg.ProgressInterval {
			continue
		}
		mg.lastLog[m.ID] = now
		mg.log.Info("member catching up: "+m.Progress.String(), "catching_up", m.ID, "role", m.Role, "lag_entries", m.LagEntries,
			"lag_bytes", m.LagBytes, "percent", fmt.Sprintf("%.1f", m.Progress.Percent), "rate_bytes_per_second", int64(m.Progress.Rate),
			"eta_seconds", int64(m.Progress.ETA))
	}
	if v.Leader == self && mg.cfg.HandoffDelay > 0 {
		mg.mu.Lock()
		due := !mg.leaderSince.IsZero() && now.Sub(mg.leaderSince) >= mg.cfg.HandoffDelay && now.Sub(mg.lastHandoff) >= mg.cfg.HandoffDelay
		mg.mu.Unlock()
		if to, why := Handoff(v); due && to != 0 {
			mg.mu.Lock()
			mg.lastHandoff = now
			mg.mu.Unlock()
			mg.log.Info("handing leadership over", "to", to, "why", why)
			err := mg.ch.TransferLeader(ctx, to)
			mg.m.handoffs.WithLabelValues(result(err)).Inc()
			if err != nil {
				mg.log.Warn("leadership handoff did not complete", "to", to, "err", err)
			}
		}
	}
}

func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrBadInput), errors.Is(err, ErrUnknownMember):
		return "bad_input"
	case errors.Is(err, ErrUnsafe):
		return "refused"
	case errors.Is(err, ErrConflict):
		return "conflict"
	}
	return "error"
}

// seedWeight writes --weight into the log if it holds no weight for this
// member; it reports whether there is nothing left to do.
func (mg *Manager) seedWeight(ctx context.Context) bool {
	rd := mg.d.Node.Reader()
	if rd == nil {
		return false
	}
	self := mg.d.Node.Config().ReplicaID
	if _, ok, err := rd.Meta(fmt.Sprintf(MetaWeight, self)); err != nil || ok {
		return err == nil
	}
	if _, ok := mg.d.Node.LeaderID(); !ok {
		return false
	}
	if err := mg.setWeight(ctx, self, mg.cfg.Weight); err != nil {
		mg.log.Debug("seeding this member's weight", "err", err)
		return false
	}
	return true
}

func (mg *Manager) setWeight(ctx context.Context, id uint64, w int) error {
	ctx, cancel := context.WithTimeout(ctx, mg.cfg.Timeout)
	defer cancel()
	res, err := mg.d.Node.Propose(ctx, &logger.Meta{Key: fmt.Sprintf(MetaWeight, id), Value: []byte(strconv.Itoa(w))})
	if err != nil {
		return fmt.Errorf("%w: setting the weight: %v", ErrRetry, err)
	}
	if !res.Code.Stored() {
		return fmt.Errorf("learner: setting the weight: %s: %s", res.Code, res.Message)
	}
	return nil
}
