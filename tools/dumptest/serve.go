package dumptest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/dump"
)

// DumpUser and DumpPassword are the account Serve configures.
const (
	DumpUser     = "repl"
	DumpPassword = "dump-secret"
)

// Serve starts a dump server over src's log on a free loopback port and
// stops it (joining every goroutine) at the end of the test. edit, if not
// nil, adjusts the Config first.
func Serve(t testing.TB, src dump.ReaderSource, edit func(*dump.Config)) *dump.Server {
	t.Helper()
	cfg := dump.DefaultConfig()
	cfg.Addr, cfg.User, cfg.Password = "127.0.0.1:0", DumpUser, DumpPassword
	if edit != nil {
		edit(&cfg)
	}
	level := slog.LevelWarn
	if os.Getenv("BINLOGSVR_TEST_VERBOSE") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	s, err := dump.New(cfg, src, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("dumptest: dump.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dumptest: dump server: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("dumptest: dump server did not stop within 30s")
		}
	})
	return s
}
