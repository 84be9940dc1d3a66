// Package failoverbench measures the failover's recovery time objective
// with real processes: a semi-sync source, one candidate replica fed by a
// 3-member fleet, a small write load, then kill -9 of the source. The RTO
// of a run is the time from the kill to the first commit acknowledged by
// the new source. tools/bench runs it as `rto`; the setup mirrors
// failover/e2e's rig.
package failoverbench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// Options configure Run.
type Options struct {
	Flavor sandbox.Flavor // default MariaDB
	Runs   int            // default 20
	Lease  time.Duration  // --failover-lease, default 3s
	Logf   func(string, ...any)
}

// Result is the outcome of Run.
type Result struct {
	Flavor     string
	Lease      time.Duration
	RTOs       []time.Duration // of the runs that failed over, in run order
	P50, P99   time.Duration
	Failures   int    // runs that did not fail over within FailoverTimeout (or failed to set up)
	FirstError string // the first failure's error
}

const (
	// FailoverTimeout bounds one run's wait for a commit on the new source.
	FailoverTimeout = 60 * time.Second
	setupTimeout    = 90 * time.Second
	clients         = 4
	commitsBefore   = 100 // acknowledged commits before the kill
)

func (o *Options) defaults() {
	if o.Flavor == "" {
		o.Flavor = sandbox.MariaDB
	}
	if o.Runs <= 0 {
		o.Runs = 20
	}
	if o.Lease <= 0 {
		o.Lease = 3 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Run performs o.Runs failovers, each on fresh servers and a fresh fleet,
// torn down before the next. A run that fails is counted and the next one
// starts; Run returns an error only when it cannot run at all (missing
// binaries, ctx done).
func Run(ctx context.Context, o Options) (Result, error) {
	o.defaults()
	res := Result{Flavor: string(o.Flavor), Lease: o.Lease}
	if err := sandbox.Available(o.Flavor); err != nil {
		return res, err
	}
	for i := 1; i <= o.Runs; i++ {
		rto, err := once(ctx, o)
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if err != nil {
			res.Failures++
			if res.FirstError == "" {
				res.FirstError = fmt.Sprintf("run %d: %v", i, err)
			}
			o.Logf("failoverbench: run %d/%d failed: %v", i, o.Runs, err)
			continue
		}
		res.RTOs = append(res.RTOs, rto)
		o.Logf("failoverbench: run %d/%d: RTO %v", i, o.Runs, rto.Round(time.Millisecond))
	}
	if len(res.RTOs) > 0 {
		s := sorted(res.RTOs)
		res.P50, res.P99 = quantile(s, 0.50), quantile(s, 0.99)
	}
	return res, nil
}

func sorted(ds []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

// quantile is the nearest-rank quantile of sorted s.
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(float64(len(s))*q+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Markdown renders r as the "Failover RTO" section of docs/BENCHMARKS.md.
func (r Result) Markdown() string { return Markdown(r) }

// Markdown renders the results of one run per flavor as the "Failover RTO"
// section of docs/BENCHMARKS.md.
func Markdown(rs ...Result) string {
	var b strings.Builder
	if len(rs) == 0 {
		return ""
	}
	var flavors []string
	for _, r := range rs {
		flavors = append(flavors, r.Flavor)
	}
	r0 := rs[0]
	b.WriteString("## Failover RTO\n\n")
	fmt.Fprintf(&b, "Run: `make bench` (`BINLOGSVR_BIN=bin/debug bin/debug/bench --out docs/BENCHMARKS.md rto`; tools/bench `rto`, tools/bench/failoverbench), %s, %d cores, %s/%s, Go %s. "+
		"Each run starts a fresh semi-sync source (%s), one candidate replica fed by a 3-member fleet (`--failover-lease %v --failover-probe-interval 250ms --failover-probe-timeout 500ms`) and %d writing clients, "+
		"then kills the source with SIGKILL; RTO is kill -9 → first commit acknowledged by the new source. Target: p50 ≤ lease + 2 s = %v.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(),
		strings.Join(flavors, ", then "), r0.Lease, clients, r0.Lease+2*time.Second)
	b.WriteString("| flavor | lease | runs | p50 | p99 | min | max | failures |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		runs := len(r.RTOs) + r.Failures
		if len(r.RTOs) == 0 {
			fmt.Fprintf(&b, "| %s | %v | %d | - | - | - | - | %d |\n", r.Flavor, r.Lease, runs, r.Failures)
			continue
		}
		s := sorted(r.RTOs)
		fmt.Fprintf(&b, "| %s | %v | %d | %s | %s | %s | %s | %d |\n", r.Flavor, r.Lease, runs,
			sec(r.P50), sec(r.P99), sec(s[0]), sec(s[len(s)-1]), r.Failures)
	}
	for _, r := range rs {
		if r.FirstError != "" {
			fmt.Fprintf(&b, "\n%s: first failure (a run counts as failed when no commit is acknowledged by a new source within %v of the kill): %s\n", r.Flavor, FailoverTimeout, r.FirstError)
		}
	}
	return b.String()
}

func sec(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// run is one setup: source, candidate replica, fleet.
type run struct {
	o   Options
	src *sandbox.Server
	rep *sandbox.Server
	f   *fleet.Fleet
}

func once(ctx context.Context, o Options) (rto time.Duration, err error) {
	dir, err := os.MkdirTemp("", "binlogsvr-rto-")
	if err != nil {
		return 0, err
	}
	defer func() {
		// NB: a failed run keeps the fleet's directory (the members' logs).
		if err == nil {
			os.RemoveAll(dir)
		} else {
			err = fmt.Errorf("%w (the fleet's logs are kept in %s)", err, dir)
		}
	}()
	r := &run{o: o}

	// The source and the replica start in parallel.
	var wg sync.WaitGroup
	var srcErr, repErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		r.src, srcErr = sandbox.Start(ctx, sandbox.Options{Flavor: o.Flavor, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute})
	}()
	go func() {
		defer wg.Done()
		r.rep, repErr = sandbox.Start(ctx, sandbox.Options{Flavor: o.Flavor})
	}()
	wg.Wait()
	for _, s := range []*sandbox.Server{r.src, r.rep} {
		if s != nil {
			defer s.Close()
		}
	}
	if err := errors.Join(srcErr, repErr); err != nil {
		return 0, fmt.Errorf("start sandboxes: %w", err)
	}

	write := func(name, v string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, []byte(v), 0o600)
	}
	dumpPW, err := write("dump.pw", dumptest.DumpPassword)
	if err != nil {
		return 0, err
	}
	rootUser, rootPass := r.src.RootUser()
	adminPW, err := write("admin.pw", rootPass)
	if err != nil {
		return 0, err
	}
	args := []string{"--source-heartbeat", "500ms", "--dump-addr", "127.0.0.1:0",
		"--dump-user", dumptest.DumpUser, "--dump-password-file", dumpPW,
		"--failover-admin-user", rootUser, "--failover-admin-password-file", adminPW,
		"--failover-lease", o.Lease.String(), "--failover-probe-interval", "250ms", "--failover-probe-timeout", "500ms",
		"--failover-candidate", r.rep.Addr(), "--log-level", "warn"}
	user, pass := r.src.ReplUser()
	r.f, err = fleet.Start(ctx, fleet.Options{Dir: filepath.Join(dir, "fleet"), Members: 3, Source: r.src.Addr(), SourceUser: user, SourcePassword: pass, ExtraArgs: args})
	if err != nil {
		return 0, err
	}
	defer r.f.Close() // before the sandboxes' Close (defers run in reverse)

	if err := r.setup(ctx); err != nil {
		return 0, fmt.Errorf("setup: %w", err)
	}

	l := r.startLoad(ctx)
	defer l.stop()
	if err := fleet.Poll(ctx, setupTimeout, func() error {
		if n := l.count(); n < commitsBefore {
			return fmt.Errorf("%d commits before the kill", n)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	old := r.src.Addr()
	l.mu.Lock()
	l.killed = time.Now()
	l.mu.Unlock()
	if err := r.src.Kill(); err != nil {
		return 0, err
	}
	var first time.Time
	err = fleet.Poll(ctx, FailoverTimeout, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.firstNew.IsZero() {
			return errors.New("no commit on a new source yet")
		}
		first = l.firstNew
		return nil
	})
	if err != nil {
		fs, _ := r.failoverStatus(ctx)
		return 0, fmt.Errorf("no failover within %v of killing %s: %v (failover status %+v)", FailoverTimeout, old, err, fs)
	}
	return first.Sub(l.killed), nil
}

// setup waits for the fleet to stream from the source, creates the
// application's table and account, and points the replica at a member
// that does not lead, as failover/e2e's rig does.
func (r *run) setup(ctx context.Context) error {
	src := r.src.Addr()
	if err := fleet.Poll(ctx, setupTimeout, func() error {
		st, err := r.status(ctx)
		if err != nil {
			return err
		}
		if st.Source != src || st.Ingest == nil || st.Ingest.State != "streaming" || st.Ingest.Source != src {
			return fmt.Errorf("source %s, ingest %+v", st.Source, st.Ingest)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("the fleet does not stream from %s: %w", src, err)
	}
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS test",
		"CREATE TABLE test.acked (c INT NOT NULL, n INT NOT NULL, v VARCHAR(64), PRIMARY KEY (c, n)) ENGINE=InnoDB",
		"CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'",
		"GRANT SELECT, INSERT ON test.* TO 'app'@'%'"} {
		if err := execOn(ctx, r.src, q); err != nil {
			return err
		}
	}
	leader, err := r.f.Leader(ctx, setupTimeout)
	if err != nil {
		return err
	}
	var feeder uint64
	for _, m := range r.f.Members {
		if m.ID != leader {
			feeder = m.ID
			break
		}
	}
	st, err := r.f.Status(ctx, feeder, true)
	if err != nil || st.DumpAddr == "" {
		return fmt.Errorf("member %d dump address: %v", feeder, err)
	}
	if err := pointReplica(ctx, r.rep, st.DumpAddr); err != nil {
		return err
	}
	return dumptest.Replicated(ctx, r.src, r.rep, setupTimeout)
}

func execOn(ctx context.Context, s *sandbox.Server, qs ...string) error {
	for _, q := range qs {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := s.Exec(cctx, q)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %s: %w", s.Addr(), q, err)
		}
	}
	return nil
}

// pointReplica is dumptest.PointReplica (by GTID) returning an error.
func pointReplica(ctx context.Context, r *sandbox.Server, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if r.Flavor() == sandbox.MariaDB {
		return execOn(ctx, r, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', "+
			"MASTER_USE_GTID=slave_pos, MASTER_HEARTBEAT_PERIOD=1, MASTER_CONNECT_RETRY=1", host, port, dumptest.DumpUser, dumptest.DumpPassword),
			"START SLAVE")
	}
	return execOn(ctx, r, fmt.Sprintf("CHANGE REPLICATION SOURCE TO SOURCE_HOST='%s', SOURCE_PORT=%s, SOURCE_USER='%s', SOURCE_PASSWORD='%s', "+
		"SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_HEARTBEAT_PERIOD=1, SOURCE_CONNECT_RETRY=1", host, port, dumptest.DumpUser, dumptest.DumpPassword),
		"START REPLICA")
}

// status is the leader's status, as seen from any running member.
func (r *run) status(ctx context.Context) (binlogsvr.Status, error) { return r.f.LeaderStatus(ctx) }

func (r *run) failoverStatus(ctx context.Context) (failover.Status, error) {
	var st failover.Status
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := errors.New("no member running")
	for _, m := range r.f.Members {
		if !m.Running() {
			continue
		}
		if err = r.f.GetJSONAt(ctx, m.AdminAddr, "/failover/status", &st); err == nil {
			return st, nil
		}
	}
	return st, err
}

// load is a few clients inserting into whatever the fleet says is the
// source, reconnecting on error, as failover/e2e's load does.
type load struct {
	ctx    context.Context
	cancel context.CancelFunc
	w      *fleet.Writers

	mu       sync.Mutex
	n        int
	killed   time.Time // set just before the kill
	firstNew time.Time // first commit acknowledged by a server other than the old source
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *load) stop() {
	l.cancel()
	l.w.Stop()
}

func (r *run) startLoad(ctx context.Context) *load {
	l := &load{}
	l.ctx, l.cancel = context.WithCancel(ctx)
	old := r.src.Addr()
	var srcMu sync.Mutex
	src := old
	current := func(refresh bool) string {
		srcMu.Lock()
		defer srcMu.Unlock()
		if refresh {
			if st, err := r.status(l.ctx); err == nil && st.Source != "" && !strings.HasPrefix(st.Source, api.FencedPrefix) {
				src = st.Source
			}
		}
		return src
	}
	known := func(addr string) bool { return addr == old || addr == r.rep.Addr() }
	l.w = fleet.StartWriters(l.ctx, fleet.WriterOptions{Clients: clients, User: "app", Password: "app-pw",
		Target: func(refresh bool) (string, string) {
			if addr := current(refresh); known(addr) {
				return addr, addr
			}
			return "", ""
		},
		Acked: func(c, n int, at string, when time.Time) {
			l.mu.Lock()
			l.n++
			if at != old && !l.killed.IsZero() && l.firstNew.IsZero() {
				l.firstNew = when
			}
			l.mu.Unlock()
		}})
	return l
}
