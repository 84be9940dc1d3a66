package e2e

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/tools/fleet"
)

// notifySocket listens where systemd would ($NOTIFY_SOCKET) and hands each
// datagram's lines to the returned channel.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan string, 1024)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			for _, l := range strings.Split(string(buf[:n]), "\n") {
				select {
				case ch <- l:
				default: // NB: watchdog pings past the buffer are not needed
				}
			}
		}
	}()
	return path, ch
}

// waitFor reads states until want arrives; it fails on a deadline.
func waitFor(t *testing.T, ch <-chan string, want string, d time.Duration, seen *[]string) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case s, ok := <-ch:
			if !ok {
				t.Fatalf("notify socket closed before %q (seen %q)", want, *seen)
			}
			*seen = append(*seen, s)
			if s == want {
				return
			}
		case <-deadline:
			t.Fatalf("no %q from binlogsvr within %s (seen %q)", want, d, *seen)
		}
	}
}

// TestNotifyProtocol runs a real one-member binlogsvr as systemd would run
// it under Type=notify and WatchdogSec: READY=1 only once it serves (its
// /healthz answers 200: log open, leader known), WATCHDOG=1 pings at half
// the interval, STOPPING=1 on SIGTERM, then a clean exit.
func TestNotifyProtocol(t *testing.T) {
	sock, states := notifySocket(t)
	ctx := context.Background()
	f, err := fleet.Start(ctx, fleet.Options{Dir: t.TempDir(), Members: 1, Insecure: true,
		Cmd: func(_ *fleet.Member, cmd *exec.Cmd) {
			// NB: no WATCHDOG_PID: the daemon accepts WATCHDOG_USEC alone,
			// as systemd's sd_watchdog_enabled does.
			cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			t.Logf("member log:\n%s", f.LogTails(40))
		}
	})
	var seen []string
	waitFor(t, states, "READY=1", 60*time.Second, &seen)
	resp, err := http.Get(f.URL(1, "/healthz"))
	if err != nil {
		t.Fatalf("READY=1 sent but /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("READY=1 sent but /healthz answers %d", resp.StatusCode)
	}
	waitFor(t, states, "WATCHDOG=1", 5*time.Second, &seen)
	for _, s := range seen {
		if s == "STOPPING=1" {
			t.Fatalf("STOPPING=1 before SIGTERM: %q", seen)
		}
	}
	if err := f.Stop(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, states, "STOPPING=1", 5*time.Second, &seen)
	if c := f.Member(1).ExitCode(); c != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", c)
	}
}
