//go:build !binlogsvr_debug

package binlogsvr

import (
	"net/http"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestReleaseHasNoDebugEndpoints: a release build refuses --debug-api with
// an error that says how to get it, and its admin API has no route under
// /debug/ (a request there is a 404). tools/layers checks the other half:
// the release binary does not link binlogtest, which makes the synthetic
// transactions.
func TestReleaseHasNoDebugEndpoints(t *testing.T) {
	cfg := DefaultConfig()
	fs := pflag.NewFlagSet("binlogsvr", pflag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"--id", "1", "--data-dir", t.TempDir(), "--raft-addr", "127.0.0.1:1", "--members", "1=127.0.0.1:1", "--insecure", "--debug-api"}); err != nil {
		t.Fatal(err)
	}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "built without debug endpoints: build with -tags binlogsvr_debug") {
		t.Fatalf("--debug-api in a release build: %v; want the build-tag error", err)
	}

	s := fuzzServer(t)
	for _, x := range [][2]string{
		{http.MethodPost, "/debug/append?n=1"}, {http.MethodPost, "/debug/bench"},
		{http.MethodPost, "/debug/max-file-size"}, {http.MethodGet, "/debug/pprof/"},
	} {
		req, err := http.NewRequest(x[0], "https://127.0.0.1:7070"+x[1], nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, pattern := s.route(req); pattern != "" {
			t.Errorf("%s %s is routed to %q in a release build", x[0], x[1], pattern)
		}
	}
}
