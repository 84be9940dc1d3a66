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

	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/logger"
)

// Meta keys this package keeps in the log.
const (
	metaAdminAddr = "member.%d.admin_addr"
	// metaSourceStart is the --source-start the log was seeded with.
	metaSourceStart = "source.start"
)

// Server is one binlogsvr daemon: the admin API and what the sources it
// runs share, and its source (source.go): a member of that source's log
// group, with its ingest, dump server, membership and failover.
type Server struct {
	cfg Config
	log *slog.Logger
	reg *prometheus.Registry
	// src is a one-source daemon's source (source.go); hs a host of
	// several sources' catalog and sources (multi.go). One of the two is
	// set.
	src *source
	hs  *hostState

	adminLn net.Listener
	admin   *http.Server
	ready   chan struct{} // closed once the member serves (Ready)

	tokens  *tokenStore    // auth.go; nil with --insecure
	members *http.Client   // to other members' admin APIs (TLS, this member's certificate)
	mux     *http.ServeMux // the daemon's own admin routes (routes), without authorize

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
	if cfg.multi() {
		err = s.startHostMode()
	} else {
		s.src, err = s.newSource(cfg.source(), s.reg, logger.Start)
	}
	if err != nil {
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

// Node returns the member's log node: a one-source daemon's; nil on a
// host of several sources.
func (s *Server) Node() *logger.Node {
	if s.src == nil {
		return nil
	}
	return s.src.node
}

// Alive reports whether the daemon's log is open: a one-source daemon's
// log, a host's catalog (systemd's watchdog).
func (s *Server) Alive() bool {
	if s.hs != nil {
		return s.hs.cat.Local() != nil
	}
	return s.src.node.Reader() != nil
}

// AdminAddr returns the address the admin API listens on.
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// Ready is closed once Run serves the admin API and the member has joined
// its group (its log is open and it knows the leader): what systemd's
// Type=notify waits for (READY=1).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// readyLoop closes ready once the log is open and a leader is known (on
// a host of several sources: the catalog's leader).
func (s *Server) readyLoop(ctx context.Context) {
	every(ctx, 100*time.Millisecond, func() bool {
		if s.hs != nil {
			if _, ok := s.hs.cat.Shard().LeaderID(); !ok {
				return false
			}
			close(s.ready)
			return true
		}
		if s.src.node.Reader() == nil {
			return false
		}
		if _, ok := s.src.node.LeaderID(); !ok {
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
	errc := make(chan error, 2)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.admin.Serve(s.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fail(fmt.Errorf("binlogsvr: admin API: %w", err))
		}
	}()
	lctx, cancel := context.WithCancel(ctx)
	wg.Add(3)
	go func() { defer wg.Done(); s.readyLoop(lctx) }()
	go func() { defer wg.Done(); s.insecureLoop(lctx) }() // auth.go
	go func() {
		defer wg.Done()
		if s.hs != nil {
			s.runHost(lctx) // multi.go; a source that fails is restarted, never the host
			return
		}
		if err := s.src.Run(lctx); err != nil {
			fail(err)
		}
	}()
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
	if s.src != nil {
		s.src.close()
	}
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
