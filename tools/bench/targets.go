package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/netsim"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// The ACK-path targets (issue 15) in one run:
//
//   - P1: sysbench oltp_insert and oltp_write_only at 1 and 32 threads
//     against a MariaDB source: async, stock semi-sync to one replica, and
//     semi-sync to the fleet; fleet ≥ 1.0× stock at 32 threads, ≥ 0.8× at 1.
//   - P2: the fleet's ACK latency (measured in its leader) at 1 thread, p50
//     and mean, against this disk's fdatasync p50 + 0.3 ms from the same run.
//   - P3: stock and fleet again with the source, the replica and each member
//     on a loopback address of its own and 0.5 ms each way between hosts
//     (netsim proxies: the source → replica and source → fleet links, and
//     every member's raft port); fleet ≥ 1.0× stock at 32 threads.
//   - CPU: the fleet's CPU per transaction at 1 and 64 proposers (the log
//     bench's 200 B rows); with --base, the same rows on fleets of the base
//     build, alternating, and the target is half of the base's.

// hostDelay is P3's one-way delay between two simulated hosts.
const hostDelay = 500 * time.Microsecond

// baseBin, when set, is the directory of a baseline build's binlogsvr: the
// targets' CPU rows run on it too, alternating with this build.
var baseBin string

// cpuRounds is how many rounds the CPU rows run with --base.
var cpuRounds int

// CPU per transaction before issue 15 (docs/BENCHMARKS.md): the leader
// profile's 1-proposer run and the log table's 64-proposer row. Used as
// the baseline when --base is not given.
const (
	baseCPU1  = 1021.0
	baseCPU64 = 70.0
)

// hosts hands out loopback addresses of one private /24 for P3's hosts.
type hosts struct{ prefix string }

func newHosts() hosts {
	return hosts{fmt.Sprintf("127.%d.%d.", 100+rand.IntN(100), rand.IntN(256))}
}

func (h hosts) ip(n int) string { return fmt.Sprintf("%s%d", h.prefix, n) }

// proxies closes the proxies a setup started.
type proxies []*netsim.Proxy

func (ps *proxies) add(listen, target string) (string, error) {
	p, err := netsim.NewProxy(listen, target, netsim.Link{Delay: hostDelay}, uint64(len(*ps)+1))
	if err != nil {
		return "", err
	}
	*ps = append(*ps, p)
	return p.Addr(), nil
}

func (ps proxies) close() {
	for _, p := range ps {
		p.Close()
	}
}

// hostSetups are P3's: each server on its own host, 0.5 ms between hosts.
var hostSetups = []setup{
	{"stock semi-sync → 1 MariaDB replica, hosts 0.5 ms apart", func(ctx context.Context, dir string) (*sandbox.Server, func(), error) {
		h := newHosts()
		src, err := sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute, BindAddress: h.ip(1)})
		if err != nil {
			return nil, nil, err
		}
		rep, err := sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncReplica: true, BindAddress: h.ip(2)})
		if err != nil {
			src.Close()
			return nil, nil, err
		}
		var ps proxies
		cleanup := func() { rep.Close(); src.Close(); ps.close() }
		// NB: the replica dials the source's host through the link.
		front, err := ps.add(h.ip(1)+":0", src.Addr())
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		user, pass := src.ReplUser()
		host, port, _ := strings.Cut(front, ":")
		for _, q := range []string{
			fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos", host, port, user, pass),
			"START SLAVE",
		} {
			if _, err := rep.Exec(ctx, q); err != nil {
				cleanup()
				return nil, nil, err
			}
		}
		if err := waitSemiClients(ctx, src); err != nil {
			cleanup()
			return nil, nil, err
		}
		return src, cleanup, nil
	}},
	{"semi-sync → 3-member binlogsvr fleet, hosts 0.5 ms apart", func(ctx context.Context, dir string) (*sandbox.Server, func(), error) {
		h := newHosts()
		src, err := sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute, BindAddress: h.ip(1)})
		if err != nil {
			return nil, nil, err
		}
		var ps proxies
		front, err := ps.add(h.ip(1)+":0", src.Addr())
		if err != nil {
			src.Close()
			ps.close()
			return nil, nil, err
		}
		user, pass := src.ReplUser()
		f, err := fleet.Start(ctx, fleet.Options{Dir: filepath.Join(dir, "fleet-hosts"), Members: 3, Source: front, SourceUser: user, SourcePassword: pass,
			Host: func(id uint64) string { return h.ip(2 + int(id)) },
			// NB: every raft message to a member crosses the link in front of
			// its port, so leader → follower and back is 2 × 0.5 ms.
			RaftFront: func(m *fleet.Member, listen string) (string, error) {
				return ps.add(h.ip(2+int(m.ID))+":0", listen)
			},
			ExtraArgs: []string{"--log-level", "warn", "--debug-api"}})
		if err != nil {
			src.Close()
			ps.close()
			return nil, nil, err
		}
		benchFleet = f
		cleanup := func() { benchFleet = nil; f.Close(); src.Close(); ps.close() }
		if err := waitSemiClients(ctx, src); err != nil {
			cleanup()
			return nil, nil, err
		}
		return src, cleanup, nil
	}},
}

// cpuRow is one CPU-per-transaction measurement.
type cpuRow struct {
	build     string // "this build" or "base"
	conc      int
	tps, p50  float64
	cpuPerTxn float64
	load      string
}

// benchCPU runs the 200 B rows at 1 and 64 proposers on a fleet of this
// build and, with --base, on one of the base build, rounds times, the
// order of the builds turning each round.
func benchCPU(ctx context.Context, dir string, dur time.Duration, rounds int) ([]cpuRow, error) {
	type build struct{ name, bin string }
	builds := []build{{"this build", ""}}
	if baseBin != "" {
		builds = append(builds, build{"base", filepath.Join(baseBin, "binlogsvr")})
	}
	var out []cpuRow
	for round := 0; round < rounds; round++ {
		for i := range builds {
			b := builds[(i+round)%len(builds)]
			f, stop, err := startFleetBin(ctx, filepath.Join(dir, fmt.Sprintf("cpu-%d-%d", round, i)), b.bin)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.name, err)
			}
			for _, conc := range []int{1, 64} {
				r, perTxn, err := benchRow(ctx, f, 200, conc, dur)
				if err != nil {
					stop()
					return nil, err
				}
				row := cpuRow{build: b.name, conc: conc, tps: r.TPS, p50: r.P50ms, cpuPerTxn: perTxn, load: loadAvg()}
				fmt.Fprintf(os.Stderr, "bench: cpu, %s, 200 B × %d: %.0f txn/s, p50 %.2f ms, %.0f µs CPU/txn (load %s)\n", b.name, conc, r.TPS, r.P50ms, perTxn, row.load)
				out = append(out, row)
			}
			stop()
		}
	}
	return out, nil
}

// startFleetBin is startLogFleet with a given binlogsvr binary ("" this
// build's).
func startFleetBin(ctx context.Context, dir, bin string) (*fleet.Fleet, func(), error) {
	src, err := sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB})
	if err != nil {
		return nil, nil, err
	}
	user, pass := src.ReplUser()
	f, err := fleet.Start(ctx, fleet.Options{Bin: bin, Dir: dir, Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
		ExtraArgs: append([]string{"--debug-api", "--log-level", "warn"}, logArgs...)})
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	stop := func() { f.Close(); src.Close() }
	if _, err := waitSeeded(ctx, f); err != nil {
		stop()
		return nil, nil, err
	}
	return f, stop, nil
}

// benchTargets runs the targets table (see the top of this file).
// --row, --setup and --only narrow it as for semisync and log
// ("--only cpu" runs the CPU rows alone, "--only p3" the hosts part alone,
// "--only p1" P1 and P2).
func benchTargets(dur time.Duration) (string, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "binlogsvr-bench-targets-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	workloads := []string{"oltp_insert", "oltp_write_only"}
	threads := []int{1, 32}
	if onlyRow != "" {
		w, th, _ := strings.Cut(onlyRow, "/")
		var n int
		fmt.Sscanf(th, "%d", &n)
		workloads, threads = []string{w}, []int{n}
	}
	part := func(p string) bool { return only == "" || only == p }
	loads := []string{loadAvg()}
	results := map[string]map[string]sbResult{}
	stages := map[string]map[string]stageStat{}
	hostStages := map[string]map[string]stageStat{}
	var fsP50, fsP99 time.Duration
	if part("p1") {
		for _, s := range setups {
			results[s.name] = map[string]sbResult{}
			if onlySetup != "" && !strings.Contains(s.name, onlySetup) {
				continue
			}
			if err := runSetup(ctx, s, dir, workloads, threads, dur, results[s.name], stages); err != nil {
				return "", err
			}
		}
		// NB: measured with no server running, between the parts.
		if fsP50, fsP99, err = fdatasyncP50(dir, 500); err != nil {
			return "", err
		}
		loads = append(loads, loadAvg())
	}
	if part("p3") {
		for _, s := range hostSetups {
			results[s.name] = map[string]sbResult{}
			if onlySetup != "" && !strings.Contains(s.name, onlySetup) {
				continue
			}
			if err := runSetup(ctx, s, dir, workloads, threads, dur, results[s.name], hostStages); err != nil {
				return "", err
			}
		}
		loads = append(loads, loadAvg())
	}
	var cpu []cpuRow
	if part("cpu") {
		rounds := 1
		if baseBin != "" {
			rounds = max(1, cpuRounds)
		}
		if cpu, err = benchCPU(ctx, dir, dur, rounds); err != nil {
			return "", err
		}
		loads = append(loads, loadAvg())
	}

	var sb strings.Builder
	met := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "not met"
	}
	fmt.Fprintf(&sb, "## The ACK path's targets (issue 15)\n\n")
	fmt.Fprintf(&sb, "Run: `make bench` (tools/bench `targets`, sysbench 1.0.20, %v per row, 4 tables × 10,000 rows), %s, %d cores, Go %s, one MariaDB 10.11 source; load average (1 min) at the start and after each part: %s. "+
		"The fleet's raft links are mutual TLS on the tcp transport (the default; not --insecure). Setups run one after another; everything shares the machine's cores and one disk.\n\n",
		dur, time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.Version(), strings.Join(loads, ", "))
	ratio := func(setupFleet, setupStock, k string) (float64, bool) {
		s := results[setupStock][k].tps
		f := results[setupFleet][k].tps
		if s <= 0 || f <= 0 {
			return 0, false
		}
		return f / s, true
	}
	if part("p1") || part("p3") {
		sb.WriteString("| target | workload/threads | async TPS | stock semi-sync TPS | fleet TPS | fleet / stock | target | met? |\n|---|---|---|---|---|---|---|---|\n")
		for _, w := range workloads {
			for _, th := range threads {
				k := fmt.Sprintf("%s/%d", w, th)
				want := 1.0
				if th == 1 {
					want = 0.8
				}
				if r, ok := ratio(setups[2].name, setups[1].name, k); ok {
					fmt.Fprintf(&sb, "| P1 | %s | %.0f | %.0f | %.0f | %.2f× | ≥ %.1f× | %s |\n", k, results[setups[0].name][k].tps,
						results[setups[1].name][k].tps, results[setups[2].name][k].tps, r, want, met(r >= want))
				}
			}
		}
		for _, w := range workloads {
			for _, th := range threads {
				k := fmt.Sprintf("%s/%d", w, th)
				if r, ok := ratio(hostSetups[1].name, hostSetups[0].name, k); ok {
					tgt, ok := "≥ 1.0×", met(r >= 1.0)
					if th == 1 {
						tgt, ok = "(none)", ""
					}
					fmt.Fprintf(&sb, "| P3 (hosts, 0.5 ms each way) | %s | | %.0f | %.0f | %.2f× | %s | %s |\n", k,
						results[hostSetups[0].name][k].tps, results[hostSetups[1].name][k].tps, r, tgt, ok)
				}
			}
		}
		sb.WriteString("\n")
	}
	if part("p1") && fsP50 > 0 {
		lim := fsP50 + 300*time.Microsecond
		fmt.Fprintf(&sb, "P2: the fleet's ACK latency at 1 thread (its leader's binlogsvr_semisync_ack_latency_seconds over the row: the transaction's last event received → ACK sent) against fdatasync p50 + 0.3 ms = %.3f ms (fdatasync measured in this run: 500 appends of 4 KiB each followed by fdatasync, nothing else of the bench running, p50 %.3f ms, p99 %.3f ms).\n\n",
			ms3(lim), ms3(fsP50), ms3(fsP99))
		sb.WriteString("| target | workload/threads | ACKs | ACK p50 ms | ACK mean ms | target ms | met? |\n|---|---|---|---|---|---|---|\n")
		for _, w := range workloads {
			k := w + "/1"
			st, ok := stages[k]
			if !ok {
				continue
			}
			t := st["total"]
			fmt.Fprintf(&sb, "| P2 | %s | %d | %.3f | %.3f | ≤ %.3f | %s |\n", k, t.n, ms3(t.p50), ms3(t.mean), ms3(lim), met(t.p50 <= lim && t.mean <= lim))
		}
		sb.WriteString("\n")
	}
	if len(cpu) > 0 {
		sb.WriteString("CPU: the three members' user + system time over a log-bench row (`/debug/bench` on the leader, 200 B transactions, closed-loop proposers each waiting for its commit and apply), per transaction.")
		if baseBin != "" {
			fmt.Fprintf(&sb, " Fleets of this build and of the base build (`--base`) alternate (%d rounds, the order turning each round); the target is half of the base's mean in this run.\n\n", max(1, cpuRounds))
		} else {
			fmt.Fprintf(&sb, " The target is half of the numbers before issue 15: %.0f µs at 1 proposer (the leader profile's run) and %.0f µs at 64 (the log table).\n\n", baseCPU1, baseCPU64)
		}
		sb.WriteString("| target | proposers | build | txn/s | p50 commit ms | fleet CPU µs/txn | load | target µs/txn | met? |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, conc := range []int{1, 64} {
			base, n := 0.0, 0
			for _, r := range cpu {
				if r.build == "base" && r.conc == conc {
					base += r.cpuPerTxn
					n++
				}
			}
			if n > 0 {
				base /= float64(n)
			} else if conc == 1 {
				base = baseCPU1
			} else {
				base = baseCPU64
			}
			for _, r := range cpu {
				if r.conc != conc {
					continue
				}
				tgt, ok := "", ""
				if r.build == "this build" {
					tgt, ok = fmt.Sprintf("≤ %.0f", base/2), met(r.cpuPerTxn <= base/2)
				}
				fmt.Fprintf(&sb, "| CPU | %d | %s | %.0f | %.2f | %.0f | %s | %s | %s |\n", conc, r.build, r.tps, r.p50, r.cpuPerTxn, r.load, tgt, ok)
			}
		}
		sb.WriteString("\n")
	}
	var rows []string
	for _, w := range workloads {
		for _, th := range threads {
			rows = append(rows, fmt.Sprintf("%s/%d", w, th))
		}
	}
	if t := stageTable(rows, stages); t != "" {
		fmt.Fprintf(&sb, "Loopback fleet (P1, P2). %s\n", t)
	}
	if t := stageTable(rows, hostStages); t != "" {
		fmt.Fprintf(&sb, "Fleet on hosts 0.5 ms apart (P3). %s\n", t)
	}
	return sb.String(), nil
}

func ms3(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
