// Package e2e tests the failover with real processes: a MariaDB or MySQL
// source, replicas attached to the fleet, and three binlogsvr members.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

const wait = 90 * time.Second

// rig is a source, replicas fed by the fleet, and the fleet.
type rig struct {
	t        *testing.T
	flavor   sandbox.Flavor
	src      *sandbox.Server
	replicas []*sandbox.Server
	f        *fleet.Fleet
	dir      string
	// feeder is the member whose dump server the replicas replicate from.
	feeder uint64
	// via maps the address the fleet knows the source by (a proxy's, see
	// rigOptions.sourceVia) to the source.
	via map[string]*sandbox.Server
}

type rigOptions struct {
	replicas  int
	extra     []string // fleet flags
	candidate func(i int, r *sandbox.Server) string
	sourceVia func(addr string) string // e.g. a proxy in front of the source
}

func newRig(t *testing.T, flavor sandbox.Flavor, o rigOptions) *rig {
	t.Helper()
	if o.replicas == 0 {
		o.replicas = 2
	}
	dir := t.TempDir()
	src := sandboxtest.Start(t, sandbox.Options{Flavor: flavor, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute})
	r := &rig{t: t, flavor: flavor, src: src, dir: dir, via: map[string]*sandbox.Server{}}
	for i := 0; i < o.replicas; i++ {
		r.replicas = append(r.replicas, sandboxtest.Start(t, sandbox.Options{Flavor: flavor}))
	}
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootUser, rootPass := src.RootUser()
	args := []string{"--source-heartbeat", "500ms", "--dump-addr", "127.0.0.1:0",
		"--dump-user", dumptest.DumpUser, "--dump-password-file", write("dump.pw", dumptest.DumpPassword),
		"--failover-admin-user", rootUser, "--failover-admin-password-file", write("admin.pw", rootPass),
		"--failover-lease", "3s", "--failover-probe-interval", "250ms", "--failover-probe-timeout", "500ms"}
	for i, rep := range r.replicas {
		c := rep.Addr()
		if o.candidate != nil {
			c = o.candidate(i, rep)
		}
		if c != "" {
			args = append(args, "--failover-candidate", c)
		}
	}
	args = append(args, o.extra...)
	user, pass := src.ReplUser()
	srcAddr := src.Addr()
	if o.sourceVia != nil {
		srcAddr = o.sourceVia(srcAddr)
		r.via[srcAddr] = src
	}
	f, err := fleet.Start(context.Background(), fleet.Options{Dir: filepath.Join(dir, "fleet"), Members: 3, Source: srcAddr, SourceUser: user, SourcePassword: pass, ExtraArgs: args})
	if err != nil {
		t.Fatal(err)
	}
	r.f = f
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(f.LogTails(60))
		}
		f.Close()
	})
	r.waitStreaming(srcAddr)
	r.exec(src, "CREATE DATABASE IF NOT EXISTS test",
		"CREATE TABLE test.acked (c INT NOT NULL, n INT NOT NULL, v VARCHAR(64), PRIMARY KEY (c, n)) ENGINE=InnoDB",
		// NB: the application's account has no SUPER/READ_ONLY ADMIN, so
		// read_only stops it, as in production.
		"CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'",
		"GRANT SELECT, INSERT ON test.* TO 'app'@'%'")
	// The replicas replicate from a member that does not lead.
	leader := r.leader()
	for _, m := range f.Members {
		if m.ID != leader {
			r.feeder = m.ID
			break
		}
	}
	for _, rep := range r.replicas {
		dumptest.PointReplica(t, rep, r.dumpAddr(r.feeder), dumptest.ByGTID)
	}
	for _, rep := range r.replicas {
		dumptest.WaitReplicated(t, src, rep, wait)
	}
	return r
}

func (r *rig) exec(s *sandbox.Server, qs ...string) {
	r.t.Helper()
	for _, q := range qs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := s.Exec(ctx, q)
		cancel()
		if err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *rig) leader() uint64 {
	r.t.Helper()
	l, err := r.f.Leader(context.Background(), wait)
	if err != nil {
		r.t.Fatal(err)
	}
	return l
}

func (r *rig) status() (binlogsvr.Status, error) { return r.f.LeaderStatus(context.Background()) }

func (r *rig) dumpAddr(id uint64) string {
	r.t.Helper()
	st, err := r.f.Status(context.Background(), id, true)
	if err != nil || st.DumpAddr == "" {
		r.t.Fatalf("member %d dump address: %v", id, err)
	}
	return st.DumpAddr
}

func (r *rig) waitStreaming(src string) {
	r.t.Helper()
	err := fleet.Poll(context.Background(), wait, func() error {
		st, err := r.status()
		if err != nil {
			return err
		}
		if st.Source != src || st.Ingest == nil || st.Ingest.State != "streaming" || st.Ingest.Source != src {
			return fmt.Errorf("source %s, ingest %+v", st.Source, st.Ingest)
		}
		return nil
	})
	if err != nil {
		r.t.Fatalf("the fleet does not stream from %s: %v", src, err)
	}
}

// failoverStatus reads GET /failover/status from any member.
func (r *rig) failoverStatus() (failover.Status, error) {
	var st failover.Status
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	for _, m := range r.f.Members {
		if !m.Running() {
			continue
		}
		if err = r.get(ctx, m.ID, "/failover/status", &st); err == nil {
			return st, nil
		}
	}
	return st, err
}

func (r *rig) get(ctx context.Context, id uint64, path string, v any) error {
	return r.f.GetJSONAt(ctx, r.f.Member(id).AdminAddr, path, v)
}

// ctl runs binlogctl against a running member.
func (r *rig) ctl(args ...string) (string, error) {
	r.t.Helper()
	bin, err := fleet.Tool(r.dir, "binlogctl")
	if err != nil {
		r.t.Fatal(err)
	}
	var admin string
	for _, m := range r.f.Members {
		if m.Running() {
			admin = m.AdminAddr
			break
		}
	}
	out, err := exec.Command(bin, append(append(r.f.CtlArgs(), "--admin", admin, "--timeout", "5m"), args...)...).CombinedOutput()
	return string(out), err
}

// byAddr returns the sandbox server at addr (or behind it, for the
// address the fleet knows the source by).
func (r *rig) byAddr(addr string) *sandbox.Server {
	if s := r.via[addr]; s != nil {
		return s
	}
	for _, s := range append([]*sandbox.Server{r.src}, r.replicas...) {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// load is 16 clients writing to whatever the fleet says is the source,
// each logging every commit acknowledged to it.
type load struct {
	r       *rig
	ctx     context.Context
	cancel  context.CancelFunc
	w       *fleet.Writers
	mu      sync.Mutex
	acked   map[[2]int]string // (client, n) -> server that acknowledged
	commits []commit          // every acknowledged commit, in time order per client
	// pace is a pause after each commit (0: as fast as possible).
	pace time.Duration
}

type commit struct {
	at     time.Time
	server string
}

func (r *rig) startLoad(clients int, pace ...time.Duration) *load {
	l := &load{r: r, acked: map[[2]int]string{}}
	if len(pace) > 0 {
		l.pace = pace[0]
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	var srcMu sync.Mutex
	src := r.src.Addr()
	current := func(refresh bool) string {
		srcMu.Lock()
		defer srcMu.Unlock()
		if refresh {
			if st, err := r.status(); err == nil && st.Source != "" && !st.SourceFenced {
				src = st.Source
			}
		}
		return src
	}
	l.w = fleet.StartWriters(l.ctx, fleet.WriterOptions{Clients: clients, User: "app", Password: "app-pw", Pace: l.pace,
		Target: func(refresh bool) (string, string) {
			addr := current(refresh)
			if s := r.byAddr(addr); s != nil {
				return s.Addr(), addr
			}
			return "", ""
		},
		Acked: func(c, n int, at string, when time.Time) {
			l.mu.Lock()
			l.acked[[2]int{c, n}] = at
			l.commits = append(l.commits, commit{when, at})
			l.mu.Unlock()
		}})
	return l
}

// stop stops the clients and waits until their sessions are gone from
// every running server.
func (l *load) stop() {
	l.cancel()
	l.w.Stop()
	// NB: a client that gave up at the stop may leave its INSERT waiting
	// for the ACK on the server; it commits later (and is acknowledged to
	// no one). Data compared before it commits differs.
	for _, s := range append([]*sandbox.Server{l.r.src}, l.r.replicas...) {
		if s.Running() {
			if err := sessionsGone(s, "app", 30*time.Second); err != nil {
				l.r.t.Logf("load: %v", err)
			}
		}
	}
}

// sessionsGone waits (bounded by d) until s has no session of user.
func sessionsGone(s *sandbox.Server, user string, d time.Duration) error {
	return fleet.Poll(context.Background(), d, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := s.Exec(ctx, "SHOW PROCESSLIST")
		if err != nil {
			return err
		}
		for i := 0; i < res.RowNumber(); i++ {
			if u, _ := res.GetStringByName(i, "User"); u == user {
				st, _ := res.GetStringByName(i, "State")
				return fmt.Errorf("%s still has a session of %s (state %q)", s.Addr(), user, st)
			}
		}
		return nil
	})
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// countOn returns how many commits server addr acknowledged.
func (l *load) countOn(addr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.commits {
		if c.server == addr {
			n++
		}
	}
	return n
}

// firstOn is the time of the first commit acknowledged by addr.
func (l *load) firstOn(addr string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t time.Time
	for _, c := range l.commits {
		if c.server == addr && (t.IsZero() || c.at.Before(t)) {
			t = c.at
		}
	}
	return t
}

// maxGap is the longest time without any acknowledged commit within
// [from, to].
func (l *load) maxGap(from, to time.Time) time.Duration {
	l.mu.Lock()
	ts := []time.Time{from}
	for _, c := range l.commits {
		if c.at.After(from) && c.at.Before(to) {
			ts = append(ts, c.at)
		}
	}
	l.mu.Unlock()
	ts = append(ts, to)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	var g time.Duration
	for i := 1; i < len(ts); i++ {
		g = max(g, ts[i].Sub(ts[i-1]))
	}
	return g
}

// waitCount waits until at least n commits were acknowledged.
func (l *load) waitCount(t *testing.T, n int) {
	t.Helper()
	if err := fleet.Poll(context.Background(), wait, func() error {
		if c := l.count(); c < n {
			return fmt.Errorf("%d commits acknowledged, waiting for %d", c, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// verifyAcked checks that every acknowledged commit is on s.
func (l *load) verifyAcked(t *testing.T, s *sandbox.Server) {
	t.Helper()
	have := tableRows(t, s)
	l.mu.Lock()
	defer l.mu.Unlock()
	lost := 0
	for k, at := range l.acked {
		if !have[k] {
			if lost < 10 {
				t.Errorf("acknowledged commit (client %d, n %d) by %s is not on %s", k[0], k[1], at, s.Addr())
			}
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged commits lost", lost, len(l.acked))
	}
	t.Logf("all %d acknowledged commits are on %s (%d rows there)", len(l.acked), s.Addr(), len(have))
}
