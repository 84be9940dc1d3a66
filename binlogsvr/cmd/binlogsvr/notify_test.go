package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestNotifier runs the notifier against a socket in place of systemd's:
// watchdog pings while starting, READY=1 once ready, pings only while
// alive, and STOPPING=1 when its context ends.
func TestNotifier(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "100000")
	next := func(d time.Duration) string {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(d))
		buf := make([]byte, 1024)
		n, err := conn.Read(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}

	ready := make(chan struct{})
	var alive atomic.Bool
	n := &notifier{log: slog.New(slog.DiscardHandler), ready: ready, alive: alive.Load}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()

	// Starting (opening the log): alive, not ready yet.
	alive.Store(true)
	if s := next(2 * time.Second); s != "WATCHDOG=1" {
		t.Fatalf("got %q while starting, want WATCHDOG=1", s)
	}
	alive.Store(false)
	for next(150*time.Millisecond) != "" { // NB: a ping already in flight
	}
	close(ready)
	if s := next(2 * time.Second); !strings.HasPrefix(s, "READY=1\n") {
		t.Fatalf("got %q, want READY=1 first", s)
	}
	// NB: not alive: no pings (systemd would restart a wedged member).
	if s := next(300 * time.Millisecond); s != "" {
		t.Fatalf("sent %q while not alive", s)
	}
	alive.Store(true)
	if s := next(2 * time.Second); s != "WATCHDOG=1" {
		t.Fatalf("got %q, want WATCHDOG=1", s)
	}
	cancel()
	<-done
	for {
		s := next(2 * time.Second)
		if s == "STOPPING=1" {
			break
		}
		if s != "WATCHDOG=1" {
			t.Fatalf("got %q, want STOPPING=1", s)
		}
	}
}
