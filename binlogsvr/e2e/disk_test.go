package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// mountTmpfs mounts a tmpfs of size at dir until the test ends.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (CI runs as root)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	// NB: registered before the fleet's cleanup, so it runs after it
	// (cleanups run last first): the member is stopped before the unmount.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// TestProcessesDiskFull fills one member's disk (a 48 MiB tmpfs) under
// appends: it exits with ExitDiskFull and one clear line, no panic; the
// other two go on committing; once the tmpfs grows it restarts and holds
// the same files as the others. Its data directory is 0700/0600 and its
// free space is exported and warned about.
func TestProcessesDiskFull(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "member3")
	mountTmpfs(t, full, "48m")
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true})
	user, pass := src.ReplUser()
	ctx := context.Background()
	f, err := fleet.StartEach(ctx, fleet.Options{Dir: dir, Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass, Insecure: true,
		ExtraArgs: []string{"--debug-api"}}, func(id uint64) fleet.MemberSpec {
		if id == 3 {
			// NB: no reserve: this member must find its disk full whether
			// it leads or follows. The warning shows once 32 MiB are used.
			return fleet.MemberSpec{Args: []string{"--disk-reserve-bytes", "0", "--disk-warn-bytes", strconv.Itoa(16 << 20)}}
		}
		return fleet.MemberSpec{}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			t.Log(f.LogTails(30))
		}
	})
	if err := fleet.Poll(ctx, wait, func() error {
		st, err := f.LeaderStatus(ctx)
		if err != nil {
			return err
		}
		if st.Epoch != 1 {
			return fmt.Errorf("epoch %d (source error: %s)", st.Epoch, st.SourceError)
		}
		return nil
	}); err != nil {
		t.Fatalf("the fleet did not seed its source: %v", err)
	}
	st, err := f.Status(ctx, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	if st.DiskState != "ok" || st.DiskFreeBytes < 40<<20 || st.DiskFreeBytes > 48<<20 {
		t.Fatalf("member 3's disk before the load: state %q, %d bytes free; want ok, 40-48 MiB", st.DiskState, st.DiskFreeBytes)
	}
	if v := metric(t, f.Member(3).AdminAddr, `binlogsvr_disk_free_bytes{dir="`+full+`"}`); v < 40<<20 || v > 48<<20 {
		t.Fatalf("binlogsvr_disk_free_bytes of member 3: %v", v)
	}

	// Appends until member 3 is gone (at most ~80 MiB of transactions).
	// Once the tmpfs has less than --disk-warn-bytes free, the appends
	// wait for member 3 to report it (it measures every 2 s; on a quiet
	// machine the appends fill the rest in less).
	sawLow := false
	for i := 0; i < 40 && f.Member(3).Running(); i++ {
		lctx, cancel := context.WithTimeout(ctx, wait)
		l, err := f.Leader(lctx, wait)
		if err == nil {
			err = f.Post(lctx, l, "/debug/append?n=32&size=65536", nil)
		}
		cancel()
		if err != nil {
			// NB: member 3 may lead and be exiting on its full disk with
			// this append in flight: give it the time to exit.
			_ = fleet.Poll(ctx, 10*time.Second, func() error {
				if f.Member(3).Running() {
					return errors.New("member 3 runs")
				}
				return nil
			})
			if f.Member(3).Running() {
				t.Fatalf("append %d with member 3 running: %v", i, err)
			}
		}
		var sfs syscall.Statfs_t
		if err := syscall.Statfs(full, &sfs); err != nil {
			t.Fatal(err)
		}
		if sawLow || sfs.Bavail*uint64(sfs.Bsize) >= 16<<20 || !f.Member(3).Running() {
			continue
		}
		if err := fleet.Poll(ctx, 10*time.Second, func() error {
			st, err := f.Status(ctx, 3, true)
			if err != nil {
				return err
			}
			if st.DiskState != "low" {
				return fmt.Errorf("member 3's disk state %q with %d bytes free", st.DiskState, st.DiskFreeBytes)
			}
			return nil
		}); err != nil {
			t.Fatalf("below --disk-warn-bytes: %v", err)
		}
		sawLow = true
	}
	if err := fleet.Poll(ctx, 15*time.Second, func() error {
		if f.Member(3).Running() {
			return fmt.Errorf("member 3 still runs")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code := f.Member(3).ExitCode(); code != binlogsvr.ExitDiskFull {
		t.Fatalf("member 3 exited with %d, want %d", code, binlogsvr.ExitDiskFull)
	}
	logb, err := os.ReadFile(f.Member(3).LogPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(logb)
	for _, bad := range []string{"panic:", "goroutine "} {
		if strings.Contains(log, bad) {
			t.Fatalf("member 3's log holds %q:\n%s", bad, tail(log, 40))
		}
	}
	line := regexp.MustCompile(`disk full: no space left on device \w+ \S+ in ` + regexp.QuoteMeta(full) + ` \(\d+ bytes free\); free space, then restart the member; ` +
		`nothing committed is lost: every acknowledged entry was fsync'd before the ACK`)
	if n := len(line.FindAllString(log, -1)); n != 1 {
		t.Fatalf("member 3's log holds the disk-full line %d times, want once:\n%s", n, tail(log, 20))
	}
	if !strings.Contains(log, "free space is below --disk-warn-bytes") {
		t.Fatalf("member 3 never warned of low space:\n%s", tail(log, 20))
	}
	t.Logf("member 3 exited %d: %s", binlogsvr.ExitDiskFull, line.FindString(log))

	// The two others go on committing.
	before := leaderTxns(t, f)
	appendOn(t, f, 50, 1000)
	if after := leaderTxns(t, f); after < before+50 {
		t.Fatalf("the others committed %d transactions, want 50", after-before)
	}

	// Space returns; the member restarts and catches up.
	if out, err := exec.Command("mount", "-o", "remount,size=512m", full).CombinedOutput(); err != nil {
		t.Fatalf("growing the tmpfs: %v: %s", err, out)
	}
	if err := f.Restart(3); err != nil {
		t.Fatal(err)
	}
	appendOn(t, f, 20, 1000)
	converge(t, f)
	checkDataModes(t, full)
	checkDataModes(t, f.Member(1).DataDir)
}

func leaderTxns(t *testing.T, f *fleet.Fleet) uint64 {
	t.Helper()
	st, err := f.LeaderStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Transactions
}

// metric reads one sample of GET /metrics.
func metric(t *testing.T, addr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, sample+" "); ok {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return x
		}
	}
	t.Fatalf("no %s in /metrics (status %s)", sample, resp.Status)
	return 0
}

// checkDataModes fails for any path under a member's data dir that is not
// 0700 (directories) or 0600 (files).
func checkDataModes(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		n++
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d paths under %s", n, dir)
	}
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestProcessesDiskReserve: a leader whose disk has less free space than
// --disk-reserve-bytes proposes nothing (an append waits) and says so in
// its status; once space is freed the waiting append commits.
func TestProcessesDiskReserve(t *testing.T) {
	dir := t.TempDir()
	for id := 1; id <= 3; id++ {
		mountTmpfs(t, filepath.Join(dir, fmt.Sprintf("member%d", id)), "160m") // NB: tan reserves its 64 MiB log file (fallocate)
	}
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true})
	user, pass := src.ReplUser()
	ctx := context.Background()
	f, err := fleet.Start(ctx, fleet.Options{Dir: dir, Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass, Insecure: true,
		ExtraArgs: []string{"--debug-api", "--disk-reserve-bytes", strconv.Itoa(32 << 20), "--disk-warn-bytes", strconv.Itoa(48 << 20), "--raft-log-prefill=false"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			t.Log(f.LogTails(30))
		}
	})
	appendOn(t, f, 10, 1000)
	l, err := f.Leader(ctx, wait)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the leader's disk to 8 MiB above nothing: below the reserve.
	var sfs syscall.Statfs_t
	ldir := f.Member(l).DataDir
	if err := syscall.Statfs(ldir, &sfs); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(ldir, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(sfs.Bavail)*sfs.Bsize-8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fleet.Poll(ctx, 15*time.Second, func() error {
		st, err := f.Status(ctx, l, true)
		if err != nil {
			return err
		}
		if st.DiskState != "reserve" || st.DiskFreeBytes > 32<<20 {
			return fmt.Errorf("leader %d: disk_state %q, %d bytes free", l, st.DiskState, st.DiskFreeBytes)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before := leaderTxns(t, f)
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = f.Post(actx, l, "/debug/append?n=1&size=1000", nil)
	cancel()
	if err == nil {
		t.Fatal("an append committed on a leader below --disk-reserve-bytes")
	}
	if after := leaderTxns(t, f); after != before {
		t.Fatalf("the log grew from %d to %d transactions while the leader's disk was below the reserve", before, after)
	}
	if st, _ := f.Status(ctx, l, true); !f.Member(l).Running() || st.Leader != l {
		t.Fatalf("leader %d: running %v, leader now %d", l, f.Member(l).Running(), st.Leader)
	}
	logb, _ := os.ReadFile(f.Member(l).LogPath)
	if !strings.Contains(string(logb), "below --disk-reserve-bytes") {
		t.Fatalf("the leader did not log the pause:\n%s", tail(string(logb), 20))
	}
	// Space returns: appends go on.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	appendOn(t, f, 5, 1000)
	if st, err := f.Status(ctx, l, true); err != nil || st.DiskState == "reserve" {
		t.Fatalf("leader %d after space returned: %+v, %v", l, st.DiskState, err)
	}
	converge(t, f)
}
