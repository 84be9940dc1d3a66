package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// holdTTL is the test fleet's --replica-hold-ttl: long enough for the
// steps between a disconnection and the checks, under load.
const holdTTL = 60 * time.Second

// replica is a dump client with a server_id and a uuid, like a MySQL or
// MariaDB replica's IO thread.
func (r *rig) replica(member uint64, serverID uint32, uuid, file string) *dumptest.DumpClient {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(bg(), 30*time.Second)
	defer cancel()
	c, err := dumptest.Dial(ctx, r.f.Member(member).DumpAddr, "repl", fleet.DumpPassword)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, q := range []string{"SET @master_binlog_checksum=@@global.binlog_checksum", "SET @slave_uuid='" + uuid + "'"} {
		if _, err := c.Exec(q); err != nil {
			r.t.Fatalf("%s: %v", q, err)
		}
	}
	if err := c.Send(0x12, dumptest.DumpPayload(4, 0, serverID, file)); err != nil { // COM_BINLOG_DUMP
		r.t.Fatal(err)
	}
	return c
}

// holdRow is the line of binlogctl members' replica holds with uuid.
func holdRow(out, uuid string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, uuid) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// purge runs binlogctl purge on member id and returns its exit code.
func (r *rig) purge(id uint64, file string) (int, string) {
	out, err := r.binlogctl(id, "purge", file)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out
	case errors.As(err, &ee):
		return ee.ExitCode(), out
	}
	r.t.Fatalf("binlogctl purge: %v", err)
	return 0, ""
}

// TestReplicaHoldOutlivesDisconnect is the replica throttled by
// relay_log_space_limit: it stops reading in the middle of a big file,
// --dump-write-timeout drops it, and that file and the later ones stay
// held from binlogctl purge for --replica-hold-ttl: a purge past it goes as
// far as the hold and exits 3 naming it, across a leader change; once the
// ttl has passed since it was last seen, the purge goes all the way (exit
// 0). Reconnected (to another member) and reading on, its hold moves with
// it (binlogctl members).
func TestReplicaHoldOutlivesDisconnect(t *testing.T) {
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB})
	r := newRig(t, src, func(uint64) fleet.MemberSpec { return fleet.MemberSpec{Serve: true} },
		"--debug-api", "--replica-hold-ttl", holdTTL.String(), "--dump-write-timeout", "2s")
	if err := fleet.Poll(bg(), wait, func() error {
		st, err := r.f.Status(bg(), r.leader(), true)
		if err != nil || st.Epoch != 1 {
			return fmt.Errorf("not seeded: %+v %v", st.SourceError, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	post := func(path string) {
		t.Helper()
		if err := fleet.Poll(bg(), wait, func() error { return r.f.Post(bg(), r.leader(), path, nil) }); err != nil {
			t.Fatal(err)
		}
	}
	// Small files, one big file (9 MiB: more than the sockets between a
	// member and a replica that stops reading take in, about 2 MiB here, so
	// its dump blocks there), small files.
	post("/debug/max-file-size?bytes=4096")
	for range 2 {
		post("/debug/append?n=50&size=400")
	}
	post(fmt.Sprintf("/debug/max-file-size?bytes=%d", 1<<30))
	for range 3 {
		post("/debug/append?n=50&size=60000")
	}
	post("/debug/max-file-size?bytes=4096")
	for range 3 {
		post("/debug/append?n=50&size=400")
	}
	// NB: the leader's files: the appends are applied there when the posts
	// return, on a follower perhaps not yet.
	var big, last string
	for _, f := range r.files(r.leader()) {
		if f.Size > 8<<20 {
			big = f.Name
		}
		last = f.Name
	}
	var bigN int
	if _, err := fmt.Sscanf(big, "binlog.%06d", &bigN); err != nil || bigN < 3 {
		t.Fatalf("the big file is %q (%v), the last %s", big, err, last)
	}
	target := fmt.Sprintf("binlog.%06d", bigN+3)
	t.Logf("files binlog.000001..%s, the big one %s; purges ask for %s", last, big, target)

	const sid, uuid = 4242, "4242aaaa-0000-4000-8000-000000004242"
	c := r.replica(1, sid, uuid, "binlog.000001")
	for range 5 {
		if _, err := c.Next(); err != nil {
			t.Fatal(err)
		}
	}
	// It reads no more: the member drops it after --dump-write-timeout.
	// tDisc is a lower bound on the disconnection: the start of the last
	// look that did not find the member's log line yet.
	t0 := time.Now()
	tDisc := t0
	if err := fleet.Poll(bg(), wait, func() error {
		look := time.Now()
		if !r.logHas(1, "replica disconnected: the group purge keeps its files") {
			tDisc = look
			return errors.New("member 1 has not dropped the stalled replica yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	t.Logf("the stalled replica was dropped and its hold recorded after %v", tDisc.Sub(t0).Round(time.Millisecond))
	out := r.mustCtl(2, "members")
	if row := holdRow(out, uuid); !strings.HasPrefix(row, fmt.Sprint(sid)) || !strings.Contains(row, big+":") || !strings.Contains(row, "disconnected") {
		t.Fatalf("binlogctl members does not show the hold on %s:\n%s", big, out)
	}
	held := func(ask uint64, partial bool) {
		t.Helper()
		code, out := r.purge(ask, target)
		if code != 3 || !strings.Contains(out, fmt.Sprintf("%s is held by replica server_id %d", big, sid)) || !strings.Contains(out, "disconnected") ||
			(partial && !strings.Contains(out, "purged below "+big+" only")) {
			t.Fatalf("purge on member %d: exit %d, want 3 and a hold on %s:\n%s", ask, code, big, out)
		}
		t.Logf("purge on member %d: exit %d: %s", ask, code, strings.TrimSpace(out))
	}
	held(2, true)
	if err := fleet.Poll(bg(), wait, func() error {
		if got := r.files(3); got[0].Name != big {
			return fmt.Errorf("member 3 starts at %s", got[0].Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// A leader change: the hold is in the log, not in the old leader.
	old := r.leader()
	to := old%3 + 1
	r.mustCtl(to, "transfer-leader", fmt.Sprint(to))
	r.waitLeader(to, "transfer-leader")
	t.Logf("leader %d -> %d", old, to)
	held(old, false)

	// The ttl passes: the hold expires, and the purge goes all the way.
	if err := fleet.Poll(bg(), holdTTL+wait, func() error {
		if code, out := r.purge(2, target); code != 0 {
			return fmt.Errorf("purge after %v: exit %d: %s", time.Since(tDisc).Round(time.Second), code, out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The member stamps the hold just before it logs the line: allow
	// those few milliseconds.
	if el := time.Since(tDisc); el < holdTTL-50*time.Millisecond {
		t.Fatalf("the hold went after %v, before --replica-hold-ttl %v", el, holdTTL)
	}
	t.Logf("the hold expired; the purge went all the way %v after the disconnection (ttl %v)", time.Since(tDisc).Round(time.Second), holdTTL)
	if out := r.mustCtl(1, "members"); !strings.Contains(out, "Replica holds: none") {
		t.Fatalf("members still lists a hold:\n%s", out)
	}

	// It reconnects to another member and reads on: the hold follows it.
	c = r.replica(3, sid, uuid, target)
	defer c.Close()
	if _, err := c.Next(); err != nil {
		t.Fatal(err)
	}
	if err := fleet.Poll(bg(), wait, func() error {
		// NB: the log's last file now: the leader change rotated past last.
		fs := r.files(3)
		end := fs[len(fs)-1].Name
		out := r.mustCtl(2, "members")
		if row := holdRow(out, uuid); !strings.Contains(row, end+":") || !strings.HasSuffix(row, "connected") {
			return fmt.Errorf("the hold has not followed the replica to %s:\n%s", end, out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
