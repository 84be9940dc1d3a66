// Command demo runs the main job on this machine: a sandbox source, a local
// fleet of three binlogsvr members in front of it, and binlogctl showing
// the group. It stops everything it started on exit (also on Ctrl-C).
//
// What it shows grows with the product; today: the source seeded into the
// log, the group's status, the leader killed with SIGKILL, a new leader
// elected, and the old one rejoining.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

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

	step("starting a %s source with semi-sync (AFTER_SYNC) on loopback", flavor)
	src, err := sandbox.Start(ctx, sandbox.Options{Flavor: flavor, SemiSyncSource: true})
	if err != nil {
		return err
	}
	defer src.Close()
	fmt.Printf("    source %s (pid %d)\n", src.Addr(), src.PID())

	step("starting a fleet of 3 binlogsvr loggers (logs in %s)", dir)
	user, pass := src.ReplUser()
	f, err := fleet.Start(ctx, fleet.Options{Dir: filepath.Join(dir, "fleet"), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the fleet and the source")
		f.Close()
	}()
	for _, m := range f.Members {
		fmt.Printf("    member %d: raft %s, admin %s (pid %d)\n", m.ID, m.RaftAddr, m.AdminAddr, m.PID())
	}
	leader, err := waitSeeded(ctx, f)
	if err != nil {
		return err
	}
	step("writing 1,000 transactions to the source from 8 clients; each commit waits for the fleet's quorum ACK")
	t0 := time.Now()
	if err := writes(ctx, src, 8, 1000); err != nil {
		return err
	}
	fmt.Printf("    1,000 semi-sync commits in %v\n", time.Since(t0).Round(time.Millisecond))
	step("binlogctl status (the leader is member %d)", leader)
	if err := binlogctl(f.Member(leader).AdminAddr, "status"); err != nil {
		return err
	}

	step("kill -9 the leader, member %d", leader)
	if err := f.Kill(leader); err != nil {
		return err
	}
	other := uint64(1)
	if leader == 1 {
		other = 2
	}
	t0 = time.Now()
	newLeader, err := f.Leader(ctx, 30*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("    member %d leads after %v\n", newLeader, time.Since(t0).Round(time.Millisecond))
	if err := binlogctl(f.Member(other).AdminAddr, "status"); err != nil {
		return err
	}

	step("restarting member %d; it rejoins the group", leader)
	if err := f.Restart(leader); err != nil {
		return err
	}
	if err := fleet.Poll(ctx, 30*time.Second, func() error {
		_, err := f.Status(ctx, leader, true)
		return err
	}); err != nil {
		return err
	}
	if err := binlogctl(f.Member(other).AdminAddr, "status"); err != nil {
		return err
	}
	step("writing 1,000 more; the new leader ingests and ACKs them")
	if err := writes(ctx, src, 8, 1000); err != nil {
		return err
	}
	if err := binlogctl(f.Member(other).AdminAddr, "status"); err != nil {
		return err
	}
	fmt.Println("\nNot shown yet: replicas fed by the fleet and the source's failover.")
	return nil
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

func binlogctl(admin string, args ...string) error {
	bin := "binlogctl"
	if d := os.Getenv("BINLOGSVR_BIN"); d != "" {
		bin = filepath.Join(d, "binlogctl")
	} else if exe, err := os.Executable(); err == nil {
		bin = filepath.Join(filepath.Dir(exe), "binlogctl")
	}
	fmt.Printf("    $ binlogctl --admin %s %s\n", admin, strings.Join(args, " "))
	cmd := exec.Command(bin, append([]string{"--admin", admin}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// writes runs n autocommit inserts on the source from c clients.
func writes(ctx context.Context, src *sandbox.Server, clients, n int) error {
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS demo", "CREATE TABLE IF NOT EXISTS demo.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(32))"} {
		if _, err := src.Exec(ctx, q); err != nil {
			return err
		}
	}
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		go func() {
			c, err := src.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := i; j < n; j += clients {
				if _, err := c.Execute("INSERT INTO demo.t (v) VALUES ('demo')"); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < clients; i++ {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}
