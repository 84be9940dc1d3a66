package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// Data directories an older build wrote open under this build: a fleet
// runs BINLOGSVR_OLD_BIN (a debug build of an older commit), appends,
// stops, and restarts every member on its data directory with this
// build's binary; the members hold the same files and GTIDs as before and
// go on appending. Skipped without BINLOGSVR_OLD_BIN:
//
//	(cd OLD_CHECKOUT && go build -tags binlogsvr_debug -o /tmp/old/binlogsvr ./binlogsvr/cmd/binlogsvr)
//	BINLOGSVR_OLD_BIN=/tmp/old/binlogsvr BINLOGSVR_BIN=$PWD/bin/debug go test ./binlogsvr/e2e/ -run TestOldDataDirOpens -count=1
func TestOldDataDirOpens(t *testing.T) {
	old := os.Getenv("BINLOGSVR_OLD_BIN")
	if old == "" {
		t.Skip("BINLOGSVR_OLD_BIN is not set")
	}
	bin, err := fleet.Binary(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// NB: the fleet runs the binary at link on every start: the link is
	// moved from the old build to this one between stop and restart.
	link := filepath.Join(t.TempDir(), "binlogsvr")
	if err := os.Symlink(old, link); err != nil {
		t.Fatal(err)
	}
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true})
	user, pass := src.ReplUser()
	f := startSeededFleet(t, fleet.Options{Bin: link, Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
		Insecure: true, ExtraArgs: []string{"--debug-api"}})
	appendOn(t, f, 50, 200)
	before := converge(t, f)
	for _, m := range f.Members {
		if err := f.Stop(m.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Members {
		if err := f.Restart(m.ID); err != nil {
			t.Fatal(err)
		}
	}
	if after := converge(t, f); after != before {
		t.Fatalf("GTID state %q under the new binary, %q under the old", after, before)
	}
	appendOn(t, f, 10, 200)
	converge(t, f)
	st, err := f.LeaderStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Transactions != 60 {
		t.Fatalf("%d transactions after the restart and 10 more, want 60", st.Transactions)
	}
	t.Logf("old data directories opened: %s, then %d transactions", before, st.Transactions)
}
