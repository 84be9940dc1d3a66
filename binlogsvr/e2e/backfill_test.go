package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// historySource is a real source with history: several binlog files, the
// oldest of them purged. Its purge point is where a backup taken before
// the purge would stand.
type historySource struct {
	t    *testing.T
	src  *sandbox.Server
	flav binlog.Flavor
	// setup are the statements that made the data as of the purge point,
	// to load a replica "from an old backup".
	setup []string
	// purgePoint is the source's executed GTIDs when the older files were
	// purged: what it can no longer send.
	purgePoint string
}

// one runs a query on s and returns its first value.
func one(t *testing.T, s *sandbox.Server, q string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := s.Exec(ctx, q)
	if err != nil {
		t.Fatalf("%s on %s: %v", q, s.Addr(), err)
	}
	if r.RowNumber() == 0 {
		return ""
	}
	v, _ := r.GetString(0, 0)
	return strings.ReplaceAll(v, "\n", "")
}

// binaryLogs returns the source's files and their total size.
func binaryLogs(t *testing.T, s *sandbox.Server) ([]string, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := s.Exec(ctx, "SHOW BINARY LOGS")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var total uint64
	for i := 0; i < r.RowNumber(); i++ {
		n, _ := r.GetString(i, 0)
		size, _ := r.GetUint(i, 1)
		names = append(names, n)
		total += size
	}
	return names, total
}

// rows are multi-row INSERTs of ~1 KB rows, ids from..from+n-1.
func rows(table string, from, n int) []string {
	var out []string
	for i := from; i < from+n; i += 50 {
		var vals []string
		for j := i; j < min(i+50, from+n); j++ {
			vals = append(vals, fmt.Sprintf("(%d, REPEAT('%c', 1000), %d)", j, 'a'+rune(j%26), j*7))
		}
		out = append(out, "INSERT INTO "+table+" (id, v, n) VALUES "+strings.Join(vals, ", "))
	}
	return out
}

// newHistorySource starts a source (semi-sync off while the history is
// written, as before any fleet existed) and gives it history: files
// before the purge point (purged) and files after it (held), about
// heldRows KB of rows in the held files.
func newHistorySource(t *testing.T, fl sandbox.Flavor, heldRows int) *historySource {
	t.Helper()
	src := sandboxtest.Start(t, sandbox.Options{Flavor: fl, SemiSyncSource: true})
	flav, err := binlog.FlavorByName(string(fl))
	if err != nil {
		t.Fatal(err)
	}
	h := &historySource{t: t, src: src, flav: flav}
	dumptest.Exec(t, src, "SET GLOBAL "+flav.SemiSyncSourceVar()+" = OFF")
	h.setup = append([]string{"CREATE DATABASE bf", "CREATE TABLE bf.t (id INT PRIMARY KEY, v VARCHAR(1000), n INT) ENGINE=InnoDB"}, rows("bf.t", 1, 300)...)
	dumptest.Exec(t, src, h.setup[:4]...)
	dumptest.Exec(t, src, "FLUSH BINARY LOGS")
	dumptest.Exec(t, src, h.setup[4:]...)
	more := []string{"UPDATE bf.t SET n = n + 1 WHERE id % 3 = 0", "DELETE FROM bf.t WHERE id % 10 = 0"}
	h.setup = append(h.setup, more...)
	dumptest.Exec(t, src, more...)
	dumptest.Exec(t, src, "FLUSH BINARY LOGS")
	files, _ := binaryLogs(t, src)
	h.purgePoint = one(t, src, flav.BinlogGTIDsQuery())
	// NB: MariaDB keeps a file until its binlog checkpoint is written,
	// shortly after the FLUSH: PURGE until the older files are gone.
	to := files[len(files)-1]
	if err := fleet.Poll(context.Background(), wait, func() error {
		dumptest.Exec(t, src, "PURGE BINARY LOGS TO '"+to+"'")
		if oldest := mustOldest(t, src); oldest != to {
			return fmt.Errorf("the oldest file is %s after PURGE BINARY LOGS TO '%s'", oldest, to)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// After the purge point: the history the source still holds, in
	// several files.
	for i := 0; i < 3; i++ {
		dumptest.Exec(t, src, rows("bf.t", 1000+i*heldRows/3, heldRows/3)...)
		dumptest.Exec(t, src, fmt.Sprintf("UPDATE bf.t SET n = n * 2 WHERE id %% 7 = %d", i), fmt.Sprintf("DELETE FROM bf.t WHERE id %% 11 = %d", i))
		dumptest.Exec(t, src, "FLUSH BINARY LOGS")
	}
	dumptest.Exec(t, src, "CREATE TABLE bf.after (id INT PRIMARY KEY)", "INSERT INTO bf.after VALUES (1), (2)")
	if got := one(t, src, flav.PurgedGTIDsQuery(mustOldest(t, src))); !sameSet(t, flav, got, h.purgePoint) {
		t.Fatalf("the source's purged set %q, want the purge point %q", got, h.purgePoint)
	}
	// Semi-sync on before the fleet attaches, as in production.
	dumptest.Exec(t, src, "SET GLOBAL "+flav.SemiSyncSourceVar()+" = ON")
	return h
}

func mustOldest(t *testing.T, s *sandbox.Server) string {
	t.Helper()
	files, _ := binaryLogs(t, s)
	if len(files) == 0 {
		t.Fatal("no binary log")
	}
	return files[0]
}

func sameSet(t *testing.T, flav binlog.Flavor, a, b string) bool {
	t.Helper()
	sa, err := flav.ParseSet(a)
	if err != nil {
		t.Fatalf("%q: %v", a, err)
	}
	sb, err := flav.ParseSet(b)
	if err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return sa.Equal(sb)
}

// oldBackupReplica starts a server holding the data as of the purge point,
// loaded without binlogging, its GTID state set to the purge point, as a
// replica restored from a backup taken then.
func (h *historySource) oldBackupReplica() *sandbox.Server {
	t := h.t
	t.Helper()
	rep := sandboxtest.Start(t, sandbox.Options{Flavor: h.src.Flavor()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := rep.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range append([]string{"SET SESSION sql_log_bin = 0"}, h.setup...) {
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if rep.Flavor() == sandbox.MariaDB {
		dumptest.Exec(t, rep, "SET GLOBAL gtid_slave_pos = '"+h.purgePoint+"'")
	} else {
		dumptest.Exec(t, rep, "RESET BINARY LOGS AND GTIDS", "SET GLOBAL gtid_purged = '"+h.purgePoint+"'")
	}
	return rep
}

// startHistoryFleet starts three members on h's source with the given
// --source-start ("" for the default) and extra flags.
func startHistoryFleet(t *testing.T, h *historySource, start string, extra ...string) *fleet.Fleet {
	t.Helper()
	user, pass := h.src.ReplUser()
	f, err := fleet.Start(context.Background(), fleet.Options{Dir: t.TempDir(), Members: 3, Source: h.src.Addr(), SourceUser: user, SourcePassword: pass,
		SourceStart: start, ExtraArgs: append([]string{"--dump-addr", "127.0.0.1:0", "--dump-user", dumptest.DumpUser}, extra...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(f.LogTails(40))
		}
		f.Close()
	})
	return f
}

// TestBackfill (MySQL 9.7 and MariaDB 10.11): a fleet attached with the
// default --source-start (oldest) to a source with history copies every
// binlog the source still holds: its first file starts at the source's
// purged set; a replica restored from a backup as of the purge point
// replicates from the fleet and ends with the source's data; /status and
// binlogctl status show the source's purged range and the backfill's
// progress while it runs and once done.
func TestBackfill(t *testing.T) {
	for _, fl := range []sandbox.Flavor{sandbox.MySQL, sandbox.MariaDB} {
		t.Run(string(fl), func(t *testing.T) { backfill(t, fl) })
	}
}

func backfill(t *testing.T, fl sandbox.Flavor) {
	h := newHistorySource(t, fl, 3000)
	files, total := binaryLogs(t, h.src)
	executed := one(t, h.src, h.flav.BinlogGTIDsQuery())
	t.Logf("source %s: %d files held (%s..%s), %d bytes; purged %q; executed %q", fl, len(files), files[0], files[len(files)-1], total, h.purgePoint, executed)
	// NB: a delay per transaction so that the backfill lasts long enough
	// to be seen running.
	f := startHistoryFleet(t, h, "", "--debug-api", "--debug-commit-delay", "20ms", "--source-status-interval", "500ms")
	bin, err := fleet.Tool(t.TempDir(), "binlogctl")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var running *api.BackfillStatus
	var runningText string
	err = fleet.Poll(ctx, wait, func() error {
		st, err := f.LeaderStatus(ctx)
		if err != nil {
			return err
		}
		if st.Ingest == nil || st.Ingest.Backfill == nil {
			return fmt.Errorf("no backfill yet (source error %q, ingest %+v)", st.SourceError, st.Ingest)
		}
		b := st.Ingest.Backfill
		if !b.Active {
			return nil // NB: done; checked below
		}
		if running == nil && b.ReadBytes > 0 && b.RateBytesPerSecond > 0 {
			running = b
			out, _ := exec.Command(bin, append(f.CtlArgs(), "--admin", f.Member(st.ID).AdminAddr, "status")...).CombinedOutput()
			runningText = string(out)
		}
		return fmt.Errorf("backfill running: %+v", b)
	})
	if err != nil {
		t.Fatalf("the backfill did not finish: %v", err)
	}
	if running == nil {
		t.Fatal("the backfill was never seen running")
	}
	if running.TotalBytes != total || running.Files != len(files) || running.ReadBytes >= total || running.ETASeconds <= 0 || running.FromFile != files[0] {
		t.Errorf("the running backfill %+v; want total %d of %d files from %s, read below it, an ETA", running, total, len(files), files[0])
	}
	if !strings.Contains(runningText, "Backfill:       reading the source's binlog: ") || !strings.Contains(runningText, "Source history: oldest file "+files[0]) {
		t.Errorf("binlogctl status while backfilling:\n%s", runningText)
	}
	gtids := converge(t, f)
	if !sameSet(t, h.flav, gtids, executed) {
		t.Fatalf("the fleet holds %q, the source executed %q", gtids, executed)
	}
	st, err := f.LeaderStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in := st.Ingest
	if in.SourceOldestFile != files[0] || !sameSet(t, h.flav, in.SourcePurged, h.purgePoint) {
		t.Errorf("status: source oldest file %q purged %q; want %s and %q", in.SourceOldestFile, in.SourcePurged, files[0], h.purgePoint)
	}
	b := in.Backfill
	if b == nil || b.Active || b.Finished.IsZero() || b.ReadBytes < b.TotalBytes || b.TotalBytes != total || b.RateBytesPerSecond <= 0 || b.ETASeconds != 0 {
		t.Errorf("status: the backfill once done %+v; want inactive, finished, %d bytes read", b, total)
	}
	fleetFiles, err := f.Files(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(t, h.flav, fleetFiles[0].StartGTIDs, h.purgePoint) {
		t.Fatalf("the fleet's first file %s starts at %q; want the source's purged set %q", fleetFiles[0].Name, fleetFiles[0].StartGTIDs, h.purgePoint)
	}
	t.Logf("fleet: %d files, %s starts at %q; backfill %d bytes at %.0f B/s", len(fleetFiles), fleetFiles[0].Name, fleetFiles[0].StartGTIDs, b.ReadBytes, b.RateBytesPerSecond)
	out, err := exec.Command(bin, append(f.CtlArgs(), "--admin", f.Member(st.ID).AdminAddr, "status")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Backfill:       done ") {
		t.Errorf("binlogctl status once done: %v\n%s", err, out)
	}

	// A replica restored from a backup as of the purge point replicates
	// from the fleet.
	rep := h.oldBackupReplica()
	dumptest.PointReplica(t, rep, st.DumpAddr, dumptest.ByGTID)
	dumptest.WaitReplicated(t, h.src, rep, wait)
	dumptest.SameData(t, h.src, rep, []string{"bf.t", "bf.after"})
	// And follows the source's new commits through the fleet.
	dumptest.Exec(t, h.src, rows("bf.t", 10000, 200)...)
	dumptest.Exec(t, h.src, "UPDATE bf.t SET n = 0 WHERE id > 10100", "INSERT INTO bf.after VALUES (3)")
	dumptest.WaitReplicated(t, h.src, rep, wait)
	dumptest.SameData(t, h.src, rep, []string{"bf.t", "bf.after"})
}

// TestSourceStartCurrentAndRefusals (MySQL 9.7 and MariaDB 10.11):
// --source-start current begins the log at the source's executed set, as
// before there was a choice; a GTID set beyond the source's executed set,
// or one that lacks its purged set, is refused with the error that names
// the fix, and the log stays unseeded.
func TestSourceStartCurrentAndRefusals(t *testing.T) {
	for _, fl := range []sandbox.Flavor{sandbox.MySQL, sandbox.MariaDB} {
		t.Run(string(fl), func(t *testing.T) { sourceStartCurrentAndRefusals(t, fl) })
	}
}

func sourceStartCurrentAndRefusals(t *testing.T, fl sandbox.Flavor) {
	h := newHistorySource(t, fl, 300)
	executed := one(t, h.src, h.flav.BinlogGTIDsQuery())
	ctx := context.Background()
	// NB: the sets here have one uuid (MySQL) or one domain (MariaDB):
	// replacing the last number gives a set beyond the executed one, or
	// one that lacks the purged one.
	for _, tc := range []struct{ start, want string }{
		{withLast(t, h.flav, executed, 1), "holds GTIDs the source has not executed"},
		{withLast(t, h.flav, h.purgePoint, -1), "lacks GTIDs the source has purged"},
	} {
		start := tc.start
		f := startHistoryFleet(t, h, start)
		err := fleet.Poll(ctx, wait, func() error {
			st, err := f.LeaderStatus(ctx)
			if err != nil {
				return err
			}
			if st.Epoch != 0 {
				return fmt.Errorf("the log was seeded (epoch %d) with --source-start %q", st.Epoch, start)
			}
			if !strings.Contains(st.SourceError, "--source-start refused") || !strings.Contains(st.SourceError, tc.want) {
				return fmt.Errorf("source error %q", st.SourceError)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("--source-start %q: %v", start, err)
		}
		f.Close()
	}
	f := startHistoryFleet(t, h, "current")
	if err := fleet.Poll(ctx, wait, func() error {
		st, err := f.LeaderStatus(ctx)
		if err != nil {
			return err
		}
		// NB: with nothing to copy the log opens its first file with the
		// source's next transaction.
		if st.Epoch != 1 || st.Ingest == nil || st.Ingest.State != "streaming" {
			return fmt.Errorf("epoch %d ingest %+v (source error %q)", st.Epoch, st.Ingest, st.SourceError)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dumptest.Exec(t, h.src, "INSERT INTO bf.after VALUES (100)")
	gtids := converge(t, f)
	files, err := f.Files(ctx, f.Members[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(t, h.flav, files[0].StartGTIDs, executed) || files[0].Txns != 1 {
		t.Fatalf("with current the first file %+v; want it to start at the source's executed set %q and hold only the new transaction (fleet holds %q)", files[0], executed, gtids)
	}
	st, err := f.LeaderStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := st.Ingest.Backfill; b != nil {
		t.Errorf("with current there is nothing to backfill, status shows %+v", b)
	}
}

// withLast returns set with its last number moved by d (d < 0: down to 1).
func withLast(t *testing.T, flav binlog.Flavor, set string, d int) string {
	t.Helper()
	i := strings.LastIndexAny(set, "-:")
	var n int
	if i < 0 {
		t.Fatalf("set %q", set)
	}
	if _, err := fmt.Sscan(set[i+1:], &n); err != nil {
		t.Fatalf("set %q: %v", set, err)
	}
	n += d
	if d < 0 {
		n = 1
	}
	out := fmt.Sprintf("%s%d", set[:i+1], n)
	if _, err := flav.ParseSet(out); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	return out
}
