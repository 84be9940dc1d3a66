package binlogsvr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/catalog"
)

// A host of several sources (docs/MULTISOURCE.md): the daemon runs one
// logger.Host, its replica of the catalog shard, and a source for each
// shard the catalog places on it. The reconcile loop starts and stops the
// sources as the catalog changes; each runs exactly as a one-source
// daemon's source does, over its own Node, with its metrics labelled
// source="NAME" and its admin routes under /sources/NAME.

// multi reports whether the daemon is a host of several sources.
func (c *Config) multi() bool { return len(c.CatalogMembers) > 0 }

// validateMulti checks the flags of a host of several sources.
func (c *Config) validateMulti() error {
	if !c.multi() {
		if c.SourceName != "" {
			if err := api.CheckSourceName(c.SourceName); err != nil {
				return fmt.Errorf("binlogsvr: --source-name: %v", err)
			}
		}
		return nil
	}
	id := c.Log.ReplicaID
	switch {
	case id > catalog.MaxHost:
		return fmt.Errorf("binlogsvr: --id %d: a host of several sources has an id in 1..%d", id, catalog.MaxHost)
	case c.Source != "":
		return errors.New("binlogsvr: --source is for a one-source daemon; on a host of several sources (--catalog-members), add sources with binlogctl sources add NAME --source HOST:PORT")
	case len(c.Log.Members) > 0 || c.Log.Join:
		return errors.New("binlogsvr: --members and --join are for a one-source daemon; a host of several sources names the catalog's hosts with --catalog-members, and the catalog places each source's shard")
	case c.DumpAddr != "":
		return errors.New("binlogsvr: --dump-addr is for a one-source daemon; on a host of several sources each source's dump address is given to binlogctl sources add --dump-addr ID=HOST:PORT")
	case c.Log.Role != logger.RoleLogger:
		return errors.New("binlogsvr: --role is for a one-source daemon; the catalog says where a host is a learner (binlogctl sources add --learners)")
	}
	if addr, ok := c.CatalogMembers[id]; ok && addr != c.Log.RaftAddr {
		return fmt.Errorf("binlogsvr: --catalog-members gives %s for host %d, but --raft-addr is %s", addr, id, c.Log.RaftAddr)
	}
	for h, addr := range c.CatalogMembers {
		if h != id && addr == c.Log.RaftAddr {
			return fmt.Errorf("binlogsvr: --catalog-members gives this host's --raft-addr %s to host %d", addr, h)
		}
	}
	if n := len(c.CatalogMembers); n != 3 && n != 5 && n != 1 {
		return fmt.Errorf("binlogsvr: --catalog-members lists %d hosts: 3 or 5 (1 for a test)", n)
	}
	return nil
}

// hostState is the multi-source part of a Server.
type hostState struct {
	host *logger.Host
	cat  *catalog.Catalog

	mu      sync.Mutex
	running map[string]*hostedSource // by source name
	failed  map[string]startFailure  // sources that did not start, and when to retry
	moveErr map[string]string        // why a move's last step failed, by source (move.go)
	// patterns serves no request: it is a source's routes, so that a
	// request for a source this host does not run still has its pattern
	// (the role it needs) before it is forwarded.
	patterns *routePatterns
}

// hostedSource is a source running on this host.
type hostedSource struct {
	src     *source
	shard   uint64
	replica uint64
	conf    string               // what of the catalog's entry it started with (dump address, flags): a change restarts it
	reg     *prometheus.Registry // its metrics (labelled source="NAME")
	cancel  context.CancelFunc
	done    chan struct{} // closed once its Run returned
	err     error         // why Run returned early, once done
}

type startFailure struct {
	err   string
	retry time.Time
	tries int
}

// startHostMode starts the host, its catalog replica, and no source yet
// (the reconcile loop starts them).
func (s *Server) startHostMode() error {
	hc := s.cfg.Log.Host()
	hc.Logger, hc.Registry = s.log, s.reg
	h, err := logger.StartHost(hc)
	if err != nil {
		return err
	}
	cc := catalog.DefaultConfig()
	cc.ReplicaID = s.cfg.Log.ReplicaID
	cc.Members = s.cfg.CatalogMembers
	if _, voter := s.cfg.CatalogMembers[cc.ReplicaID]; !voter {
		// NB: a host outside the catalog's voters keeps a learner copy of
		// it; binlogctl hosts add puts it in the catalog shard first. On a
		// restart its replica knows the shard from its own log.
		cc.Members, cc.Learner = nil, true
		cc.Join = !h.NodeHost().HasNodeInfo(cc.ShardID, cc.ReplicaID)
	}
	cc.ElectionRTT, cc.HeartbeatRTT = s.cfg.Log.ElectionRTT, s.cfg.Log.HeartbeatRTT
	cc.Logger = s.log
	cat, err := catalog.Start(h, cc)
	if err != nil {
		h.Close()
		return err
	}
	s.hs = &hostState{host: h, cat: cat, running: map[string]*hostedSource{}, failed: map[string]startFailure{}, moveErr: map[string]string{},
		patterns: newRoutePatterns(s.cfg.DebugAPI)}
	return nil
}

// runHost runs the host's loops until ctx ends, then stops every source
// and the host.
func (s *Server) runHost(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.registerHostLoop(ctx) }()
	go func() { defer wg.Done(); s.reconcileLoop(ctx) }()
	wg.Wait()
	s.hs.mu.Lock()
	names := slices.Sorted(maps.Keys(s.hs.running))
	s.hs.mu.Unlock()
	for _, name := range names {
		s.stopSource(name, false)
	}
	s.hs.cat.Close()
	s.hs.host.Close()
}

// registerHostLoop records this host's raft and admin addresses in the
// catalog (catalog.OpHost): what other hosts bootstrap source shards
// with, and call its admin API at. A host outside the catalog's voters
// that was not added yet says every 30 s what to run.
func (s *Server) registerHostLoop(ctx context.Context) {
	c := catalog.Command{Op: catalog.OpHost, Host: s.cfg.Log.ReplicaID, RaftAddr: s.cfg.Log.RaftAddr, AdminAddr: s.AdminAddr()}
	_, voter := s.cfg.CatalogMembers[c.Host]
	var told time.Time
	every(ctx, 500*time.Millisecond, func() bool {
		if _, ok := s.hs.cat.Shard().LeaderID(); !ok && !voter && time.Since(told) > 30*time.Second {
			told = time.Now()
			s.log.Warn(fmt.Sprintf("this host is not in the fleet's catalog yet: add it from anywhere with binlogctl hosts add %d --raft-addr %s --admin-addr %s", c.Host, c.RaftAddr, c.AdminAddr))
		}
		if h, ok := s.hs.cat.Local().Hosts[c.Host]; ok && h.RaftAddr == c.RaftAddr && h.AdminAddr == c.AdminAddr {
			return true
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		res, err := s.hs.cat.Propose(pctx, c)
		switch {
		case err != nil:
			s.log.Debug("registering this host in the catalog", "err", err)
		case !res.OK():
			// NB: a raft address another host holds, or a changed one: the
			// operator must fix the flags; said every 30 s, not every try.
			s.log.Error("the catalog refused this host's record: fix --raft-addr or --id", "result", res.String())
			select {
			case <-ctx.Done():
			case <-time.After(30 * time.Second):
			}
		}
		return false
	})
}

// reconcileLoop makes the sources running on this host the ones the
// catalog places on it, each time the catalog changes and every 2 s (to
// retry what failed).
func (s *Server) reconcileLoop(ctx context.Context) {
	var seen uint64
	for ctx.Err() == nil {
		st := s.hs.cat.Local()
		seen = st.Version
		s.reconcile(ctx, st)
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _ = s.hs.cat.Watch(wctx, seen)
		cancel()
	}
}

// reconcile starts the sources st places on this host that do not run,
// stops the ones that run and st no longer places here, and deletes the
// data of the ones st removed.
func (s *Server) reconcile(ctx context.Context, st *catalog.State) {
	me := s.cfg.Log.ReplicaID
	want := map[string]*catalog.Source{}
	for name, cs := range st.Sources {
		if _, ok := cs.Hosts()[me]; ok && cs.State == catalog.Active {
			want[name] = cs
		}
	}
	s.hs.mu.Lock()
	var stop []string
	for name, hs := range s.hs.running {
		cs, ok := want[name]
		if !ok || cs.ShardID != hs.shard || cs.Hosts()[me] != hs.replica || sourceConf(cs, me) != hs.conf {
			stop = append(stop, name)
		}
	}
	s.hs.mu.Unlock()
	for _, name := range stop {
		s.stopSource(name, false)
	}
	// NB: data is deleted only after a linearizable read confirms the
	// source is gone or removing: a replica of the catalog that restarts
	// may apply old entries first, and must not delete a live shard's data.
	if len(stop) > 0 || st.Version > 0 {
		s.removeGone(ctx)
	}
	defer s.driveMoves(ctx, st) // move.go
	defer s.recordStarted(ctx, st)
	defer s.addLearners(ctx, st)
	for _, name := range slices.Sorted(maps.Keys(want)) {
		s.hs.mu.Lock()
		hs, running := s.hs.running[name]
		f, failed := s.hs.failed[name]
		s.hs.mu.Unlock()
		if running {
			select {
			case <-hs.done:
				// NB: its Run ended on its own (a removed member, a broken
				// dump listener): stop it and start it again after a pause.
				s.stopSource(name, false)
				s.noteFailure(name, fmt.Errorf("it stopped: %v", hs.err))
			default:
			}
			continue
		}
		if failed && time.Now().Before(f.retry) {
			continue
		}
		if err := s.startSource(st, want[name]); err != nil {
			s.log.Error("cannot start a source this host runs; retrying", "source", name, "err", err)
			s.noteFailure(name, err)
			continue
		}
		s.hs.mu.Lock()
		delete(s.hs.failed, name)
		s.hs.mu.Unlock()
	}
}

// addLearners adds to each shard this host leads the learners the
// catalog lists for it that the shard lacks (binlogctl sources add
// --learners): their hosts start the replica with Join, and it catches up
// from the leader (by snapshot if the log was compacted).
func (s *Server) addLearners(ctx context.Context, st *catalog.State) {
	s.hs.mu.Lock()
	var mine []*hostedSource
	for _, hs := range s.hs.running {
		if hs.src.node.IsLeader() {
			mine = append(mine, hs)
		}
	}
	s.hs.mu.Unlock()
	for _, hs := range mine {
		cs := st.Source(hs.src.cfg.Name)
		if cs == nil || len(cs.Learners) == 0 {
			continue
		}
		mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := hs.src.node.Membership(mctx)
		cancel()
		if err != nil {
			continue
		}
		for _, h := range slices.Sorted(maps.Keys(cs.Learners)) {
			id := cs.Learners[h]
			_, isLearner := m.Learners[id]
			_, isLogger := m.Loggers[id]
			_, removed := m.Removed[id]
			hi, known := st.Hosts[h]
			if isLearner || isLogger || removed || !known {
				continue
			}
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := hs.src.mem.Apply(actx, learner.Change{Op: learner.OpAddLearner, ID: id, Addr: hi.RaftAddr, AdminAddr: hi.AdminAddr,
				By: "the catalog (binlogctl sources add --learners)"})
			cancel()
			if err != nil {
				s.log.Warn("adding a learner the catalog lists", "source", cs.Name, "host", h, "replica", id, "err", err)
				continue
			}
			s.log.Info("added a learner the catalog lists", "source", cs.Name, "host", h, "replica", id)
		}
	}
}

// recordStarted records in the catalog, for each source this host runs,
// that it started its replica (catalog.OpStarted): once recorded, a host
// that finds no raft data for it refuses to start it as an empty voter.
func (s *Server) recordStarted(ctx context.Context, st *catalog.State) {
	me := s.cfg.Log.ReplicaID
	s.hs.mu.Lock()
	var todo []catalog.Command
	for name, hs := range s.hs.running {
		if cs := st.Source(name); cs != nil && cs.ShardID == hs.shard && cs.Started[me] != hs.replica && hs.src.node.Reader() != nil {
			todo = append(todo, catalog.Command{Op: catalog.OpStarted, Name: name, Host: me, Replica: hs.replica})
		}
	}
	s.hs.mu.Unlock()
	for _, c := range todo {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		res, err := s.hs.cat.Propose(pctx, c)
		cancel()
		if err != nil || !res.OK() {
			s.log.Debug("recording a started replica in the catalog", "source", c.Name, "err", err, "result", res.String())
		}
	}
}

func (s *Server) noteFailure(name string, err error) {
	s.hs.mu.Lock()
	defer s.hs.mu.Unlock()
	f := s.hs.failed[name]
	f.tries++
	f.err = err.Error()
	f.retry = time.Now().Add(min(time.Duration(f.tries)*2*time.Second, 30*time.Second))
	s.hs.failed[name] = f
}

// removeGone deletes the data of every shard on this host's disk that the
// catalog removed (its source dropped or removing), after a linearizable
// read of the catalog. Shard ids are never reused, so such data is never
// needed again.
func (s *Server) removeGone(ctx context.Context) {
	dir := filepath.Join(s.cfg.Log.DataDir, "binlog")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type on struct{ shard, replica uint64 }
	var found []on
	for _, e := range ents {
		var o on
		if _, err := fmt.Sscanf(e.Name(), "shard-%d-replica-%d", &o.shard, &o.replica); err == nil && o.shard >= catalog.FirstSourceShard {
			found = append(found, o)
		}
	}
	if len(found) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := s.readCatalog(rctx)
	if err != nil {
		return // NB: no quorum: decide later
	}
	me := s.cfg.Log.ReplicaID
	live := map[on]bool{}
	for _, cs := range st.Sources {
		if cs.State != catalog.Active {
			continue
		}
		if r, ok := cs.Hosts()[me]; ok {
			live[on{cs.ShardID, r}] = true
		}
	}
	for _, o := range found {
		if live[o] || o.shard >= st.NextShard {
			continue
		}
		if s.hs.host.Shard(o.shard) != nil {
			continue // NB: still running (stopSource comes first)
		}
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.hs.host.NodeHost().SyncRemoveData(dctx, o.shard, o.replica)
		dcancel()
		if err != nil {
			s.log.Warn("removing a removed source's raft data", "shard", o.shard, "replica", o.replica, "err", err)
			continue
		}
		p := filepath.Join(dir, fmt.Sprintf("shard-%d-replica-%d", o.shard, o.replica))
		if err := os.RemoveAll(p); err != nil {
			s.log.Warn("removing a removed source's log", "dir", p, "err", err)
			continue
		}
		s.log.Info("removed the data of a source the catalog removed", "shard", o.shard, "replica", o.replica, "dir", p)
	}
}

// sourceConfigFor returns the configuration of catalog source cs on this
// host: the host's flags, with the source's shard, members, address,
// dump address and failover flags from the catalog.
func (s *Server) sourceConfigFor(st *catalog.State, cs *catalog.Source) (sourceConfig, error) {
	me := s.cfg.Log.ReplicaID
	cfg := s.cfg.source()
	cfg.Name = cs.Name
	cfg.Log.ShardID = cs.ShardID
	cfg.Log.ReplicaID = cs.Hosts()[me]
	_, voter := cs.Loggers[me]
	if m := cs.Move; m != nil && m.To == me && (m.Step == catalog.MovePromoted || m.Step == catalog.MoveRemoved) {
		voter = true // NB: promoted by the move, listed among the loggers at its end
	}
	cfg.Log.Role = logger.RoleLearner
	if voter {
		cfg.Log.Role = logger.RoleLogger
	}
	mode, err := cs.StartMode(me, s.hs.host.NodeHost().HasNodeInfo(cs.ShardID, cfg.Log.ReplicaID))
	if err != nil {
		return cfg, err
	}
	switch mode {
	case "restart":
		// NB: dragonboat refuses initial members that differ from the ones
		// the replica was bootstrapped with (raftpb Bootstrap.Validate), and
		// a move changes the loggers; the replica knows its shard's
		// membership from its own log.
		cfg.Log.Members, cfg.Log.Join = nil, false
	case "join":
		// NB: a learner (or a move's incoming host) is added by the shard's
		// leader and starts with Join.
		cfg.Log.Members, cfg.Log.Join = nil, true
	default: // bootstrap
		cfg.Log.Members, cfg.Log.Join = map[uint64]string{}, false
		for h, r := range cs.Loggers {
			hi, ok := st.Hosts[h]
			if !ok {
				return cfg, fmt.Errorf("host %d, one of its loggers, has not registered with the catalog yet (is binlogsvr running there with --catalog-members?)", h)
			}
			cfg.Log.Members[r] = hi.RaftAddr
		}
	}
	cfg.Source = cs.SourceAddr
	cfg.DumpAddr = cs.DumpAddrs[me]
	if m := cs.Move; m != nil && m.To == me {
		cfg.DumpAddr = m.ToDump // NB: the incoming host serves from its learner step on
	}
	// NB: the fleet's identity toward replicas differs per source (each
	// source keeps its own server_id and uuid); toward the source, each
	// member's server_id differs among that source's replicas.
	cfg.Dump.ServerID = s.cfg.Dump.ServerID + uint32(cs.ShardID) - 1
	cfg.Dump.ServerUUID = ""
	cfg.ServerID = uint32(1000 + cfg.Log.ReplicaID)
	fo, err := sourceFailover(s.cfg.Failover, cs.Failover)
	if err != nil {
		return cfg, err
	}
	cfg.Failover = fo
	if cfg.Log.Retention, err = sourceRetention(s.cfg.Log.Retention, cs.Retention); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// sourceConf is what of catalog source cs a host's running replica
// depends on beyond its shard and replica id: its dump address there and
// the source's own flags. reconcile restarts the source when it changes
// (a move's end gives the incoming host its dump address for good).
func sourceConf(cs *catalog.Source, me uint64) string {
	dump := cs.DumpAddrs[me]
	if m := cs.Move; m != nil && m.To == me {
		dump = m.ToDump
	}
	return dump + "|" + strings.Join(cs.Failover, " ") + "|" + strings.Join(cs.Retention, " ")
}

// sourceFailoverFlags are the failover flags a source may set for itself
// (binlogctl sources add): timings, candidates, the admin account's name.
// Hooks and files (commands run, secrets read on every host) stay the
// host's own flags, set by whoever runs the host.
var sourceFailoverFlags = []string{"failover-auto", "failover-lease", "failover-probe-interval", "failover-probe-timeout",
	"failover-catchup-timeout", "failover-resume-timeout", "failover-switchover-timeout", "failover-anti-flap",
	"failover-semi-sync-timeout", "failover-candidate", "failover-admin-user", "failover-fleet-addr"}

// sourceFailover returns the host's failover configuration with a
// source's own flags ("--failover-NAME=VALUE" lines) over it.
func sourceFailover(base failoverConfig, lines []string) (failoverConfig, error) {
	c := base
	if len(lines) == 0 {
		return c, nil
	}
	c.Candidates = nil // NB: a source that names candidates names all of its own
	fs := pflag.NewFlagSet("source failover", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	c.Candidates = nil
	allowed := map[string]bool{}
	for _, n := range sourceFailoverFlags {
		allowed[n] = true
	}
	for _, l := range lines {
		name, _, _ := strings.Cut(strings.TrimPrefix(l, "--"), "=")
		if !allowed[name] {
			return c, fmt.Errorf("--%s is a host's flag, not a source's (a source may set %s)", name, strings.Join(sourceFailoverFlags, ", "))
		}
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "--failover-candidate=") }) {
		c.Candidates = base.Candidates
	}
	if err := fs.Parse(lines); err != nil {
		return c, fmt.Errorf("the source's failover flags: %v", err)
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// sourceRetention returns the host's retention with a source's own
// --retain-files, --retain-bytes and --retain-age lines over it.
func sourceRetention(base logger.Retention, lines []string) (logger.Retention, error) {
	r := base
	fs := pflag.NewFlagSet("source retention", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntVar(&r.MaxFiles, "retain-files", r.MaxFiles, "")
	fs.Uint64Var(&r.MaxBytes, "retain-bytes", r.MaxBytes, "")
	fs.DurationVar(&r.MaxAge, "retain-age", r.MaxAge, "")
	if err := fs.Parse(lines); err != nil {
		return r, fmt.Errorf("the source's retention flags (--retain-files, --retain-bytes, --retain-age): %v", err)
	}
	if r.MaxFiles < 0 || r.MaxAge < 0 {
		return r, errors.New("the source's retention flags: --retain-files and --retain-age must not be negative")
	}
	return r, nil
}

// startSource starts catalog source cs on this host.
func (s *Server) startSource(st *catalog.State, cs *catalog.Source) error {
	cfg, err := s.sourceConfigFor(st, cs)
	if err != nil {
		return err
	}
	if len(cfg.Log.Members) > 0 {
		// NB: a bootstrap decided on this replica's possibly stale copy of
		// the catalog (a host that lost its data catches its catalog up
		// too): decide again on a linearizable read, which knows whether
		// this host ever started the shard.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		fresh, err := s.readCatalog(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("reading the catalog before bootstrapping the shard: %w", err)
		}
		fcs := fresh.Source(cs.Name)
		if fcs == nil || fcs.ShardID != cs.ShardID {
			return fmt.Errorf("the source changed in the catalog meanwhile")
		}
		if cfg, err = s.sourceConfigFor(fresh, fcs); err != nil {
			return err
		}
	}
	// NB: a replica removed from its shard (its marker in the shard's
	// directory) never starts again; a move or a learner gets a new
	// replica id from the catalog.
	shardDir := filepath.Join(s.cfg.Log.DataDir, "binlog", fmt.Sprintf("shard-%d-replica-%d", cs.ShardID, cfg.Log.ReplicaID))
	if err := learner.CheckRemovedMarker(shardDir); err != nil {
		return fmt.Errorf("not started: %w", err)
	}
	if cfg.DumpAddr != "" {
		dc := cfg.Dump
		dc.Addr, dc.User, dc.Password = cfg.DumpAddr, cfg.DumpUser, cfg.DumpPassword
		if err := dc.Validate(); err != nil {
			return err
		}
	}
	reg := prometheus.NewRegistry()
	labelled := prometheus.WrapRegistererWith(prometheus.Labels{"source": cs.Name}, reg)
	src, err := s.newSource(cfg, labelled, s.hs.host.StartShard)
	if err != nil {
		return err
	}
	src.prefix = "/sources/" + cs.Name
	ctx, cancel := context.WithCancel(context.Background())
	hs := &hostedSource{src: src, shard: cs.ShardID, replica: cfg.Log.ReplicaID, conf: sourceConf(cs, s.cfg.Log.ReplicaID),
		reg: reg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(hs.done)
		hs.err = src.Run(ctx)
		if hs.err != nil {
			s.log.Error("a source stopped on this host", "source", cs.Name, "err", hs.err)
		}
	}()
	s.hs.mu.Lock()
	s.hs.running[cs.Name] = hs
	s.hs.mu.Unlock()
	s.log.Info("started a source on this host", "source", cs.Name, "shard", cs.ShardID, "replica", cfg.Log.ReplicaID,
		"role", cfg.Log.Role, "source_addr", cs.SourceAddr, "dump_addr", cfg.DumpAddr)
	return nil
}

// stopSource stops the named source on this host, joins its goroutines
// and closes its replica (its data stays: removeGone deletes it once the
// catalog removed the source).
func (s *Server) stopSource(name string, _ bool) {
	s.hs.mu.Lock()
	hs, ok := s.hs.running[name]
	delete(s.hs.running, name)
	s.hs.mu.Unlock()
	if !ok {
		return
	}
	hs.cancel()
	select {
	case <-hs.done:
	case <-time.After(30 * time.Second):
		// NB: one source's stuck goroutine (a MySQL call without an answer)
		// must not hold up every other source's reconcile; its replica
		// stays open until the goroutines end.
		s.log.Error("a source's goroutines did not end within 30 s of its stop; leaving it to finish", "source", name, "shard", hs.shard)
		go func() { <-hs.done; hs.src.close() }()
		return
	}
	hs.src.close()
	s.log.Info("stopped a source on this host", "source", name, "shard", hs.shard)
}

// hosted returns the running source named name, or nil.
func (s *Server) hosted(name string) *source {
	if s.hs == nil {
		if s.src != nil && s.src.cfg.Name == name {
			return s.src
		}
		return nil
	}
	s.hs.mu.Lock()
	defer s.hs.mu.Unlock()
	if hs, ok := s.hs.running[name]; ok {
		return hs.src
	}
	return nil
}

// runningNames lists the sources this host runs, sorted.
func (s *Server) runningNames() []string {
	if s.hs == nil {
		return []string{s.src.cfg.Name}
	}
	s.hs.mu.Lock()
	defer s.hs.mu.Unlock()
	names := slices.Collect(maps.Keys(s.hs.running))
	sort.Strings(names)
	return names
}

// gatherers returns the registries /metrics writes: the daemon's, and
// each running source's on a host of several sources.
func (s *Server) gatherers() prometheus.Gatherers {
	g := prometheus.Gatherers{s.reg}
	if s.hs == nil {
		return g
	}
	s.hs.mu.Lock()
	defer s.hs.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(s.hs.running)) {
		g = append(g, s.hs.running[name].reg)
	}
	return g
}

// parseHostIDs parses "1,2,3".
func parseHostIDs(v, name string) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%s: %q is not a host id (a positive integer)", name, f)
		}
		out = append(out, n)
	}
	return out, nil
}
