package semisync

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/mysqltls"
)

// Config configures the ingest. User and Password come from the daemon's
// --source-user and $BINLOGSVR_SOURCE_PASSWORD; ServerID from --server-id.
type Config struct {
	User, Password string
	ServerID       uint32
	// ReplicaUUID is this member's @replica_uuid toward a MySQL source
	// (default: derived from ServerID, stable across restarts).
	ReplicaUUID string
	ReportHost  string
	ReportPort  uint16
	Heartbeat   time.Duration
	MaxInFlight int
	// Linger bounds how long a proposal waits for the source's sessions
	// its last ACKs released (logger.ProposerConfig.Linger; 0: never).
	Linger time.Duration
	// StatusInterval is how often the source's semi-sync status is read.
	StatusInterval time.Duration
	// DebugCommitDelay delays every transaction before it is proposed, to
	// show in tests that the ACK waits for the commit. Never in production.
	DebugCommitDelay time.Duration
	// FollowSourceRotate closes the log's open file whenever the source
	// closes one of its own (--follow-source-rotate).
	FollowSourceRotate bool
	// TLS is --source-ssl-mode and --source-ssl-ca: every login to the
	// source (ingest, status, probe, seed, the failover's lease probe).
	TLS mysqltls.Config
}

// DefaultConfig returns the flags' defaults.
func DefaultConfig() Config {
	return Config{Heartbeat: time.Second, MaxInFlight: 4, Linger: logger.DefaultLinger, StatusInterval: 2 * time.Second, FollowSourceRotate: true}
}

// RegisterFlags registers the ingest's own flags.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&c.Heartbeat, "source-heartbeat", c.Heartbeat, "heartbeat period asked of the source; a silent source is given up after 3 periods + 5s")
	fs.IntVar(&c.MaxInFlight, "max-proposals-in-flight", c.MaxInFlight, "Append proposals awaiting commit at once (group commit pipeline depth)")
	fs.DurationVar(&c.Linger, "proposal-linger", c.Linger, "how long a proposal may wait for the source's sessions that the last ACKs released to commit again, so that they share one raft entry (0: never wait)")
	fs.DurationVar(&c.StatusInterval, "source-status-interval", c.StatusInterval, "how often the source's semi-sync status is read")
	fs.BoolVar(&c.FollowSourceRotate, "follow-source-rotate", c.FollowSourceRotate, "start a new binlog file in the fleet whenever the source starts one (FLUSH BINARY LOGS, max_binlog_size); the fleet's file names stay its own. off: the fleet rotates at 256 MiB, on a source change and on binlogctl rotate only")
	c.TLS.RegisterFlags(fs, "source", "the source")
}

// Validate checks the Config.
func (c *Config) Validate() error {
	switch {
	case c.ServerID == 0:
		return errors.New("semisync: --server-id must be positive")
	case c.Heartbeat < 100*time.Millisecond:
		return errors.New("semisync: --source-heartbeat must be at least 100ms")
	case c.MaxInFlight < 1:
		return errors.New("semisync: --max-proposals-in-flight must be at least 1")
	case c.Linger < 0 || c.Linger > time.Second:
		return errors.New("semisync: --proposal-linger must be between 0 and 1s")
	}
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("semisync: %w", err)
	}
	return nil
}

// Ingest states, as /status shows them.
const (
	StateIdle       = "idle"       // not the leader: another member ingests
	StateNoSource   = "no source"  // the log has no source yet
	StateConnecting = "connecting" // connecting / checking / registering
	StateStreaming  = "streaming"  // receiving events, proposing, ACKing
	StateRetrying   = "retrying"   // the last session failed; waiting to reconnect
	StateFenced     = "fenced"     // a failover fenced the old source; waiting for the new one
)

// SemiSyncStatus is the source's semi-sync state as last read.
type SemiSyncStatus = api.SemiSyncStatus

// Status is the ingest's state for /status and binlogctl.
type Status = api.IngestStatus

// Ingester pulls the source's binlog into the log while this member leads.
// Run owns every goroutine; it reconnects with backoff and follows
// leadership.
type Ingester struct {
	cfg     Config
	node    *logger.Node
	log     *slog.Logger
	metrics *metrics
	// proposalTimeout is proposalTimeout; tests shorten it.
	proposalTimeout time.Duration

	mu         sync.Mutex
	status     Status
	recvTS     uint32    // header timestamp of the newest transaction received
	recvGTID   string    // the newest transaction received
	storedGTID string    // the newest transaction stored in the log
	stmtLogged time.Time // when a statement-based event was last logged
	bf         backfill  // backfill.go: the read from behind the source's end
}

// New returns an Ingester for a member's log node.
func New(cfg Config, node *logger.Node, log *slog.Logger, reg prometheus.Registerer) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReplicaUUID == "" {
		cfg.ReplicaUUID = replicaUUID(cfg.ServerID)
	}
	in := &Ingester{cfg: cfg, node: node, log: log.With("component", "semisync"), status: Status{State: StateIdle},
		proposalTimeout: proposalTimeout}
	m, err := newMetrics(reg, in)
	if err != nil {
		return nil, err
	}
	in.metrics = m
	return in, nil
}

// replicaUUID derives a stable UUID (version 5 shape) from the server id.
func replicaUUID(serverID uint32) string {
	h := sha1.Sum([]byte("binlogsvr-replica-" + strconv.FormatUint(uint64(serverID), 10)))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Status returns the ingest's current status.
func (in *Ingester) Status() Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := in.status
	// NB: lag is the age of the newest received transaction while it is not
	// stored yet; a caught-up ingest has no lag, however idle the source.
	if in.recvTS > 0 && st.State == StateStreaming && in.recvGTID != in.storedGTID {
		st.LagSeconds = max(0, time.Since(time.Unix(int64(in.recvTS), 0)).Seconds())
	}
	if st.SourceFile != "" && st.SourceFile == st.LastAckFile && st.SourcePos > st.LastAckPos {
		st.LagBytes = st.SourcePos - st.LastAckPos
	}
	if !in.bf.sizesRead.IsZero() {
		st.SourceOldestFile, st.SourcePurged = in.bf.hist.Oldest(), in.bf.hist.Purged
	}
	st.Backfill = in.bf.status(time.Now())
	return st
}

// noteHistory records the source's binlog files and purged GTIDs as just
// read.
func (in *Ingester) noteHistory(h History) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.bf.refresh(h, time.Now())
}

// beginBackfill notes that a session starts behind the source's end; it
// ends once the stream reaches the end of the source's files as last
// listed, or with the session (endBackfill).
func (in *Ingester) beginBackfill() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.bf.begin(time.Now())
}

func (in *Ingester) endBackfill() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.bf.stop()
}

func (in *Ingester) setState(state, lastErr string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.status.State = state
	if lastErr != "" || state == StateStreaming {
		in.status.LastError = lastErr
	}
	if state == StateStreaming {
		in.status.SessionStart = time.Now()
	}
}

func (in *Ingester) setSourceInfo(info SourceInfo) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.status.Version = info.Version
}

func (in *Ingester) setSemiSync(s SemiSyncStatus) {
	in.mu.Lock()
	in.status.SemiSync = s
	in.mu.Unlock()
	v := 1.0
	if s.Degraded || !s.Enabled {
		v = 0
	}
	in.metrics.sourceSemiSync.Set(v)
}

func (in *Ingester) setLastAck(file string, pos uint64, gtid string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.status.LastAckFile, in.status.LastAckPos, in.status.LastAckGTID, in.status.LastAckTime = file, pos, gtid, time.Now()
}

// observeEvent records the source's position and clock from each event
// (heartbeats included) for the lag figures.
func (in *Ingester) observeEvent(ev []byte, file string) {
	now := time.Now()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.status.LastEventTime = now
	h, err := binlog.ParseHeader(ev)
	if err != nil {
		return
	}
	if h.LogPos > 0 {
		in.status.SourcePos = uint64(h.LogPos)
		if h.Type == binlog.TypeHeartbeat || file == "" {
			if name, err := rotateNameOfHeartbeat(ev); err == nil && name != "" {
				file = name
			}
		}
		in.status.SourceFile = file
		in.bf.observe(file, uint64(h.LogPos), now)
	}
}

// statementLogEvery bounds how often statement-based events are logged.
const statementLogEvery = time.Minute

// noteStatements counts a transaction's statement-based DML events and
// logs an error naming the fix (at most once a statementLogEvery). The
// transaction is stored and ACKed all the same: the source committed it.
func (in *Ingester) noteStatements(gtid string, n int) {
	if n == 0 {
		return
	}
	in.metrics.statementEvents.Add(float64(n))
	in.mu.Lock()
	in.status.StatementEvents += uint64(n)
	in.status.LastStatementGTID, in.status.LastStatementTime = gtid, time.Now()
	total := in.status.StatementEvents
	logNow := time.Since(in.stmtLogged) >= statementLogEvery
	if logNow {
		in.stmtLogged = time.Now()
	}
	in.mu.Unlock()
	if logNow {
		in.log.Error("the source sent statement-based row changes (a session with binlog_format=STATEMENT or MIXED): stored and acknowledged, "+
			"but CDC subscribers cannot decode them and replicas may diverge",
			"gtid", gtid, "statement_events", total,
			"fix", "binlog_format=ROW for every session: revoke SESSION_VARIABLES_ADMIN, SYSTEM_VARIABLES_ADMIN and SUPER from the applications' accounts (they allow SET SESSION binlog_format)")
	}
}

// noteReceived records a whole transaction received from the source.
func (in *Ingester) noteReceived(gtid string, ts uint32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.recvGTID, in.recvTS = gtid, ts
}

// noteStored records a transaction the log reported stored.
func (in *Ingester) noteStored(gtid string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.storedGTID = gtid
}

// rotateNameOfHeartbeat: a v1 heartbeat's body is the source's file name.
func rotateNameOfHeartbeat(ev []byte) (string, error) {
	if len(ev) <= binlog.HeaderLen {
		return "", nil
	}
	b := ev[binlog.HeaderLen:]
	for i, ch := range b {
		if ch < 0x20 || ch > 0x7e {
			b = b[:i]
			break
		}
	}
	return string(b), nil
}

// Run ingests while this member leads, until ctx ends.
func (in *Ingester) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return nil
		}
		r := in.node.Reader()
		switch {
		case r == nil || !in.node.IsLeader():
			in.setState(StateIdle, "")
			sleep(ctx, 200*time.Millisecond)
			continue
		case r.State().Epoch == 0:
			in.setState(StateNoSource, "")
			sleep(ctx, 200*time.Millisecond)
			continue
		case r.State().Source.Fenced:
			// NB: a failover fenced the old source and has not set the new
			// one yet: nothing to pull from until the epoch moves.
			in.setState(StateFenced, "")
			sleepOrNewEpoch(ctx, time.Second, r, r.State().Epoch)
			continue
		}
		st := r.State()
		in.mu.Lock()
		in.status.Source = st.Source.Addr
		in.mu.Unlock()
		in.setState(StateConnecting, "")
		sctx, cancel := context.WithCancelCause(ctx)
		go in.followLeadership(sctx, cancel)
		go followEpoch(sctx, r, st.Epoch, cancel)
		start := time.Now()
		s := &session{in: in, st: st, start: start}
		err := s.run(sctx)
		cancel(nil)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errLostLeadership) {
			in.log.Info("stopped ingesting: leadership moved", "source", st.Source.Addr)
			continue
		}
		if errors.Is(context.Cause(sctx), errEpochMoved) {
			in.log.Info("stopped ingesting: the epoch moved (failover)", "source", st.Source.Addr, "epoch", st.Epoch)
			continue
		}
		if time.Since(start) > 30*time.Second {
			backoff = 100 * time.Millisecond
		}
		wait := backoff
		if errors.Is(err, ErrSourceUnfit) || errors.Is(err, ErrWrongSource) {
			wait = max(wait, 5*time.Second) // NB: the operator must change something
		}
		in.metrics.sessionErrors.Inc()
		in.setState(StateRetrying, errString(err))
		in.log.Error("ingest session ended; reconnecting", "source", st.Source.Addr, "err", err, "retry_in", wait)
		sleepOrNewEpoch(ctx, wait, r, st.Epoch)
		backoff = min(2*backoff, 5*time.Second)
		if r.State().Epoch != st.Epoch {
			backoff = 100 * time.Millisecond // NB: a new source: start afresh
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "the source closed the connection"
	}
	return err.Error()
}

func (in *Ingester) followLeadership(ctx context.Context, cancel context.CancelCauseFunc) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !in.node.IsLeader() {
				cancel(errLostLeadership)
				return
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// watchHistory reads the source's binlog files and purged GTIDs every
// StatusInterval while a session streams, for /status (where the source's
// history ends, the backfill's progress). Each read is bounded and on its
// own connection: it may wait for the source's binlog lock (ReadHistory),
// which must hold up neither the session nor the semi-sync watch.
func (in *Ingester) watchHistory(ctx context.Context, flav binlog.Flavor, addr string) {
	var warned bool
	for {
		rctx, cancel := context.WithTimeout(ctx, max(5*time.Second, in.cfg.StatusInterval))
		h, err := ReadHistory(rctx, addr, in.cfg.User, in.cfg.Password, in.cfg.TLS, flav)
		cancel()
		switch {
		case err == nil:
			in.noteHistory(h)
		case ctx.Err() == nil && !warned:
			warned = true
			in.log.Warn("cannot read the source's binlog files: /status shows neither the backfill's progress nor where the source's history ends",
				"source", addr, "err", err, "fix", "grant REPLICATION CLIENT to the fleet's source account")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(in.cfg.StatusInterval):
		}
	}
}

// watchSource reads the source's semi-sync status on its own connection
// every StatusInterval while a session streams. A source that has fallen
// back to asynchronous commits (its timeout passed), or whose no_tx grows,
// is reported loudly: from then on its commits are not protected. If the
// source's semi-sync setting changes, the session restarts to follow it.
func (in *Ingester) watchSource(ctx context.Context, flav binlog.Flavor, addr string, sessionSemi bool, cancel context.CancelCauseFunc) {
	c, err := DialTLS(ctx, addr, in.cfg.User, in.cfg.Password, in.cfg.TLS)
	if err != nil {
		in.log.Warn("cannot read the source's semi-sync status", "source", addr, "err", err)
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Conn.Conn.SetDeadline(time.Now()) })
	defer stop()
	var lastNo int64 = -1
	var wasDegraded bool
	for {
		st := SemiSyncStatus{}
		if r, err := execute(c, flav.SemiSyncEnabledQuery()); err == nil {
			v, _ := r.GetString(0, 0)
			st.Enabled = isOn(v)
			r.Close()
		} else {
			st.Error = err.Error()
		}
		if r, err := execute(c, "SHOW GLOBAL STATUS LIKE '"+flav.SemiSyncStatusPrefix()+"%'"); err == nil {
			for i := 0; i < r.RowNumber(); i++ {
				k, _ := r.GetString(i, 0)
				v, _ := r.GetString(i, 1)
				k, v = strings.Clone(k), strings.Clone(v)
				n, _ := strconv.ParseInt(v, 10, 64)
				switch strings.TrimPrefix(strings.ToLower(k), strings.ToLower(flav.SemiSyncStatusPrefix())) {
				case "status":
					st.Status = isOn(v)
				case "clients":
					st.Clients = n
				case "yes_tx":
					st.YesTx = n
				case "no_tx":
					st.NoTx = n
				}
			}
			r.Close()
		} else if ctx.Err() == nil {
			in.log.Warn("reading the source's semi-sync status", "source", addr, "err", err)
		}
		st.Degraded = st.Enabled && (!st.Status || (lastNo >= 0 && st.NoTx > lastNo))
		if st.Degraded && !wasDegraded {
			in.log.Error("THE SOURCE HAS FALLEN BACK TO ASYNCHRONOUS COMMITS: its commits are not protected by the fleet until it switches back",
				"source", addr, "semi_sync_status", st.Status, "no_tx", st.NoTx, "yes_tx", st.YesTx,
				"fix", "raise rpl_semi_sync_{master,source}_timeout so the source waits instead (docs/SOURCE.md)")
		} else if !st.Degraded && wasDegraded {
			in.log.Info("the source is back to semi-synchronous commits", "source", addr)
		}
		wasDegraded = st.Degraded
		if st.Enabled || st.Error == "" {
			lastNo = st.NoTx
		}
		in.setSemiSync(st)
		if st.Error == "" && st.Enabled != sessionSemi {
			cancel(fmt.Errorf("semisync: the source's semi-sync setting changed (now enabled=%v); reconnecting to follow it", st.Enabled))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(in.cfg.StatusInterval):
		}
	}
}
