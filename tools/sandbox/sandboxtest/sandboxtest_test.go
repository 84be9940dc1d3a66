package sandboxtest_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// fakeTB records Fatalf; any other method (Skip included) panics on the nil embedded TB.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// Missing binaries fail the test with the install command; they never skip it.
func TestMissingBinariesFail(t *testing.T) {
	t.Setenv("BINLOGSVR_MYSQL_CHROOT", t.TempDir())
	tb := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sandboxtest.Start(tb, sandbox.Options{Flavor: sandbox.MySQL})
	}()
	<-done
	if !strings.Contains(tb.fatal, "run: sudo bash tools/sandbox/install.sh") {
		t.Fatalf("Fatalf message %q", tb.fatal)
	}
}

func TestStart(t *testing.T) {
	for _, f := range []sandbox.Flavor{sandbox.MariaDB, sandbox.MySQL} {
		var s *sandbox.Server
		t.Run(string(f), func(t *testing.T) {
			s = sandboxtest.Start(t, sandbox.Options{Flavor: f})
			if !s.Running() {
				t.Fatal("not running")
			}
		})
		// The subtest's cleanup closed the server.
		if s == nil || s.Running() {
			t.Errorf("%s: server still running after its test ended", f)
		}
	}
}
