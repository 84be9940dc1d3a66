// Command demo runs the main job on this machine: a sandbox source, a local
// fleet of three binlogsvr members in front of it, and binlogctl showing
// the group. It stops everything it started on exit (also on Ctrl-C).
//
// The story: semi-sync writes that each wait for the fleet's quorum, a
// replica fed by the fleet, the source killed, the failover step by step,
// and the proof that every acknowledged commit is on the new source.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func run(ctx context.Context) error {
	flavor := sandbox.Flavor(envOr("DEMO_FLAVOR", string(sandbox.MariaDB)))
	if err := sandbox.Available(flavor); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "binlogsvr-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	step("starting a %s source with semi-sync (AFTER_SYNC) and a replica, on loopback", flavor)
	src, err := sandbox.Start(ctx, sandbox.Options{Flavor: flavor, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute})
	if err != nil {
		return err
	}
	defer src.Close()
	rep, err := sandbox.Start(ctx, sandbox.Options{Flavor: flavor})
	if err != nil {
		return err
	}
	defer rep.Close()
	fmt.Printf("    source %s (pid %d), replica %s (pid %d)\n", src.Addr(), src.PID(), rep.Addr(), rep.PID())

	step("starting a fleet of 3 binlogsvr loggers in front of the source (logs in %s)", dir)
	user, pass := src.ReplUser()
	rootUser, rootPass := src.RootUser()
	pw := func(name, v string) string {
		p := filepath.Join(dir, name)
		_ = os.WriteFile(p, []byte(v), 0o600)
		return p
	}
	f, err := fleet.Start(ctx, fleet.Options{Dir: filepath.Join(dir, "fleet"), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
		ExtraArgs: []string{"--dump-addr", "127.0.0.1:0", "--dump-user", dumpUser, "--dump-password-file", pw("dump.pw", dumpPassword),
			"--failover-admin-user", rootUser, "--failover-admin-password-file", pw("admin.pw", rootPass),
			"--failover-lease", "3s", "--failover-candidate", rep.Addr()},
		Host: func(uint64) string { return "127.0.0.1" }}) // NB: addresses an operator reads at a glance
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the fleet, the source and the replica")
		f.Close()
	}()
	for _, m := range f.Members {
		fmt.Printf("    member %d: raft %s, admin %s (pid %d)\n", m.ID, m.RaftAddr, m.AdminAddr, m.PID())
	}
	leader, err := waitSeeded(ctx, f)
	if err != nil {
		return err
	}

	step("attaching the replica to the fleet (member %d's dump port), not to the source", other(leader))
	st, err := f.Status(ctx, other(leader), true)
	if err != nil {
		return err
	}
	host, port, _ := strings.Cut(st.DumpAddr, ":")
	for _, q := range []string{
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_HEARTBEAT_PERIOD=1, MASTER_CONNECT_RETRY=1", host, port, dumpUser, dumpPassword),
		"START SLAVE",
	} {
		if _, err := rep.Exec(ctx, q); err != nil {
			return fmt.Errorf("replica: %s: %w", q, err)
		}
	}
	fmt.Printf("    replica %s replicates from %s\n", rep.Addr(), st.DumpAddr)

	step("writing from 8 clients; each commit waits for the fleet's quorum ACK; every acknowledged id is recorded")
	if err := setupApp(ctx, src); err != nil {
		return err
	}
	w := startWriters(src, 8)
	time.Sleep(3 * time.Second)
	fmt.Printf("    %d commits acknowledged so far\n", w.count())
	if err := binlogctl(f, f.Member(leader).AdminAddr, "status"); err != nil {
		return err
	}

	step("kill -9 the source (pid %d) while the clients keep writing", src.PID())
	t0 := time.Now()
	if err := src.Kill(); err != nil {
		return err
	}
	newSrc := ""
	err = fleet.Poll(ctx, 60*time.Second, func() error {
		l, err := f.Leader(ctx, 10*time.Second)
		if err != nil {
			return err
		}
		st, err := f.Status(ctx, l, true)
		if err != nil {
			return err
		}
		if st.Source == src.Addr() || strings.HasPrefix(st.Source, api.FencedPrefix) || st.Ingest == nil || st.Ingest.State != "streaming" {
			return fmt.Errorf("source %s", st.Source)
		}
		newSrc = st.Source
		return nil
	})
	if err != nil {
		return fmt.Errorf("the fleet did not fail over: %w", err)
	}
	w.stop()
	fmt.Printf("    the fleet promoted %s and streams from it %v after the kill\n", newSrc, time.Since(t0).Round(time.Millisecond))

	step("the failover, step by step (binlogctl history)")
	if err := binlogctl(f, f.Member(other(leader)).AdminAddr, "history"); err != nil {
		return err
	}

	step("proof: every commit acknowledged to a client is on the new source")
	acked := w.acked()
	var missing int
	for _, id := range acked {
		r, err := rep.Exec(ctx, fmt.Sprintf("SELECT COUNT(*) FROM demo.t WHERE id = %d", id))
		if err != nil {
			return err
		}
		if n, _ := r.GetInt(0, 0); n != 1 {
			missing++
		}
	}
	fmt.Printf("    %d acknowledged commits, %d missing on the new source %s\n", len(acked), missing, newSrc)
	if missing > 0 {
		return fmt.Errorf("%d acknowledged commits were lost", missing)
	}

	step("writing to the new source; the fleet ACKs and stores it in the same log (new file, same names and positions)")
	if _, err := rep.Exec(ctx, "INSERT INTO demo.t (id, v) VALUES (-1, 'after failover')"); err != nil {
		return err
	}
	if err := binlogctl(f, f.Member(other(leader)).AdminAddr, "status"); err != nil {
		return err
	}
	return nil
}

// The dump account replicas use to log in to the fleet.
const (
	dumpUser     = "repl"
	dumpPassword = "demo-dump-pw"
)

func other(id uint64) uint64 {
	if id == 1 {
		return 2
	}
	return 1
}

func setupApp(ctx context.Context, src *sandbox.Server) error {
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS demo",
		"CREATE TABLE IF NOT EXISTS demo.t (id BIGINT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB"} {
		if _, err := src.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// writers insert rows with unique ids and record the ones acknowledged.
type writers struct {
	mu   sync.Mutex
	ids  []int64
	done chan struct{}
	wg   sync.WaitGroup
}

func startWriters(src *sandbox.Server, n int) *writers {
	w := &writers{done: make(chan struct{})}
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			c, err := src.Conn(context.Background())
			if err != nil {
				return
			}
			defer c.Close()
			for j := int64(0); ; j++ {
				select {
				case <-w.done:
					return
				default:
				}
				id := int64(i)*1_000_000 + j
				if _, err := c.Execute(fmt.Sprintf("INSERT INTO demo.t (id, v) VALUES (%d, 'demo')", id)); err != nil {
					return // NB: the source died: this commit was not acknowledged
				}
				w.mu.Lock()
				w.ids = append(w.ids, id)
				w.mu.Unlock()
			}
		}()
	}
	return w
}

func (w *writers) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

func (w *writers) acked() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.ids...)
}

func (w *writers) stop() {
	close(w.done)
	w.wg.Wait()
}

func waitSeeded(ctx context.Context, f *fleet.Fleet) (uint64, error) {
	var leader uint64
	err := fleet.Poll(ctx, 60*time.Second, func() error {
		l, err := f.Leader(ctx, 30*time.Second)
		if err != nil {
			return err
		}
		st, err := f.Status(ctx, l, true)
		if err != nil {
			return err
		}
		if st.Epoch == 0 {
			return fmt.Errorf("the log's source is not seeded yet: %s", st.SourceError)
		}
		leader = l
		return nil
	})
	return leader, err
}

func binlogctl(f *fleet.Fleet, admin string, args ...string) error {
	bin := "binlogctl"
	if d := os.Getenv("BINLOGSVR_BIN"); d != "" {
		bin = filepath.Join(d, "binlogctl")
	} else if exe, err := os.Executable(); err == nil {
		bin = filepath.Join(filepath.Dir(exe), "binlogctl")
	}
	// NB: the fleet runs with TLS and tokens: binlogctl verifies the member
	// against the fleet's CA and sends the operate token from a file.
	global := append(f.CtlArgs(), "--admin", admin)
	fmt.Printf("    $ binlogctl %s %s\n", strings.Join(global, " "), strings.Join(args, " "))
	cmd := exec.Command(bin, append(global, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}
