// Package fleet starts a local fleet of real binlogsvr processes on
// loopback, for tests, the demo and benchmarks: each member in its own data
// directory, with its own raft and admin ports, stoppable (SIGTERM),
// killable (SIGKILL) and restartable.
package fleet

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
)

// Options configures a fleet.
type Options struct {
	// Bin is the binlogsvr binary. Default: $BINLOGSVR_BIN/binlogsvr, else
	// one built from this module into Dir.
	Bin     string
	Dir     string // parent of the members' data dirs; required
	Members int    // loggers, default 3
	// Source, SourceUser, SourcePassword seed the log's first source.
	Source, SourceUser, SourcePassword string
	// SourceStart is --source-start ("": the daemon's default, oldest:
	// the fleet copies every binlog the source holds).
	SourceStart string
	ExtraArgs   []string // passed to every member
	// Output receives the members' logs (default: a file per member in Dir).
	Output io.Writer
	// Insecure starts the members with --insecure (plain raft links, plain
	// HTTP admin API without tokens). By default the fleet makes a CA, a
	// certificate per member and a token file (Fleet.PKI).
	Insecure bool
	// Host, when set, names the loopback address (127.0.0.0/8) member id
	// binds its raft, admin and dump ports on; its certificate carries that
	// IP. Default: one address of the fleet's own (PrivateLoopback).
	Host func(id uint64) string
	// Catalog starts the members as hosts of several sources
	// (--catalog-members: every member holds the catalog); Source and the
	// members' dump addresses are then unused: add sources through
	// POST /sources (binlogctl sources add).
	Catalog bool
	// CatalogVoters is how many of the first members hold the catalog
	// (--catalog-members); the others are hosts outside it, to add with
	// POST /hosts (binlogctl hosts add). Default: every member.
	CatalogVoters int
	// Cmd, when set, is called on each member's command just before it
	// starts (e.g. to start it in a cgroup).
	Cmd func(m *Member, cmd *exec.Cmd)
	// RaftFront, when set, puts something in front of each member's raft
	// port (e.g. a delay proxy): it gets the address the member listens on
	// (--raft-listen-addr, a free port on its host) and returns the one
	// peers dial (--raft-addr, on the same host so the member's
	// certificate fits).
	RaftFront func(m *Member, listen string) (string, error)
}

// Member is one binlogsvr process.
type Member struct {
	ID       uint64
	RaftAddr string
	// RaftListen is where its raft transport listens when Options.RaftFront
	// put something in front of RaftAddr ("" otherwise).
	RaftListen string
	AdminAddr  string
	DumpAddr   string
	DataDir    string
	LogPath    string

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	join  bool     // started with --join (Restart repeats it)
	extra []string // its own extra flags (Restart repeats them)
}

// Fleet is a running local fleet.
type Fleet struct {
	opts    Options
	Members []*Member
	http    *http.Client
	// PKI is the fleet's CA, certificates and tokens; nil when
	// Options.Insecure.
	PKI *PKI

	trOnce sync.Once
	tr     http.RoundTripper

	portsMu sync.Mutex
	ports   map[string]bool // addresses handed out to members (freeAddr)
}

// FreePort returns a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freeAddr() (string, error) {
	p, err := FreePort()
	return fmt.Sprintf("127.0.0.1:%d", p), err
}

// FreeAddrOn returns a free port on loopback address host, as
// "host:port".
func FreeAddrOn(host string) (string, error) { return freeAddrOn(host) }

// freeAddrOn returns a free port on loopback address host.
func freeAddrOn(host string) (string, error) {
	if host == "" || host == "127.0.0.1" {
		return freeAddr()
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ModuleRoot finds the directory of this module's go.mod, from the
// working directory up.
func ModuleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("fleet: go.mod not found above the working directory")
		}
		d = p
	}
}

// DebugTag is the build tag that gives binlogsvr its debug endpoints
// (--debug-api: /debug/append, /debug/bench, ...). The release build
// leaves them out; tests and benchmarks that use them need a binary built
// with it.
const DebugTag = "binlogsvr_debug"

// Binary returns the binlogsvr binary: $BINLOGSVR_BIN/binlogsvr if set,
// else one freshly built into dir with the debug endpoints (DebugTag).
func Binary(dir string) (string, error) { return Tool(dir, "binlogsvr") }

// Tool returns one of the project's binaries (binlogsvr, binlogctl, ...):
// $BINLOGSVR_BIN/NAME if it exists, else one freshly built into dir
// (binlogsvr with DebugTag). NB: make test points $BINLOGSVR_BIN at
// bin/debug (make build-debug); bin/ holds the release binlogsvr, which
// refuses --debug-api.
func Tool(dir, name string) (string, error) {
	if b := os.Getenv("BINLOGSVR_BIN"); b != "" {
		p := filepath.Join(b, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", filepath.Join(dir, name), "./tools/" + name}
	if name == "binlogsvr" {
		args = []string{"build", "-tags", DebugTag, "-o", filepath.Join(dir, name), "./binlogsvr/cmd/binlogsvr"}
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("fleet: building %s: %v\n%s", name, err, b)
	}
	return out, nil
}

// Start starts a fleet of loggers with ids 1..n bootstrapping one group.
func Start(ctx context.Context, o Options) (*Fleet, error) {
	return StartEach(ctx, o, func(uint64) MemberSpec { return MemberSpec{} })
}

// Member returns member id.
func (f *Fleet) Member(id uint64) *Member { return f.Members[id-1] }

// Running reports whether the member's process runs.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// ExitCode returns the exit code of the member's last process once it has
// ended (-1 while it runs, was never started, or died from a signal).
func (m *Member) ExitCode() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		return -1
	}
	select {
	case <-m.done: // NB: Wait set ProcessState before done closed
		return m.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// PID returns the member's process id (0 if not running).
func (m *Member) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

func (m *Member) signal(sig syscall.Signal, wait time.Duration) error {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("fleet: member %d did not stop within %v of %v; killed", m.ID, wait, sig)
	}
}

// Stop stops member id with SIGTERM (a clean shutdown).
func (f *Fleet) Stop(id uint64) error { return f.Member(id).signal(syscall.SIGTERM, 15*time.Second) }

// Kill kills member id with SIGKILL.
func (f *Fleet) Kill(id uint64) error { return f.Member(id).signal(syscall.SIGKILL, 5*time.Second) }

// Restart starts a stopped member again on its data dir and ports, with the
// flags it was launched with.
func (f *Fleet) Restart(id uint64) error {
	m := f.Member(id)
	m.mu.Lock()
	join, extra := m.join, m.extra
	m.mu.Unlock()
	return f.Launch(m, join, extra...)
}

// Close stops every member (SIGTERM, then SIGKILL).
// LogTails returns the last n lines of every member's log, for a failed
// test to print.
func (f *Fleet) LogTails(n int) string {
	var b strings.Builder
	for _, m := range f.Members {
		data, _ := os.ReadFile(m.LogPath)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "member %d log tail (%s):\n%s\n", m.ID, m.LogPath, strings.Join(lines, "\n"))
	}
	return b.String()
}

func (f *Fleet) Close() {
	var wg sync.WaitGroup
	for _, m := range f.Members {
		wg.Add(1)
		go func() { defer wg.Done(); _ = m.signal(syscall.SIGTERM, 10*time.Second) }()
	}
	wg.Wait()
}

// Status fetches GET /status (local=true: the member's own view only).
func (f *Fleet) Status(ctx context.Context, id uint64, local bool) (binlogsvr.Status, error) {
	var st binlogsvr.Status
	path := "/status"
	if local {
		path += "?local=1"
	}
	err := f.do(ctx, http.MethodGet, f.Member(id).AdminAddr, path, &st)
	return st, err
}

// Files fetches GET /binlogs?hash=1 from member id.
func (f *Fleet) Files(ctx context.Context, id uint64) ([]binlogsvr.FileInfo, error) {
	var out []binlogsvr.FileInfo
	// NB: hashing every file reads the whole log (tens of MiB in some
	// tests): on a loaded machine that takes longer than a status call.
	err := f.doWithin(ctx, 2*time.Minute, http.MethodGet, f.Member(id).AdminAddr, "/binlogs?hash=1", &out)
	return out, err
}

// Post calls a POST endpoint of member id and decodes its JSON answer.
func (f *Fleet) Post(ctx context.Context, id uint64, path string, v any) error {
	return f.do(ctx, http.MethodPost, f.Member(id).AdminAddr, path, v)
}

func (f *Fleet) do(ctx context.Context, method, addr, path string, v any) error {
	d := 5 * time.Second
	if method == http.MethodPost {
		d = 0 // NB: benchmarks run for minutes; ctx bounds them
	}
	return f.doWithin(ctx, d, method, addr, path, v)
}

// doWithin is do with the request's timeout (0: ctx alone bounds it).
func (f *Fleet) doWithin(ctx context.Context, d time.Duration, method, addr, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, f.Scheme()+"://"+addr+path, nil)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: f.transport(), Timeout: d}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s on %s: %s: %s", method, path, addr, resp.Status, strings.TrimSpace(string(b)))
	}
	switch v := v.(type) {
	case nil:
		return nil
	case *string:
		*v = string(b) // NB: a text answer (GET /metrics)
		return nil
	default:
		return json.Unmarshal(b, v)
	}
}

// Leader polls until a running member reports a leader that every running
// member agrees on, and returns its id.
func (f *Fleet) Leader(ctx context.Context, d time.Duration) (uint64, error) {
	var leader uint64
	err := Poll(ctx, d, func() error {
		leader = 0
		for _, m := range f.Members {
			if !m.Running() {
				continue
			}
			st, err := f.Status(ctx, m.ID, true)
			if err != nil {
				return fmt.Errorf("member %d: %v", m.ID, err)
			}
			if st.Leader == 0 {
				return fmt.Errorf("member %d knows no leader", m.ID)
			}
			if leader != 0 && st.Leader != leader {
				return fmt.Errorf("members disagree on the leader (%d, %d)", leader, st.Leader)
			}
			leader = st.Leader
		}
		if leader == 0 || !f.Member(leader).Running() {
			return fmt.Errorf("leader %d is not running", leader)
		}
		return nil
	})
	return leader, err
}

// Poll calls fn every 50ms until it returns nil, or d passes (returning
// fn's last error).
func Poll(ctx context.Context, d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", d, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// LeaderStatus returns the leader's own status, as any running member
// names it (the first one that knows a leader).
func (f *Fleet) LeaderStatus(ctx context.Context) (binlogsvr.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, m := range f.Members {
		if !m.Running() {
			continue
		}
		st, err := f.Status(ctx, m.ID, true)
		if err == nil && st.Leader != 0 {
			if st.Leader != m.ID && f.Member(st.Leader).Running() {
				if lst, err := f.Status(ctx, st.Leader, true); err == nil {
					return lst, nil
				}
			}
			return st, nil
		}
	}
	return binlogsvr.Status{}, errors.New("fleet: no member answers with a leader")
}

// GetJSON fetches http://addr+path (an --insecure member) and decodes its
// JSON answer; for a fleet's members use Fleet.GetJSONAt.
func GetJSON(ctx context.Context, addr, path string, v any) error {
	return (&Fleet{}).do(ctx, http.MethodGet, addr, path, v)
}

// WaitStreaming waits (up to d) until the leader pulls from the source, and
// returns the leader's status.
func (f *Fleet) WaitStreaming(ctx context.Context, d time.Duration) (binlogsvr.Status, error) {
	var st binlogsvr.Status
	err := Poll(ctx, d, func() error {
		var err error
		if st, err = f.LeaderStatus(ctx); err != nil {
			return err
		}
		if st.Ingest == nil || st.Ingest.State != "streaming" {
			return fmt.Errorf("ingest %+v (source error %q)", st.Ingest, st.SourceError)
		}
		return nil
	})
	return st, err
}

// RaceBuilt reports whether the members' binary was built with -race (its
// build settings say so): it runs several times slower, which timing
// bounds allow for.
func (f *Fleet) RaceBuilt() bool {
	bi, err := buildinfo.ReadFile(f.opts.Bin)
	if err != nil {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// LogPaths lists the members' log files.
func (f *Fleet) LogPaths() string {
	var out []string
	for _, m := range f.Members {
		out = append(out, m.LogPath)
	}
	return strings.Join(out, " ")
}
