package binlogsvr

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/pki"
)

// Roles of the admin API, weakest first.
const (
	roleOpen    = ""              // no credentials needed
	roleRead    = pki.RoleRead    // status, members, history, listings, metrics
	roleOperate = pki.RoleOperate // everything that changes state
)

// routeRoles is the role each admin route needs, by its ServeMux pattern.
// A route missing here needs operate (closed by default); requests that
// match no route need read (no 404s for strangers).
var routeRoles = map[string]string{
	"GET /healthz":              roleOpen,
	"GET /metrics":              roleRead, // roleOpen with --metrics-open
	"GET /status":               roleRead,
	"GET /sources":              roleRead,
	"POST /sources":             roleOperate,
	"DELETE /sources/{name}":    roleOperate,
	"GET /sources/history":      roleRead,
	"POST /sources/{name}/move": roleOperate,
	"GET /hosts":                roleRead,
	"POST /hosts":               roleOperate,
	"GET /binlogs":              roleRead,
	"GET /binlogs/{name}":       roleRead,
	"GET /members":              roleRead,
	"GET /members/self":         roleRead,
	"GET /failover/status":      roleRead,
	"GET /failover/history":     roleRead,
	"GET /failover/candidates":  roleRead,
	// NB: read, so that the leader's asks are not audited; the member
	// probes only the source its own log names.
	"GET /failover/probe-source": roleRead,

	// NB: rejoin-check is a GET but logs in to MySQL servers.
	"GET /failover/rejoin-check":  roleOperate,
	"POST /failover/rejoin":       roleOperate,
	"POST /failover/forget-fence": roleOperate,
	"POST /failover/failover":     roleOperate,
	"POST /failover/switchover":   roleOperate,
	"POST /failover/candidates":   roleOperate,
	"DELETE /failover/candidates": roleOperate,
	"POST /members":               roleOperate,
	"POST /members/{id}/promote":  roleOperate,
	"POST /members/{id}/demote":   roleOperate,
	"DELETE /members/{id}":        roleOperate,
	"POST /members/{id}/weight":   roleOperate,
	// NB: members only (handleRemoved checks the certificate): the leader
	// tells a removed member.
	"POST /members/self/removed": roleOperate,
	"POST /transfer-leader":      roleOperate,
	"POST /purge":                roleOperate,
	"POST /rotate":               roleOperate,
	"POST /debug/append":         roleOperate,
	"POST /debug/bench":          roleOperate,
	"POST /debug/max-file-size":  roleOperate,
	"/debug/pprof/":              roleOperate,
	"/debug/pprof/profile":       roleOperate,
	"/debug/pprof/trace":         roleOperate,
}

func roleRank(r string) int {
	switch r {
	case roleOpen:
		return 0
	case roleRead:
		return 1
	case roleOperate:
		return 2
	}
	return 3 // NB: unknown roles satisfy nothing
}

// Headers between members.
const (
	// hdrOnBehalf: a member forwarding a request to the leader names the
	// caller it authenticated by certificate ("ROLE NAME"). Honoured only
	// on a connection authenticated by a member certificate; a Bearer token
	// is never replaced by it (the leader checks the token itself).
	hdrOnBehalf  = "X-Binlogsvr-On-Behalf-Of"
	hdrForwarded = "X-Binlogsvr-Forwarded"
	// hdrRouted: a host of several sources passed the request to a host
	// that runs its source (forwardToSource). Not hdrForwarded: that one
	// means "at the leader already", and the host reached may still have
	// to forward to its source's leader (onLeader).
	hdrRouted = "X-Binlogsvr-Routed"
)

// Limits before authentication.
const (
	maxAdminHeaderBytes = 64 << 10
	maxAdminBodyBytes   = 1 << 20
)

// tokenEntry is one line of the token file.
type tokenEntry struct {
	role, name string
	token      []byte
}

// parseTokens parses a token file: lines "ROLE NAME TOKEN", # comments and
// blank lines ignored. Errors name the line.
func parseTokens(file string, b []byte) ([]tokenEntry, error) {
	var out []tokenEntry
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s line %d: want \"ROLE NAME TOKEN\", got %d fields", file, n, len(f))
		}
		if f[0] != roleRead && f[0] != roleOperate {
			return nil, fmt.Errorf("%s line %d: role must be %s or %s, got %q", file, n, roleRead, roleOperate, f[0])
		}
		if len(f[2]) < 16 {
			return nil, fmt.Errorf("%s line %d: token of %s is shorter than 16 characters (make one with `binlogctl certs create-token`)", file, n, f[1])
		}
		if names[f[1]] {
			return nil, fmt.Errorf("%s line %d: name %s appears twice (the audit trail names tokens by it)", file, n, f[1])
		}
		names[f[1]] = true
		out = append(out, tokenEntry{role: f[0], name: f[1], token: []byte(f[2])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	return out, nil
}

// tokenStore holds the token file's tokens and re-reads the file when it
// changes (size or modification time), so tokens rotate without a restart.
type tokenStore struct {
	file string
	warn func(msg string, args ...any)

	mu      sync.Mutex
	stamp   [2]int64 // size, mtime ns
	entries []tokenEntry
}

func loadTokens(file string, warn func(string, ...any)) (*tokenStore, error) {
	t := &tokenStore{file: file, warn: warn}
	if err := t.reload(true); err != nil {
		return nil, err
	}
	return t, nil
}

// reload re-reads the file if it changed. NB: after the first load, a file
// that cannot be read or parsed (an editor's half-written save) leaves the
// last good tokens in use, with a warning.
func (t *tokenStore) reload(first bool) error {
	fi, err := os.Stat(t.file)
	if err != nil {
		if first {
			return fmt.Errorf("binlogsvr: --admin-token-file: %w", err)
		}
		t.warn("cannot read --admin-token-file; keeping the last tokens", "file", t.file, "err", err)
		return nil
	}
	st := [2]int64{fi.Size(), fi.ModTime().UnixNano()}
	t.mu.Lock()
	same := !first && st == t.stamp
	t.mu.Unlock()
	if same {
		return nil
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.warn("--admin-token-file is readable by its group or others; chmod 600 it", "file", t.file, "mode", fi.Mode().Perm().String())
	}
	b, err := os.ReadFile(t.file)
	if err == nil {
		var es []tokenEntry
		if es, err = parseTokens(t.file, b); err == nil {
			t.mu.Lock()
			t.entries, t.stamp = es, st
			t.mu.Unlock()
			return nil
		}
	}
	if first {
		return fmt.Errorf("binlogsvr: --admin-token-file: %w", err)
	}
	t.warn("--admin-token-file changed but cannot be used; keeping the last tokens", "err", err)
	t.mu.Lock()
	t.stamp = st // NB: warn once per change, not per request
	t.mu.Unlock()
	return nil
}

// lookup finds a token, comparing with every entry in constant time.
func (t *tokenStore) lookup(tok []byte) (tokenEntry, bool) {
	_ = t.reload(false)
	t.mu.Lock()
	es := t.entries
	t.mu.Unlock()
	var found tokenEntry
	ok := 0
	for _, e := range es {
		if subtle.ConstantTimeCompare(e.token, tok) == 1 {
			found, ok = e, 1
		}
	}
	return found, ok == 1
}

// adminFiles is the admin API's TLS files: --admin-tls-* where set, the
// raft member's --raft-tls-* otherwise.
func (c *Config) adminFiles() pki.Files {
	f := c.AdminTLS
	if f.Cert == "" && f.Key == "" {
		f.Cert, f.Key = c.Log.RaftTLS.Cert, c.Log.RaftTLS.Key
	}
	if f.CA == "" {
		f.CA = c.Log.RaftTLS.CA
	}
	return f
}

// validateAdmin checks the admin API's security flags.
func (c *Config) validateAdmin() error {
	if c.Insecure {
		return nil
	}
	if c.AdminTokenFile == "" {
		return errors.New("binlogsvr: the admin API needs --admin-token-file (lines \"ROLE NAME TOKEN\"; make them with `binlogctl certs create-token NAME --role operate`), or --insecure for a throw-away test fleet; see docs/SECURITY.md")
	}
	f := c.adminFiles()
	if f.Cert == "" || f.Key == "" {
		return errors.New("binlogsvr: the admin API needs a TLS certificate: --admin-tls-cert and --admin-tls-key, or the member's --raft-tls-cert and --raft-tls-key (make them with `binlogctl certs create-member`), or --insecure; see docs/SECURITY.md")
	}
	if _, err := os.Stat(c.AdminTokenFile); err != nil {
		return fmt.Errorf("binlogsvr: --admin-token-file: %w", err)
	}
	b, err := os.ReadFile(c.AdminTokenFile)
	if err != nil {
		return fmt.Errorf("binlogsvr: --admin-token-file: %w", err)
	}
	if _, err := parseTokens(c.AdminTokenFile, b); err != nil {
		return fmt.Errorf("binlogsvr: --admin-token-file: %w", err)
	}
	return nil
}

// initAdminAuth loads the tokens and wraps the admin listener in TLS.
func (s *Server) initAdminAuth() error {
	s.members = &http.Client{Timeout: 2 * time.Second}
	if s.cfg.Insecure {
		s.httpClient = s.members
		return nil
	}
	var err error
	if s.tokens, err = loadTokens(s.cfg.AdminTokenFile, s.log.Warn); err != nil {
		return err
	}
	f := s.cfg.adminFiles()
	clientAuth := tls.NoClientCert
	if f.CA != "" {
		clientAuth = tls.VerifyClientCertIfGiven
	}
	scfg, err := f.ServerConfig(clientAuth)
	if err != nil {
		return fmt.Errorf("binlogsvr: admin API TLS (--admin-tls-cert/--admin-tls-key, default --raft-tls-*): %w", err)
	}
	s.adminLn = tls.NewListener(s.adminLn, scfg)
	if f.CA == "" {
		s.log.Warn("the admin API has no CA (--admin-tls-ca or --raft-tls-ca): members cannot reach each other's admin API over TLS")
	}
	// NB: calls to other members verify them against the CA and present
	// this member's certificate; one tls.Config per host, for its name.
	var cfgs sync.Map
	s.members = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			c, ok := cfgs.Load(host)
			if !ok {
				nc, err := f.ClientConfig(host)
				if err != nil {
					return nil, err
				}
				c, _ = cfgs.LoadOrStore(host, nc)
			}
			d := tls.Dialer{Config: c.(*tls.Config)}
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}}
	s.httpClient = s.members
	return nil
}

// adminURL is the URL of path on the member whose admin API is at addr.
func (s *Server) adminURL(addr, path string) string {
	if s.cfg.Insecure {
		return "http://" + addr + path
	}
	return "https://" + addr + path
}

// caller is who made an admin request.
type caller struct {
	kind string // "token", "cert", "member", "insecure", "none"
	name string
	role string
}

func (c caller) String() string {
	switch c.kind {
	case "token":
		return "token " + c.name
	case "insecure":
		return "anyone (--insecure)"
	case "none":
		return "nobody"
	}
	return "certificate " + c.name
}

// reqInfo is per-request state the middleware shares with the handlers.
type reqInfo struct {
	caller    caller
	forwarded bool // this member proxied the request to the leader
}

type reqInfoKey struct{}

func infoOf(req *http.Request) *reqInfo {
	ri, _ := req.Context().Value(reqInfoKey{}).(*reqInfo)
	return ri
}

// markForwarded records that the request was proxied to the leader (which
// writes the audit record), and tells the leader who the caller is when a
// certificate, not a token, authenticated them.
func markForwarded(req *http.Request) {
	ri := infoOf(req)
	if ri == nil {
		return
	}
	ri.forwarded = true
	req.Header.Del(hdrOnBehalf)
	if ri.caller.kind == "cert" || ri.caller.kind == "member" {
		req.Header.Set(hdrOnBehalf, ri.caller.role+" "+ri.caller.name)
	}
}

// identify authenticates a request. ok false: 401 with why.
func (s *Server) identify(req *http.Request) (c caller, why string, ok bool) {
	if h := req.Header.Get("Authorization"); h != "" {
		scheme, tok, found := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		if !found || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return caller{kind: "none"}, "the Authorization header must be \"Bearer TOKEN\"", false
		}
		if s.cfg.Insecure {
			return caller{kind: "insecure", name: "insecure", role: roleOperate}, "", true
		}
		e, found := s.tokens.lookup([]byte(tok))
		if !found {
			return caller{kind: "none"}, "the token is not in this member's --admin-token-file (rotated away?)", false
		}
		return caller{kind: "token", name: e.name, role: e.role}, "", true
	}
	if s.cfg.Insecure {
		return caller{kind: "insecure", name: "insecure", role: roleOperate}, "", true
	}
	if req.TLS != nil && len(req.TLS.VerifiedChains) > 0 {
		kind, name, role := pki.Identity(req.TLS.VerifiedChains[0][0])
		switch kind {
		case pki.KindMember:
			if ob := req.Header.Get(hdrOnBehalf); ob != "" {
				r, n, _ := strings.Cut(ob, " ")
				return caller{kind: "cert", name: n + " via member:" + name, role: r}, "", true
			}
			return caller{kind: "member", name: "member:" + name, role: roleOperate}, "", true
		case pki.KindClient:
			return caller{kind: "cert", name: name, role: role}, "", true
		}
		return caller{kind: "none"}, "the client certificate is neither a member's nor a client's of the fleet's CA", false
	}
	return caller{kind: "none"}, "no credentials", false
}

// authorize wraps the admin routes: pre-auth limits, then the role the
// route needs (routeRoles), then the handler, then the audit record of a
// state-changing call.
func (s *Server) authorize() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Body != nil {
			req.Body = http.MaxBytesReader(w, req.Body, maxAdminBodyBytes)
		}
		h, pattern := s.route(req)
		need, listed := routeRoles[pattern]
		switch {
		case pattern == "":
			need = roleRead // NB: unknown paths: 404/405 only for the authenticated
		case !listed:
			need = roleOperate
		case pattern == "GET /metrics" && s.cfg.MetricsOpen:
			need = roleOpen
		}
		ri := &reqInfo{}
		if need != roleOpen {
			c, why, ok := s.identify(req)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="binlogsvr"`)
				writeError(w, http.StatusUnauthorized, "authentication required (%s): pass a token with binlogctl --token-file or $BINLOGCTL_TOKEN (Authorization: Bearer TOKEN), or a client certificate from the fleet's CA", why)
				return
			}
			if roleRank(c.role) < roleRank(need) {
				writeError(w, http.StatusForbidden, "%s needs role %s; %s has %s", pattern, need, c, c.role)
				return
			}
			ri.caller = c
		}
		req = req.WithContext(context.WithValue(req.Context(), reqInfoKey{}, ri))
		if need != roleOperate || strings.Contains(pattern, "/debug/") {
			h.ServeHTTP(w, req)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, req)
		if !ri.forwarded {
			s.auditAdmin(req, ri.caller, rec.code)
		}
	})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// insecureLoop warns, at start and every few minutes, that the member runs
// without TLS and tokens.
func (s *Server) insecureLoop(ctx context.Context) {
	if !s.cfg.Insecure {
		return
	}
	every(ctx, 5*time.Minute, func() bool {
		s.log.Warn("INSECURE: --insecure is set: the raft links and the admin API have no TLS and the admin API no tokens; anyone who can reach the ports can read and change the fleet")
		return false
	})
}

// auditAdmin writes a state-changing admin call to the audit trail
// (`binlogctl history`): who (the token's or certificate's name), what, and
// the HTTP status it got.
func (s *Server) auditAdmin(req *http.Request, c caller, code int) {
	outcome := "ok"
	if code >= 400 {
		outcome = "failed"
	}
	now := time.Now().UTC()
	me := s.cfg.Log.ReplicaID
	r := failover.Record{Time: now, Kind: "admin", Step: req.Method + " " + req.URL.Path, Outcome: outcome, Leader: me,
		Message: fmt.Sprintf("%s %s by %s (role %s) on member %d: HTTP %d", req.Method, redactedURI(req), c, c.role, me, code)}
	src := s.auditSource(req)
	if src == nil {
		// NB: a fleet-wide call (POST/DELETE /sources, a move) on a host of
		// several sources: the catalog's trail (GET /sources/history).
		s.log.Info("admin call", "method", req.Method, "path", req.URL.Path, "by", c.String(), "role", c.role, "status", code)
		if s.hs != nil {
			s.auditFleet(req, c, code) // move.go
		}
		return
	}
	if lr := src.node.Reader(); lr != nil {
		r.Epoch = lr.State().Epoch
	}
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	s.log.Info("admin call", "method", req.Method, "path", req.URL.Path, "by", c.String(), "role", c.role, "status", code)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	key := fmt.Sprintf("%s%020d.%d", failover.MetaAuditPrefix, now.UnixNano(), me)
	// NB: the audit trail is in the log of the source the call is about.
	if _, err := src.node.Propose(ctx, &logger.Meta{Key: key, Value: b}); err != nil {
		s.log.Warn("writing the admin call to the audit trail", "err", err, "by", c.String(), "path", req.URL.Path)
	}
}

// auditSource is the source whose log records the call: a one-source
// daemon's, or the one /sources/NAME/... names; nil for a fleet-wide call
// (the daemon's own routes: POST/DELETE /sources, a move).
func (s *Server) auditSource(req *http.Request) *source {
	if s.src != nil {
		return s.src
	}
	if _, p := s.mux.Handler(req); p != "" {
		return nil // NB: the daemon's own routes: fleet-wide
	}
	if name, _, ok := sourcePath(req.URL.Path); ok {
		return s.hosted(name)
	}
	if all := s.hs.cat.Local().Names(); len(all) == 1 && !strings.HasPrefix(req.URL.Path, "/sources") {
		return s.hosted(all[0])
	}
	return nil
}

// redactedURI is the request's path and query with the values of
// parameters that may hold secrets left out.
func redactedURI(req *http.Request) string {
	q := req.URL.Query()
	for k := range q {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "pass") || strings.Contains(lk, "secret") || strings.Contains(lk, "token") {
			q.Set(k, "REDACTED")
		}
	}
	if len(q) == 0 {
		return req.URL.Path
	}
	return req.URL.Path + "?" + q.Encode()
}
