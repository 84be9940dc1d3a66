//go:build upgrade

package e2e

import (
	"fmt"
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
// go on appending. Built with the tag upgrade only: `make test-upgrade
// UPGRADE_FROM=COMMIT` builds the old binary from that commit and runs it.
func TestOldDataDirOpens(t *testing.T) {
	old := os.Getenv("BINLOGSVR_OLD_BIN")
	if old == "" {
		t.Fatal("BINLOGSVR_OLD_BIN is not set: run make test-upgrade UPGRADE_FROM=COMMIT")
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
	// NB: polled: right after a restart a member may answer before it has
	// opened its log (an empty state on every member agrees too).
	if err := fleet.Poll(t.Context(), wait, func() error {
		if after := converge(t, f); after != before {
			return fmt.Errorf("GTID state %q under the new binary, %q under the old", after, before)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
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
