package binlogsvr

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/catalog"
)

// The fleet's sources in the admin API (api/sources.go has the routes):
// GET /sources on every daemon, POST /sources and DELETE /sources/{name}
// on a host of several sources, and the dispatch of a request to the
// source it is about.

// routePatterns is a source's routes without a source: route uses it to
// know the pattern (and so the role) of a request for a source this host
// does not run, or for the root paths of a host of several sources.
type routePatterns struct{ mux *http.ServeMux }

func newRoutePatterns(debug bool) *routePatterns {
	return &routePatterns{mux: (&source{cfg: sourceConfig{DebugAPI: debug}}).routes()}
}

// pattern returns the source route that path (with req's method) matches.
func (p *routePatterns) pattern(req *http.Request, path string) string {
	r := req.Clone(req.Context())
	r.URL.Path, r.URL.RawPath = path, ""
	_, pat := p.mux.Handler(r)
	return pat
}

// sourcesRoutes registers the daemon's routes about its sources.
func (s *Server) sourcesRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /sources", s.handleSources)
	if s.hs != nil {
		mux.HandleFunc("POST /sources", s.handleAddSource)
		mux.HandleFunc("DELETE /sources/{name}", s.handleRemoveSource)
		mux.HandleFunc("POST /sources/{name}/move", s.handleMoveSource) // move.go
		mux.HandleFunc("GET /sources/history", s.handleSourcesHistory)
		mux.HandleFunc("GET /hosts", s.handleHosts)    // hosts.go
		mux.HandleFunc("POST /hosts", s.handleAddHost) // hosts.go
	}
}

// sourcePath splits /sources/NAME/REST into NAME and /REST.
func sourcePath(p string) (name, rest string, ok bool) {
	r, ok := strings.CutPrefix(p, "/sources/")
	if !ok {
		return "", "", false
	}
	name, rest, ok = strings.Cut(r, "/")
	if !ok || name == "" {
		return "", "", false
	}
	return name, "/" + rest, true
}

// routeSource returns the handler of a request about one source, and its
// pattern: /sources/NAME/PATH goes to that source's PATH (on this host,
// or forwarded to a host that runs it); the root paths go to the only
// source.
func (s *Server) routeSource(req *http.Request) (http.Handler, string) {
	var pats func(*http.Request, string) string
	if s.hs != nil {
		pats = s.hs.patterns.pattern
	} else {
		pats = (&routePatterns{mux: s.src.mux}).pattern
	}
	if name, rest, ok := sourcePath(req.URL.Path); ok {
		pattern := pats(req, rest)
		if src := s.hosted(name); src != nil {
			return http.StripPrefix("/sources/"+name, src.mux), pattern
		}
		if s.hs == nil {
			return errorHandler(http.StatusNotFound, "no source %q: this daemon serves one source, %q", name, s.src.cfg.Name), pattern
		}
		return s.forwardToSource(name), pattern
	}
	pattern := pats(req, req.URL.Path)
	if s.src != nil {
		return s.src.mux, pattern
	}
	if pattern == "" {
		return http.NotFoundHandler(), ""
	}
	// NB: the only source of the fleet, not of this host: which sources a
	// host runs changes with reconciles and moves, and a root path must
	// not reach another source a second later.
	names := s.runningNames()
	if all := s.hs.cat.Local().Names(); len(all) == 1 && len(names) == 1 && names[0] == all[0] {
		return s.hosted(names[0]).mux, pattern
	}
	if len(names) == 0 {
		return errorHandler(http.StatusConflict, "this host runs no source yet: list the fleet's with binlogctl sources, and give --source-name NAME"), pattern
	}
	all := s.hs.cat.Local().Names()
	return errorHandler(http.StatusConflict, "the fleet has %d sources (%s): give binlogctl --source-name NAME, or call /sources/NAME%s",
		len(all), strings.Join(all, ", "), req.URL.Path), pattern
}

func errorHandler(code int, format string, args ...any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeError(w, code, format, args...) })
}

// forwardToSource proxies a request for a source this host does not run
// to a host that runs it: its loggers first, then its learners, the first
// whose admin API answers. The host reached forwards to the source's
// leader itself if the route needs it (onLeader).
func (s *Server) forwardToSource(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		st := s.hs.cat.Local()
		cs := st.Source(name)
		if cs == nil {
			writeError(w, http.StatusNotFound, "no source %q in the fleet's catalog (binlogctl sources lists them)", name)
			return
		}
		if req.Header.Get(hdrRouted) != "" {
			writeError(w, http.StatusServiceUnavailable, "source %q does not run on host %d yet (routed here by host %s); retry in a few seconds",
				name, s.cfg.Log.ReplicaID, req.Header.Get(hdrRouted))
			return
		}
		var addrs []string
		for _, set := range []map[uint64]uint64{cs.Loggers, cs.Learners} {
			for _, h := range slices.Sorted(maps.Keys(set)) {
				if hi, ok := st.Hosts[h]; ok && h != s.cfg.Log.ReplicaID {
					addrs = append(addrs, hi.AdminAddr)
				}
			}
		}
		// NB: the first host whose admin port accepts a connection: a host
		// that is down must not make the source unreachable from here.
		for _, addr := range addrs {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				continue
			}
			c.Close()
			s.proxy(w, req, addr, fmt.Sprintf("host at %s", addr))
			return
		}
		writeError(w, http.StatusServiceUnavailable, "no host of source %q answers (tried %s)", name, strings.Join(addrs, ", "))
	})
}

// proxy passes req on to the admin API at addr with this member's
// certificate; the receiving member authorizes and audits the caller.
func (s *Server) proxy(w http.ResponseWriter, req *http.Request, addr, what string) {
	u, err := url.Parse(s.adminURL(addr, ""))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = s.members.Transport // NB: TLS with this member's certificate (nil: plain)
	p.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		writeError(w, http.StatusBadGateway, "forwarding to the %s: %v", what, err)
	}
	req.Header.Set(hdrRouted, strconv.FormatUint(s.cfg.Log.ReplicaID, 10))
	markForwarded(req) // auth.go: the receiving member authorizes and audits the caller
	p.ServeHTTP(w, req)
}

// handleSources lists the fleet's sources: from the catalog on a host of
// several sources, with each source's log as its hosts see it.
func (s *Server) handleSources(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 4*time.Second)
	defer cancel()
	if s.hs == nil {
		info := api.SourceInfo{Name: s.src.cfg.Name, ShardID: s.src.cfg.Log.ShardID, State: "active"}
		s.src.fillInfo(ctx, &info)
		writeJSON(w, http.StatusOK, []api.SourceInfo{info})
		return
	}
	st := s.hs.cat.Local()
	out := make([]api.SourceInfo, 0, len(st.Sources))
	for _, name := range st.Names() {
		out = append(out, s.sourceInfo(st, st.Sources[name]))
	}
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.fillHostedInfo(ctx, st, &out[i])
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, out)
}

// sourceInfo is the catalog's part of a SourceInfo.
func (s *Server) sourceInfo(st *catalog.State, cs *catalog.Source) api.SourceInfo {
	info := api.SourceInfo{Name: cs.Name, SourceAddr: cs.SourceAddr, ShardID: cs.ShardID, State: string(cs.State),
		Loggers: slices.Sorted(maps.Keys(cs.Loggers)), DumpAddrs: maps.Clone(cs.DumpAddrs),
		Failover: slices.Clone(cs.Failover), Retention: slices.Clone(cs.Retention)}
	if len(cs.Learners) > 0 {
		info.Learners = slices.Sorted(maps.Keys(cs.Learners))
	}
	info.Move = s.moveInfo(cs)
	return info
}

// fillHostedInfo fills a source's log fields: from this host's replica if
// it runs one, else from a host that does (GET /sources/NAME/status).
func (s *Server) fillHostedInfo(ctx context.Context, st *catalog.State, info *api.SourceInfo) {
	if src := s.hosted(info.Name); src != nil {
		src.fillInfo(ctx, info)
		return
	}
	cs := st.Source(info.Name)
	if cs == nil || cs.State != catalog.Active {
		return
	}
	info.Error = "no host of it answered"
	for _, h := range slices.Sorted(maps.Keys(cs.Hosts())) {
		hi, ok := st.Hosts[h]
		if !ok {
			continue
		}
		var peer Status
		if err := s.getJSON(ctx, s.adminURL(hi.AdminAddr, "/sources/"+info.Name+"/status"), &peer); err != nil {
			info.Error = fmt.Sprintf("host %d: %v", h, err)
			continue
		}
		info.Error = ""
		statusInfo(peer, hostOfReplica(cs, peer.Leader), info)
		return
	}
}

// fillInfo fills a source's log fields from this member's status (the
// leader's ingest, asked of the leader).
func (src *source) fillInfo(ctx context.Context, info *api.SourceInfo) {
	if info.SourceAddr == "" {
		info.SourceAddr = src.cfg.Source
	}
	st, err := src.localStatus()
	if err != nil {
		info.Error = err.Error()
		return
	}
	leaderHost := st.Leader
	if src.srv.hs != nil {
		if cs := src.srv.hs.cat.Local().Source(src.cfg.Name); cs != nil {
			leaderHost = hostOfReplica(cs, st.Leader)
		}
	}
	if st.Leader != 0 && st.Leader != st.ID {
		// NB: the ingest that matters is the leader's
		if r := src.node.Reader(); r != nil {
			if v, ok, _ := r.Meta(fmt.Sprintf(metaAdminAddr, st.Leader)); ok {
				var peer Status
				if err := src.srv.getJSON(ctx, src.peerURL(string(v), "/status?local=1"), &peer); err == nil {
					st.Ingest = peer.Ingest
				}
			}
		}
	}
	statusInfo(st, leaderHost, info)
}

// statusInfo copies a member's status into info.
func statusInfo(st Status, leaderHost uint64, info *api.SourceInfo) {
	info.Epoch, info.Leader, info.LastGTID = st.Epoch, leaderHost, st.LastGTID
	if st.Source != "" {
		// NB: the log's record of its source wins over the catalog's (the
		// address it was added with), as over --source: a failover moves it.
		info.SourceAddr = st.Source
	}
	if in := st.Ingest; in != nil {
		info.Ingest, info.LagSeconds, info.LagBytes = in.State, in.LagSeconds, in.LagBytes
	}
	if info.Error == "" && st.SourceError != "" {
		info.Error = st.SourceError
	}
}

// hostOfReplica is the host whose replica in cs's shard is replica (0:
// none).
func hostOfReplica(cs *catalog.Source, replica uint64) uint64 {
	for h, r := range cs.Hosts() {
		if r == replica && replica != 0 {
			return h
		}
	}
	return 0
}

// handleAddSource adds a source to the catalog (binlogctl sources add):
// the form fields of api/sources.go.
func (s *Server) handleAddSource(w http.ResponseWriter, req *http.Request) {
	c := catalog.Command{Op: catalog.OpAdd, Name: strings.TrimSpace(req.FormValue("name")), SourceAddr: strings.TrimSpace(req.FormValue("source"))}
	var err error
	if c.Loggers, err = parseHostIDs(req.FormValue("hosts"), "hosts"); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if c.Learners, err = parseHostIDs(req.FormValue("learners"), "learners"); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	for _, f := range strings.Split(req.FormValue("dump_addr"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		h, addr, ok := strings.Cut(f, "=")
		id, err := strconv.ParseUint(h, 10, 64)
		if !ok || err != nil || id == 0 {
			writeError(w, http.StatusBadRequest, "dump_addr %q: want HOST_ID=HOST:PORT", f)
			return
		}
		if c.DumpAddrs == nil {
			c.DumpAddrs = map[uint64]string{}
		}
		c.DumpAddrs[id] = addr
	}
	for _, l := range strings.Split(req.FormValue("failover"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			c.Failover = append(c.Failover, l)
		}
	}
	if _, err := sourceFailover(s.cfg.Failover, c.Failover); err != nil {
		writeError(w, http.StatusBadRequest, "failover: %v", err)
		return
	}
	for _, l := range strings.Split(req.FormValue("retention"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			c.Retention = append(c.Retention, l)
		}
	}
	if _, err := sourceRetention(s.cfg.Log.Retention, c.Retention); err != nil {
		writeError(w, http.StatusBadRequest, "retention: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	st := s.catalogFor(ctx, w)
	if st == nil {
		return
	}
	if len(c.Loggers) == 0 {
		n := 3
		if v := strings.TrimSpace(req.FormValue("loggers")); v != "" {
			if n, err = strconv.Atoi(v); err != nil || (n != 3 && n != 5) {
				writeError(w, http.StatusBadRequest, "loggers %q: 3 or 5", v)
				return
			}
		}
		up := map[uint64]bool{}
		for h := range st.Hosts {
			up[h] = true
		}
		if c.Loggers, err = catalog.Place(catalog.Loads(st, up), n, c.Learners...); err != nil {
			writeError(w, http.StatusConflict, "placing the source: %v", err)
			return
		}
	}
	for _, h := range slices.Concat(c.Loggers, c.Learners) {
		if _, ok := st.Hosts[h]; !ok {
			writeError(w, http.StatusConflict, "host %d has not registered with the catalog: start binlogsvr on it with --catalog-members (registered: %v)",
				h, slices.Sorted(maps.Keys(st.Hosts)))
			return
		}
	}
	res, ok := s.proposeFor(ctx, w, c.At(st.Version), "the catalog refused the source")
	if !ok {
		return
	}
	s.answerChange(w, c.Name, res.Version, fmt.Sprintf("added source %s as shard %d on hosts %v; each host starts it within seconds", c.Name, res.ShardID, c.Loggers))
}

// handleRemoveSource removes a source (binlogctl sources remove): refused
// while replicas read from it unless force. Its hosts stop it and delete
// its data (reconcile, removeGone).
func (s *Server) handleRemoveSource(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	st := s.catalogFor(ctx, w)
	if st == nil {
		return
	}
	cs := st.Source(name)
	if cs == nil {
		writeError(w, http.StatusNotFound, "no source %q in the fleet's catalog (binlogctl sources lists them)", name)
		return
	}
	if !formBool(req, "force") {
		if readers := s.sourceReaders(ctx, st, cs); len(readers) > 0 {
			writeError(w, http.StatusConflict, "source %s has replicas reading from it (%s): re-point them first, or remove it anyway with --force",
				name, strings.Join(readers, "; "))
			return
		}
	}
	info := s.sourceInfo(st, cs)
	v := st.Version
	if cs.State == catalog.Active {
		res, ok := s.proposeFor(ctx, w, catalog.Command{Op: catalog.OpRemove, Name: name}.At(v), "the catalog refused the removal")
		if !ok {
			return
		}
		v = res.Version
	}
	// NB: dropped at once: a host that still has the shard's data deletes
	// it when it sees the source gone (removeGone), including a host that
	// was down and starts later; shard ids are never reused.
	res, ok := s.proposeFor(ctx, w, catalog.Command{Op: catalog.OpDrop, Name: name}.At(v),
		"the catalog refused to drop the source (it is removing: its hosts stop it; run sources remove again to drop it)")
	if !ok {
		return
	}
	info.State = string(catalog.Removing)
	writeJSON(w, http.StatusOK, api.SourceChange{Source: info, Version: res.Version,
		Message: fmt.Sprintf("removed source %s (shard %d); its hosts stop it and delete its data", name, cs.ShardID)})
}

// sourceReaders lists the replicas reading source cs from any of its
// hosts, "host H: server_id N at FILE" each.
func (s *Server) sourceReaders(ctx context.Context, st *catalog.State, cs *catalog.Source) []string {
	var mu sync.Mutex
	var out []string
	var wg sync.WaitGroup
	for _, h := range slices.Sorted(maps.Keys(cs.Hosts())) {
		hi, ok := st.Hosts[h]
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var peer Status
			var err error
			if src := s.hosted(cs.Name); src != nil && h == s.cfg.Log.ReplicaID {
				peer, err = src.localStatus()
			} else {
				err = s.getJSON(ctx, s.adminURL(hi.AdminAddr, "/sources/"+cs.Name+"/status?local=1"), &peer)
			}
			if err != nil {
				return // NB: a host down serves no one now
			}
			mu.Lock()
			defer mu.Unlock()
			for _, c := range peer.DumpClients {
				if c.Dumping {
					out = append(out, fmt.Sprintf("host %d: server_id %d at %s", h, c.ServerID, c.File))
				}
			}
		}()
	}
	wg.Wait()
	slices.Sort(out)
	return out
}

// readCatalog reads the catalog linearizably, retrying while its replica
// here is not ready (no leader yet: a host that just started, an
// election) until ctx ends. Each try has 2 s: a read the replica passed
// on to a leader that then lost its term is never answered (measured: a
// host that restarts loses its first read now and then,
// TestReadAfterRestart), so one try must not take all of ctx.
func (s *Server) readCatalog(ctx context.Context) (*catalog.State, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := s.hs.cat.Read(actx)
		cancel()
		if err == nil || !errors.Is(err, logger.ErrRetry) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// catalogFor is readCatalog for a handler: on an error it answers 503 and
// returns nil.
func (s *Server) catalogFor(ctx context.Context, w http.ResponseWriter) *catalog.State {
	st, err := s.readCatalog(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "reading the catalog (is there a quorum of its hosts?): %v", err)
		return nil
	}
	return st
}

// proposeFor proposes c to the catalog for a handler: on an error (503,
// the outcome unknown) or a refusal (what refused names the change) it
// answers and reports false.
func (s *Server) proposeFor(ctx context.Context, w http.ResponseWriter, c catalog.Command, refused string) (catalog.Result, bool) {
	res, err := s.hs.cat.Propose(ctx, c)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "proposing to the catalog (the outcome is unknown: list the sources): %v", err)
		return res, false
	}
	if !res.OK() {
		writeError(w, catalogErrorCode(res.Code), "%s: %s", refused, refusal(res))
		return res, false
	}
	return res, true
}

// answerChange answers a change of source name with its entry in this
// replica's catalog (just applied).
func (s *Server) answerChange(w http.ResponseWriter, name string, version uint64, msg string) {
	st := s.hs.cat.Local()
	info := api.SourceInfo{Name: name}
	if cs := st.Source(name); cs != nil {
		info = s.sourceInfo(st, cs)
	}
	writeJSON(w, http.StatusOK, api.SourceChange{Source: info, Version: version, Message: msg})
}

// refusal says why the catalog refused a command, with what to do when
// it only changed meanwhile.
func refusal(res catalog.Result) string {
	if res.Code == catalog.StaleVersion {
		return res.String() + ": the catalog changed meanwhile (another change landed first); retry"
	}
	return res.String()
}

// catalogErrorCode maps a catalog refusal to an HTTP status.
func catalogErrorCode(c catalog.Code) int {
	switch c {
	case catalog.Invalid:
		return http.StatusBadRequest
	case catalog.NotFound:
		return http.StatusNotFound
	}
	return http.StatusConflict
}
