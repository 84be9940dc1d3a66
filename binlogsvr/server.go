package binlogsvr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/binlogsvr/binlogsvr/dump"
	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/semisync"
)

// Meta keys this package keeps in the log.
const (
	metaAdminAddr = "member.%d.admin_addr"
	// metaSourceStart is the --source-start the log was seeded with.
	metaSourceStart = "source.start"
)

// Server is one binlogsvr daemon: a member of the log's group and its admin
// API.
type Server struct {
	cfg  Config
	log  *slog.Logger
	reg  *prometheus.Registry
	node *logger.Node
	ing  *semisync.Ingester
	dump *dump.Server
	mem  *learner.Manager // members.go
	fo   *failoverState   // failover.go

	adminLn net.Listener
	admin   *http.Server
	ready   chan struct{} // closed once the member serves (Ready)

	tokens  *tokenStore    // auth.go; nil with --insecure
	members *http.Client   // to other members' admin APIs (TLS, this member's certificate)
	mux     *http.ServeMux // the admin routes, without authorize (auth_test.go)

	mu         sync.Mutex
	seedErr    string // why the log's first source could not be seeded yet
	appendMu   sync.Mutex
	httpClient *http.Client
}

// New starts the member and binds the admin API; Run serves.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ServerID == 0 {
		cfg.ServerID = uint32(1000 + cfg.Log.ReplicaID)
	}
	// NB: the data directory of a member removed from the group never
	// starts again (ExitRemoved): it would only wait for a group that
	// ignores it.
	if err := learner.CheckRemovedMarker(cfg.Log.DataDir); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, reg: prometheus.NewRegistry(), ready: make(chan struct{})}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("binlogsvr: admin API on --admin-addr %s: %w", cfg.AdminAddr, err)
	}
	s.adminLn = ln
	if err := s.initAdminAuth(); err != nil { // auth.go
		ln.Close()
		return nil, err
	}
	lc := cfg.Log
	lc.Logger = log
	lc.Registry = s.reg
	n, err := logger.Start(lc)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.node = n
	ic := cfg.Ingest
	ic.User, ic.Password, ic.ServerID = cfg.SourceUser, cfg.SourcePassword, cfg.ServerID
	if cfg.DumpAddr != "" {
		ic.ReportHost, ic.ReportPort = splitHostPort(cfg.DumpAddr)
	}
	if s.ing, err = semisync.New(ic, n, log, s.reg); err != nil {
		n.Close()
		ln.Close()
		return nil, err
	}
	if err := s.initMembers(); err != nil { // members.go
		n.Close()
		ln.Close()
		return nil, err
	}
	// NB: after initMembers: a member that starts as a learner serves dumps
	// only once it has caught up (the Manager's gate).
	if cfg.DumpAddr != "" {
		dc := cfg.Dump
		dc.Addr, dc.User, dc.Password = cfg.DumpAddr, cfg.DumpUser, cfg.DumpPassword
		if err := dc.Validate(); err != nil {
			n.Close()
			ln.Close()
			return nil, err
		}
		if s.dump, err = dump.New(dc, s.mem.Gate(), log, s.reg); err != nil {
			n.Close()
			ln.Close()
			return nil, err
		}
	}
	if err := s.initFailover(); err != nil { // failover.go
		n.Close()
		ln.Close()
		return nil, err
	}
	// NB: limits before authentication: a stranger holds a connection for
	// at most ReadHeaderTimeout, with headers of at most
	// maxAdminHeaderBytes; bodies are capped by authorize.
	s.admin = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: maxAdminHeaderBytes,
		IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	return s, nil
}

// Node returns the member's log node.
func (s *Server) Node() *logger.Node { return s.node }

// AdminAddr returns the address the admin API listens on.
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// Ready is closed once Run serves the admin API and the member has joined
// its group (its log is open and it knows the leader): what systemd's
// Type=notify waits for (READY=1).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// readyLoop closes ready once the log is open and a leader is known.
func (s *Server) readyLoop(ctx context.Context) {
	every(ctx, 100*time.Millisecond, func() bool {
		if s.node.Reader() == nil {
			return false
		}
		if _, ok := s.node.LeaderID(); !ok {
			return false
		}
		close(s.ready)
		return true
	})
}

// Run serves until ctx ends, then shuts down cleanly.
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("binlogsvr started", "id", s.cfg.Log.ReplicaID, "role", s.cfg.Log.Role, "raft_addr", s.cfg.Log.RaftAddr,
		"admin_addr", s.AdminAddr(), "data_dir", s.cfg.Log.DataDir, "server_id", s.cfg.ServerID, "insecure", s.cfg.Insecure)
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.admin.Serve(s.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("binlogsvr: admin API: %w", err)
		}
	}()
	lctx, cancel := context.WithCancel(ctx)
	wg.Add(5)
	go func() { defer wg.Done(); s.readyLoop(lctx) }()
	go func() { defer wg.Done(); s.insecureLoop(lctx) }() // auth.go
	go func() { defer wg.Done(); s.registerLoop(lctx) }()
	go func() { defer wg.Done(); s.seedLoop(lctx) }()
	go func() { defer wg.Done(); _ = s.ing.Run(lctx) }()
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.runMembers(lctx); err != nil { // members.go; a removed member exits
			select {
			case errc <- err:
			default:
			}
		}
	}()
	go func() { defer wg.Done(); s.runFailover(lctx) }() // failover.go
	if s.dump != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.dump.Run(lctx); err != nil {
				select {
				case errc <- fmt.Errorf("binlogsvr: serving dumps on %s: %w", s.cfg.DumpAddr, err):
				default:
				}
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = s.admin.Shutdown(sctx)
	wg.Wait()
	s.node.Close()
	s.log.Info("binlogsvr stopped", "id", s.cfg.Log.ReplicaID)
	return err
}

// every calls f now and then every d until ctx ends or f returns true.
func every(ctx context.Context, d time.Duration, f func() bool) {
	for {
		if f() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// registerLoop records this member's admin address in the log, so that any
// member's /status can reach every other member.
//
// NB: tried every 250 ms: until it is recorded, the other members' status
// shows this member as "admin address not registered yet".
func (s *Server) registerLoop(ctx context.Context) {
	key := fmt.Sprintf(metaAdminAddr, s.cfg.Log.ReplicaID)
	every(ctx, 250*time.Millisecond, func() bool {
		r := s.node.Reader()
		if r == nil {
			return false
		}
		if v, ok, err := r.Meta(key); err == nil && ok && string(v) == s.AdminAddr() {
			return true
		}
		if _, ok := s.node.LeaderID(); !ok {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := s.node.Propose(pctx, &logger.Meta{Key: key, Value: []byte(s.AdminAddr())})
		if err != nil {
			s.log.Debug("registering the admin address", "err", err)
		}
		return false
	})
}

// seedLoop sets the log's first source from --source: on the leader, while
// the log has no source, it probes the source and proposes SetSource for
// epoch 1, the log beginning where --source-start says (seedStart).
// Afterwards the log's own record of the source and its start wins.
func (s *Server) seedLoop(ctx context.Context) {
	if s.cfg.Source == "" {
		return
	}
	backoff := time.Second
	retry := func(err error) bool {
		s.setSeedErr(err.Error())
		s.log.Error("cannot seed the log's source; retrying", "source", s.cfg.Source, "source_start", s.cfg.SourceStart, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		return false
	}
	every(ctx, time.Second, func() bool {
		r := s.node.Reader()
		if r == nil {
			return false
		}
		if st := r.State(); st.Epoch > 0 {
			if st.Source.Addr != s.cfg.Source {
				s.log.Info("the log's own record of the source wins over --source", "log_source", st.Source.Addr, "flag_source", s.cfg.Source)
			}
			if v, ok, err := r.Meta(metaSourceStart); err == nil && ok && string(v) != s.cfg.SourceStart {
				s.log.Info("the log's own record of where it began wins over --source-start (it applies to an empty log only)",
					"log_source_start", string(v), "flag_source_start", s.cfg.SourceStart)
			}
			s.setSeedErr("")
			return true
		}
		if !s.node.IsLeader() {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		info, err := semisync.Probe(pctx, s.cfg.Source, s.cfg.SourceUser, s.cfg.SourcePassword, s.cfg.Ingest.TLS)
		if err != nil {
			return retry(err)
		}
		start, hist, err := semisync.StartAt(pctx, info, s.cfg.SourceStart, s.cfg.SourceUser, s.cfg.SourcePassword, s.cfg.Ingest.TLS)
		if err != nil {
			return retry(err)
		}
		res, err := s.node.Propose(pctx, &logger.SetSource{ExpectedEpoch: 0, NewEpoch: 1, Source: info.Source, StartGTIDs: start})
		if err != nil {
			s.log.Warn("proposing the first source", "err", err)
			return false
		}
		s.log.Info("seeded the log's source", "source", info.Source.Addr, "flavor", info.Source.Flavor,
			"version", info.Version, "result", res.Code.String(), "epoch", res.Epoch,
			"source_start", s.cfg.SourceStart, "start_gtids", start, "source_gtids", info.GTIDs,
			"source_oldest_file", hist.Oldest(), "source_purged", hist.Purged)
		if res.Code.Stored() {
			// NB: a record for the operator only (the log's start is its first
			// file's start_gtids); a failure here is logged, not retried.
			if _, err := s.node.Propose(pctx, &logger.Meta{Key: metaSourceStart, Value: []byte(s.cfg.SourceStart)}); err != nil {
				s.log.Warn("recording --source-start in the log", "err", err)
			}
		}
		return false // NB: loop once more to confirm from the applied state
	})
}

func (s *Server) setSeedErr(e string) {
	s.mu.Lock()
	s.seedErr = e
	s.mu.Unlock()
}

func (s *Server) getSeedErr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seedErr
}

func splitHostPort(addr string) (string, uint16) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0
	}
	n, _ := strconv.ParseUint(p, 10, 16)
	return h, uint16(n)
}

func atoiDefault(s string, d int) int {
	if s == "" {
		return d
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return d
	}
	return n
}
