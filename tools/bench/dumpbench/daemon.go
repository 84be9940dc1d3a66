package dumpbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// DaemonResult is one run of RunDaemon: clients reading the whole log from
// one real binlogsvr process (its own RSS measured from /proc), beside the
// same clients reading the source.
type DaemonResult struct {
	Clients  int
	LogBytes int64
	Fleet    Side // RSSMiB: the serving member's peak resident set during the dump
	Source   Side
	// FleetRSSBeforeMiB is the member's resident set just before the
	// clients connect (after the ingest), FleetHWMMiB its peak over its
	// whole life (VmHWM before the reset at the dump's start: the ingest).
	FleetRSSBeforeMiB, FleetHWMMiB float64
	// FleetHeapMiB is the Go heap in use (go_memstats_heap_inuse_bytes)
	// sampled at the member's peak RSS during the dump.
	FleetHeapMiB float64
	// ChunkReadsPerRound: chunks the member read from its log per round
	// (cache misses); DirectReadsPerRound: reads it passed to the log for
	// one client.
	ChunkReadsPerRound, DirectReadsPerRound float64
	// SourceRuns and FleetRuns are the MB/s of every round, in order.
	SourceRuns, FleetRuns []float64
}

// median returns the round of median MB/s (the lower of the middle two)
// and every round's MB/s.
func median(runs []Side) (Side, []float64) {
	var all []float64
	for _, r := range runs {
		all = append(all, r.MBps)
	}
	sorted := append([]Side(nil), runs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].MBps < sorted[j].MBps })
	return sorted[(len(sorted)-1)/2], all
}

// RunDaemon fills a real 3-member fleet through its ingest from a MariaDB
// semi-sync source, then has n clients read the whole log from a member
// that does not lead, and the same from the source.
func RunDaemon(ctx context.Context, o Options, n int) (res DaemonResult, err error) {
	o.defaults()
	if o.Rounds == 0 {
		o.Rounds = 3
	}
	res.Clients = n
	src, err := sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute,
		ExtraArgs: []string{"--max-allowed-packet=256M"}, Logf: o.Logf})
	if err != nil {
		return res, err
	}
	defer src.Close()
	dir, err := os.MkdirTemp(o.Dir, "dumpbench-daemon-")
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			o.Logf("dumpbench: kept %s (the members' logs) after: %v", dir, err)
			return
		}
		os.RemoveAll(dir)
	}()
	user, pass := src.ReplUser()
	extra := append([]string{"--log-level", "warn"}, o.MemberArgs...)
	if o.ProfileDir != "" {
		extra = append(extra, "--debug-api")
	}
	f, err := fleet.StartEach(ctx, fleet.Options{Dir: filepath.Join(dir, "fleet"), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
		ExtraArgs: extra}, func(uint64) fleet.MemberSpec { return fleet.MemberSpec{Serve: true} })
	if err != nil {
		return res, err
	}
	defer f.Close()
	adminHTTP, adminScheme = f.HTTP(), f.Scheme() // NB: TLS and the fleet's operate token
	st, err := f.WaitStreaming(ctx, 90*time.Second)
	if err != nil {
		return res, err
	}
	leader := st.ID
	o.Logf("dumpbench: writing %d MiB to the source through the fleet's semi-sync ingest", o.LogBytes>>20)
	if err := fill(ctx, src, o.LogBytes, o.TxnBytes); err != nil {
		return res, err
	}
	r, err := src.Exec(ctx, "SELECT @@GLOBAL.gtid_binlog_pos")
	if err != nil {
		return res, err
	}
	want, _ := r.GetString(0, 0)
	want = strings.Clone(want)
	serving := leader%3 + 1
	var dumpAddr string
	if err := fleet.Poll(ctx, 5*time.Minute, func() error {
		st, err := f.Status(ctx, serving, true)
		if err != nil {
			return err
		}
		if st.GTIDExecuted != want {
			return fmt.Errorf("member %d holds %s, the source %s", serving, st.GTIDExecuted, want)
		}
		dumpAddr = st.DumpAddr
		return nil
	}); err != nil {
		return res, err
	}
	// NB: wait for the member to be idle (its applied index still for two
	// seconds), so that the dump is measured alone.
	var last binlogsvr.Status
	stillSince := time.Now()
	if err := fleet.Poll(ctx, 2*time.Minute, func() error {
		st, err := f.Status(ctx, serving, true)
		if err != nil {
			return err
		}
		if st.Applied != last.Applied || st.Transactions != last.Transactions {
			if last.Applied != 0 {
				o.Logf("dumpbench: member %d still applying: index %d -> %d, %d -> %d transactions", serving, last.Applied, st.Applied, last.Transactions, st.Transactions)
			}
			last, stillSince = st, time.Now()
		}
		if time.Since(stillSince) < 2*time.Second {
			return errors.New("still applying")
		}
		return nil
	}); err != nil {
		return res, err
	}
	// NB: the names and sizes only; Fleet.Files (?hash=1) would read the
	// whole log through the admin API just before the measurement.
	var files []binlogsvr.FileInfo
	if err := getJSON(ctx, f.Member(serving).AdminAddr, "/binlogs", &files); err != nil {
		return res, err
	}
	for _, fi := range files {
		res.LogBytes += int64(fi.Size)
	}
	pid := f.Member(serving).PID()
	res.FleetHWMMiB = procRSS(pid)
	res.FleetRSSBeforeMiB = procStatusMiB(pid, "VmRSS:")
	// NB: "5" resets VmHWM (Linux >= 4.0), so the peak below is the dump's,
	// not the ingest's; the sampler also catches it if the reset fails.
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	admin := f.Member(serving).AdminAddr
	var heapAtPeak float64
	stopSample := samplePID(pid, func() {
		m := metricsText(admin)
		if v, ok := goMetric(m, "go_memstats_heap_inuse_bytes"); ok {
			heapAtPeak = v / (1 << 20)
		}
		if o.ProfileDir != "" {
			_ = os.WriteFile(filepath.Join(o.ProfileDir, fmt.Sprintf("dump-%d-metrics-at-peak.txt", n)), []byte(m), 0o644)
		}
	})
	// NB: rounds alternate source and member, so that load from elsewhere
	// on the machine falls on both; each side reports its median round.
	var srcRuns, fleetRuns []Side
	miss0, _ := goMetric(metricsText(admin), `binlogsvr_dump_cache_reads_total{result="miss"}`)
	direct0, _ := goMetric(metricsText(admin), `binlogsvr_dump_cache_reads_total{result="direct"}`)
	for round := 0; round < o.Rounds; round++ {
		o.Logf("dumpbench: round %d: %d clients on the source", round+1, n)
		srcCPU0 := procCPU(src.PID())
		sd, err := readAll(ctx, src.Addr(), user, pass, n, firstFile(ctx, src))
		if err != nil {
			stopSample()
			return res, fmt.Errorf("source: %w", err)
		}
		sd.CPUSeconds = procCPU(src.PID()) - srcCPU0
		sd.RSSMiB = procRSS(src.PID())
		srcRuns = append(srcRuns, sd)
		o.Logf("dumpbench: round %d: %d clients on member %d (pid %d)", round+1, n, serving, pid)
		var stopProf func()
		if o.ProfileDir != "" && round == 0 {
			stopProf = profileDaemon(admin, o.ProfileDir, fmt.Sprintf("dump-%d", n), max(2, int(sd.Seconds)+1), o.Logf)
		}
		cpu0 := procCPU(pid)
		fd, err := readAll(ctx, dumpAddr, "repl", fleet.DumpPassword, n, files[0].Name)
		fd.CPUSeconds = procCPU(pid) - cpu0
		if stopProf != nil {
			stopProf()
		}
		if err != nil {
			stopSample()
			return res, fmt.Errorf("fleet member %d: %w", serving, err)
		}
		fleetRuns = append(fleetRuns, fd)
		o.Logf("dumpbench: round %d: source %.0f MB/s, member %.0f MB/s", round+1, sd.MBps, fd.MBps)
	}
	peak := stopSample()
	mt := metricsText(admin)
	miss1, _ := goMetric(mt, `binlogsvr_dump_cache_reads_total{result="miss"}`)
	direct1, _ := goMetric(mt, `binlogsvr_dump_cache_reads_total{result="direct"}`)
	res.ChunkReadsPerRound = (miss1 - miss0) / float64(o.Rounds)
	res.DirectReadsPerRound = (direct1 - direct0) / float64(o.Rounds)
	res.Source, res.SourceRuns = median(srcRuns)
	res.Fleet, res.FleetRuns = median(fleetRuns)
	res.Fleet.RSSMiB = max(peak, procRSS(pid))
	res.FleetHeapMiB = heapAtPeak
	return res, nil
}

// procStatusMiB reads one kB field of /proc/PID/status in MiB.
func procStatusMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			if f := strings.Fields(line); len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// samplePID samples a process's VmRSS every 20ms; atPeak runs whenever a
// new peak is seen. The returned func stops it and returns the peak in MiB.
func samplePID(pid int, atPeak func()) func() float64 {
	stop, done := make(chan struct{}), make(chan struct{})
	var peak float64
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if v := procStatusMiB(pid, "VmRSS:"); v > peak+1 {
				peak = v
				atPeak()
			} else if v > peak {
				peak = v
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 { close(stop); <-done; return peak }
}

// adminHTTP and adminScheme reach the fleet's admin APIs (set once the
// fleet runs: HTTPS with its token).
var (
	adminHTTP   = http.DefaultClient
	adminScheme = "http"
)

func getJSON(ctx context.Context, admin, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminScheme+"://"+admin+path, nil)
	if err != nil {
		return err
	}
	resp, err := adminHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// metricsText is a member's /metrics ("" on error).
func metricsText(admin string) string {
	c := http.Client{Timeout: time.Second, Transport: adminHTTP.Transport}
	resp, err := c.Get(adminScheme + "://" + admin + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// goMetric reads one unlabelled gauge from /metrics text.
func goMetric(metrics, name string) (float64, bool) {
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(line[len(name)+1:]), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// profileDaemon saves, into dir, a CPU profile of secs seconds taken
// while the clients read, the member's allocations over the run (allocs
// before and after: compare with go tool pprof -base) and its heap at the
// end. The returned func waits for them.
func profileDaemon(admin, dir, name string, secs int, logf func(string, ...any)) func() {
	_ = os.MkdirAll(dir, 0o755)
	save := func(path, file string) {
		c := http.Client{Timeout: time.Duration(secs+30) * time.Second, Transport: adminHTTP.Transport}
		resp, err := c.Get(adminScheme + "://" + admin + path)
		if err != nil {
			logf("dumpbench: profile %s: %v", path, err)
			return
		}
		defer resp.Body.Close()
		out, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			logf("dumpbench: profile: %v", err)
			return
		}
		defer out.Close()
		_, _ = io.Copy(out, resp.Body)
	}
	save("/debug/pprof/allocs?gc=1", name+"-allocs-before.pprof")
	cpu := make(chan struct{})
	go func() {
		defer close(cpu)
		save(fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), name+"-cpu.pprof")
	}()
	return func() {
		<-cpu
		save("/debug/pprof/allocs?gc=1", name+"-allocs-after.pprof")
		save("/debug/pprof/heap", name+"-heap.pprof")
		logf("dumpbench: profiles in %s (%s-*.pprof)", dir, name)
	}
}

// Markdown renders the run as a section of docs/BENCHMARKS.md.
func (r DaemonResult) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %d clients against a real binlogsvr process (log of %.1f MiB ingested from a MariaDB semi-sync source)\n\n", r.Clients, float64(r.LogBytes)/(1<<20))
	fmt.Fprintf(&b, "%d rounds, alternating source and member; each row is that side's median round (MB/s of every round: source %s; member %s).\n\n", len(r.FleetRuns), mbList(r.SourceRuns), mbList(r.FleetRuns))
	b.WriteString("| server | MB/s | CPU s | peak RSS MiB during the dumps |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| binlogsvr member (not the leader) | %.0f | %.2f | %.0f |\n", r.Fleet.MBps, r.Fleet.CPUSeconds, r.Fleet.RSSMiB)
	fmt.Fprintf(&b, "| MariaDB source | %.0f | %.2f | %.0f (VmHWM) |\n", r.Source.MBps, r.Source.CPUSeconds, r.Source.RSSMiB)
	fmt.Fprintf(&b, "\nThe member: %.2f× the source's MB/s; RSS %.0f MiB just before the clients connected, Go heap in use %.0f MiB at the dump's peak RSS; peak over its whole life before the dump (the ingest) %.0f MiB.\n",
		r.Fleet.MBps/r.Source.MBps, r.FleetRSSBeforeMiB, r.FleetHeapMiB, r.FleetHWMMiB)
	fmt.Fprintf(&b, "Reads of the member's log per round (100 clients × %.0f chunks of 256 KiB each): %.0f chunk reads into the shared cache, %.0f reads for a single client.\n",
		float64(r.LogBytes)/(256<<10), r.ChunkReadsPerRound, r.DirectReadsPerRound)
	return b.String()
}

func mbList(v []float64) string {
	var parts []string
	for _, x := range v {
		parts = append(parts, strconv.FormatFloat(x, 'f', 0, 64))
	}
	return strings.Join(parts, ", ")
}
