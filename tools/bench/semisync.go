package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// sbResult is one sysbench run.
type sbResult struct {
	tps, p95, p99 float64
	errors        int
}

var (
	reTPS    = regexp.MustCompile(`transactions:\s+\d+\s+\(([\d.]+) per sec`)
	reErrors = regexp.MustCompile(`ignored errors:\s+(\d+)`)
	reHist   = regexp.MustCompile(`^\s*([\d.]+)\s+\|\s*\**\s+(\d+)\s*$`)
)

// sysbench runs one sysbench workload against a server and parses its
// throughput and its latency histogram (for p95 and p99).
func sysbench(srv *sandbox.Server, workload string, threads int, dur time.Duration, phase string) (sbResult, error) {
	user, pass := srv.RootUser()
	host, port, _ := strings.Cut(srv.Addr(), ":")
	args := []string{workload, "--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
		"--mysql-user=" + user, "--mysql-password=" + pass, "--mysql-db=sbtest", "--tables=4", "--table-size=10000",
		fmt.Sprintf("--threads=%d", threads), fmt.Sprintf("--time=%d", int(dur.Seconds())), "--histogram=on",
		"--report-interval=0", "--db-ps-mode=disable", phase}
	out, err := exec.Command("sysbench", args...).CombinedOutput()
	if err != nil {
		return sbResult{}, fmt.Errorf("sysbench %s %s: %v\n%s", workload, phase, err, tail(string(out), 20))
	}
	if phase != "run" {
		return sbResult{}, nil
	}
	var r sbResult
	if m := reTPS.FindStringSubmatch(string(out)); m != nil {
		r.tps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reErrors.FindStringSubmatch(string(out)); m != nil {
		r.errors, _ = strconv.Atoi(m[1])
	}
	type bucket struct {
		ms float64
		n  int
	}
	var hs []bucket
	total := 0
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if m := reHist.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			n, _ := strconv.Atoi(m[2])
			hs = append(hs, bucket{v, n})
			total += n
		}
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].ms < hs[j].ms })
	pct := func(q float64) float64 {
		need, acc := int(q*float64(total)+0.5), 0
		for _, b := range hs {
			acc += b.n
			if acc >= need {
				return b.ms
			}
		}
		return 0
	}
	r.p95, r.p99 = pct(0.95), pct(0.99)
	return r, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fleetAckStats is what the fleet's leader measured of its own ACK path.
var fleetAckStats string

// benchFleet is the fleet of the setup running now (nil for the stock
// setups): its leader's ACK stages are read around each row.
var benchFleet *fleet.Fleet

// ackStats reads the leader's ACK latency and batch size from /metrics.
func ackStats(f *fleet.Fleet, id uint64) string {
	resp, err := f.HTTP().Get(f.URL(id, "/metrics"))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	vals := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		for _, k := range []string{"binlogsvr_semisync_ack_latency_seconds_sum", "binlogsvr_semisync_ack_latency_seconds_count",
			"binlogsvr_semisync_acks_total", "binlogsvr_semisync_transactions_stored_total",
			"binlogsvr_logger_batch_transactions_sum", "binlogsvr_logger_batch_transactions_count"} {
			if strings.HasPrefix(line, k+" ") {
				vals[k], _ = strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, k)), 64)
			}
		}
	}
	if vals["binlogsvr_semisync_ack_latency_seconds_count"] == 0 {
		return ""
	}
	return fmt.Sprintf("Measured inside the fleet's leader over the whole run: mean ACK latency (last event of a transaction received → ACK sent, i.e. the quorum commit) %.2f ms over %.0f ACKs for %.0f stored transactions; %.1f transactions per raft entry on average.",
		1000*vals["binlogsvr_semisync_ack_latency_seconds_sum"]/vals["binlogsvr_semisync_ack_latency_seconds_count"],
		vals["binlogsvr_semisync_acks_total"], vals["binlogsvr_semisync_transactions_stored_total"],
		vals["binlogsvr_logger_batch_transactions_sum"]/max(1, vals["binlogsvr_logger_batch_transactions_count"]))
}

// setup is one of the three configurations compared side by side.
type setup struct {
	name  string
	start func(ctx context.Context, dir string) (*sandbox.Server, func(), error)
}

func semiSyncSource(ctx context.Context) (*sandbox.Server, error) {
	return sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute})
}

// waitSemiClients waits until the source counts one semi-sync replica.
func waitSemiClients(ctx context.Context, src *sandbox.Server) error {
	return fleet.Poll(ctx, 60*time.Second, func() error {
		r, err := src.Exec(ctx, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'")
		if err != nil {
			return err
		}
		v, _ := r.GetString(0, 1)
		if v == "0" || v == "" {
			return fmt.Errorf("no semi-sync replica connected yet")
		}
		return nil
	})
}

// stockSemiSync starts a semi-sync MariaDB source (10-minute timeout) and
// one stock MariaDB replica of it, each with extra server flags, and waits
// until the source counts the replica.
func stockSemiSync(ctx context.Context, extra []string) (src, rep *sandbox.Server, cleanup func(), err error) {
	src, err = sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute, ExtraArgs: extra})
	if err != nil {
		return nil, nil, nil, err
	}
	rep, err = sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncReplica: true, ExtraArgs: extra})
	if err != nil {
		src.Close()
		return nil, nil, nil, err
	}
	cleanup = func() { rep.Close(); src.Close() }
	user, pass := src.ReplUser()
	host, port, _ := strings.Cut(src.Addr(), ":")
	for _, q := range []string{
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos", host, port, user, pass),
		"START SLAVE",
	} {
		if _, err := rep.Exec(ctx, q); err != nil {
			cleanup()
			return nil, nil, nil, err
		}
	}
	if err := waitSemiClients(ctx, src); err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	return src, rep, cleanup, nil
}

var setups = []setup{
	{"async (no replica)", func(ctx context.Context, dir string) (*sandbox.Server, func(), error) {
		src, err := sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB})
		if err != nil {
			return nil, nil, err
		}
		return src, func() { src.Close() }, nil
	}},
	{"stock semi-sync → 1 MariaDB replica", func(ctx context.Context, dir string) (*sandbox.Server, func(), error) {
		src, _, cleanup, err := stockSemiSync(ctx, nil)
		return src, cleanup, err
	}},
	{"semi-sync → 3-member binlogsvr fleet", func(ctx context.Context, dir string) (*sandbox.Server, func(), error) {
		src, err := semiSyncSource(ctx)
		if err != nil {
			return nil, nil, err
		}
		user, pass := src.ReplUser()
		f, err := fleet.Start(ctx, fleet.Options{Dir: filepath.Join(dir, "fleet"), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
			ExtraArgs: []string{"--log-level", "warn", "--debug-api"}})
		if err != nil {
			src.Close()
			return nil, nil, err
		}
		if profileDir != "" {
			go func() {
				time.Sleep(20 * time.Second) // NB: into the first run, after the prepare
				if l, err := f.Leader(ctx, 5*time.Second); err == nil {
					saveProfile(f, l, 8*time.Second, filepath.Join(profileDir, "cpu-fleet-leader.pprof"))
				}
			}()
		}
		benchFleet = f
		cleanup := func() {
			if l, err := f.Leader(ctx, 5*time.Second); err == nil {
				fleetAckStats = ackStats(f, l)
			}
			benchFleet = nil
			f.Close()
			src.Close()
		}
		if err := waitSemiClients(ctx, src); err != nil {
			cleanup()
			return nil, nil, err
		}
		return src, cleanup, nil
	}},
}

// benchSemisync runs sysbench oltp_write_only and oltp_insert at 1, 8 and 32
// threads against a MariaDB source in three setups side by side.
func benchSemisync(dur time.Duration) (string, error) {
	ctx := context.Background()
	if _, err := exec.LookPath("sysbench"); err != nil {
		return "", fmt.Errorf("sysbench is not installed: run sudo bash tools/sandbox/install.sh")
	}
	dir, err := os.MkdirTemp("", "binlogsvr-bench-semisync-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	workloads := []string{"oltp_write_only", "oltp_insert"}
	threads := []int{1, 8, 32}
	if onlyRow != "" { // e.g. oltp_insert/32
		w, th, _ := strings.Cut(onlyRow, "/")
		n, _ := strconv.Atoi(th)
		workloads, threads = []string{w}, []int{n}
	}
	results := map[string]map[string]sbResult{} // setup → "workload/threads"
	stages := map[string]map[string]stageStat{} // "workload/threads" → stage → stat (the fleet's rows)
	for _, s := range setups {
		results[s.name] = map[string]sbResult{}
		if onlySetup != "" && !strings.Contains(s.name, onlySetup) {
			continue
		}
		if err := runSetup(ctx, s, dir, workloads, threads, dur, results[s.name], stages); err != nil {
			return "", err
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "## Source commit throughput: async, stock semi-sync, fleet\n\n")
	fmt.Fprintf(&sb, "Run: `make bench` (tools/bench `semisync`, sysbench 1.0.20, %v per row, 4 tables × 10,000 rows), %s, %d cores, one MariaDB 10.11 source on loopback. Setups, one after another in the same run: the source alone (async); stock semi-sync (AFTER_SYNC) to one stock MariaDB replica; semi-sync (AFTER_SYNC) to a 3-member binlogsvr fleet whose ACK waits for a quorum commit (fsync'd raft log on 2 of 3 members). Everything shares the machine's 2 cores and one disk.\n\n",
		dur, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU())
	fmt.Fprintf(&sb, "| workload | threads | setup | TPS | p95 ms | p99 ms | fleet / stock semi-sync |\n|---|---|---|---|---|---|---|\n")
	for _, w := range workloads {
		for _, th := range threads {
			k := fmt.Sprintf("%s/%d", w, th)
			stock := results[setups[1].name][k].tps
			for _, s := range setups {
				r := results[s.name][k]
				ratio := ""
				if s.name == setups[2].name && stock > 0 {
					ratio = fmt.Sprintf("%.2f×", r.tps/stock)
				}
				fmt.Fprintf(&sb, "| %s | %d | %s | %.0f | %.2f | %.2f | %s |\n", w, th, s.name, r.tps, r.p95, r.p99, ratio)
			}
		}
	}
	if fleetAckStats != "" {
		fmt.Fprintf(&sb, "\n%s\n", fleetAckStats)
	}
	var rows []string
	for _, w := range workloads {
		for _, th := range threads {
			rows = append(rows, fmt.Sprintf("%s/%d", w, th))
		}
	}
	if t := stageTable(rows, stages); t != "" {
		fmt.Fprintf(&sb, "\n%s\n%s", t, fdatasyncLine(dir))
	}
	return sb.String(), nil
}

// runSetup starts setup s, runs each workload at each thread count against
// its source and stops it. Results go into res ("workload/threads" →
// result); a fleet's ACK stages per row into stages (same key).
func runSetup(ctx context.Context, s setup, dir string, workloads []string, threads []int, dur time.Duration,
	res map[string]sbResult, stages map[string]map[string]stageStat) error {
	src, cleanup, err := s.start(ctx, dir)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	defer cleanup()
	if _, err := src.Exec(ctx, "CREATE DATABASE IF NOT EXISTS sbtest"); err != nil {
		return err
	}
	for _, w := range workloads {
		if _, err := sysbench(src, w, 4, dur, "prepare"); err != nil {
			return err
		}
		for _, th := range threads {
			var before stageSnap
			var leader uint64
			if benchFleet != nil {
				if leader, err = benchFleet.Leader(ctx, 30*time.Second); err == nil {
					before, err = scrapeStages(ctx, benchFleet, leader)
				}
				if err != nil {
					return fmt.Errorf("reading the fleet's ACK stages: %w", err)
				}
			}
			r, err := sysbench(src, w, th, dur, "run")
			if err != nil {
				return err
			}
			if before != nil {
				// NB: a leader change within the row leaves it out.
				if l, err := benchFleet.Leader(ctx, 30*time.Second); err == nil && l == leader {
					if after, err := scrapeStages(ctx, benchFleet, leader); err == nil {
						stages[fmt.Sprintf("%s/%d", w, th)] = after.since(before)
					}
				}
			}
			fmt.Fprintf(os.Stderr, "bench: %s, %s, %d threads: %.0f tps, p95 %.2f ms, p99 %.2f ms (load %s)\n", s.name, w, th, r.tps, r.p95, r.p99, loadAvg())
			res[fmt.Sprintf("%s/%d", w, th)] = r
		}
		if _, err := sysbench(src, w, 4, dur, "cleanup"); err != nil {
			return err
		}
	}
	return nil
}

// loadAvg is the machine's 1-minute load average (/proc/loadavg).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
