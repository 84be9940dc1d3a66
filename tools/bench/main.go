// Command bench runs the project's benchmarks against real processes on
// this machine and writes the results, with the commands that produced
// them, into docs/BENCHMARKS.md.
//
//	bench [--out docs/BENCHMARKS.md] [--duration 5s] [--rto-runs 20] [log] [tls] [semisync] [targets] [dump] [rto] [sources]
//
// "log": appends to a 3-process group (real binlogsvr processes on
// loopback, a real MariaDB sandbox seeding the source) for 200 B, 4 KiB and
// 1 MiB transactions, 1 and 64 concurrent proposers, beside this disk's own
// fsync latency measured in the same run.
//
// "targets": the ACK path's targets of issue 15 in one table (targets.go).
//
// "sources": N semi-sync MariaDB sources, each under a light paced load, on
// one fleet of 3 catalog hosts, beside stock semi-sync of one source
// (sources.go); --sources 1,10,20 names the rows.
//
// "rto": kill -9 of a semi-sync source under a small write load, 20 times
// on fresh processes (tools/bench/failoverbench); reports the RTO (kill ->
// first commit acknowledged by the new source) p50, p99, min and max.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/tools/bench/dumpbench"
	"github.com/binlogsvr/binlogsvr/tools/bench/failoverbench"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

var (
	profileDir, only   string
	onlySetup, onlyRow string
	inflight           int
	logArgs            []string
)

func main() {
	out := flag.String("out", "", "markdown file to update (the section of each benchmark is replaced)")
	dur := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	flag.StringVar(&profileDir, "profile", "", "save a CPU profile of the leader for each row into this directory")
	flag.IntVar(&inflight, "inflight", 4, "Append proposals in flight at once (the proposer's MaxInFlight)")
	flag.StringVar(&onlySetup, "setup", "", "semisync: run only the setups whose name contains this (async, stock, fleet)")
	flag.StringVar(&onlyRow, "row", "", "semisync: run only WORKLOAD/THREADS, e.g. oltp_insert/32")
	flag.StringVar(&only, "only", "", "run only rows matching SIZE/PROPOSERS, e.g. 200/64; targets: p1 (P1 and P2), p3 or cpu")
	flag.IntVar(&cpuRounds, "cpu-rounds", 2, "targets: rounds of the CPU rows with --base (each round runs both builds)")
	flag.StringVar(&baseBin, "base", "", "targets: directory of a baseline build's binlogsvr; the CPU rows run on it too, alternating")
	logArgsFlag := flag.String("log-member-args", "", "log: extra flags for the binlogsvr members, space separated (e.g. \"--raft-logdb pebble\")")
	rtoRuns := flag.Int("rto-runs", 20, "rto: how many failovers to measure per flavor")
	rtoFlavors := flag.String("rto-flavors", "mariadb,mysql", "rto: the source flavors to measure, comma separated")
	dumpArgs := flag.String("dump-member-args", "", "dump: extra flags for the binlogsvr members, space separated (e.g. \"--dump-cache-bytes 33554432\")")
	dumpDaemonClients := flag.Int("dump-daemon-clients", 100, "dump: clients in the real-process part")
	dumpDaemonOnly := flag.Bool("dump-daemon-only", false, "dump: run only the real-process part (100 clients against a binlogsvr member); --profile saves its profiles")
	flag.StringVar(&sourcesFlag, "sources", "1,10,20", "sources: the number of sources of each row, comma separated")
	flag.Float64Var(&sourceRate, "source-rate", 10, "sources: commits per second of each source's writer")
	flag.IntVar(&isolationN, "isolation-n", 10, "sources: at this N, a row more where s00 writes large transactions (0: none)")
	flag.IntVar(&heavyMiB, "heavy-mib", 16, "sources: the heavy source's transaction size in MiB (1 MiB rows)")
	flag.Parse()
	logArgs = strings.Fields(*logArgsFlag)
	which := flag.Args()
	if len(which) == 0 {
		which = []string{"log", "tls", "semisync", "targets", "dump", "rto", "sources"}
	}
	for _, w := range which {
		var section string
		var err error
		switch w {
		case "log":
			section, err = benchLog(*dur)
		case "tls":
			section, err = benchTLS(*dur)
		case "semisync":
			section, err = benchSemisync(max(*dur, 10*time.Second))
		case "targets":
			section, err = benchTargets(max(*dur, 10*time.Second))
		case "dump":
			logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
			section = "## Dump: clients reading the whole log, fleet member beside the source\n\nRun: `make build-debug && BINLOGSVR_BIN=$PWD/bin/debug bin/debug/bench --out docs/BENCHMARKS.md dump` (what `make bench` runs for `dump`; tools/bench, tools/bench/dumpbench), " +
				time.Now().UTC().Format("2006-01-02") + fmt.Sprintf(", %d cores, Go %s. First table: a one-member log and its dump server in the benchmark's process (its RSS includes the clients); second: 100 clients against a real binlogsvr process of a 3-member fleet (default flags: --dump-cache-bytes 64 MiB, 256 KiB reads), whose own RSS is read from /proc. Every client is a non-blocking COM_BINLOG_DUMP from the first file to EOF, run from the benchmark's process on the same cores.\n\n", runtime.NumCPU(), runtime.Version())
			if !*dumpDaemonOnly {
				var res dumpbench.Result
				res, err = dumpbench.Run(context.Background(), dumpbench.Options{Flavor: sandbox.MariaDB, Logf: logf})
				section += res.Markdown()
			}
			if err == nil {
				var dr dumpbench.DaemonResult
				dr, err = dumpbench.RunDaemon(context.Background(), dumpbench.Options{Logf: logf, ProfileDir: profileDir, MemberArgs: strings.Fields(*dumpArgs)}, *dumpDaemonClients)
				if *dumpArgs != "" {
					section += "\nMember flags: `" + *dumpArgs + "`.\n"
				}
				section += "\n" + dr.Markdown()
			}
		case "sources":
			d := 30 * time.Second // NB: this section's default; --duration overrides it
			flag.Visit(func(fl *flag.Flag) {
				if fl.Name == "duration" {
					d = *dur
				}
			})
			section, err = benchSources(d)
		case "rto":
			var rs []failoverbench.Result
			for _, fl := range strings.Split(*rtoFlavors, ",") {
				var res failoverbench.Result
				res, err = failoverbench.Run(context.Background(), failoverbench.Options{Flavor: sandbox.Flavor(strings.TrimSpace(fl)), Runs: *rtoRuns,
					Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
				if err != nil {
					break
				}
				rs = append(rs, res)
			}
			section = failoverbench.Markdown(rs...)
		default:
			err = fmt.Errorf("unknown benchmark %q (known: log, tls, semisync, targets, dump, rto, sources)", w)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Println(section)
		if *out != "" {
			if err := replaceSection(*out, w, section); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				os.Exit(1)
			}
		}
	}
}

// replaceSection writes section between <!-- bench:NAME --> markers.
func replaceSection(path, name, section string) error {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	begin, end := "<!-- bench:"+name+" -->", "<!-- /bench:"+name+" -->"
	block := begin + "\n" + section + "\n" + end
	s := string(b)
	re := regexp.MustCompile(`(?s)` + regexp.QuoteMeta(begin) + `.*?` + regexp.QuoteMeta(end))
	if re.MatchString(s) {
		s = re.ReplaceAllLiteralString(s, block)
	} else {
		if s == "" {
			s = "# Benchmarks\n\nEach section is written by `make bench` (tools/bench); the command and machine are given with each.\n"
		}
		s += "\n" + block + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// fsyncLatency writes 4 KiB and syncs it n times in dir: appended to a
// growing file and fsync'd (tan's own log files), or written over zeros
// already on disk and fdatasync'd (--raft-log-prefill).
func fsyncLatency(dir string, n int, overZeros bool) (p50, p99 time.Duration, err error) {
	f, err := os.CreateTemp(dir, "fsync-*")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	if overZeros {
		if _, err := f.Write(make([]byte, n*len(buf))); err != nil {
			return 0, 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, 0, err
		}
	}
	var lats []time.Duration
	for i := 0; i < n; i++ {
		for j := range buf {
			buf[j] = byte(i + 1)
		}
		var err error
		t0 := time.Now()
		if overZeros {
			if _, err = f.WriteAt(buf, int64(i*len(buf))); err == nil {
				err = syscall.Fdatasync(int(f.Fd()))
			}
		} else if _, err = f.Write(buf); err == nil {
			err = f.Sync()
		}
		if err != nil {
			return 0, 0, err
		}
		lats = append(lats, time.Since(t0))
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	return lats[len(lats)/2], lats[len(lats)*99/100], nil
}

// syncLatencies measures fsyncLatency alone and with three writers at
// once (the three members share this disk): p50 and p99 of each.
func syncLatencies(dir string, overZeros bool) (alone, three [2]time.Duration, err error) {
	if alone[0], alone[1], err = fsyncLatency(dir, 300, overZeros); err != nil {
		return alone, three, err
	}
	type res struct {
		p50, p99 time.Duration
		err      error
	}
	rc := make(chan res, 3)
	for i := 0; i < 3; i++ {
		go func() { a, b, err := fsyncLatency(dir, 300, overZeros); rc <- res{a, b, err} }()
	}
	for i := 0; i < 3; i++ {
		r := <-rc
		if r.err != nil {
			err = r.err
		}
		three[0], three[1] = max(three[0], r.p50), max(three[1], r.p99)
	}
	return alone, three, err
}

func benchLog(dur time.Duration) (string, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "binlogsvr-bench-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := sandbox.Available(sandbox.MariaDB); err != nil {
		return "", err
	}
	src, err := sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB})
	if err != nil {
		return "", err
	}
	defer src.Close()
	user, pass := src.ReplUser()
	f, err := fleet.Start(ctx, fleet.Options{Dir: filepath.Join(dir, "fleet"), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
		ExtraArgs: append([]string{"--debug-api", "--log-level", "warn"}, logArgs...)})
	if err != nil {
		return "", err
	}
	defer f.Close()
	leader, err := waitSeeded(ctx, f)
	if err != nil {
		return "", err
	}
	appA, app3, err := syncLatencies(dir, false)
	if err != nil {
		return "", err
	}
	zeroA, zero3, err := syncLatencies(dir, true)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "## Log appends to a 3-process group\n\n")
	fmt.Fprintf(&sb, "Run: `make bench` (tools/bench `log`, %v per row), %s, %d cores, Go %s, three `binlogsvr` processes on loopback sharing one disk; each proposer waits for its transaction to be committed on a quorum (fsync'd raft log) and applied on the leader before sending the next. The proposers submit to one logger.Proposer on the leader (group commit, %d raft entries in flight at most, linger 1 ms unless the row says off).\n\n",
		dur, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), inflight)
	fmt.Fprintf(&sb, "Disk sync latency in the same run (4 KiB written and synced, 300 times; alone, and three writers at once as the three members share this disk): appended to a growing file + fsync (tan's own log files) p50 %.2f ms, p99 %.2f ms alone, p50 %.2f ms, p99 %.2f ms three at once; over zeros already written + fdatasync (`--raft-log-prefill`, the default) p50 %.2f ms, p99 %.2f ms alone, p50 %.2f ms, p99 %.2f ms three at once.\n\n",
		ms(appA[0]), ms(appA[1]), ms(app3[0]), ms(app3[1]), ms(zeroA[0]), ms(zeroA[1]), ms(zero3[0]), ms(zero3[1]))
	fmt.Fprintf(&sb, "| txn size | proposers | linger | txn/s | MB/s | p50 commit ms | p99 commit ms | txns per raft entry | fleet CPU µs/txn | errors |\n|---|---|---|---|---|---|---|---|---|---|\n")
	type row struct {
		size, conc int
		linger     string // the proposer's linger: "" default, "0" off
	}
	var rows []row
	for _, size := range []int{200, 4096, 1 << 20} {
		for _, conc := range []int{1, 64} {
			rows = append(rows, row{size, conc, ""})
			if size == 200 && conc == 64 {
				// NB: the same load with the proposer's linger off, right
				// after it: the side-by-side measure of what the linger does.
				rows = append(rows, row{200, 64, "0"})
			}
		}
	}
	var errNotes []string
	for _, rw := range rows {
		size, conc := rw.size, rw.conc
		if only != "" && only != fmt.Sprintf("%d/%d", size, conc) {
			continue
		}
		var r api.BenchResult
		path := fmt.Sprintf("/debug/bench?concurrency=%d&size=%d&duration=%s&inflight=%d", conc, size, dur, inflight)
		lingerCol := "1 ms"
		if rw.linger != "" {
			path += "&linger=" + rw.linger
			lingerCol = "off"
		}
		pdone := make(chan struct{})
		if profileDir != "" {
			go func() {
				defer close(pdone)
				follower := leader%3 + 1
				go saveProfile(f, follower, dur, filepath.Join(profileDir, fmt.Sprintf("cpu-%d-%d-follower.pprof", size, conc)))
				saveProfile(f, leader, dur, filepath.Join(profileDir, fmt.Sprintf("cpu-%d-%d.pprof", size, conc)))
			}()
		} else {
			close(pdone)
		}
		// NB: a row with 64 MiB in flight can cost the leader its term on
		// this shared disk; each row asks the member that leads now.
		if leader, err = f.Leader(ctx, 30*time.Second); err != nil {
			return "", err
		}
		cpu0 := f.CPU()
		st0, err := f.Status(ctx, leader, true)
		if err != nil {
			return "", err
		}
		if err := f.Post(ctx, leader, path, &r); err != nil {
			return "", err
		}
		cpu := f.CPU() - cpu0
		st1, err := f.Status(ctx, leader, true)
		if err != nil {
			return "", err
		}
		<-pdone
		perEntry, cpuPerTxn := 0.0, 0.0
		if r.Txns > 0 {
			// NB: the leader's applied index counts raft entries: the
			// appends, plus the odd membership or heartbeat entry.
			perEntry = float64(r.Txns) / float64(max(1, st1.Applied-st0.Applied))
			cpuPerTxn = float64(cpu.Microseconds()) / float64(r.Txns)
		}
		fmt.Fprintf(os.Stderr, "bench: size %d, %d proposers, linger %s: %.0f txn/s, %.1f MB/s, p50 %.2f ms, p99 %.2f ms, %.1f txns/entry, %.0f µs CPU/txn, %d errors %s\n", size, conc, lingerCol, r.TPS, r.MBps, r.P50ms, r.P99ms, perEntry, cpuPerTxn, r.Errors, r.FirstError)
		fmt.Fprintf(&sb, "| %s | %d | %s | %.0f | %.1f | %.2f | %.2f | %.1f | %.0f | %d |\n", human(size), conc, lingerCol, r.TPS, r.MBps, r.P50ms, r.P99ms, perEntry, cpuPerTxn, r.Errors)
		if r.Errors > 0 {
			errNotes = append(errNotes, fmt.Sprintf("- %s × %d: %d proposals failed; the first: %s", human(size), conc, r.Errors, r.FirstError))
		}
	}
	sb.WriteString("\nFleet CPU is the three members' user + system time from /proc/PID/stat over the row (the proposers run inside the leader), divided by the transactions committed.\n")
	if len(errNotes) > 0 {
		sb.WriteString("\nErrors in this run (a failed proposal is retried by its proposer, as the ingest does):\n\n" + strings.Join(errNotes, "\n") + "\n")
	}
	return sb.String(), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func human(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// saveProfile fetches a CPU profile of d (less a second) from the admin API.
func saveProfile(f *fleet.Fleet, id uint64, d time.Duration, path string) {
	secs := int(d.Seconds()) - 1
	if secs < 1 {
		secs = 1
	}
	time.Sleep(500 * time.Millisecond)
	resp, err := f.HTTP().Get(f.URL(id, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: profile:", err)
		return
	}
	defer resp.Body.Close()
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	out, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: profile:", err)
		return
	}
	defer out.Close()
	_, _ = io.Copy(out, resp.Body)
}
