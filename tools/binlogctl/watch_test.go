package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// TestWatchFailoverStatus follows binlogctl failover status --watch
// through a catch-up: each refresh shows the target's progress as the
// member reports it, a refresh the member fails is reported on stderr and
// the watch goes on, and it ends when its context does.
func TestWatchFailoverStatus(t *testing.T) {
	var calls, renders atomic.Int32
	since := time.Now().Add(-4 * time.Second)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := calls.Add(1)
		if req.URL.Path != "/failover/status" {
			http.Error(w, "unexpected "+req.URL.String(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if n == 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "no leader"})
			return
		}
		missing := uint64(1000 - 200*n)
		_ = json.NewEncoder(w).Encode(api.FailoverStatus{Source: "127.0.0.1:3306", Epoch: 2,
			Operation: &api.Operation{ID: "failover-1", Kind: api.KindFailover, Step: api.StepChosen},
			CatchUp:   &api.CatchUp{Target: "127.0.0.1:3307", Since: since, Missing: missing, Total: 1000, Rate: 50, ETASeconds: float64(missing) / 50}})
	}))
	defer srv.Close()
	c, err := newClient(strings.TrimPrefix(srv.URL, "http://"), 2*time.Second, true, "", "", "", "", true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var o, e bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- watch(ctx, &o, &e, "binlogctl failover status", 50*time.Millisecond, false, func(ctx context.Context, w io.Writer) error {
			var st api.FailoverStatus
			if err := c.get(ctx, "/failover/status", &st); err != nil {
				return err
			}
			printFailoverStatus(w, st, true)
			renders.Add(1)
			return nil
		})
	}()
	// NB: the second call fails: two renders mean three refreshes.
	for renders.Load() < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := o.String()
	for _, want := range []string{
		"127.0.0.1:3307 applied 200 of the 1000 log transactions it lacked (20.0%), 800 to go, 50 txn/s, ETA 16s",
		"127.0.0.1:3307 applied 600 of the 1000 log transactions it lacked (60.0%), 400 to go, 50 txn/s, ETA 8s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the watch's output:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n== "); n < 1 || !strings.HasPrefix(out, "== ") {
		t.Errorf("refreshes not separated by '== time' lines:\n%s", out)
	}
	if !strings.Contains(e.String(), "no leader (retrying every 50ms)") {
		t.Errorf("the failed refresh is not on stderr: %q", e.String())
	}
}

func TestWatchIntervalTooShort(t *testing.T) {
	code, out := ctl("members", "--watch", "--interval", "10ms")
	if code != 2 || !strings.Contains(out, "--interval 10ms is too short") {
		t.Errorf("exit %d: %s", code, out)
	}
}

func TestCatchUpLineUnknownETA(t *testing.T) {
	now := time.Now()
	got := catchUpLine(api.CatchUp{Target: "h:1", Since: now.Add(-time.Second), Missing: 10, Total: 10, ETASeconds: -1}, now)
	want := "h:1 applied 0 of the 10 log transactions it lacked (0.0%), 10 to go, 0 txn/s, ETA unknown yet (waiting 1s)"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
