package binlogsvr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/semisync"
)

// Status is the JSON of GET /status: the group as this member sees it.
type Status = api.Status

// MemberStatus is one member in Status.Members.
type MemberStatus = api.MemberStatus

// routes is the admin API's handler: the daemon's own routes (metrics,
// pprof) and its source's (source.routes), behind authorize.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	s.sourcesRoutes(mux) // sources.go
	if s.hs != nil {
		mux.HandleFunc("GET /healthz", s.handleHostHealth)
	}
	if s.cfg.DebugAPI {
		s.pprofRoutes(mux) // debug.go; only in a binlogsvr_debug build
	}
	s.mux = mux
	return s.authorize() // auth.go: the role each route needs
}

// route finds the handler of req and the pattern it matches (routeRoles'
// key): the daemon's own routes first, then its sources' (routeSource).
// The pattern is "" when no route matches.
//
// NB: the handlers are ServeMuxes (or wrap one): ServeMux.ServeHTTP sets
// the request's path values ({name}, {id}) that the route handlers read;
// the handler ServeMux.Handler returns, called directly, would see them
// empty.
func (s *Server) route(req *http.Request) (http.Handler, string) {
	if _, p := s.mux.Handler(req); p != "" {
		return s.mux, p
	}
	return s.routeSource(req) // sources.go
}

// handleHostHealth answers 200 when the host's catalog knows a leader
// (GET /healthz on a host of several sources; each source's own is
// /sources/NAME/healthz).
func (s *Server) handleHostHealth(w http.ResponseWriter, _ *http.Request) {
	if _, ok := s.hs.cat.Shard().LeaderID(); !ok {
		http.Error(w, "the catalog knows no leader: its hosts have no quorum or are electing", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// routes is the source's admin routes: its log's status, files, members,
// failover and debug endpoints.
func (src *source) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", src.handleStatus)
	mux.HandleFunc("GET /healthz", src.handleHealth)
	mux.HandleFunc("GET /binlogs", src.handleBinlogs)
	mux.HandleFunc("GET /binlogs/{name}", src.handleBinlogFile)
	src.membersRoutes(mux)  // members.go (learners, membership)
	src.failoverRoutes(mux) // failover.go (lease, failover, switchover, rejoin)
	if src.cfg.DebugAPI {
		src.debugRoutes(mux) // debug.go; only in a binlogsvr_debug build
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// localStatus is this member's own view, without asking the others.
func (src *source) localStatus() (Status, error) {
	st := Status{ID: src.cfg.Log.ReplicaID, Role: src.role(), SourceError: src.getSeedErr(), Insecure: src.cfg.Insecure, Removed: src.removedMessage()}
	st.Leader, _ = src.node.LeaderID()
	d := src.node.Disk()
	st.DiskFreeBytes, st.DiskState = d.FreeBytes, d.State
	r := src.node.Reader()
	if r == nil {
		return st, fmt.Errorf("the log is not open yet")
	}
	ls := r.State()
	st.Epoch, st.Source, st.SourceFenced, st.Flavor = ls.Epoch, ls.Source.String(), ls.Source.Fenced, ls.Flavor
	st.GTIDExecuted, st.LastGTID, st.Transactions = ls.GTIDs, ls.LastGTID, ls.Txns
	st.Applied = r.Applied()
	ing := src.ing.Status()
	st.Ingest = &ing
	if src.dump != nil {
		st.DumpAddr = src.dump.Addr()
		st.DumpClients = src.dump.Clients()
	}
	if ls.File > 0 {
		st.LastFile, st.LastPosition = logger.FileName(ls.File), ls.Pos
		files, err := r.Files()
		if err != nil {
			return st, err
		}
		if len(files) > 0 {
			st.FirstFile = files[0].Name()
		}
	}
	return st, nil
}

// role is this member's role now: a logger once the group's voters (as
// this member applied them) list it, whatever it started as (a learner
// promoted since, a move's incoming replica); the role it started with
// while it knows no voters.
func (src *source) role() string {
	m, ok := src.node.LocalMembership()
	if !ok {
		return src.cfg.Log.Role
	}
	if _, voter := m.Loggers[src.cfg.Log.ReplicaID]; voter {
		return logger.RoleLogger
	}
	return logger.RoleLearner
}

func (src *source) handleStatus(w http.ResponseWriter, req *http.Request) {
	st, err := src.localStatus()
	if err != nil && st.Removed == "" {
		writeError(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	if req.URL.Query().Get("local") != "" || st.Removed != "" {
		writeJSON(w, http.StatusOK, st)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 3*time.Second)
	defer cancel()
	mctx, mcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	m, err := src.node.Membership(mctx)
	mcancel()
	if err != nil {
		// NB: without a quorum (or during an election) the linearizable read
		// cannot answer; an operator needs status most then: fall back to
		// this member's own view and say so.
		lm, ok := src.node.LocalMembership()
		if !ok {
			writeError(w, http.StatusServiceUnavailable, "reading the group's membership (is there a quorum?): %v", err)
			return
		}
		m = lm
		st.MembershipNote = fmt.Sprintf("this member's own view of the voting members (the group did not answer: %v)", err)
	}
	var leaderIngest *semisync.Status
	st.Members, leaderIngest = src.memberStatuses(ctx, m, st)
	if leaderIngest != nil {
		st.Ingest = leaderIngest // NB: the leader's is the one that matters
	}
	writeJSON(w, http.StatusOK, st)
}

// memberStatuses asks every member for its own status, in parallel.
func (src *source) memberStatuses(ctx context.Context, m logger.Membership, self Status) ([]MemberStatus, *semisync.Status) {
	var out []MemberStatus
	var leaderIngest *semisync.Status
	add := func(ids map[uint64]string, role string) {
		for id, addr := range ids {
			out = append(out, MemberStatus{ID: id, Role: role, RaftAddr: addr, Leader: id == self.Leader})
		}
	}
	add(m.Loggers, logger.RoleLogger)
	add(m.Learners, logger.RoleLearner)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	r := src.node.Reader()
	var wg sync.WaitGroup
	for i := range out {
		ms := &out[i]
		if ms.ID == self.ID {
			ms.Applied, ms.GTIDExecuted, ms.LastFile, ms.LastPosition = self.Applied, self.GTIDExecuted, self.LastFile, self.LastPosition
			ms.AdminAddr = src.srv.AdminAddr()
			continue
		}
		v, ok, _ := r.Meta(fmt.Sprintf(metaAdminAddr, ms.ID))
		if !ok {
			ms.Error = "admin address not registered yet"
			continue
		}
		ms.AdminAddr = string(v)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var peer Status
			if err := src.srv.getJSON(ctx, src.peerURL(ms.AdminAddr, "/status?local=1"), &peer); err != nil {
				ms.Error = err.Error()
				return
			}
			ms.Applied, ms.GTIDExecuted, ms.LastFile, ms.LastPosition = peer.Applied, peer.GTIDExecuted, peer.LastFile, peer.LastPosition
			if ms.Leader {
				leaderIngest = peer.Ingest
			}
		}()
	}
	wg.Wait()
	return out, leaderIngest
}

func (s *Server) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := s.httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("unreachable: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// handleHealth answers 200 when this member's log is open and it knows a
// leader, 503 otherwise, with the reason ("removed from the group: ..."
// once this member was removed).
func (src *source) handleHealth(w http.ResponseWriter, _ *http.Request) {
	if msg := src.removedMessage(); msg != "" {
		http.Error(w, "removed from the group: "+msg, http.StatusServiceUnavailable)
		return
	}
	if src.node.Reader() == nil {
		http.Error(w, "log not open", http.StatusServiceUnavailable)
		return
	}
	if _, ok := src.node.LeaderID(); !ok {
		http.Error(w, "no leader known: the group has no quorum or is electing", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// handleMetrics writes this process's Prometheus metrics and dragonboat's.
func (s *Server) handleMetrics(w http.ResponseWriter, req *http.Request) {
	var buf bytes.Buffer
	rw := &bufferWriter{header: http.Header{}, buf: &buf}
	promhttp.HandlerFor(s.gatherers(), promhttp.HandlerOpts{DisableCompression: true}).ServeHTTP(rw, req)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
	dragonboat.WriteHealthMetrics(w)
}

type bufferWriter struct {
	header http.Header
	buf    *bytes.Buffer
}

func (b *bufferWriter) Header() http.Header         { return b.header }
func (b *bufferWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }
func (b *bufferWriter) WriteHeader(int)             {}

func queryInt(req *http.Request, name string, d int) int {
	return atoiDefault(strings.TrimSpace(req.URL.Query().Get(name)), d)
}

func queryDuration(req *http.Request, name string, d time.Duration) time.Duration {
	v := req.URL.Query().Get(name)
	if v == "" {
		return d
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second
	}
	if x, err := time.ParseDuration(v); err == nil {
		return x
	}
	return d
}

// FileInfo is one entry of GET /binlogs: a binlog file this member holds.
type FileInfo struct {
	Name       string `json:"name"`
	Size       uint64 `json:"size"`
	Closed     bool   `json:"closed"`
	Txns       uint64 `json:"transactions"`
	Epoch      uint64 `json:"epoch"`
	Source     string `json:"source"`
	StartGTIDs string `json:"start_gtids"`
	SHA256     string `json:"sha256,omitempty"`
}

// handleBinlogs lists this member's binlog files (its own retention), with
// each file's SHA-256 when ?hash=1: equal on every member for equal files.
func (src *source) handleBinlogs(w http.ResponseWriter, req *http.Request) {
	r := src.node.Reader()
	if r == nil {
		writeError(w, http.StatusServiceUnavailable, "the log is not open yet")
		return
	}
	files, err := r.Files()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	hash := req.URL.Query().Get("hash") != ""
	out := []FileInfo{}
	for _, f := range files {
		fi := FileInfo{Name: f.Name(), Size: f.Size, Closed: f.Closed, Txns: f.Txns, Epoch: f.Epoch, Source: f.Source, StartGTIDs: f.StartGTIDs}
		if hash {
			h := sha256.New()
			var pos uint64
			purged := false
			for {
				b, m, err := r.ReadAt(f.Number, pos, 4<<20)
				if errors.Is(err, logger.ErrPurged) {
					purged = true // NB: this member's retention removed it meanwhile
					break
				}
				if err != nil {
					writeError(w, http.StatusInternalServerError, "%v", err)
					return
				}
				h.Write(b)
				pos += uint64(len(b))
				if len(b) == 0 || pos >= m.Size {
					fi.Size = m.Size
					break
				}
			}
			if purged {
				continue
			}
			fi.SHA256 = hex.EncodeToString(h.Sum(nil))
		}
		out = append(out, fi)
	}
	writeJSON(w, http.StatusOK, out)
}

// handleBinlogFile streams one binlog file this member holds, as it is on
// every member: for backups, PITR and byte-for-byte checks.
func (src *source) handleBinlogFile(w http.ResponseWriter, req *http.Request) {
	r := src.node.Reader()
	if r == nil {
		writeError(w, http.StatusServiceUnavailable, "the log is not open yet")
		return
	}
	n, err := logger.ParseFileName(req.PathValue("name"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	m, err := r.File(n)
	if err != nil {
		writeError(w, http.StatusNotFound, "%v", err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatUint(m.Size, 10))
	var pos uint64
	for pos < m.Size {
		b, _, err := r.ReadAt(n, pos, 4<<20)
		if err != nil || len(b) == 0 {
			return // NB: the length header tells the client the file is short
		}
		if _, err := w.Write(b); err != nil {
			return
		}
		pos += uint64(len(b))
	}
}
