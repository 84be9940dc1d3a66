package dumpbench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// DaemonResult is one run of RunDaemon: clients reading the whole log from
// one real binlogsvr process (its own RSS measured from /proc), beside the
// same clients reading the source.
type DaemonResult struct {
	Clients  int
	LogBytes int64
	Fleet    Side // RSSMiB: the serving member's peak resident set (VmHWM)
	Source   Side
}

// RunDaemon fills a real 3-member fleet through its ingest from a MariaDB
// semi-sync source, then has n clients read the whole log from a member
// that does not lead, and the same from the source.
func RunDaemon(ctx context.Context, o Options, n int) (res DaemonResult, err error) {
	o.defaults()
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
	defer os.RemoveAll(dir)
	user, pass := src.ReplUser()
	f, err := fleet.StartEach(ctx, fleet.Options{Dir: filepath.Join(dir, "fleet"), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
		ExtraArgs: []string{"--log-level", "warn"}}, func(uint64) fleet.MemberSpec { return fleet.MemberSpec{Serve: true} })
	if err != nil {
		return res, err
	}
	defer f.Close()
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
	files, err := f.Files(ctx, serving)
	if err != nil {
		return res, err
	}
	for _, fi := range files {
		res.LogBytes += int64(fi.Size)
	}
	pid := f.Member(serving).PID()
	o.Logf("dumpbench: %d clients on the source", n)
	srcCPU0 := procCPU(src.PID())
	if res.Source, err = readAll(ctx, src.Addr(), user, pass, n, firstFile(ctx, src)); err != nil {
		return res, fmt.Errorf("source: %w", err)
	}
	res.Source.CPUSeconds = procCPU(src.PID()) - srcCPU0
	res.Source.RSSMiB = procRSS(src.PID())
	o.Logf("dumpbench: %d clients on member %d (pid %d)", n, serving, pid)
	cpu0 := procCPU(pid)
	if res.Fleet, err = readAll(ctx, dumpAddr, "repl", fleet.DumpPassword, n, files[0].Name); err != nil {
		return res, fmt.Errorf("fleet member %d: %w", serving, err)
	}
	res.Fleet.CPUSeconds = procCPU(pid) - cpu0
	res.Fleet.RSSMiB = procRSS(pid)
	return res, nil
}

// Markdown renders the run as a section of docs/BENCHMARKS.md.
func (r DaemonResult) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %d clients against a real binlogsvr process (log of %.1f MiB ingested from a MariaDB semi-sync source)\n\n", r.Clients, float64(r.LogBytes)/(1<<20))
	b.WriteString("| server | MB/s | CPU s | peak RSS MiB (VmHWM) |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| binlogsvr member (not the leader) | %.0f | %.2f | %.0f |\n", r.Fleet.MBps, r.Fleet.CPUSeconds, r.Fleet.RSSMiB)
	fmt.Fprintf(&b, "| MariaDB source | %.0f | %.2f | %.0f |\n", r.Source.MBps, r.Source.CPUSeconds, r.Source.RSSMiB)
	return b.String()
}
