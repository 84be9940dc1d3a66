package failover

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
)

// memLog is a Log in memory: a state and a Meta map that proposals write.
type memLog struct {
	mu   sync.Mutex
	st   logger.State
	meta map[string][]byte
}

func newMemLog(src string) *memLog {
	return &memLog{st: logger.State{Epoch: 3, Flavor: "mariadb", Source: logger.Source{Addr: src, Flavor: "mariadb"}}, meta: map[string][]byte{}}
}

func (l *memLog) State() (logger.State, error) { return l.st, nil }
func (l *memLog) IsLeader() bool               { return true }
func (l *memLog) LeaderID() uint64             { return 1 }
func (l *memLog) Propose(_ context.Context, c logger.Command) (logger.Result, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := c.(*logger.Meta)
	if !ok {
		return logger.Result{}, errors.New("memLog: only Meta")
	}
	if m.Value == nil {
		delete(l.meta, m.Key)
	} else {
		l.meta[m.Key] = append([]byte(nil), m.Value...)
	}
	return logger.Result{Code: logger.ResultOK}, nil
}
func (l *memLog) Meta(key string) ([]byte, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.meta[key]
	return v, ok, nil
}
func (l *memLog) MetaPrefix(prefix string) (map[string][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range l.meta {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out, nil
}
func (l *memLog) HasGTID(string) (bool, error) { return true, nil }
func (l *memLog) StartGTIDs() (string, error)  { return "", nil }
func (l *memLog) WaitApplied(d time.Duration)  { time.Sleep(min(d, time.Millisecond)) }

// loginRecorder is a Connector that records every login and fails it.
type loginRecorder struct {
	mu    sync.Mutex
	addrs []string
	creds []Credentials
}

var errNoServer = errors.New("test: no server")

func (r *loginRecorder) connect(_ context.Context, addr string, c Credentials) (Server, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs, r.creds = append(r.addrs, addr), append(r.creds, c)
	return nil, errNoServer
}

func newTestManager(t *testing.T, l Log, cfg Config) (*Manager, *loginRecorder) {
	t.Helper()
	rec := &loginRecorder{}
	d := DefaultConfig()
	d.AdminPassword, d.CredentialsFile = "admin-pw", cfg.CredentialsFile
	m, err := New(d, Deps{Log: l, Connect: rec.connect, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return m, rec
}

// The fleet logs in only to servers the log records: an address an API
// caller names is refused without a login; a recorded candidate and a
// source named by a failover record are logged in to.
func TestRejoinOnlyRecordedServers(t *testing.T) {
	l := newMemLog("10.0.0.9:3306")
	m, rec := newTestManager(t, l, Config{})
	ctx := context.Background()
	for _, addr := range []string{"attacker.example:3306", "127.0.0.1:1", "10.0.0.9:3307", ""} {
		_, err := m.RejoinCheck(ctx, addr)
		if !errors.Is(err, ErrUnknownServer) {
			t.Fatalf("rejoin-check %q: %v, want ErrUnknownServer", addr, err)
		}
		if addr != "" && !strings.Contains(err.Error(), "neither a source the log has recorded nor a recorded candidate") {
			t.Errorf("rejoin-check %q: the error does not say why: %v", addr, err)
		}
		if _, err := m.Rejoin(ctx, addr); !errors.Is(err, ErrUnknownServer) {
			t.Fatalf("rejoin %q: %v, want ErrUnknownServer", addr, err)
		}
	}
	if len(rec.addrs) != 0 {
		t.Fatalf("logged in to %v", rec.addrs)
	}
	rep, err := m.RejoinCheck(ctx, "10.0.0.9:3306")
	if err != nil || !rep.IsSource || len(rec.addrs) != 0 {
		t.Fatalf("the current source: %+v, %v, logins %v", rep, err, rec.addrs)
	}

	// A recorded candidate and an old source of a failover record.
	if err := m.PutCandidate(ctx, Candidate{Addr: "10.0.0.2:3306"}); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(Record{Kind: KindFailover, Step: StepFenced, OldSource: logger.FencedPrefix + "10.0.0.1:3306", NewSource: "10.0.0.9:3306"})
	l.meta[auditKey(time.Now(), 1)] = b
	for _, addr := range []string{"10.0.0.2:3306", "10.0.0.1:3306"} {
		if _, err := m.RejoinCheck(ctx, addr); !errors.Is(err, errNoServer) {
			t.Fatalf("rejoin-check %s: %v, want a login attempt", addr, err)
		}
	}
	if strings.Join(rec.addrs, " ") != "10.0.0.2:3306 10.0.0.1:3306" {
		t.Fatalf("logins %v", rec.addrs)
	}
}

func writeCreds(t *testing.T, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "creds")
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// A candidate names a credential; the log holds the name, never the
// password. An old record with a password still works and is never
// written again.
func TestCandidateCredentials(t *testing.T) {
	const pw = "cand-Secret pw 42"
	path := writeCreds(t, "# accounts\nops fleetadmin "+pw+"\n\n", 0o600)
	l := newMemLog("10.0.0.9:3306")
	m, rec := newTestManager(t, l, Config{CredentialsFile: path})
	ctx := context.Background()

	if err := m.PutCandidate(ctx, Candidate{Addr: "10.0.0.2:3306", Password: pw}); !errors.Is(err, ErrBadCandidate) {
		t.Fatalf("a candidate with a password: %v, want ErrBadCandidate", err)
	}
	if err := m.PutCandidate(ctx, Candidate{Addr: "10.0.0.2:3306", Credential: "nosuch"}); !errors.Is(err, ErrCredential) {
		t.Fatalf("an unknown credential: %v, want ErrCredential", err)
	}
	if err := m.PutCandidate(ctx, Candidate{Addr: "10.0.0.2:3306", Credential: "ops"}); err != nil {
		t.Fatal(err)
	}
	for k, v := range l.meta {
		if strings.Contains(string(v), pw) {
			t.Fatalf("the log holds the password under %s: %s", k, v)
		}
	}
	if _, err := m.RejoinCheck(ctx, "10.0.0.2:3306"); !errors.Is(err, errNoServer) {
		t.Fatal(err)
	}
	if got := rec.creds[len(rec.creds)-1]; got != (Credentials{User: "fleetadmin", Password: pw}) {
		t.Fatalf("logged in as %+v", got)
	}

	// A record an older version wrote, with its password: used.
	old, _ := json.Marshal(map[string]any{"addr": "10.0.0.3:3306", "user": "olduser", "password": "old-pw", "priority": 0, "never_promote": false})
	l.meta[MetaCandidatePrefix+"10.0.0.3:3306"] = old
	if _, err := m.RejoinCheck(ctx, "10.0.0.3:3306"); !errors.Is(err, errNoServer) {
		t.Fatal(err)
	}
	if got := rec.creds[len(rec.creds)-1]; got != (Credentials{User: "olduser", Password: "old-pw"}) {
		t.Fatalf("an old record logged in as %+v", got)
	}
	cs, err := m.ListCandidates()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if r := c.Redacted(); strings.Contains(r.Password, "pw") {
			t.Fatalf("redacted candidate shows %q", r.Password)
		}
	}
	// Re-adding it with a credential rewrites the record without the password.
	if err := m.PutCandidate(ctx, Candidate{Addr: "10.0.0.3:3306", Credential: "ops"}); err != nil {
		t.Fatal(err)
	}
	if v := l.meta[MetaCandidatePrefix+"10.0.0.3:3306"]; strings.Contains(string(v), "old-pw") || !strings.Contains(string(v), `"credential":"ops"`) {
		t.Fatalf("rewritten record %s", v)
	}
}

func TestReadCredentials(t *testing.T) {
	if _, err := ReadCredentials(writeCreds(t, "a u p\n", 0o644)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable file: %v", err)
	}
	if _, err := ReadCredentials(writeCreds(t, "a u\n", 0o600)); err == nil || !strings.Contains(err.Error(), "line 1: want NAME USER PASSWORD") {
		t.Fatalf("a line without a password: %v", err)
	}
	if _, err := ReadCredentials(writeCreds(t, "a u p\na v q\n", 0o600)); err == nil || !strings.Contains(err.Error(), "named twice") {
		t.Fatalf("a name twice: %v", err)
	}
	c, err := ReadCredentials(writeCreds(t, "  # c\nx  root   p w \n", 0o600))
	if err != nil || c["x"] != (Credentials{User: "root", Password: "p w"}) {
		t.Fatalf("%+v, %v", c, err)
	}
	if _, err := ParseCandidate("h:1,password=x"); err == nil {
		t.Fatal("ParseCandidate accepted a password")
	}
	if c, err := ParseCandidate("h:1,credential=ops"); err != nil || c.Credential != "ops" {
		t.Fatalf("%+v, %v", c, err)
	}
}
