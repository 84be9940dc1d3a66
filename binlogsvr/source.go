package binlogsvr

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/dump"
	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/semisync"
)

// A source is one source cluster's part of the daemon: its log (one raft
// shard, a logger.Node), the semi-sync ingest that feeds it, the dump
// server that serves it, and the membership and failover managers over
// it, with the admin routes about that log. The daemon (Server) owns what
// the sources of a host share: the admin listener and its TLS and tokens,
// the HTTP clients to the other members, the metrics registry.
//
// NB: a daemon runs one source today (docs/MULTISOURCE.md, step 3); its
// routes are served at the admin API's root paths (/status, /members, ...).
type source struct {
	srv  *Server // the daemon it runs in
	cfg  sourceConfig
	log  *slog.Logger
	reg  prometheus.Registerer
	node *logger.Node
	ing  *semisync.Ingester
	dump *dump.Server
	mem  *learner.Manager // members.go
	fo   *failoverState   // failover.go
	mux  *http.ServeMux   // the source's admin routes (routes)
	// prefix is where the source's routes are on every member's admin API:
	// "" (the root paths) for a daemon's one source.
	prefix string

	mu       sync.Mutex
	seedErr  string // why the log's first source could not be seeded yet
	appendMu sync.Mutex
}

// sourceConfig is what one source runs with: the part of Config about one
// log and the MySQL/MariaDB cluster it follows. The fields mean what
// Config's of the same name do.
type sourceConfig struct {
	// Name is the source's name (GET /sources; its metrics' source label
	// on a host of several sources).
	Name     string
	Log      logger.Config
	Ingest   semisync.Config
	Dump     dump.Config
	Members  learner.Config
	Failover failoverConfig

	Source         string
	SourceStart    string
	SourceUser     string
	SourcePassword string `json:"-"`
	ServerID       uint32

	DumpAddr     string
	DumpUser     string
	DumpPassword string `json:"-"`

	Insecure bool
	DebugAPI bool
}

// source returns the part of c about its one source.
func (c *Config) source() sourceConfig {
	return sourceConfig{Name: c.SourceName, Log: c.Log, Ingest: c.Ingest, Dump: c.Dump, Members: c.Members, Failover: c.Failover,
		Source: c.Source, SourceStart: c.SourceStart, SourceUser: c.SourceUser, SourcePassword: c.SourcePassword, ServerID: c.ServerID,
		DumpAddr: c.DumpAddr, DumpUser: c.DumpUser, DumpPassword: c.DumpPassword, Insecure: c.Insecure, DebugAPI: c.DebugAPI}
}

// newSource starts the source's log member with start (logger.Start for
// a daemon's one source, Host.StartShard on a host of several) and builds
// its parts, their metrics registered with reg; Run serves it. On an error
// nothing of it is left running.
func (s *Server) newSource(cfg sourceConfig, reg prometheus.Registerer, start func(logger.Config) (*logger.Node, error)) (*source, error) {
	src := &source{srv: s, cfg: cfg, log: s.log, reg: reg}
	if s.hs != nil {
		src.log = s.log.With("source", cfg.Name)
	}
	lc := cfg.Log
	lc.Logger = src.log
	lc.Registry = src.reg
	n, err := start(lc)
	if err != nil {
		return nil, err
	}
	src.node = n
	if err := src.init(); err != nil {
		n.Close()
		return nil, err
	}
	src.mux = src.routes()
	return src, nil
}

// init builds the parts over the started node.
func (src *source) init() error {
	cfg := src.cfg
	ic := cfg.Ingest
	ic.User, ic.Password, ic.ServerID = cfg.SourceUser, cfg.SourcePassword, cfg.ServerID
	if cfg.DumpAddr != "" {
		ic.ReportHost, ic.ReportPort = splitHostPort(cfg.DumpAddr)
	}
	var err error
	if src.ing, err = semisync.New(ic, src.node, src.log, src.reg); err != nil {
		return err
	}
	if err := src.initMembers(); err != nil { // members.go
		return err
	}
	// NB: after initMembers: a member that starts as a learner serves dumps
	// only once it has caught up (the Manager's gate).
	if cfg.DumpAddr != "" {
		dc := cfg.Dump
		dc.Addr, dc.User, dc.Password = cfg.DumpAddr, cfg.DumpUser, cfg.DumpPassword
		if err := dc.Validate(); err != nil {
			return err
		}
		if src.dump, err = dump.New(dc, src.mem.Gate(), src.log, src.reg); err != nil {
			return err
		}
	}
	return src.initFailover() // failover.go
}

// Run runs the source's goroutines (ingest, membership, failover, the dump
// server, the seed and registration loops) until ctx ends or one of them
// fails for good: the member was removed from the group, or the dump
// listener broke. It joins them all before it returns; the node stays
// open (close).
func (src *source) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		cancel()
	}
	var wg sync.WaitGroup
	wg.Add(5)
	go func() { defer wg.Done(); src.registerLoop(ctx) }()
	go func() { defer wg.Done(); src.seedLoop(ctx) }()
	go func() { defer wg.Done(); _ = src.ing.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := src.runMembers(ctx); err != nil { // members.go; a removed member exits
			fail(err)
		}
	}()
	go func() { defer wg.Done(); src.runFailover(ctx) }() // failover.go
	if src.dump != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := src.dump.Run(ctx); err != nil {
				fail(fmt.Errorf("binlogsvr: serving dumps on %s: %w", src.cfg.DumpAddr, err))
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// peerURL is the URL of the source's route path on the member whose admin
// API is at addr (and, for "", of its routes' root: what onLeader
// forwards under).
func (src *source) peerURL(addr, path string) string {
	return src.srv.adminURL(addr, src.prefix+path)
}

// close closes the source's log node (after Run returned).
func (src *source) close() { src.node.Close() }

// registerLoop records this member's admin address in the log, so that any
// member's /status can reach every other member.
//
// NB: tried every 250 ms: until it is recorded, the other members' status
// shows this member as "admin address not registered yet".
func (src *source) registerLoop(ctx context.Context) {
	key := fmt.Sprintf(metaAdminAddr, src.cfg.Log.ReplicaID)
	addr := src.srv.AdminAddr()
	every(ctx, 250*time.Millisecond, func() bool {
		r := src.node.Reader()
		if r == nil {
			return false
		}
		if v, ok, err := r.Meta(key); err == nil && ok && string(v) == addr {
			return true
		}
		if _, ok := src.node.LeaderID(); !ok {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := src.node.Propose(pctx, &logger.Meta{Key: key, Value: []byte(addr)})
		if err != nil {
			src.log.Debug("registering the admin address", "err", err)
		}
		return false
	})
}

// seedLoop sets the log's first source from --source: on the leader, while
// the log has no source, it probes the source and proposes SetSource for
// epoch 1, the log beginning where --source-start says (seedStart).
// Afterwards the log's own record of the source and its start wins.
func (src *source) seedLoop(ctx context.Context) {
	cfg := src.cfg
	if cfg.Source == "" {
		return
	}
	backoff := time.Second
	retry := func(err error) bool {
		src.setSeedErr(err.Error())
		src.log.Error("cannot seed the log's source; retrying", "source", cfg.Source, "source_start", cfg.SourceStart, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		return false
	}
	every(ctx, time.Second, func() bool {
		r := src.node.Reader()
		if r == nil {
			return false
		}
		if st := r.State(); st.Epoch > 0 {
			if st.Source.Addr != cfg.Source {
				src.log.Info("the log's own record of the source wins over --source", "log_source", st.Source.Addr, "flag_source", cfg.Source)
			}
			if v, ok, err := r.Meta(metaSourceStart); err == nil && ok && string(v) != cfg.SourceStart {
				src.log.Info("the log's own record of where it began wins over --source-start (it applies to an empty log only)",
					"log_source_start", string(v), "flag_source_start", cfg.SourceStart)
			}
			src.setSeedErr("")
			return true
		}
		if !src.node.IsLeader() {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		info, err := semisync.Probe(pctx, cfg.Source, cfg.SourceUser, cfg.SourcePassword, cfg.Ingest.TLS)
		if err != nil {
			return retry(err)
		}
		start, hist, err := semisync.StartAt(pctx, info, cfg.SourceStart, cfg.SourceUser, cfg.SourcePassword, cfg.Ingest.TLS)
		if err != nil {
			return retry(err)
		}
		res, err := src.node.Propose(pctx, &logger.SetSource{ExpectedEpoch: 0, NewEpoch: 1, Source: info.Source, StartGTIDs: start})
		if err != nil {
			src.log.Warn("proposing the first source", "err", err)
			return false
		}
		src.log.Info("seeded the log's source", "source", info.Source.Addr, "flavor", info.Source.Flavor,
			"version", info.Version, "result", res.Code.String(), "epoch", res.Epoch,
			"source_start", cfg.SourceStart, "start_gtids", start, "source_gtids", info.GTIDs,
			"source_oldest_file", hist.Oldest(), "source_purged", hist.Purged)
		if res.Code.Stored() {
			// NB: a record for the operator only (the log's start is its first
			// file's start_gtids); a failure here is logged, not retried.
			if _, err := src.node.Propose(pctx, &logger.Meta{Key: metaSourceStart, Value: []byte(cfg.SourceStart)}); err != nil {
				src.log.Warn("recording --source-start in the log", "err", err)
			}
		}
		return false // NB: loop once more to confirm from the applied state
	})
}

func (src *source) setSeedErr(e string) {
	src.mu.Lock()
	src.seedErr = e
	src.mu.Unlock()
}

func (src *source) getSeedErr() string {
	src.mu.Lock()
	defer src.mu.Unlock()
	return src.seedErr
}
