// Package sandboxtest starts tools/sandbox servers from tests.
package sandboxtest

import (
	"context"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// Start starts a sandbox server for the test and registers its Close with t.Cleanup, which runs
// even when the test fails. When the flavor's binaries are missing it fails the test with the
// install instructions: tests that need a real server never skip silently. Without o.Logf, progress
// goes to t.Logf.
func Start(t testing.TB, o sandbox.Options) *sandbox.Server {
	t.Helper()
	if err := sandbox.Available(o.Flavor); err != nil {
		t.Fatalf("%v", err)
	}
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := sandbox.Start(ctx, o)
	if err != nil {
		t.Fatalf("start %s sandbox: %v", o.Flavor, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s sandbox %s (server_id %d) logs:%s", s.Flavor(), s.Addr(), s.ServerID(), s.LogTail(30))
		}
		if err := s.Close(); err != nil {
			t.Errorf("close %s sandbox %s: %v", s.Flavor(), s.Addr(), err)
		}
	})
	return s
}
