// Package e2e tests the binlogsvr daemon as a process (tools/fleet) in front
// of real MariaDB and MySQL sources (tools/sandbox): admin API auth, disk
// full, rotation, raft frames. The daemon's pure checks stay in package
// binlogsvr.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

const wait = 60 * time.Second

// startFleet starts a real source and three real binlogsvr processes.
func startFleet(t *testing.T, flavor sandbox.Flavor, extra ...string) (*fleet.Fleet, *sandbox.Server) {
	t.Helper()
	src := sandboxtest.Start(t, sandbox.Options{Flavor: flavor, SemiSyncSource: true})
	user, pass := src.ReplUser()
	ctx := context.Background()
	f, err := fleet.Start(ctx, fleet.Options{Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
		ExtraArgs: append([]string{"--debug-api", "--snapshot-entries", "20", "--compaction-overhead", "5"}, extra...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			for _, m := range f.Members {
				t.Logf("member %d log: %s", m.ID, m.LogPath)
			}
		}
	})
	// The leader seeds the log's source from --source.
	if err := fleet.Poll(ctx, wait, func() error {
		l, err := f.Leader(ctx, wait)
		if err != nil {
			return err
		}
		st, err := f.Status(ctx, l, false)
		if err != nil {
			return err
		}
		if st.Epoch != 1 || st.Source != src.Addr() || st.Flavor != string(flavor) {
			return fmt.Errorf("epoch %d source %q flavor %q (source error: %s)", st.Epoch, st.Source, st.Flavor, st.SourceError)
		}
		return nil
	}); err != nil {
		t.Fatalf("the fleet did not seed its source: %v", err)
	}
	return f, src
}

func appendOn(t *testing.T, f *fleet.Fleet, n, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := fleet.Poll(ctx, wait, func() error {
		l, err := f.Leader(ctx, wait)
		if err != nil {
			return err
		}
		return f.Post(ctx, l, fmt.Sprintf("/debug/append?n=%d&size=%d", n, size), nil)
	})
	if err != nil {
		t.Fatalf("appending %d: %v", n, err)
	}
}

// converge waits until every running member holds byte-identical files
// (by SHA-256) and the same GTID state, and returns that state.
func converge(t *testing.T, f *fleet.Fleet) string {
	t.Helper()
	ctx := context.Background()
	var gtids string
	err := fleet.Poll(ctx, wait, func() error {
		var want string
		for _, m := range f.Members {
			if !m.Running() {
				continue
			}
			st, err := f.Status(ctx, m.ID, true)
			if err != nil {
				return err
			}
			files, err := f.Files(ctx, m.ID)
			if err != nil {
				return err
			}
			got := st.GTIDExecuted + "|"
			for _, fi := range files {
				got += fi.Name + "=" + fi.SHA256 + ","
			}
			if want == "" {
				want, gtids = got, st.GTIDExecuted
			} else if got != want {
				return fmt.Errorf("member %d holds %s, another %s", m.ID, got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("members did not converge: %v", err)
	}
	return gtids
}

func TestProcessesAppendStopKillRestart(t *testing.T) {
	f, src := startFleet(t, sandbox.MariaDB)
	ctx := context.Background()
	appendOn(t, f, 100, 200)
	converge(t, f)

	// A follower stops cleanly; appends go on; it restarts and catches up.
	l, _ := f.Leader(ctx, wait)
	follower := uint64(1)
	if l == 1 {
		follower = 2
	}
	if err := f.Stop(follower); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ { // many entries: the restarted member needs a snapshot
		appendOn(t, f, 20, 300)
	}
	if err := f.Restart(follower); err != nil {
		t.Fatal(err)
	}
	converge(t, f)

	// The leader is killed (-9); the others elect a leader and go on.
	l, _ = f.Leader(ctx, wait)
	if err := f.Kill(l); err != nil {
		t.Fatal(err)
	}
	appendOn(t, f, 50, 200)
	if err := f.Restart(l); err != nil {
		t.Fatal(err)
	}
	gtids := converge(t, f)
	want := fmt.Sprintf("0-%d-350", srcServerID(t, src))
	if gtids != want {
		t.Fatalf("GTID state %q, want %q", gtids, want)
	}
	// NB: a restarted member records its new admin address in the log
	// once it knows a leader (registerLoop); until then the others' status
	// says so for it. Wait for that, briefly.
	var st binlogsvr.Status
	if err := fleet.Poll(ctx, 15*time.Second, func() error {
		var err error
		if st, err = f.Status(ctx, l, false); err != nil {
			return err
		}
		for _, m := range st.Members {
			if m.Error != "" {
				return fmt.Errorf("member %+v", m)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 3 || st.Transactions != 350 || st.LastFile == "" || st.LastPosition == 0 {
		t.Fatalf("status %+v", st)
	}
	for _, m := range st.Members {
		if m.Applied == 0 || m.Role != "logger" {
			t.Fatalf("member %+v", m)
		}
	}
	checkBinlogctl(t, f, src)
}

// checkBinlogctl runs the real binlogctl against a member: the JSON field
// names (an operator-facing contract), and the table.
func checkBinlogctl(t *testing.T, f *fleet.Fleet, src *sandbox.Server) {
	t.Helper()
	bin, err := fleet.Tool(t.TempDir(), "binlogctl")
	if err != nil {
		t.Fatal(err)
	}
	// NB: during an election status answers 503 with the reason; an
	// operator retries, and so does this test, briefly.
	var out []byte
	err = fleet.Poll(context.Background(), 15*time.Second, func() error {
		var err error
		out, err = exec.Command(bin, append(f.CtlArgs(), "--admin", f.Member(2).AdminAddr, "status", "--json")...).Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Logf("binlogctl status --json: %v: %s", err, ee.Stderr)
		}
		return err
	})
	if err != nil {
		t.Fatalf("binlogctl status --json: %v", err)
	}
	var js map[string]any
	if err := json.Unmarshal(out, &js); err != nil {
		t.Fatalf("binlogctl status --json is not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"leader", "epoch", "source", "gtid_executed", "last_file", "last_position", "members"} {
		if _, ok := js[k]; !ok {
			t.Fatalf("binlogctl status --json lacks %q:\n%s", k, out)
		}
	}
	if js["source"] != src.Addr() || js["epoch"].(float64) != 1 {
		t.Fatalf("source %v epoch %v", js["source"], js["epoch"])
	}
	for _, m := range js["members"].([]any) {
		mm := m.(map[string]any)
		for _, k := range []string{"id", "role", "raft_addr", "applied"} {
			if _, ok := mm[k]; !ok {
				t.Fatalf("member lacks %q: %v", k, mm)
			}
		}
	}
	table, err := exec.Command(bin, append(f.CtlArgs(), "--admin", f.Member(2).AdminAddr, "status")...).Output()
	if err != nil {
		t.Fatalf("binlogctl status: %v", err)
	}
	if !strings.Contains(string(table), "GTID executed:") || strings.Count(string(table), " logger ") != 3 {
		t.Fatalf("binlogctl status table:\n%s", table)
	}
	// A dead admin address gets a message that says what to check.
	out, err = exec.Command(bin, append(f.CtlArgs(), "--admin", "127.0.0.1:1", "status")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is binlogsvr running") {
		t.Fatalf("binlogctl against nothing: %v: %s", err, out)
	}
}

func srcServerID(t *testing.T, src *sandbox.Server) uint32 {
	t.Helper()
	r, err := src.Exec(context.Background(), "SELECT @@server_id")
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.GetInt(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

func TestProcessRefusesBadSourceCredentials(t *testing.T) {
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB})
	user, _ := src.ReplUser()
	ctx := context.Background()
	f, err := fleet.Start(ctx, fleet.Options{Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: "wrong-password"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The daemon stays up, reports why in /status, and keeps retrying.
	err = fleet.Poll(ctx, wait, func() error {
		l, err := f.Leader(ctx, wait)
		if err != nil {
			return err
		}
		st, err := f.Status(ctx, l, true)
		if err != nil {
			return err
		}
		if st.SourceError == "" {
			return fmt.Errorf("no source error reported yet")
		}
		if st.Epoch != 0 {
			return fmt.Errorf("seeded with a wrong password?")
		}
		t.Logf("reported: %s", st.SourceError)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Members {
		if !m.Running() {
			t.Fatalf("member %d exited on a wrong source password", m.ID)
		}
	}
}
