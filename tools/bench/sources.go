package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// The "sources" section: N real semi-sync MariaDB sources, each under a
// light paced load, on one fleet of 3 host processes (--catalog-members,
// sources added with POST /sources), beside stock semi-sync of one source
// to one stock MariaDB replica at the same per-source rate.

var (
	sourcesFlag string  // --sources: the N of each row, e.g. 1,10,20
	sourceRate  float64 // --source-rate: commits/s of each light writer
	isolationN  int     // --isolation-n: the row that also runs with one heavy source (0: none)
	heavyMiB    int     // --heavy-mib: the heavy source's transaction size
)

// leanMariaDB are server flags that let many sandboxes share this machine:
// small buffers and caches (the sandbox default pool is 64 MiB).
var leanMariaDB = []string{
	"--innodb-buffer-pool-size=16M",
	"--innodb-log-buffer-size=2M",
	"--key-buffer-size=1M",
	"--aria-pagecache-buffer-size=8M",
	"--max-connections=30",
	"--table-open-cache=200",
	"--table-definition-cache=400",
	"--thread-cache-size=4",
	"--performance-schema=OFF",
}

// writerStat is one writer's measurement.
type writerStat struct {
	name       string
	lats       []time.Duration
	errors     int
	firstError string
	bytes      int64
}

func (w writerStat) pct(q float64) time.Duration {
	if len(w.lats) == 0 {
		return 0
	}
	l := append([]time.Duration(nil), w.lats...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[min(len(l)-1, int(q*float64(len(l))))]
}

func (w *writerStat) fail(err error) {
	w.errors++
	if w.firstError == "" {
		w.firstError = err.Error()
	}
}

// lightWriter commits one ~200-byte INSERT every 1/rate s (paced from a
// schedule; a late commit delays the next, it never bursts) for d, each
// commit bounded by 60 s (the source waits 10 minutes for its ACK: a
// commit that returns was ACKed).
func lightWriter(ctx context.Context, name string, srv *sandbox.Server, rate float64, d time.Duration) writerStat {
	w := writerStat{name: name}
	interval := time.Duration(float64(time.Second) / rate)
	c, err := srv.Conn(ctx)
	if err != nil {
		w.fail(err)
		return w
	}
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	buf := make([]byte, 100)
	start := time.Now()
	end := start.Add(d)
	for next := start; next.Before(end) && ctx.Err() == nil; {
		time.Sleep(time.Until(next))
		_, _ = rand.Read(buf)
		q := "INSERT INTO test.t (v) VALUES ('" + hex.EncodeToString(buf) + "')"
		t0 := time.Now()
		_ = c.SetDeadline(t0.Add(60 * time.Second))
		if _, err := c.Execute(q); err != nil {
			w.fail(err)
			c.Close()
			if c, err = srv.Conn(ctx); err != nil {
				w.fail(err)
				return w
			}
		} else {
			w.lats = append(w.lats, time.Since(t0))
			w.bytes += int64(len(q))
		}
		next = next.Add(interval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
	}
	return w
}

// heavyWriter commits transactions of heavyMiB rows of 1 MiB each (the rows
// made by the server: REPEAT) back to back for d.
func heavyWriter(ctx context.Context, name string, srv *sandbox.Server, d time.Duration) writerStat {
	w := writerStat{name: name}
	c, err := srv.Conn(ctx)
	if err != nil {
		w.fail(err)
		return w
	}
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		t0 := time.Now()
		_ = c.SetDeadline(t0.Add(5 * time.Minute))
		err := c.Begin()
		for i := 0; i < heavyMiB && err == nil; i++ {
			_, err = c.Execute("INSERT INTO test.big (v) VALUES (REPEAT(CHAR(65 + FLOOR(RAND() * 26)), 1048576))")
		}
		if err == nil {
			err = c.Commit()
		}
		if err != nil {
			w.fail(err)
			c.Close()
			if c, err = srv.Conn(ctx); err != nil {
				w.fail(err)
				return w
			}
			continue
		}
		w.lats = append(w.lats, time.Since(t0))
		w.bytes += int64(heavyMiB) << 20
	}
	return w
}

// vmRSS is a process's resident set in bytes (/proc/PID/status VmRSS).
func vmRSS(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

func loadAvg3() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// fleetMetrics sums, over the fleet's hosts, go_goroutines and the
// per-source ACK latency histograms' sum and count.
type fleetMetrics struct {
	goroutines         float64
	ackSum, ackCount   float64
	perSourceAckCounts map[string]float64
}

var reAckLine = regexp.MustCompile(`^binlogsvr_semisync_ack_latency_seconds_(sum|count)\{source="([^"]+)"\} (\S+)$`)

func scrapeFleet(ctx context.Context, f *fleet.Fleet) fleetMetrics {
	m := fleetMetrics{perSourceAckCounts: map[string]float64{}}
	for _, mem := range f.Members {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, f.URL(mem.ID, "/metrics"), nil)
		resp, err := f.HTTP().Do(req)
		if err != nil {
			cancel()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
				x, _ := strconv.ParseFloat(v, 64)
				m.goroutines += x
			}
			if s := reAckLine.FindStringSubmatch(line); s != nil {
				x, _ := strconv.ParseFloat(s[3], 64)
				if s[1] == "sum" {
					m.ackSum += x
				} else {
					m.ackCount += x
					m.perSourceAckCounts[s[2]] += x
				}
			}
		}
	}
	return m
}

// rowResult is one row of the table: N sources (or the baseline) measured
// over the same window.
type rowResult struct {
	setup      string
	n          int
	writers    []writerStat // the light writers
	heavy      *writerStat
	dur        time.Duration
	rss        uint64  // the fleet's three hosts (baseline: the stock replica)
	srcRSS     uint64  // every source's mariadbd
	cpu        float64 // % of one core: the fleet (baseline: the stock replica)
	goroutines float64
	ackMeanMs  float64 // inside the fleet: mean ACK latency over the window
	load0      string
	load1      string
}

func (r rowResult) txns() (n, errs int) {
	for _, w := range r.writers {
		n += len(w.lats)
		errs += w.errors
	}
	return n, errs
}

// spread is min/median/max of the writers' q-quantile, in ms.
func spread(ws []writerStat, q float64) string {
	if len(ws) == 0 {
		return "–"
	}
	var v []float64
	for _, w := range ws {
		v = append(v, ms(w.pct(q)))
	}
	sort.Float64s(v)
	if len(v) == 1 {
		return fmt.Sprintf("%.2f", v[0])
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f", v[0], v[len(v)/2], v[len(v)-1])
}

// runLight runs a light writer on each server (and heavy on heavySrv if
// set) for d, and measures the CPU of cpuPIDs over the window.
func runLight(ctx context.Context, names []string, srvs []*sandbox.Server, heavySrv *sandbox.Server, d time.Duration, cpuPIDs []int) (ws []writerStat, heavy *writerStat, cpuPct float64) {
	cpu := func() (t time.Duration) {
		for _, p := range cpuPIDs {
			t += fleet.ProcessCPU(p)
		}
		return t
	}
	ws = make([]writerStat, len(srvs))
	var hw writerStat
	var wg sync.WaitGroup
	c0, t0 := cpu(), time.Now()
	for i, s := range srvs {
		wg.Add(1)
		go func() { defer wg.Done(); ws[i] = lightWriter(ctx, names[i], s, sourceRate, d) }()
	}
	if heavySrv != nil {
		wg.Add(1)
		go func() { defer wg.Done(); hw = heavyWriter(ctx, "heavy", heavySrv, d) }()
	}
	// NB: the CPU window is the writers' d; a late heavy commit is waited
	// for outside it.
	time.Sleep(d)
	c1, t1 := cpu(), time.Now()
	wg.Wait()
	if heavySrv != nil {
		heavy = &hw
	}
	return ws, heavy, 100 * float64(c1-c0) / float64(t1.Sub(t0))
}

func benchSources(dur time.Duration) (string, error) {
	ctx := context.Background()
	var ns []int
	for _, s := range strings.Split(sourcesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return "", fmt.Errorf("--sources %q: want counts like 1,10,20", sourcesFlag)
		}
		ns = append(ns, n)
	}
	sort.Ints(ns)
	if err := sandbox.Available(sandbox.MariaDB); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "binlogsvr-bench-sources-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench: sources: "+f+"\n", a...) }
	prepare := func(srv *sandbox.Server) error {
		for _, q := range []string{"CREATE DATABASE IF NOT EXISTS test",
			"CREATE TABLE IF NOT EXISTS test.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(255)) ENGINE=InnoDB",
			"CREATE TABLE IF NOT EXISTS test.big (id BIGINT AUTO_INCREMENT PRIMARY KEY, v LONGBLOB) ENGINE=InnoDB",
			"INSERT INTO test.t (v) VALUES ('warm-up')"} {
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			_, err := srv.Exec(wctx, q)
			cancel()
			if err != nil {
				return err
			}
		}
		return nil
	}

	var rows []rowResult
	var notes []string

	// The baseline: one source, stock semi-sync to one stock replica.
	{
		src, rep, cleanup, err := stockSemiSync(ctx, leanMariaDB)
		if err != nil {
			return "", fmt.Errorf("baseline: %w", err)
		}
		err = prepare(src)
		if err == nil {
			r := rowResult{setup: "stock semi-sync → 1 MariaDB replica (per source)", n: 1, dur: dur, load0: loadAvg3()}
			r.writers, _, r.cpu = runLight(ctx, []string{"stock"}, []*sandbox.Server{src}, nil, dur, []int{rep.PID()})
			r.rss, r.srcRSS, r.load1 = vmRSS(rep.PID()), vmRSS(src.PID()), loadAvg3()
			n, e := r.txns()
			logf("baseline: %d txns, p50 %s ms, p99 %s ms, %d errors, replica RSS %d MiB, CPU %.1f%% (load %s → %s)", n, spread(r.writers, 0.5), spread(r.writers, 0.99), e, r.rss>>20, r.cpu, r.load0, r.load1)
			rows = append(rows, r)
		}
		cleanup()
		if err != nil {
			return "", fmt.Errorf("baseline: %w", err)
		}
	}

	// The fleet: 3 hosts of a catalog, TLS (the default).
	var srvs []*sandbox.Server
	var srvMu sync.Mutex
	defer func() {
		srvMu.Lock()
		defer srvMu.Unlock()
		var wg sync.WaitGroup
		for _, s := range srvs {
			wg.Add(1)
			go func() { defer wg.Done(); s.Close() }()
		}
		wg.Wait()
	}()
	user := "repl"
	pass := ""
	{
		probe, err := sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute, ExtraArgs: leanMariaDB})
		if err != nil {
			return "", err
		}
		srvs = append(srvs, probe)
		user, pass = probe.ReplUser()
		logf("one lean MariaDB sandbox: RSS %d MiB at start", vmRSS(probe.PID())>>20)
	}
	f, err := fleet.Start(ctx, fleet.Options{Dir: filepath.Join(dir, "fleet"), Members: 3, Catalog: true, SourcePassword: pass,
		ExtraArgs: append([]string{"--source-user", user, "--log-level", "warn"}, logArgs...)})
	if err != nil {
		return "", err
	}
	defer f.Close()
	var pids []int
	for _, m := range f.Members {
		pids = append(pids, m.PID())
	}
	fleetRSS := func() (t uint64) {
		for _, m := range f.Members {
			t += vmRSS(m.PID())
		}
		return t
	}
	srcRSS := func(ss []*sandbox.Server) (t uint64) {
		for _, s := range ss {
			t += vmRSS(s.PID())
		}
		return t
	}
	name := func(i int) string { return fmt.Sprintf("s%02d", i) }
	added := 0
	// grow starts sources up to n and adds them to the fleet; each one
	// streams and has committed its warm-up row (ACKed) when it returns.
	grow := func(n int) error {
		t0 := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		errs := make(chan error, n)
		for i := len(srvs); i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				s, err := sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute, ExtraArgs: leanMariaDB})
				if err != nil {
					errs <- err
					return
				}
				srvMu.Lock()
				srvs = append(srvs, s)
				srvMu.Unlock()
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return fmt.Errorf("starting sandbox sources: %w", err)
		}
		logf("%d sandbox sources running (%v)", len(srvs), time.Since(t0).Round(time.Second))
		for ; added < n; added++ {
			s := srvs[added]
			q := url.Values{"name": {name(added)}, "source": {s.Addr()}, "hosts": {"1,2,3"}}
			var ch api.SourceChange
			if err := fleet.Poll(ctx, 2*time.Minute, func() error { return f.Post(ctx, uint64(added%3+1), "/sources?"+q.Encode(), &ch) }); err != nil {
				return fmt.Errorf("adding source %s: %w", name(added), err)
			}
		}
		if err := fleet.Poll(ctx, 5*time.Minute, func() error {
			var l []api.SourceInfo
			if err := f.Get(ctx, 1, "/sources", &l); err != nil {
				return err
			}
			streaming := 0
			for _, si := range l {
				if si.Ingest == "streaming" && si.Leader != 0 {
					streaming++
				}
			}
			if streaming < n {
				return fmt.Errorf("%d of %d sources streaming", streaming, n)
			}
			return nil
		}); err != nil {
			return err
		}
		var pg sync.WaitGroup
		perrs := make(chan error, n)
		for i := 0; i < n; i++ {
			pg.Add(1)
			go func() {
				defer pg.Done()
				if err := waitSemiClients(ctx, srvs[i]); err != nil {
					perrs <- fmt.Errorf("%s: %w", name(i), err)
					return
				}
				if err := prepare(srvs[i]); err != nil {
					perrs <- fmt.Errorf("%s: warm-up commit: %w", name(i), err)
				}
			}()
		}
		pg.Wait()
		close(perrs)
		if err := <-perrs; err != nil {
			return err
		}
		logf("%d sources streaming, each committed (ACKed) a warm-up row (%v)", n, time.Since(t0).Round(time.Second))
		return nil
	}
	measure := func(setup string, n int, heavy bool) rowResult {
		r := rowResult{setup: setup, n: n, dur: dur, load0: loadAvg3()}
		var names []string
		ss := srvs[:n]
		var hs *sandbox.Server
		if heavy {
			hs, ss = srvs[0], srvs[1:n]
		}
		for i := range ss {
			names = append(names, name(i+n-len(ss)))
		}
		m0 := scrapeFleet(ctx, f)
		r.writers, r.heavy, r.cpu = runLight(ctx, names, ss, hs, dur, pids)
		m1 := scrapeFleet(ctx, f)
		r.rss, r.srcRSS, r.goroutines, r.load1 = fleetRSS(), srcRSS(srvs[:n]), m1.goroutines, loadAvg3()
		if c := m1.ackCount - m0.ackCount; c > 0 {
			r.ackMeanMs = 1000 * (m1.ackSum - m0.ackSum) / c
		}
		t, e := r.txns()
		logf("%s, %d sources: %d txns (%.1f/s), p50 %s ms, p99 %s ms, %d errors, fleet RSS %d MiB, CPU %.0f%%, %0.f goroutines, fleet-side ACK mean %.2f ms (load %s → %s)",
			setup, n, t, float64(t)/dur.Seconds(), spread(r.writers, 0.5), spread(r.writers, 0.99), e, r.rss>>20, r.cpu, r.goroutines, r.ackMeanMs, r.load0, r.load1)
		if r.heavy != nil {
			logf("heavy source: %d transactions of %d MiB, p50 %.0f ms, p99 %.0f ms, %d errors %s", len(r.heavy.lats), heavyMiB, ms(r.heavy.pct(0.5)), ms(r.heavy.pct(0.99)), r.heavy.errors, r.heavy.firstError)
		}
		return r
	}
	for _, n := range ns {
		if err := grow(n); err != nil {
			notes = append(notes, fmt.Sprintf("- N = %d did not start: %v (load %s)", n, err, loadAvg3()))
			logf("N = %d: %v", n, err)
			break
		}
		rows = append(rows, measure("binlogsvr fleet, 3 hosts", n, false))
	}
	// NB: the isolation pair runs last: the heavy transactions grow the
	// hosts' RSS, which the rows above report.
	if isolationN > 1 && added >= isolationN {
		setup := "binlogsvr fleet, 3 hosts"
		if idle := added - isolationN; idle > 0 {
			setup += fmt.Sprintf(" (%d more sources idle)", idle)
		}
		rows = append(rows, measure(setup+"; isolation: light load only", isolationN, false))
		rows = append(rows, measure(fmt.Sprintf("%s; isolation: s00 writes %d MiB transactions back to back", setup, heavyMiB), isolationN, true))
	}
	return sourcesMarkdown(rows, notes, ns), nil
}

func sourcesMarkdown(rows []rowResult, notes []string, ns []int) string {
	var sb strings.Builder
	dur := time.Duration(0)
	if len(rows) > 0 {
		dur = rows[0].dur
	}
	var nsS []string
	for _, n := range ns {
		nsS = append(nsS, strconv.Itoa(n))
	}
	fmt.Fprintf(&sb, "## N sources × light load on one fleet\n\n")
	fmt.Fprintf(&sb, "Run: `make build-debug && BINLOGSVR_BIN=$PWD/bin/debug bin/debug/bench --out docs/BENCHMARKS.md --sources %s --source-rate %g --isolation-n %d --heavy-mib %d --duration %v sources` (tools/bench/sources.go; `make bench` runs it with its defaults: --sources 1,10,20, 30 s), %s, %d cores, Go %s. "+
		"One fleet of 3 `binlogsvr` host processes (`--catalog-members`, TLS on, debug build), N MariaDB 10.11 sandbox sources, each semi-sync (AFTER_SYNC, 10-minute timeout: a commit that returns was ACKed by the fleet) and added with `POST /sources` on hosts 1,2,3 (each its own raft shard). "+
		"Each source has one client committing a ~200-byte INSERT %g times a second, paced, for %v after a warm-up (every source streaming and one commit ACKed); rows grow the same fleet (the sources of a row are those of the previous row plus new ones); the isolation pair runs last, on the first sources. "+
		"The baseline, first in the same run: one source in stock semi-sync to one stock MariaDB replica at the same rate. Every MariaDB runs lean (`%s`). "+
		"**This is a shared 2-core machine: other engineers' tests run beside it**; the load average (1/5/15 min) at each row's start and end is given.\n\n",
		strings.Join(nsS, ","), sourceRate, isolationN, heavyMiB, dur, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), sourceRate, dur, strings.Join(leanMariaDB, " "))
	fmt.Fprintf(&sb, "| setup | sources | txn/s | commit p50 ms (min / median / max over sources) | commit p99 ms (min / median / max) | errors | RSS MiB | CPU %% of a core | goroutines | in-fleet mean ACK ms | load start → end |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		t, e := r.txns()
		gor, ack := "–", "–"
		if r.goroutines > 0 {
			gor = fmt.Sprintf("%.0f", r.goroutines)
		}
		if r.ackMeanMs > 0 {
			ack = fmt.Sprintf("%.2f", r.ackMeanMs)
		}
		n := strconv.Itoa(r.n)
		if r.heavy != nil {
			n = fmt.Sprintf("%d (+1 heavy)", r.n-1)
		}
		fmt.Fprintf(&sb, "| %s | %s | %.1f | %s | %s | %d | %d | %.1f | %s | %s | %s → %s |\n", r.setup, n, float64(t)/r.dur.Seconds(), spread(r.writers, 0.5), spread(r.writers, 0.99), e,
			r.rss>>20, r.cpu, gor, ack, r.load0, r.load1)
	}
	sb.WriteString("\nRSS and CPU: the fleet's three host processes (VmRSS summed at the row's end; utime + stime over the row from /proc/PID/stat); for the baseline, the stock replica's mariadbd alone. Goroutines: `go_goroutines` summed over the hosts. In-fleet mean ACK: `binlogsvr_semisync_ack_latency_seconds` (per source, label `source`) sum/count over the row, summed over the hosts. Commit latency is measured by the client: the INSERT's autocommit returning.\n")
	var srcNotes []string
	for i, r := range rows {
		switch {
		case i == 0:
			srcNotes = append(srcNotes, fmt.Sprintf("the baseline's source %d MiB", r.srcRSS>>20))
		case r.heavy == nil:
			srcNotes = append(srcNotes, fmt.Sprintf("N = %d: %d MiB", r.n, r.srcRSS>>20))
		}
	}
	if len(srcNotes) > 0 {
		fmt.Fprintf(&sb, "\nThe sources' own mariadbd RSS at each row's end (for scale; not in the RSS column): %s.\n", strings.Join(srcNotes, "; "))
	}
	// The isolation check: the light sources' numbers with and without
	// the heavy one.
	for i, r := range rows {
		if r.heavy == nil || i == 0 {
			continue
		}
		base := rows[i-1]
		others := base.writers[1:]
		h := r.heavy
		fmt.Fprintf(&sb, "\nIsolation at N = %d: s00 commits %d MiB transactions back to back (%d of them in %v, %.1f MB/s, commit p50 %.0f ms, p99 %.0f ms, %d errors) while s01–s%02d keep their light load. The light sources' commit latency, min / median / max over them:\n\n",
			r.n, heavyMiB, len(h.lats), r.dur, float64(h.bytes)/1e6/r.dur.Seconds(), ms(h.pct(0.5)), ms(h.pct(0.99)), h.errors, r.n-1)
		fmt.Fprintf(&sb, "| s01–s%02d | p50 ms | p99 ms | errors | fleet CPU %% | load start → end |\n|---|---|---|---|---|---|\n", r.n-1)
		_, e0 := rowResult{writers: others}.txns()
		_, e1 := r.txns()
		fmt.Fprintf(&sb, "| light load only | %s | %s | %d | %.0f | %s → %s |\n", spread(others, 0.5), spread(others, 0.99), e0, base.cpu, base.load0, base.load1)
		fmt.Fprintf(&sb, "| s00 heavy | %s | %s | %d | %.0f | %s → %s |\n", spread(r.writers, 0.5), spread(r.writers, 0.99), e1, r.cpu, r.load0, r.load1)
		if h.firstError != "" {
			fmt.Fprintf(&sb, "\nThe heavy source's first error: %s\n", h.firstError)
		}
	}
	sb.WriteString("\n<details><summary>Per source: commit p50 / p99 ms (errors)</summary>\n\n")
	for _, r := range rows {
		var parts []string
		for _, w := range r.writers {
			p := fmt.Sprintf("%s %.2f / %.2f", w.name, ms(w.pct(0.5)), ms(w.pct(0.99)))
			if w.errors > 0 {
				p += fmt.Sprintf(" (%d errors: %s)", w.errors, w.firstError)
			}
			parts = append(parts, p)
		}
		label := fmt.Sprintf("%s, N = %d", r.setup, r.n)
		fmt.Fprintf(&sb, "- %s: %s\n", label, strings.Join(parts, "; "))
	}
	sb.WriteString("\n</details>\n")
	if len(notes) > 0 {
		sb.WriteString("\nWhere it broke:\n\n" + strings.Join(notes, "\n") + "\n")
	}
	return sb.String()
}
