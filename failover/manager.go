package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
)

// IngestView is what the failover needs of the leader's ingest.
type IngestView struct {
	Streaming bool
	Source    string
	LastAck   time.Time
	// LastEvent is when the stream last brought an event or a heartbeat.
	LastEvent time.Time
	LastError string
}

// Deps are the Manager's collaborators.
type Deps struct {
	Log Log
	// Connect logs in with the failover's TLS (--failover-ssl-mode):
	// candidates, old sources, rejoin.
	Connect Connector
	// ConnectSource logs in with the source's TLS (--source-ssl-mode): the
	// lease probe. Nil: Connect.
	ConnectSource Connector
	// SourceCred is the replication account the lease probe logs in with.
	SourceCred Credentials
	// FleetAddr and FleetCred: where and how a re-pointed server
	// replicates from the fleet.
	FleetAddr string
	FleetCred Credentials
	Ingest    func() IngestView
	Logger    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// RunHook runs a hook (default: sh -c); tests replace it.
	RunHook func(ctx context.Context, cmd string, env []string) (string, error)
	// AskPeers asks every other member, in parallel and bounded by ctx, to
	// probe the source with its own connection (ProbeSource on that
	// member): one answer per other member. Nil: a single member.
	AskPeers func(ctx context.Context) []PeerAnswer
}

// Status is the failover's state for /failover/status and binlogctl.
type Status = api.FailoverStatus

// Request is an operator's failover or switchover.
type Request struct {
	Kind   string // KindFailover or KindSwitchover
	To     string // the candidate to promote ("" lets the fleet choose)
	Force  bool   // ignore anti-flap and a held lease (failover only)
	Reason string
}

type request struct {
	Request
	reply chan result
}

type result struct {
	op  *Operation
	err error
}

// Manager holds the source's lease and runs failovers on the leader. Run
// owns its goroutine; the other methods are safe for concurrent use.
type Manager struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	reqs chan request

	mu          sync.Mutex
	status      Status
	leaderSince time.Time
	lastContact time.Time
	vetoedUntil time.Time
	// onceAudits are the "waiting/blocked/vetoed" records written since the
	// last step (or leadership change), each recorded once.
	onceAudits map[string]bool
	seeded     bool
	resumed    string // the operation this leadership took over (audited once)
	probe      Server // the lease probe's connection (Run's goroutine only)
	// warnedPassword: candidates whose stored password was warned about.
	warnedPassword map[string]bool
	stuck          stuckState // the no-candidate wait (readmit.go; Run's goroutine)

	// stall measures this process's lateness; idleSince is when Run last
	// went back to waiting for its ticker (Run's goroutine only).
	stall     *StallDetector
	idleSince time.Time
	// failedProbes are the start times of the probes that failed since
	// the last one that answered (of probeSource), oldest first.
	failedProbes []time.Time
	probeSource  string
	// peers is how many other members answered the last ask (1 before
	// any: ask); vantage is the last ask's result.
	peers   int
	vantage *Vantage
	// loggedStall is the end of the last stall logged; loggedPeer: the
	// current "another member reaches the source" episode was logged.
	loggedStall time.Time
	loggedPeer  bool

	// fencer: the deferred fences' goroutine's own state; fsync: what it
	// shares with the step loop and the API (under mu). fence.go.
	fencer fencerState
	fsync  fenceSync
}

// maxFailedProbes bounds Manager.failedProbes.
const maxFailedProbes = 16

// New returns a Manager.
func New(cfg Config, deps Deps) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil || deps.Connect == nil {
		return nil, errors.New("failover: Deps.Log and Deps.Connect are required")
	}
	if deps.ConnectSource == nil {
		deps.ConnectSource = deps.Connect
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Ingest == nil {
		deps.Ingest = func() IngestView { return IngestView{} }
	}
	if deps.RunHook == nil {
		deps.RunHook = runHook
	}
	m := &Manager{cfg: cfg, deps: deps, log: deps.Logger.With("component", "failover"), reqs: make(chan request),
		stall: NewStallDetector(stallPeriod, StallThreshold(cfg.Lease), deps.Now)}
	if why := cfg.unarmed(); cfg.Auto && why != "" {
		m.log.Warn(why)
	}
	if deps.AskPeers != nil {
		m.peers = 1 // NB: unknown until the first ask: ask
	}
	m.status.Auto = cfg.Auto
	m.status.Lease = cfg.Lease.String()
	return m, nil
}

// Run probes the source, judges, and fails over while this member leads,
// until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	dctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m.stall.Run(dctx) }()
	go func() { defer wg.Done(); m.runFencer(dctx) }()
	defer wg.Wait()
	defer stop()
	t := time.NewTicker(m.cfg.ProbeInterval)
	defer t.Stop()
	defer m.closeProbe()
	m.idleSince = m.now()
	for {
		// NB: the step loop's own lateness: the ticker fires at most one
		// interval after the loop went back to waiting for it.
		m.stall.Observe(m.idleSince.Add(m.cfg.ProbeInterval), m.now())
		m.tick(ctx)
		m.idleSince = m.now()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case r := <-m.reqs:
			op, err := m.handle(ctx, r.Request)
			r.reply <- result{op, err}
			m.idleSince = m.now()
		}
	}
}

// Do runs an operator's request on the Run goroutine and waits for it (or
// ctx: the operation goes on, recorded in the log).
func (m *Manager) Do(ctx context.Context, r Request) (*Operation, error) {
	if !m.deps.Log.IsLeader() {
		return nil, ErrNotLeader
	}
	req := request{Request: r, reply: make(chan result, 1)}
	select {
	case m.reqs <- req:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrBusy, ctx.Err())
	}
	select {
	case res := <-req.reply:
		return res.op, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("failover: still running (see binlogctl history): %w", ctx.Err())
	}
}

// Status returns the current status.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.status
	st.PendingFences = append([]PendingFence(nil), st.PendingFences...)
	return st
}

// History returns the audit records, oldest first.
func (m *Manager) History() ([]Record, error) {
	v, err := m.deps.Log.MetaPrefix(MetaAuditPrefix)
	if err != nil {
		return nil, err
	}
	return ParseHistory(v)
}

func (m *Manager) now() time.Time { return m.deps.Now() }

// tick is one round of lease, analysis and decision.
func (m *Manager) tick(ctx context.Context) {
	lg := m.deps.Log
	st, err := lg.State()
	leader := err == nil && lg.IsLeader()
	now := m.now()
	m.mu.Lock()
	if leader && m.leaderSince.IsZero() {
		m.leaderSince = now
		m.seeded = false
		m.onceAudits = nil
		m.resumed = ""
		m.failedProbes, m.vantage, m.loggedPeer = nil, nil, false
		m.log.Info("leading: the source's lease starts now; it is judged only after one full lease", "lease", m.cfg.Lease)
	} else if !leader {
		m.leaderSince = time.Time{}
	}
	m.mu.Unlock()
	if !leader {
		m.closeProbe()
		m.setStatus(func(s *Status) {
			*s = Status{Auto: m.cfg.Auto, Lease: m.cfg.Lease.String(), Epoch: st.Epoch, Source: st.Source.String(), Fenced: st.Source.Fenced, Verdict: VerdictNotLeader.String(), Decision: ActionNone.String()}
		})
		return
	}
	m.seedCandidates(ctx)
	m.renewLease(ctx, st)
	op, err := m.loadOp(MetaOperation)
	if err != nil {
		m.log.Warn("failover: no analysis this round: reading the operation", "err", err)
		return
	}
	last, err := m.loadOp(MetaLast)
	if err != nil {
		m.log.Warn("failover: no analysis this round: reading the last operation", "err", err)
		return
	}
	obs := m.observation(st, op)
	v := Analyse(obs)
	if v == VerdictConfirming || v == VerdictSeenByPeer {
		// NB: asked again at most once a probe interval while the leader
		// alone cannot reach the source.
		m.mu.Lock()
		again := m.vantage == nil || obs.Now.Sub(m.vantage.Asked) >= m.cfg.ProbeInterval
		m.mu.Unlock()
		if again {
			vt := m.askPeers(ctx, st.Source.String())
			m.mu.Lock()
			m.vantage = vt
			m.mu.Unlock()
			obs = m.observation(st, op)
			v = Analyse(obs)
		}
	}
	now = obs.Now
	pol := Policy{Auto: m.cfg.Auto, AntiFlap: m.cfg.AntiFlap, Unarmed: m.cfg.unarmed()}
	m.mu.Lock()
	pol.VetoedUntil = m.vetoedUntil
	m.mu.Unlock()
	if last != nil {
		pol.LastFailover = last.Updated
	}
	d := Decide(v, now, pol)
	why := Explain(obs, v)
	m.logVerdict(obs, v, why)
	m.setStatus(func(s *Status) {
		s.Leader, s.Epoch, s.Source, s.Fenced = true, st.Epoch, st.Source.String(), st.Source.Fenced
		s.LeaseExpiry, s.LeaseHeld, s.LastContact = obs.LeaseExpiry(), now.Before(obs.LeaseExpiry()), obs.LastContact
		s.Verdict, s.Decision, s.Reason = v.String(), d.Action.String(), d.Reason
		if d.Action == ActionNone {
			s.Reason = why
		}
		s.Operation, s.Last = op, last
		if last != nil {
			s.AntiFlapTill = last.Updated.Add(m.cfg.AntiFlap)
		}
		s.LastStall, s.LastStallEnd = "", obs.StallEnd
		if !obs.StallEnd.IsZero() {
			s.LastStall = obs.Stall.Round(time.Millisecond).String()
		}
		s.FailedProbes, s.Vantage, s.LeaderSince = obs.FreshFailures(), obs.Vantage, obs.LeaderSince
	})
	switch d.Action {
	case ActionFailover:
		m.log.Error("the source's lease ran out: failing over", "source", st.Source.Addr, "last_contact", obs.LastContact, "lease", m.cfg.Lease, "why", why)
		if _, err := m.failover(ctx, Request{Kind: KindFailover, Reason: d.Reason}, st); err != nil {
			m.log.Error("failover did not finish; retrying", "err", err)
		}
	case ActionResume:
		if !m.retryDue(op) {
			break // NB: nothing to promote: the retries back off (readmit.go)
		}
		m.auditResume(ctx, op)
		if err := m.execute(ctx, op); err != nil && !errors.Is(err, errWaiting) {
			m.log.Warn("the unfinished operation did not finish; retrying", "op", op.ID, "step", op.Step, "err", err)
		}
	case ActionAbort:
		op.Step, op.Message = StepAborted, d.Reason
		m.saveOp(ctx, op)
		m.audit(ctx, op, StepAborted, "ok", d.Reason)
	case ActionBlocked:
		m.auditOnce(ctx, Record{Kind: KindFailover, Step: "decide", Outcome: "blocked", Epoch: st.Epoch, OldSource: st.Source.Addr, Message: d.Reason})
	}
}

func (m *Manager) setStatus(f func(*Status)) {
	m.mu.Lock()
	f(&m.status)
	m.mu.Unlock()
}

// observation gathers the Observation of this moment (the leader's).
func (m *Manager) observation(st logger.State, op *Operation) Observation {
	now := m.now()
	stall := m.stall.Last(now)
	m.mu.Lock()
	defer m.mu.Unlock()
	peers := m.peers
	if m.deps.AskPeers != nil && (m.vantage == nil || now.Sub(m.vantage.Asked) > m.cfg.Lease) {
		// NB: members come and go: a count older than a lease is asked again.
		peers = max(peers, 1)
	}
	return Observation{Now: now, Leader: true, LeaderSince: m.leaderSince, Epoch: st.Epoch, Source: st.Source.Addr, Fenced: st.Source.Fenced,
		LastContact: m.lastContact, Lease: m.cfg.Lease, Op: op, StallEnd: stall.End, Stall: stall.Length,
		FailedProbes: append([]time.Time(nil), m.failedProbes...), Peers: peers, Vantage: m.vantage}
}

// logVerdict logs, once each, a stall this leader measured and an episode
// in which another member reaches the source while this one does not.
func (m *Manager) logVerdict(o Observation, v Verdict, why string) {
	m.mu.Lock()
	newStall := !o.StallEnd.IsZero() && o.StallEnd.Add(-o.Stall).After(m.loggedStall)
	if newStall {
		m.loggedStall = o.StallEnd
	}
	peer := v == VerdictSeenByPeer && !m.loggedPeer
	switch v {
	case VerdictSeenByPeer:
		m.loggedPeer = true
	case VerdictHealthy, VerdictDeadSource:
		m.loggedPeer = false
	}
	m.mu.Unlock()
	if newStall {
		m.log.Warn("this member was stalled: the source's lease restarts at the stall's end instead of being judged",
			"stall", o.Stall.Round(time.Millisecond), "stall_end", o.StallEnd, "threshold", StallThreshold(o.Lease), "no_verdict_before", o.LeaseExpiry())
	}
	if peer {
		m.log.Warn("no failover: another member reaches the source", "source", o.Source, "reached_by", o.Vantage.Reached, "why", why)
	}
}

// renewLease probes the source on its own connection and counts stream
// events, heartbeats and ACKs.
func (m *Manager) renewLease(ctx context.Context, st logger.State) {
	if st.Epoch == 0 || st.Source.Fenced {
		m.closeProbe()
		return
	}
	in := m.deps.Ingest()
	start := m.now()
	var perr error
	pctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
	defer cancel()
	if m.probe == nil {
		m.probe, perr = m.deps.ConnectSource(pctx, st.Source.Addr, m.deps.SourceCred)
	}
	if perr == nil {
		if perr = m.probe.Ping(pctx); perr != nil {
			m.closeProbe()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.probeSource != st.Source.Addr {
		m.probeSource, m.failedProbes = st.Source.Addr, nil
	}
	if perr == nil {
		// NB: the probe's start: the source answered at some moment after it.
		if start.After(m.lastContact) {
			m.lastContact = start
		}
		m.failedProbes = nil
		m.status.ProbeError = ""
	} else {
		m.failedProbes = append(m.failedProbes, start)
		if len(m.failedProbes) > maxFailedProbes {
			m.failedProbes = m.failedProbes[len(m.failedProbes)-maxFailedProbes:]
		}
		m.status.ProbeError = perr.Error()
	}
	if in.Source == st.Source.Addr && !st.Source.Fenced {
		for _, t := range []time.Time{in.LastAck, in.LastEvent} {
			if t.After(m.lastContact) {
				m.lastContact = t
			}
		}
	}
}

func (m *Manager) closeProbe() {
	if m.probe != nil {
		_ = m.probe.Close()
		m.probe = nil
	}
}

// handle runs an operator's request.
func (m *Manager) handle(ctx context.Context, r Request) (*Operation, error) {
	st, err := m.deps.Log.State()
	if err != nil || !m.deps.Log.IsLeader() {
		return nil, ErrNotLeader
	}
	op, err := m.loadOp(MetaOperation)
	if err != nil {
		return nil, err
	}
	if op != nil && !op.Finished() {
		return op, fmt.Errorf("%w: %s %s at step %s (binlogctl history)", ErrBusy, op.Kind, op.ID, op.Step)
	}
	if r.Kind == KindSwitchover {
		return m.switchover(ctx, r, st)
	}
	if !r.Force {
		now := m.now()
		stall := m.stall.Last(now)
		m.mu.Lock()
		held := now.Before(Observation{LeaderSince: m.leaderSince, LastContact: m.lastContact, Lease: m.cfg.Lease, StallEnd: stall.End}.LeaseExpiry())
		m.mu.Unlock()
		if held && !st.Source.Fenced {
			return nil, errors.New("failover: the source holds its lease (it answers); use binlogctl promote --to for a planned switchover, or --force")
		}
	}
	return m.failover(ctx, r, st)
}

func (m *Manager) loadOp(key string) (*Operation, error) {
	v, ok, err := m.deps.Log.Meta(key)
	if err != nil || !ok || len(v) == 0 {
		return nil, err
	}
	var op Operation
	if err := json.Unmarshal(v, &op); err != nil {
		return nil, fmt.Errorf("failover: %s: %v", key, err)
	}
	return &op, nil
}

// saveOp records the operation in the log (bounded; retried by the caller
// on error).
func (m *Manager) saveOp(ctx context.Context, op *Operation) error {
	op.Updated = m.now()
	op.Leader = m.deps.Log.LeaderID()
	b, _ := json.Marshal(op)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := m.deps.Log.Propose(pctx, &logger.Meta{Key: MetaOperation, Value: b}); err != nil {
		return fmt.Errorf("failover: recording the operation: %w", err)
	}
	if op.Finished() {
		if _, err := m.deps.Log.Propose(pctx, &logger.Meta{Key: MetaLast, Value: b}); err != nil {
			return fmt.Errorf("failover: recording the operation: %w", err)
		}
	}
	// NB: the status is otherwise refreshed only between steps, and a step
	// may wait for a minute (catch-up): show the operation as recorded.
	// A finished operation shows with the epoch and source it left, not
	// those of the round it ran in.
	c := *op
	st, stErr := m.deps.Log.State()
	m.setStatus(func(s *Status) {
		s.Operation = &c
		if c.Finished() {
			s.Last = &c
			if stErr == nil {
				s.Epoch, s.Source, s.Fenced = st.Epoch, st.Source.String(), st.Source.Fenced
			}
		}
	})
	return nil
}

// audit writes one record of op's step.
func (m *Manager) audit(ctx context.Context, op *Operation, step, outcome, msg string) {
	st, err := m.deps.Log.State()
	if err != nil {
		m.log.Warn("failover: audit record not written: the log is closed", "op", op.ID, "step", step, "outcome", outcome, "message", msg)
		return
	}
	r := Record{OpID: op.ID, Kind: op.Kind, Step: step, Outcome: outcome, Epoch: st.Epoch,
		OldSource: op.OldSource.Addr, NewSource: op.Target, GTIDs: st.GTIDs, Message: msg}
	if !op.Started.IsZero() {
		r.Elapsed = m.now().Sub(op.Started).Round(time.Millisecond).String()
	}
	m.writeRecord(ctx, r)
}

// auditResume records, once per leadership, that this leader takes over an
// operation another leader recorded (it died or lost its leadership in the
// middle): the trail then shows who finished it, and from which step.
func (m *Manager) auditResume(ctx context.Context, op *Operation) {
	me := m.deps.Log.LeaderID()
	m.mu.Lock()
	done := m.resumed == op.ID
	m.resumed = op.ID
	m.mu.Unlock()
	if done || op.Leader == me {
		return
	}
	msg := fmt.Sprintf("leader %d resumes %s %s from its record: step %s, recorded by leader %d at %s", me, op.Kind, op.ID, op.Step, op.Leader,
		op.Updated.UTC().Format("15:04:05.000"))
	m.log.Warn("failover: resuming an unfinished operation", "op", op.ID, "step", op.Step, "recorded_by", op.Leader)
	m.audit(ctx, op, "resume", "ok", msg)
}

// auditOnce writes r unless a record with the same step, outcome and
// message (times aside) was written since the last step: a pre-hook that
// keeps vetoing, or a blocked decision, is recorded once, not every lease.
func (m *Manager) auditOnce(ctx context.Context, r Record) {
	key := r.Step + "|" + r.Outcome + "|" + rfc3339.ReplaceAllString(r.Message, "T")
	m.mu.Lock()
	same := m.onceAudits[key]
	if m.onceAudits == nil {
		m.onceAudits = map[string]bool{}
	}
	m.onceAudits[key] = true
	m.mu.Unlock()
	if !same {
		m.log.Warn("failover: "+r.Outcome, "step", r.Step, "message", r.Message)
		m.writeRecord(ctx, r)
	}
}

// rfc3339 matches the times auditOnce leaves out of its comparison.
var rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)

func (m *Manager) writeRecord(ctx context.Context, r Record) {
	r.Time = m.now()
	r.Leader = m.deps.Log.LeaderID()
	b, _ := json.Marshal(r)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := m.deps.Log.Propose(pctx, &logger.Meta{Key: auditKey(r.Time, r.Leader), Value: b}); err != nil {
		m.log.Warn("cannot write the audit record", "step", r.Step, "err", err)
	}
}

// seedCandidates stores the --failover-candidate flags in the log once per
// leadership, leaving candidates the API changed alone.
func (m *Manager) seedCandidates(ctx context.Context) {
	m.mu.Lock()
	done := m.seeded
	m.mu.Unlock()
	if done {
		return
	}
	for _, s := range m.cfg.Candidates {
		c, _ := ParseCandidate(s)
		if _, ok, err := m.deps.Log.Meta(MetaCandidatePrefix + c.Addr); err != nil || ok {
			continue
		}
		if err := m.PutCandidate(ctx, c); err != nil {
			return
		}
	}
	m.mu.Lock()
	m.seeded = true
	m.mu.Unlock()
}

// PutCandidate stores (adds or replaces) a candidate in the log. It does
// not log in to it. The log never holds a password: a candidate that
// carries one is refused (ErrBadCandidate); its account is named by
// Credential, which must be in this member's --failover-credentials-file.
func (m *Manager) PutCandidate(ctx context.Context, c Candidate) error {
	if _, err := ParseCandidate(c.Addr); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCandidate, err)
	}
	if c.Password != "" {
		return fmt.Errorf("%w: %s: a candidate's password is not stored in the log; put \"NAME USER PASSWORD\" in --failover-credentials-file on every member and give credential=NAME", ErrBadCandidate, c.Addr)
	}
	if c.Credential != "" {
		cred, err := m.credential(c.Credential)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBadCandidate, c.Addr, err)
		}
		if c.User != "" && c.User != cred.User {
			return fmt.Errorf("%w: %s: user %q differs from credential %q's user %q", ErrBadCandidate, c.Addr, c.User, c.Credential, cred.User)
		}
		c.User = ""
	}
	b, _ := json.Marshal(c)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := m.deps.Log.Propose(pctx, &logger.Meta{Key: MetaCandidatePrefix + c.Addr, Value: b})
	return err
}

// RemoveCandidate deletes a candidate from the log.
func (m *Manager) RemoveCandidate(ctx context.Context, addr string) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := m.deps.Log.Propose(pctx, &logger.Meta{Key: MetaCandidatePrefix + addr})
	return err
}

// ListCandidates returns the stored candidates.
func (m *Manager) ListCandidates() ([]Candidate, error) {
	v, err := m.deps.Log.MetaPrefix(MetaCandidatePrefix)
	if err != nil {
		return nil, err
	}
	var out []Candidate
	for k, b := range v {
		var c Candidate
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("failover: candidate %s: %v", k, err)
		}
		out = append(out, c)
	}
	return out, nil
}
