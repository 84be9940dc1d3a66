package binlogsvr

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/binlogsvr/binlogsvr/logger/pki"
)

// fuzzServer starts one member (its raft node; not Run) with TLS files
// and a token file holding a random token the fuzzer cannot know.
func fuzzServer(f testing.TB) *Server {
	f.Helper()
	dir := f.TempDir()
	p := pki.Testing(f, filepath.Join(dir, "pki"))
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tf := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tf, []byte("operate op "+base64.RawURLEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	raft := ln.Addr().String()
	ln.Close()
	cfg := DefaultConfig()
	fs := pflag.NewFlagSet("binlogsvr", pflag.ContinueOnError)
	cfg.RegisterFlags(fs)
	args := []string{"--id", "1", "--data-dir", filepath.Join(dir, "d"), "--raft-addr", raft, "--members", "1=" + raft,
		"--admin-addr", "127.0.0.1:0", "--admin-token-file", tf,
		"--raft-tls-ca", p.CA, "--raft-tls-cert", p.Members[0].Cert, "--raft-tls-key", p.Members[0].Key}
	if debugEndpoints {
		args = append(args, "--debug-api") // NB: the debug routes need a token too
	}
	if err := fs.Parse(args); err != nil {
		f.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.adminLn.Close(); s.src.close() })
	return s
}

// FuzzAdminRequest drives the admin API's real handler (authorize over
// the routes) with requests built from a fuzzed method, target,
// Authorization header and body. None carries a valid token, so every
// request but /healthz must be refused with 401, and nothing may panic.
//
//	go test -run '^$' -fuzz '^FuzzAdminRequest$' -fuzztime 60s -parallel 1 ./binlogsvr/
func FuzzAdminRequest(f *testing.F) {
	s := fuzzServer(f)
	h := s.admin.Handler
	for _, x := range [][4]string{
		{"POST", "/failover/failover?force=1", "", ""},
		{"POST", "/failover/switchover", "Bearer x", "to=127.0.0.1:3306"},
		{"DELETE", "/members/1", "bearer  ", ""},
		{"POST", "/members/1/weight", "Bearer", "weight=9"},
		{"POST", "/purge", "Basic YWRtaW46YWRtaW4=", "to=binlog.000001&force=1"},
		{"GET", "/failover/rejoin-check?server=127.0.0.1:1", "Bearer " + strings.Repeat("A", 43), ""},
		{"GET", "/binlogs/binlog.000001", "", ""},
		{"GET", "/status?local=1", "Bearer\tabc", ""},
		{"POST", "/debug/append?n=1000000&size=67108864", "", ""},
		{"PUT", "/members", "", "id=4&raft_addr=127.0.0.1:1"},
		{"GET", "/healthz", "", ""},
		{"GET", "/../status", "", ""},
		{"POST", "/transfer-leader", "Bearer op", "to=1"},
	} {
		f.Add(x[0], x[1], x[2], x[3])
	}
	f.Fuzz(func(t *testing.T, method, target, auth, body string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		req, err := http.NewRequest(method, "https://127.0.0.1:7070"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		_, pattern := s.route(req)
		if pattern == "GET /healthz" {
			return
		}
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("%s %q (route %q) with Authorization %q: %d %s; want 401", method, target, pattern, auth, rec.Code, rec.Body)
		}
		if rec.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("%s %q: 401 without WWW-Authenticate", method, target)
		}
	})
}

// FuzzTokenFile: parsing never panics, and what it accepts is usable.
func FuzzTokenFile(f *testing.F) {
	f.Add("operate ops abcdefghijklmnopqrstuvwxyz\n# c\n\nread r 0123456789abcdef0123\n")
	f.Add("write w abcdefghijklmnopqrstuvwxyz")
	f.Add("read a short")
	f.Add("read a abcdefghijklmnopqrstuvwxyz\nread a abcdefghijklmnopqrstuvwxyz")
	f.Fuzz(func(t *testing.T, s string) {
		es, err := parseTokens("tokens", []byte(s))
		if err != nil {
			if !strings.Contains(err.Error(), "tokens") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		names := map[string]bool{}
		for _, e := range es {
			if (e.role != roleRead && e.role != roleOperate) || len(e.token) < 16 || e.name == "" || names[e.name] ||
				strings.ContainsAny(string(e.token)+e.name, " \t\n") {
				t.Fatalf("accepted a bad entry %+v from %q", e, s)
			}
			names[e.name] = true
		}
	})
}
