// Command canal runs go-mysql's canal against a dump server for
// dump/e2e/cdc_test.go: it prints one line per row change of the schema
// ("insert 5", "update 5", "delete 5", keyed by the first column) and
// exits 0 after WANT changes (plus a short wait that would catch any
// duplicate), or 2 after the timeout. It is its own module so that canal's
// dependencies stay out of binlogsvr's go.mod.
//
//	canal ADDR USER PASSWORD FLAVOR SCHEMA WANT TIMEOUT
package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/canal"
	"github.com/go-mysql-org/go-mysql/mysql"
)

type handler struct {
	canal.DummyEventHandler
	mu sync.Mutex
	n  int
}

func (h *handler) OnRow(e *canal.RowsEvent) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	step := 1
	if e.Action == canal.UpdateAction {
		step = 2 // before and after images
	}
	for i := 0; i+step-1 < len(e.Rows); i += step {
		fmt.Printf("%s %v\n", e.Action, e.Rows[i+step-1][0])
		h.n++
	}
	return nil
}

func (h *handler) String() string { return "handler" }

func main() {
	if len(os.Args) != 8 {
		fmt.Fprintln(os.Stderr, "usage: canal ADDR USER PASSWORD FLAVOR SCHEMA WANT TIMEOUT")
		os.Exit(1)
	}
	want, _ := strconv.Atoi(os.Args[6])
	timeout, err := time.ParseDuration(os.Args[7])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := canal.NewDefaultConfig()
	cfg.Addr, cfg.User, cfg.Password, cfg.Flavor = os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	cfg.ServerID = 3001
	cfg.Dump.ExecutionPath = ""
	cfg.IncludeTableRegex = []string{os.Args[5] + `\..*`}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := canal.NewCanal(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "canal:", err)
		os.Exit(1)
	}
	h := &handler{}
	c.SetEventHandler(h)
	done := make(chan error, 1)
	go func() { done <- c.RunFrom(mysql.Position{Name: "binlog.000001", Pos: 4}) }()
	deadline := time.Now().Add(timeout)
	for {
		h.mu.Lock()
		n := h.n
		h.mu.Unlock()
		if n >= want {
			time.Sleep(300 * time.Millisecond)
			c.Close()
			<-done
			os.Exit(0)
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "timeout after %d changes\n", n)
			os.Exit(2)
		}
		select {
		case err := <-done:
			fmt.Fprintln(os.Stderr, "canal stopped:", err)
			os.Exit(1)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
