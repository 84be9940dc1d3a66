package e2e

import (
	"bytes"
	"context"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// TestCandidateCredentialNotInLog: a candidate added through the admin API
// names a credential from each member's --failover-credentials-file; the
// fleet logs in to it with that account, and no member's data directory
// (raft log, Pebble) holds the password, while it does hold the record
// (the credential's name). A candidate with a password is refused, and a
// rejoin-check of a server the log does not record is refused without a
// login.
func TestCandidateCredentialNotInLog(t *testing.T) {
	const (
		credName = "cand-credential-name-5521"
		user     = "candadmin"
		pw       = "Cand-Unique-Pw-7731-never-stored"
	)
	dir := t.TempDir()
	creds := filepath.Join(dir, "failover.creds")
	if err := os.WriteFile(creds, []byte(credName+" "+user+" "+pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, sandbox.MariaDB, rigOptions{replicas: 1, candidate: func(int, *sandbox.Server) string { return "" },
		extra: []string{"--failover-credentials-file", creds}})
	rep := r.replicas[0]
	ctx := context.Background()
	c, err := rep.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET SESSION sql_log_bin = 0", "CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + pw + "'",
		"GRANT ALL ON *.* TO '" + user + "'@'%' WITH GRANT OPTION"} {
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	c.Close()
	leader := r.leader()

	// A password is refused; nothing is stored.
	q := url.Values{"addr": {rep.Addr()}, "user": {user}, "password": {pw}}
	err = r.f.Post(ctx, leader, "/failover/candidates?"+q.Encode(), nil)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "--failover-credentials-file") {
		t.Fatalf("adding a candidate with a password: %v, want 400 naming --failover-credentials-file", err)
	}
	q = url.Values{"addr": {rep.Addr()}, "credential": {credName}}
	if err := r.f.Post(ctx, leader, "/failover/candidates?"+q.Encode(), nil); err != nil {
		t.Fatal(err)
	}
	var cs []failover.CandidateState
	if err := r.get(ctx, leader, "/failover/candidates", &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Credential != credName || !cs[0].Reachable || cs[0].Password != "" {
		t.Fatalf("candidates %+v: want %s reachable with credential %s", cs, rep.Addr(), credName)
	}

	// A server the log does not record: refused, before any login.
	out, err := r.ctl("rejoin-check", "127.0.0.1:1")
	if err == nil || !strings.Contains(out, "neither a source the log has recorded nor a recorded candidate") {
		t.Fatalf("rejoin-check of an unknown server: %v\n%s", err, out)
	}

	// No member's files hold the password; each holds the record.
	for _, m := range r.f.Members {
		var sawName bool
		err := filepath.WalkDir(m.DataDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if bytes.Contains(b, []byte(pw)) {
				t.Errorf("member %d: %s holds the candidate's password", m.ID, p)
			}
			sawName = sawName || bytes.Contains(b, []byte(credName))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !sawName {
			t.Errorf("member %d: no file holds the candidate's record (credential %s): the search sees nothing", m.ID, credName)
		}
	}
}
