package dumpbench

import (
	"context"
	"testing"
	"time"
)

// TestRunSmall runs the benchmark at a tiny size, so that it keeps working.
func TestRunSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := Run(ctx, Options{Clients: []int{1, 3}, LogBytes: 2 << 20, TxnBytes: 32 << 10, Commits: 10, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Points {
		if p.Fleet.MBps <= 0 || p.Source.MBps <= 0 {
			t.Errorf("%d clients: %+v", p.Clients, p)
		}
	}
	if r.FleetLatency.P99 <= 0 {
		t.Errorf("latency %+v", r.FleetLatency)
	}
	t.Log("\n" + r.Markdown())
}
