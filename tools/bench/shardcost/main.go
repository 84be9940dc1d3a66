// Command shardcost measures what an idle shard costs a host: three hosts,
// each a process running one logger.Host on loopback TCP and a data
// directory on disk, run N shards of three loggers each; once every shard
// has a leader and the start-up entries are applied, each host measures
// itself over an idle interval (goroutines, threads, heap, resident set,
// CPU, data on disk). Numbers in docs/MULTISOURCE.md.
//
//	go run ./tools/bench/shardcost -shards 0,1,10,30 -idle 20s
//
// Each N runs in fresh processes and data directories. Raft settings are
// the daemon's defaults (10 ms RTT, heartbeat every 3 RTT, election after
// 100); the raft log's prefill is off unless -prefill (each shard's tan log
// then writes its first 64 MiB file full of zeros).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/logger"
)

// Sample is one host's measure over the idle interval.
type Sample struct {
	Host       uint64  `json:"host"`
	Shards     int     `json:"shards"`
	Goroutines int     `json:"goroutines"`
	Threads    int     `json:"threads"`
	HeapInuse  uint64  `json:"heap_inuse"`
	HeapLive   uint64  `json:"heap_live"` // HeapAlloc after a GC
	RSS        uint64  `json:"rss"`
	CPU        float64 `json:"cpu"` // share of one core over the idle interval
	Disk       uint64  `json:"disk"`
	Leaders    int     `json:"leaders"`
}

func main() {
	shards := flag.String("shards", "0,1,10,30", "numbers of shards to measure, each in fresh processes")
	idle := flag.Duration("idle", 20*time.Second, "idle interval measured")
	settle := flag.Duration("settle", 5*time.Second, "wait after every shard has a leader before measuring")
	prefill := flag.Bool("prefill", false, "--raft-log-prefill (64 MiB of zeros per shard's raft log file)")
	quiesce := flag.Bool("quiesce", false, "dragonboat's quiesce for idle shards (experimental; not a daemon flag)")
	applyWorkers := flag.Int("apply-workers", 0, "--raft-apply-workers (0: StartHost's default, logger.DefaultHostApplyWorkers)")
	dir := flag.String("dir", "", "parent of the data directories (default: a temporary directory, removed)")
	// Child mode.
	host := flag.Uint64("host", 0, "internal: run host ID")
	addrs := flag.String("addrs", "", "internal: the hosts' raft addresses")
	n := flag.Int("n", 0, "internal: shards")
	flag.Parse()
	if *host != 0 {
		if err := child(*host, strings.Split(*addrs, ","), *n, *dir, *settle, *idle, *prefill, *quiesce, *applyWorkers); err != nil {
			fmt.Fprintln(os.Stderr, "shardcost:", err)
			os.Exit(1)
		}
		return
	}
	if err := parent(*shards, *dir, *settle, *idle, *prefill, *quiesce, *applyWorkers); err != nil {
		fmt.Fprintln(os.Stderr, "shardcost:", err)
		os.Exit(1)
	}
}

func parent(list, dir string, settle, idle time.Duration, prefill, quiesce bool, applyWorkers int) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "shardcost-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("idle %v after %v settle; prefill %t; quiesce %t; apply workers %d (0: default); GOMAXPROCS %d, %d CPUs\n", idle, settle, prefill, quiesce, applyWorkers, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("%6s %5s %10s %8s %10s %10s %9s %7s %10s\n", "shards", "host", "goroutines", "threads", "heap_live", "heap_inuse", "rss", "cpu", "disk")
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("-shards %q: %v", list, err)
		}
		samples, err := run(self, filepath.Join(dir, fmt.Sprintf("n%d", n)), n, settle, idle, prefill, quiesce, applyWorkers)
		if err != nil {
			return fmt.Errorf("%d shards: %w", n, err)
		}
		for _, s := range samples {
			fmt.Printf("%6d %5d %10d %8d %9.1fM %9.1fM %8.1fM %6.1f%% %9.1fM\n", s.Shards, s.Host, s.Goroutines, s.Threads,
				mib(s.HeapLive), mib(s.HeapInuse), mib(s.RSS), 100*s.CPU, mib(s.Disk))
		}
	}
	return nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// run starts three hosts with n shards and returns their samples.
func run(self, dir string, n int, settle, idle time.Duration, prefill, quiesce bool, applyWorkers int) ([]Sample, error) {
	var addrs []string
	var held []net.Listener
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range held {
		ln.Close()
	}
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Scanner
	}
	var procs []proc
	defer func() {
		for _, p := range procs {
			p.stdin.Close()
			p.cmd.Wait()
		}
	}()
	for id := 1; id <= 3; id++ {
		cmd := exec.Command(self, "-host", strconv.Itoa(id), "-addrs", strings.Join(addrs, ","), "-n", strconv.Itoa(n),
			"-dir", dir, "-settle", settle.String(), "-idle", idle.String(), "-prefill="+strconv.FormatBool(prefill), "-quiesce="+strconv.FormatBool(quiesce), "-apply-workers", strconv.Itoa(applyWorkers))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		procs = append(procs, proc{cmd, in, bufio.NewScanner(out)})
	}
	var samples []Sample
	for _, p := range procs {
		if !p.out.Scan() {
			return nil, fmt.Errorf("a host ended without a sample: %v", p.out.Err())
		}
		var s Sample
		if err := json.Unmarshal(p.out.Bytes(), &s); err != nil {
			return nil, fmt.Errorf("a host's sample %q: %v", p.out.Text(), err)
		}
		samples = append(samples, s)
	}
	return samples, nil
}

// child runs host id with n shards, prints its sample and stays up until
// its stdin closes (the other hosts measure meanwhile).
func child(id uint64, addrs []string, n int, dir string, settle, idle time.Duration, prefill, quiesce bool, applyWorkers int) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	logger.RouteDragonboatLogs(log, slog.LevelError)
	cfg := logger.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, fmt.Sprintf("h%d", id))
	cfg.RaftAddr = addrs[id-1]
	cfg.Insecure = true
	cfg.LogPrefill = prefill
	cfg.ApplyWorkers = applyWorkers
	cfg.Logger = log
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	h, err := logger.StartHost(cfg.Host())
	if err != nil {
		return err
	}
	defer h.Close()
	members := map[uint64]string{}
	for i, a := range addrs {
		members[uint64(i+1)] = a
	}
	for s := 1; s <= n; s++ {
		sc := logger.DefaultConfig()
		sc.ShardID, sc.ReplicaID, sc.Members, sc.Quiesce = uint64(s), id, members, quiesce
		sc.Registry = prometheus.WrapRegistererWith(prometheus.Labels{"shard": strconv.Itoa(s)}, reg)
		if _, err := h.StartShard(sc); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		led := 0
		for s := 1; s <= n; s++ {
			if _, ok := h.Shard(uint64(s)).LeaderID(); ok {
				led++
			}
		}
		if led == n {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("host %d: %d of %d shards know a leader", id, led, n)
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(settle)
	cpu0, t0 := cpuTime(), time.Now()
	time.Sleep(idle)
	cpu1, t1 := cpuTime(), time.Now()
	s := Sample{Host: id, Shards: n, Goroutines: runtime.NumGoroutine(), Threads: threads(), RSS: rss(), Disk: du(cfg.DataDir),
		CPU: (cpu1 - cpu0).Seconds() / t1.Sub(t0).Seconds()}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.HeapInuse = ms.HeapInuse
	runtime.GC()
	runtime.ReadMemStats(&ms)
	s.HeapLive = ms.HeapAlloc
	for sh := 1; sh <= n; sh++ {
		if h.Shard(uint64(sh)).IsLeader() {
			s.Leaders++
		}
	}
	if id == 1 && os.Getenv("SHARDCOST_STACKS") != "" {
		// NB: which goroutines a shard adds: host 1's, grouped by stack.
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
	}
	b, _ := json.Marshal(s)
	fmt.Println(string(b))
	io.Copy(io.Discard, os.Stdin)
	return nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rss and threads read /proc/self/status (0 where there is none).
func rss() uint64 { return procStatus("VmRSS:") * 1024 }

func threads() int { return int(procStatus("Threads:")) }

func procStatus(key string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// du is the bytes of disk the files under dir occupy.
func du(dir string) uint64 {
	var total uint64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				total += uint64(st.Blocks) * 512
			}
		}
		return nil
	})
	return total
}
