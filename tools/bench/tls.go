package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// tlsSetup is one way of running the raft links.
type tlsSetup struct {
	name     string
	insecure bool
	args     []string
}

var tlsSetups = []tlsSetup{
	{name: "tcp transport, mutual TLS (default)"},
	{name: "tcp transport, plaintext (--insecure)", insecure: true},
	{name: "dragonboat transport, mutual TLS", args: []string{"--raft-transport", "dragonboat"}},
}

// startLogFleet starts a 3-member fleet in front of its own sandbox source
// (a source per fleet: members of two fleets would share server_ids) and
// waits until it has seeded the source; it returns a function that stops
// both.
func startLogFleet(ctx context.Context, dir string, insecure bool, args []string) (*fleet.Fleet, func(), error) {
	src, err := sandbox.Start(ctx, sandbox.Options{Flavor: sandbox.MariaDB})
	if err != nil {
		return nil, nil, err
	}
	user, pass := src.ReplUser()
	f, err := fleet.Start(ctx, fleet.Options{Dir: dir, Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass, Insecure: insecure,
		ExtraArgs: append(append([]string{"--debug-api", "--log-level", "warn"}, logArgs...), args...)})
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	stop := func() { f.Close(); src.Close() }
	if _, err := waitSeeded(ctx, f); err != nil {
		stop()
		return nil, nil, err
	}
	return f, stop, nil
}

// benchRow runs /debug/bench on f's leader and returns its result and the
// fleet's CPU per transaction.
func benchRow(ctx context.Context, f *fleet.Fleet, size, conc int, dur time.Duration) (api.BenchResult, float64, error) {
	var r api.BenchResult
	leader, err := f.Leader(ctx, 30*time.Second)
	if err != nil {
		return r, 0, err
	}
	cpu0 := f.CPU()
	path := fmt.Sprintf("/debug/bench?concurrency=%d&size=%d&duration=%s&inflight=%d", conc, size, dur, inflight)
	if err := f.Post(ctx, leader, path, &r); err != nil {
		return r, 0, err
	}
	cpu := f.CPU() - cpu0
	perTxn := 0.0
	if r.Txns > 0 {
		perTxn = float64(cpu.Microseconds()) / float64(r.Txns)
	}
	return r, perTxn, nil
}

// benchTLS measures the raft links' cost: the same appends on three fleets
// running at once (mutual TLS on the tcp transport, plaintext, mutual TLS
// on dragonboat's own transport), the rows alternating between them, two
// rounds, so that the shared machine's noise falls on all three alike.
func benchTLS(dur time.Duration) (string, error) {
	ctx := context.Background()
	if err := sandbox.Available(sandbox.MariaDB); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "binlogsvr-bench-tls-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	fleets := make([]*fleet.Fleet, len(tlsSetups))
	for i, s := range tlsSetups {
		f, stop, err := startLogFleet(ctx, filepath.Join(dir, fmt.Sprint(i)), s.insecure, s.args)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.name, err)
		}
		defer stop()
		fleets[i] = f
	}
	type key struct{ setup, size, conc int }
	type acc struct {
		tps, p50, p99, cpu []float64
		errs               int
	}
	res := map[key]*acc{}
	rows := [][2]int{{200, 1}, {200, 64}, {4096, 64}}
	const rounds = 2
	for round := 0; round < rounds; round++ {
		for _, rw := range rows {
			for i := range tlsSetups {
				// NB: the setups' order turns each round, so none always
				// runs first after a pause.
				si := (i + round) % len(tlsSetups)
				r, cpu, err := benchRow(ctx, fleets[si], rw[0], rw[1], dur)
				if err != nil {
					return "", fmt.Errorf("%s: %w", tlsSetups[si].name, err)
				}
				fmt.Fprintf(os.Stderr, "bench tls: %s, %s × %d: %.0f txn/s, p50 %.2f ms, p99 %.2f ms, %.0f µs CPU/txn, %d errors\n",
					tlsSetups[si].name, human(rw[0]), rw[1], r.TPS, r.P50ms, r.P99ms, cpu, r.Errors)
				k := key{si, rw[0], rw[1]}
				if res[k] == nil {
					res[k] = &acc{}
				}
				a := res[k]
				a.tps, a.p50, a.p99, a.cpu = append(a.tps, r.TPS), append(a.p50, r.P50ms), append(a.p99, r.P99ms), append(a.cpu, cpu)
				a.errs += int(r.Errors)
			}
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "## Raft links: mutual TLS beside plaintext\n\n")
	fmt.Fprintf(&sb, "Run: `make bench` (tools/bench `tls`, %v per row), %s, %d cores, Go %s. Three 3-member fleets run at once on this machine, each in front of its own MariaDB sandbox; the same appends as the log table (`/debug/bench` on the leader: closed-loop proposers, each waiting for its transaction to be committed on a quorum and applied) run on each fleet in turn, row by row, %d rounds, the order of the fleets turning each round. Each cell gives the rounds' values in run order.\n\n",
		dur, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), rounds)
	fmt.Fprintf(&sb, "| raft links | txn size | proposers | txn/s | p50 commit ms | p99 commit ms | fleet CPU µs/txn | errors |\n|---|---|---|---|---|---|---|---|\n")
	join := func(v []float64, f string) string {
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = fmt.Sprintf(f, x)
		}
		return strings.Join(s, " / ")
	}
	for _, rw := range rows {
		for si, s := range tlsSetups {
			a := res[key{si, rw[0], rw[1]}]
			fmt.Fprintf(&sb, "| %s | %s | %d | %s | %s | %s | %s | %d |\n", s.name, human(rw[0]), rw[1], join(a.tps, "%.0f"), join(a.p50, "%.2f"), join(a.p99, "%.2f"), join(a.cpu, "%.0f"), a.errs)
		}
	}
	sb.WriteString("\nFleet CPU: the three members' user + system time over the row, divided by the transactions committed.\n")
	return sb.String(), nil
}

// waitSeeded waits until a leader of f has seeded the log's source and
// returns that leader.
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
			return fmt.Errorf("source not seeded: %s", st.SourceError)
		}
		leader = l
		return nil
	})
	return leader, err
}
