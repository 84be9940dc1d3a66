// Package dumpbench measures the dump server against the source itself:
// N concurrent clients each reading the whole log (non-blocking dumps from
// the first file to EOF) from one fleet member and, in the same run, from
// the source; and the commit-to-client latency of a tailing client. It
// starts everything it needs (a real source from tools/sandbox, a
// one-member log on disk fed as dumptest feeds it, a dump server) and
// stops it all before returning. tools/bench calls Run and writes
// docs/BENCHMARKS.md.
package dumpbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/dump"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// Options sizes a run. Zero values take the defaults.
type Options struct {
	Flavor    sandbox.Flavor // default MariaDB
	Clients   []int          // default 1, 10, 100
	LogBytes  int            // size of the log to read (default 64 MiB)
	TxnBytes  int            // size of one transaction (default 64 KiB)
	Commits   int            // commits timed for the latency (default 200)
	Dir       string         // scratch directory (default os.TempDir())
	Logf      func(format string, args ...any)
	SourceOpt sandbox.Options // extra source options (Flavor is set from Flavor)
	// ProfileDir: RunDaemon saves the serving member's CPU, allocation and
	// heap profiles of the dump there (the members get --debug-api).
	ProfileDir string
	// Rounds: RunDaemon alternates source and member this many times
	// (default 3).
	Rounds int
	// MemberArgs: RunDaemon passes these extra flags to every member.
	MemberArgs []string
}

// Side is one side's numbers for N clients.
type Side struct {
	Seconds float64 // wall time until every client had the whole log
	MBps    float64 // aggregate MB/s (10^6 bytes) over all clients
	// CPUSeconds is the CPU time of the serving side: the source's mysqld,
	// or for the fleet this process minus the clients' own share (the
	// clients' CPU measured on the source run).
	CPUSeconds float64
	// RSSMiB is the serving process's peak resident set during the run
	// (for the fleet this process: log, dump server and the clients).
	RSSMiB float64
}

// Point is one client count.
type Point struct {
	Clients int
	Fleet   Side
	Source  Side
}

// Latency is commit-to-client latency for a tailing client.
type Latency struct{ P50, P99, Max time.Duration }

// Result is one run.
type Result struct {
	Flavor        string
	LogBytes      int64 // bytes in the fleet's log
	Points        []Point
	FleetLatency  Latency // source commit → event at a client of the fleet
	SourceLatency Latency // source commit → event at a client of the source
}

// Markdown renders r as a section of docs/BENCHMARKS.md.
func (r Result) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Dump throughput, %s (log of %.1f MiB)\n\n", r.Flavor, float64(r.LogBytes)/(1<<20))
	b.WriteString("| clients | fleet MB/s | source MB/s | fleet CPU s | source CPU s | fleet RSS MiB | source RSS MiB |\n|---|---|---|---|---|---|---|\n")
	for _, p := range r.Points {
		fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.2f | %.2f | %.0f | %.0f |\n", p.Clients, p.Fleet.MBps, p.Source.MBps,
			p.Fleet.CPUSeconds, p.Source.CPUSeconds, p.Fleet.RSSMiB, p.Source.RSSMiB)
	}
	fmt.Fprintf(&b, "\nCommit-to-client latency of a tailing client: fleet p50 %v p99 %v max %v; source p50 %v p99 %v max %v.\n",
		r.FleetLatency.P50, r.FleetLatency.P99, r.FleetLatency.Max, r.SourceLatency.P50, r.SourceLatency.P99, r.SourceLatency.Max)
	return b.String()
}

func (o *Options) defaults() {
	if o.Flavor == "" {
		o.Flavor = sandbox.MariaDB
	}
	if len(o.Clients) == 0 {
		o.Clients = []int{1, 10, 100}
	}
	if o.LogBytes == 0 {
		o.LogBytes = 64 << 20
	}
	if o.TxnBytes == 0 {
		o.TxnBytes = 64 << 10
	}
	if o.Commits == 0 {
		o.Commits = 200
	}
	if o.Dir == "" {
		o.Dir = os.TempDir()
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Run performs one benchmark run.
func Run(ctx context.Context, o Options) (res Result, err error) {
	o.defaults()
	res.Flavor = string(o.Flavor)
	so := o.SourceOpt
	so.Flavor, so.Logf = o.Flavor, o.Logf
	so.ExtraArgs = append(append([]string(nil), so.ExtraArgs...), "--max-allowed-packet=256M")
	src, err := sandbox.Start(ctx, so)
	if err != nil {
		return res, err
	}
	defer src.Close()

	dir, err := os.MkdirTemp(o.Dir, "dumpbench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	node, err := startNode(dir)
	if err != nil {
		return res, err
	}
	defer node.Close()
	feeder, err := dumptest.StartFeeder(ctx, src, node)
	if err != nil {
		return res, err
	}
	defer feeder.Close()

	o.Logf("dumpbench: writing %d MiB to the source", o.LogBytes>>20)
	if err := fill(ctx, src, o.LogBytes, o.TxnBytes); err != nil {
		return res, err
	}
	if err := feeder.CaughtUp(ctx, 10*time.Minute); err != nil {
		return res, err
	}
	files, err := node.Reader().Files()
	if err != nil {
		return res, err
	}
	for _, f := range files {
		res.LogBytes += int64(f.Size)
	}

	cfg := dump.DefaultConfig()
	cfg.Addr, cfg.User, cfg.Password, cfg.Flavor = "127.0.0.1:0", dumptest.DumpUser, dumptest.DumpPassword, string(o.Flavor)
	srv, err := dump.New(cfg, node, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		return res, err
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(sctx) }()
	defer func() {
		stop()
		if e := <-done; e != nil && err == nil {
			err = e
		}
	}()

	repl, replPW := src.ReplUser()
	for _, n := range o.Clients {
		var p Point
		p.Clients = n
		o.Logf("dumpbench: %d clients on the source", n)
		clientCPU0 := selfCPU()
		srcCPU0 := procCPU(src.PID())
		p.Source, err = readAll(ctx, src.Addr(), repl, replPW, n, firstFile(ctx, src))
		if err != nil {
			return res, fmt.Errorf("source, %d clients: %w", n, err)
		}
		clientCPU := selfCPU() - clientCPU0
		p.Source.CPUSeconds = procCPU(src.PID()) - srcCPU0
		p.Source.RSSMiB = procRSS(src.PID())
		o.Logf("dumpbench: %d clients on the fleet", n)
		fleetCPU0 := selfCPU()
		var peak float64
		stopRSS := sampleRSS(&peak)
		p.Fleet, err = readAll(ctx, srv.Addr(), dumptest.DumpUser, dumptest.DumpPassword, n, files[0].Name())
		stopRSS()
		if err != nil {
			return res, fmt.Errorf("fleet, %d clients: %w", n, err)
		}
		p.Fleet.CPUSeconds = max(0, selfCPU()-fleetCPU0-clientCPU)
		p.Fleet.RSSMiB = peak
		res.Points = append(res.Points, p)
	}
	o.Logf("dumpbench: commit-to-client latency (%d commits)", o.Commits)
	res.FleetLatency, res.SourceLatency, err = latency(ctx, src, srv.Addr(), o.Commits)
	return res, err
}

// startNode starts a one-member log on disk.
func startNode(dir string) (*logger.Node, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := logger.DefaultConfig()
	cfg.ReplicaID, cfg.DataDir, cfg.RaftAddr = 1, filepath.Join(dir, "m1"), addr
	cfg.Members = map[uint64]string{1: addr}
	// One member on loopback: there is no raft link to protect.
	cfg.Insecure = true
	cfg.Logger = slog.New(slog.DiscardHandler)
	logger.RouteDragonboatLogs(cfg.Logger, slog.LevelError)
	n, err := logger.Start(cfg)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for !n.IsLeader() || n.Reader() == nil {
		if time.Now().After(deadline) {
			n.Close()
			return nil, errors.New("dumpbench: the log elected no leader within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n, nil
}

// fill writes about total bytes of transactions of txn bytes to src.
func fill(ctx context.Context, src *sandbox.Server, total, txn int) error {
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS bench", "CREATE TABLE IF NOT EXISTS bench.t (id INT AUTO_INCREMENT PRIMARY KEY, v LONGBLOB) ENGINE=InnoDB"} {
		if _, err := src.Exec(ctx, q); err != nil {
			return err
		}
	}
	c, err := src.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	q := "INSERT INTO bench.t (v) VALUES (REPEAT('x', " + strconv.Itoa(txn) + "))"
	for n := 0; n < total; n += txn {
		if _, err := c.Execute(q); err != nil {
			return err
		}
	}
	return nil
}

func firstFile(ctx context.Context, src *sandbox.Server) string {
	r, err := src.Exec(ctx, "SHOW BINARY LOGS")
	if err != nil || r.RowNumber() == 0 {
		return ""
	}
	s, _ := r.GetString(0, 0)
	return s
}

// readAll runs n clients that each read the whole log to EOF.
func readAll(ctx context.Context, addr, user, pw string, n int, file string) (Side, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total int64
	var firstErr error
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b, err := readOne(ctx, addr, user, pw, file, uint32(50000+i))
			mu.Lock()
			defer mu.Unlock()
			total += b
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}(i)
	}
	wg.Wait()
	d := time.Since(start).Seconds()
	return Side{Seconds: d, MBps: float64(total) / 1e6 / d}, firstErr
}

func readOne(ctx context.Context, addr, user, pw, file string, serverID uint32) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := dumptest.Dial(cctx, addr, user, pw)
	cancel()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.Exec("SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum"); err != nil {
		return 0, err
	}
	c.Exec("SET @mariadb_slave_capability=4")
	if err := c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, dumptest.NonBlock, serverID, file)); err != nil {
		return 0, err
	}
	c.C.SetReadDeadline(time.Now().Add(10 * time.Minute))
	var n int64
	for {
		ev, err := c.Next()
		if errors.Is(err, dumptest.ErrEOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n += int64(len(ev))
	}
}

// latency commits one small transaction at a time on the source and times
// its arrival at a tailing client of the fleet and of the source.
func latency(ctx context.Context, src *sandbox.Server, fleet string, commits int) (Latency, Latency, error) {
	flav, _ := binlog.FlavorByName(string(src.Flavor()))
	repl, replPW := src.ReplUser()
	type tail struct {
		c    *dumptest.DumpClient
		seen chan string
	}
	open := func(addr, user, pw string, id uint32) (*tail, error) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, err := dumptest.Dial(cctx, addr, user, pw)
		if err != nil {
			return nil, err
		}
		c.Exec("SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum")
		c.Exec("SET @mariadb_slave_capability=4")
		// Tail from the current end.
		r, err := c.Exec("SHOW MASTER STATUS")
		if err != nil {
			r, err = c.Exec("SHOW BINARY LOG STATUS")
		}
		if err != nil || r.RowNumber() == 0 {
			c.Close()
			return nil, fmt.Errorf("%s: master status: %v", addr, err)
		}
		file, _ := r.GetString(0, 0)
		pos, _ := r.GetInt(0, 1)
		if err := c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(uint32(pos), 0, id, file)); err != nil {
			c.Close()
			return nil, err
		}
		t := &tail{c: c, seen: make(chan string, 1024)}
		go func() {
			defer close(t.seen)
			alg := binlog.ChecksumCRC32
			for {
				ev, err := c.Next()
				if err != nil {
					return
				}
				if g, ok, _ := flav.GTIDOfEvent(ev, alg); ok {
					t.seen <- g
				}
			}
		}()
		return t, nil
	}
	// NB: close the socket, then wait for the reading goroutine: go-mysql's
	// Close would race with its read.
	stopTail := func(t *tail) {
		t.c.C.Conn.Conn.Close()
		for range t.seen {
		}
	}
	ft, err := open(fleet, dumptest.DumpUser, dumptest.DumpPassword, 60001)
	if err != nil {
		return Latency{}, Latency{}, err
	}
	defer stopTail(ft)
	st, err := open(src.Addr(), repl, replPW, 60002)
	if err != nil {
		return Latency{}, Latency{}, err
	}
	defer stopTail(st)
	conn, err := src.Conn(ctx)
	if err != nil {
		return Latency{}, Latency{}, err
	}
	defer conn.Close()
	var fl, sl []time.Duration
	gtidQ := flav.BinlogGTIDsQuery()
	wait := func(t *tail, start time.Time, want func(string) bool) (time.Duration, error) {
		timeout := time.After(30 * time.Second)
		for {
			select {
			case g, ok := <-t.seen:
				if !ok {
					return 0, errors.New("tailing client stopped")
				}
				if want(g) {
					return time.Since(start), nil
				}
			case <-timeout:
				return 0, errors.New("a commit did not arrive within 30s")
			}
		}
	}
	for i := 0; i < commits; i++ {
		start := time.Now()
		if _, err := conn.Execute("INSERT INTO bench.t (v) VALUES ('tick')"); err != nil {
			return Latency{}, Latency{}, err
		}
		r, err := conn.Execute(gtidQ)
		if err != nil {
			return Latency{}, Latency{}, err
		}
		last, _ := r.GetString(0, 0)
		set, err := flav.ParseSet(last)
		if err != nil {
			return Latency{}, Latency{}, err
		}
		// NB: each tail has consumed every earlier commit, so the first
		// GTID it sees in the source's state is the new commit's.
		in := func(g string) bool { return set.Contains(g) }
		d1, err := wait(st, start, in)
		if err != nil {
			return Latency{}, Latency{}, fmt.Errorf("source tail: %w", err)
		}
		d2, err := wait(ft, start, in)
		if err != nil {
			return Latency{}, Latency{}, fmt.Errorf("fleet tail: %w", err)
		}
		sl, fl = append(sl, d1), append(fl, d2)
	}
	return summarize(fl), summarize(sl), nil
}

func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return Latency{P50: q(0.50).Round(10 * time.Microsecond), P99: q(0.99).Round(10 * time.Microsecond), Max: ds[len(ds)-1].Round(10 * time.Microsecond)}
}

// selfCPU is this process's CPU time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// procCPU is a process's CPU time in seconds.
func procCPU(pid int) float64 { return fleet.ProcessCPU(pid).Seconds() }

// procRSS is a process's peak resident set in MiB (VmHWM).
func procRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// sampleRSS records this process's peak VmRSS into *peak until stopped.
func sampleRSS(peak *float64) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	read := func() {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				f := strings.Fields(line)
				if len(f) >= 2 {
					kb, _ := strconv.ParseFloat(f[1], 64)
					*peak = max(*peak, kb/1024)
				}
			}
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(stop); <-done }
}
