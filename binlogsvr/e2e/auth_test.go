package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/logger/pki"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// call makes one admin API request with client c and returns the status
// and the body.
func call(t *testing.T, c *http.Client, method, u string, form url.Values) (int, string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestAdminAuthProcesses checks the admin API's authentication and roles
// on a fleet of real processes with a real source: what strangers and
// read tokens are refused (and that nothing changed), plaintext to the TLS
// port, token rotation without restart, and the audit trail's names.
func TestAdminAuthProcesses(t *testing.T) {
	f, src := startFleet(t, sandbox.MariaDB)
	ctx := context.Background()
	leader, err := f.Leader(ctx, wait)
	if err != nil {
		t.Fatal(err)
	}
	follower := uint64(1)
	if leader == 1 {
		follower = 2
	}
	none := f.HTTPWithToken("")
	read := f.HTTPWithToken(f.PKI.ReadToken)

	// A stranger's failover, on the leader and through a follower (which
	// would forward it): 401, and the source is untouched.
	for _, id := range []uint64{leader, follower} {
		code, body, h := call(t, none, http.MethodPost, f.URL(id, "/failover/failover"), url.Values{"force": {"1"}})
		if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") ||
			!strings.Contains(body, "--token-file") || !strings.Contains(body, "BINLOGCTL_TOKEN") {
			t.Fatalf("member %d: unauthenticated failover: %d %q (WWW-Authenticate %q)", id, code, body, h.Get("WWW-Authenticate"))
		}
	}
	// A read token: 403 for everything that changes state or logs in.
	forbidden := []struct {
		method, path string
		form         url.Values
	}{
		{http.MethodPost, "/failover/failover", url.Values{"force": {"1"}}},
		{http.MethodPost, "/failover/switchover", url.Values{"to": {src.Addr()}}},
		{http.MethodDelete, "/members/3", nil},
		{http.MethodPost, "/transfer-leader", url.Values{"to": {fmt.Sprint(follower)}}},
		{http.MethodPost, fmt.Sprintf("/members/%d/weight", follower), url.Values{"weight": {"100"}}},
		{http.MethodPost, "/failover/candidates", url.Values{"addr": {"127.0.0.1:1"}}},
		{http.MethodDelete, "/failover/candidates?addr=127.0.0.1:1", nil},
		{http.MethodPost, "/purge", url.Values{"to": {"binlog.000009"}, "force": {"1"}}},
		{http.MethodGet, "/failover/rejoin-check?server=" + url.QueryEscape(src.Addr()), nil},
		{http.MethodPost, "/failover/rejoin", url.Values{"server": {src.Addr()}}},
		{http.MethodPost, "/debug/append?n=1", nil},
	}
	for _, id := range []uint64{leader, follower} {
		for _, x := range forbidden {
			code, body, _ := call(t, read, x.method, f.URL(id, x.path), x.form)
			if code != http.StatusForbidden || !strings.Contains(body, "needs role operate") || !strings.Contains(body, fleet.ReadTokenName+" has read") {
				t.Fatalf("member %d: read token: %s %s: %d %q", id, x.method, x.path, code, body)
			}
		}
	}
	st, err := f.Status(ctx, leader, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Epoch != 1 || st.Source != src.Addr() || len(st.Members) != 3 || st.Leader != leader {
		t.Fatalf("after refused calls: epoch %d source %s leader %d members %d; want 1, %s, %d, 3", st.Epoch, st.Source, st.Leader, len(st.Members), src.Addr(), leader)
	}
	hist, err := history(ctx, f, leader)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range hist {
		if r.Kind == "admin" || r.Kind == failover.KindFailover && r.Step != "decide" {
			t.Fatalf("a refused call left an audit record: %+v", r)
		}
	}

	// Reading: /binlogs and /binlogs/{name} need a token; read is enough.
	appendOn(t, f, 5, 100)
	files, err := f.Files(ctx, leader)
	if err != nil || len(files) == 0 {
		t.Fatalf("files: %v %v", files, err)
	}
	for _, p := range []string{"/binlogs", "/binlogs/" + files[0].Name, "/status", "/metrics", "/members", "/failover/history"} {
		if code, body, _ := call(t, none, http.MethodGet, f.URL(leader, p), nil); code != http.StatusUnauthorized {
			t.Fatalf("GET %s without a token: %d %q", p, code, body)
		}
		if code, body, _ := call(t, read, http.MethodGet, f.URL(leader, p), nil); code != http.StatusOK {
			t.Fatalf("GET %s with a read token: %d %q", p, code, body)
		}
	}
	if code, body, _ := call(t, none, http.MethodGet, f.URL(leader, "/healthz"), nil); code != http.StatusOK {
		t.Fatalf("/healthz without a token: %d %q", code, body)
	}
	// A read client certificate: read yes, operate no.
	cf, err := f.PKI.Client("auditor", pki.RoleRead)
	if err != nil {
		t.Fatal(err)
	}
	cc := certClient(t, f.PKI.CA, cf)
	if code, body, _ := call(t, cc, http.MethodGet, f.URL(follower, "/status"), nil); code != http.StatusOK {
		t.Fatalf("status with a read certificate: %d %q", code, body)
	}
	if code, body, _ := call(t, cc, http.MethodPost, f.URL(follower, "/transfer-leader"), url.Values{"to": {fmt.Sprint(follower)}}); code != http.StatusForbidden || !strings.Contains(body, "auditor has read") {
		t.Fatalf("transfer-leader with a read certificate: %d %q", code, body)
	}

	// Plain HTTP to the TLS admin port gets nothing.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + f.Member(leader).AdminAddr + "/healthz"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("plain HTTP to the TLS admin port answered 200: %q", b)
		}
	}

	// Rotation: a new token file (a new operate token, the read token
	// gone) takes effect without a restart.
	newOp, _ := fleet.NewToken()
	if err := f.PKI.WriteTokens(fmt.Sprintf("# rotated\noperate %s %s\noperate rotated-op %s\n", fleet.OperateTokenName, f.PKI.OperateToken, newOp)); err != nil {
		t.Fatal(err)
	}
	rot := f.HTTPWithToken(newOp)
	if err := fleet.Poll(ctx, 10*time.Second, func() error {
		for _, m := range f.Members {
			if code, _, _ := call(t, rot, http.MethodGet, f.URL(m.ID, "/status?local=1"), nil); code != http.StatusOK {
				return fmt.Errorf("member %d: the new token: %d", m.ID, code)
			}
			if code, _, _ := call(t, read, http.MethodGet, f.URL(m.ID, "/status?local=1"), nil); code != http.StatusUnauthorized {
				return fmt.Errorf("member %d: the removed token: %d", m.ID, code)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// An operate call through a follower (forwarded to the leader, which
	// checks the token again) is written to the audit trail with the
	// token's name.
	code, body, _ := call(t, rot, http.MethodPost, f.URL(follower, fmt.Sprintf("/members/%d/weight", leader)), url.Values{"weight": {"7"}})
	if code != http.StatusOK {
		t.Fatalf("weight with the rotated operate token: %d %q", code, body)
	}
	if err := fleet.Poll(ctx, 10*time.Second, func() error {
		hist, err := history(ctx, f, follower)
		if err != nil {
			return err
		}
		n := 0
		for _, r := range hist {
			if r.Kind == "admin" && r.Outcome == "ok" && strings.Contains(r.Message, "token rotated-op") && strings.Contains(r.Step, "/weight") {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%d audit records name token rotated-op, want 1: %+v", n, hist)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// binlogctl history shows it, with the fleet's CA and token.
	bin, err := fleet.Tool(t.TempDir(), "binlogctl")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, append(f.CtlArgs(), "--admin", f.Member(follower).AdminAddr, "history")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "token rotated-op") {
		t.Fatalf("binlogctl history: %v\n%s", err, out)
	}
	// binlogctl without the CA, and with --insecure, says what to do.
	out, _ = exec.Command(bin, "--admin", f.Member(follower).AdminAddr, "--token-file", f.PKI.TokenFile, "status").CombinedOutput()
	if !strings.Contains(string(out), "--ca") {
		t.Fatalf("binlogctl without --ca: %s", out)
	}
	out, _ = exec.Command(bin, "--admin", f.Member(follower).AdminAddr, "--insecure", "status").CombinedOutput()
	if !strings.Contains(string(out), "speaks TLS") {
		t.Fatalf("binlogctl --insecure to a TLS member: %s", out)
	}
	out, _ = exec.Command(bin, "--admin", f.Member(follower).AdminAddr, "--ca", f.PKI.CA, "status").CombinedOutput()
	if !strings.Contains(string(out), "401") || !strings.Contains(string(out), "--token-file") {
		t.Fatalf("binlogctl without a token: %s", out)
	}
}

func history(ctx context.Context, f *fleet.Fleet, id uint64) ([]failover.Record, error) {
	var rs []failover.Record
	err := f.Get(ctx, id, "/failover/history", &rs)
	return rs, err
}

// certClient is an HTTP client presenting a client certificate.
func certClient(t *testing.T, ca string, cf pki.Files) *http.Client {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(cf.Cert, cf.Key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	b, err := os.ReadFile(ca)
	if err != nil || !pool.AppendCertsFromPEM(b) {
		t.Fatalf("CA %s: %v", ca, err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}}}}
}

// TestAdminInsecureMember: a member started with --insecure says so in
// its log, in /status and in binlogctl status.
func TestAdminInsecureMember(t *testing.T) {
	ctx := context.Background()
	f, err := fleet.Start(ctx, fleet.Options{Dir: t.TempDir(), Members: 1, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.PKI != nil {
		t.Fatal("an insecure fleet has a PKI")
	}
	if _, err := f.Leader(ctx, wait); err != nil {
		t.Fatal(err)
	}
	st, err := f.Status(ctx, 1, true)
	if err != nil || !st.Insecure {
		t.Fatalf("status of an --insecure member: insecure %v, %v", st.Insecure, err)
	}
	var m map[string]any
	if err := f.Get(ctx, 1, "/status?local=1", &m); err != nil || m["insecure"] != true {
		t.Fatalf(`/status lacks "insecure": true: %v %v`, m["insecure"], err)
	}
	bin, err := fleet.Tool(t.TempDir(), "binlogctl")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, append(f.CtlArgs(), "--admin", f.Member(1).AdminAddr, "status")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "INSECURE") {
		t.Fatalf("binlogctl status of an --insecure member: %v\n%s", err, out)
	}
	// binlogctl speaking TLS to it says to pass --insecure.
	out, _ = exec.Command(bin, "--admin", f.Member(1).AdminAddr, "status").CombinedOutput()
	if !strings.Contains(string(out), "--insecure") {
		t.Fatalf("binlogctl (TLS) to an --insecure member: %s", out)
	}
	log, _ := os.ReadFile(f.Member(1).LogPath)
	if !strings.Contains(string(log), "INSECURE") {
		t.Fatalf("the --insecure member's log does not warn:\n%s", log)
	}
}

// TestAdminRefusesToStart: without --insecure, no token file is an error
// naming the flag; a malformed token file names its line.
func TestAdminRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	bin, err := fleet.Binary(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := pki.Testing(t, filepath.Join(dir, "pki"))
	port, err := fleet.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	raft := fmt.Sprintf("127.0.0.1:%d", port)
	base := []string{"--id", "1", "--data-dir", filepath.Join(dir, "d"), "--raft-addr", raft, "--members", "1=" + raft, "--admin-addr", "127.0.0.1:0",
		"--raft-tls-ca", p.CA, "--raft-tls-cert", p.Members[0].Cert, "--raft-tls-key", p.Members[0].Key}
	run := func(args ...string) string {
		cmd := exec.Command(bin, append(append([]string{}, base...), args...)...)
		done := make(chan struct{})
		time.AfterFunc(20*time.Second, func() {
			select {
			case <-done:
			default:
				_ = cmd.Process.Kill()
			}
		})
		out, err := cmd.CombinedOutput()
		close(done)
		if err == nil {
			t.Fatalf("binlogsvr %v started; want a refusal:\n%s", args, out)
		}
		return string(out)
	}
	if out := run(); !strings.Contains(out, "--admin-token-file") || !strings.Contains(out, "--insecure") {
		t.Fatalf("without a token file: %s", out)
	}
	tf := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tf, []byte("# ok\nread r1 abcdefghijklmnopqrstuvwxyz\nwrite w1 abcdefghijklmnopqrstuvwxyz0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run("--admin-token-file", tf); !strings.Contains(out, "line 3") {
		t.Fatalf("with a malformed token file: %s", out)
	}
}
