// Package e2e tests semi-sync ingest against real MariaDB and MySQL sources
// and binlogsvr processes (tools/sandbox, tools/fleet); the pure codec tests
// stay in package semisync.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

const wait = 90 * time.Second

var flavors = []sandbox.Flavor{sandbox.MariaDB, sandbox.MySQL}

type rig struct {
	t   *testing.T
	src *sandbox.Server
	f   *fleet.Fleet
}

// newRig starts a semi-sync source (AFTER_SYNC, a long timeout) and a
// 3-member fleet in front of it, and waits until the fleet streams and the
// source counts it as its semi-sync replica.
func newRig(t *testing.T, flavor sandbox.Flavor, extra ...string) *rig {
	t.Helper()
	src := sandboxtest.Start(t, sandbox.Options{Flavor: flavor, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute})
	user, pass := src.ReplUser()
	f, err := fleet.Start(context.Background(), fleet.Options{Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
		ExtraArgs: append([]string{"--source-heartbeat", "500ms"}, extra...)})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, src: src, f: f}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(f.LogTails(40))
		}
		f.Close()
	})
	r.waitStreaming()
	return r
}

func (r *rig) leaderStatus() (binlogsvr.Status, error) {
	ctx := context.Background()
	l, err := r.f.Leader(ctx, wait)
	if err != nil {
		return binlogsvr.Status{}, err
	}
	return r.f.Status(ctx, l, true)
}

func (r *rig) waitStreaming() {
	r.t.Helper()
	err := fleet.Poll(context.Background(), wait, func() error {
		if _, err := r.f.WaitStreaming(context.Background(), wait); err != nil {
			return err
		}
		if n := r.semiStatus("clients"); n < 1 {
			return fmt.Errorf("the source counts %d semi-sync clients", n)
		}
		return nil
	})
	if err != nil {
		r.t.Fatalf("the fleet does not stream from the source: %v", err)
	}
}

// semiStatus reads one of the source's Rpl_semi_sync_{master,source}_* counters.
func (r *rig) semiStatus(name string) int64 {
	r.t.Helper()
	prefix := "Rpl_semi_sync_source_"
	if r.src.Flavor() == sandbox.MariaDB {
		prefix = "Rpl_semi_sync_master_"
	}
	res, err := r.src.Exec(context.Background(), "SHOW GLOBAL STATUS LIKE '"+prefix+name+"'")
	if err != nil {
		r.t.Fatal(err)
	}
	if res.RowNumber() == 0 {
		return -1
	}
	v, _ := res.GetString(0, 1)
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// writes runs n autocommit inserts from c concurrent clients.
func (r *rig) writes(table string, clients, n int) {
	r.t.Helper()
	ctx := context.Background()
	if _, err := r.src.Exec(ctx, "CREATE DATABASE IF NOT EXISTS test"); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.src.Exec(ctx, "CREATE TABLE IF NOT EXISTS test."+table+" (id INT AUTO_INCREMENT PRIMARY KEY, c INT, v VARCHAR(64))"); err != nil {
		r.t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.src.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := i; j < n; j += clients {
				if _, err := c.Execute(fmt.Sprintf("INSERT INTO test.%s (c, v) VALUES (%d, 'row %d')", table, i, j)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		r.t.Fatal(err)
	}
}

func (r *rig) sourceGTIDs() string {
	q := "SELECT @@GLOBAL.gtid_executed"
	if r.src.Flavor() == sandbox.MariaDB {
		q = "SELECT @@GLOBAL.gtid_binlog_pos"
	}
	res, err := r.src.Exec(context.Background(), q)
	if err != nil {
		r.t.Fatal(err)
	}
	v, _ := res.GetString(0, 0)
	return strings.ReplaceAll(v, "\n", "")
}

// waitLogHas waits until every member's GTID state equals the source's.
func (r *rig) waitLogHas(want string) {
	r.t.Helper()
	ctx := context.Background()
	flav, _ := binlog.FlavorByName(string(r.src.Flavor()))
	ws, err := flav.ParseSet(want)
	if err != nil {
		r.t.Fatal(err)
	}
	err = fleet.Poll(ctx, wait, func() error {
		for _, m := range r.f.Members {
			if !m.Running() {
				continue
			}
			st, err := r.f.Status(ctx, m.ID, true)
			if err != nil {
				return err
			}
			got, err := flav.ParseSet(st.GTIDExecuted)
			if err != nil {
				return err
			}
			if !got.Equal(ws) {
				return fmt.Errorf("member %d holds %s, the source %s", m.ID, st.GTIDExecuted, want)
			}
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

type txn struct {
	gtid   string
	events [][]byte
}

// parseTxns splits binlog file bytes into GTID-led transactions.
func parseTxns(t *testing.T, flavor string, files [][]byte, verify bool) []txn {
	t.Helper()
	var out []txn
	flav, _ := binlog.FlavorByName(flavor)
	for _, b := range files {
		p := replication.NewBinlogParser()
		p.SetFlavor(flavor)
		// NB: a live MariaDB file's FDE carries the in-use flag but a CRC
		// computed without it: the source's own files are read unverified.
		p.SetVerifyChecksum(verify)
		err := p.ParseReader(bytes.NewReader(b[4:]), func(e *replication.BinlogEvent) error {
			raw := append([]byte(nil), e.RawData...)
			if g, ok, _ := flav.GTIDOfEvent(raw, binlog.ChecksumCRC32); ok {
				out = append(out, txn{gtid: g})
			}
			switch e.Header.EventType {
			case replication.ROTATE_EVENT, replication.FORMAT_DESCRIPTION_EVENT, replication.PREVIOUS_GTIDS_EVENT,
				replication.MARIADB_GTID_LIST_EVENT, replication.MARIADB_BINLOG_CHECKPOINT_EVENT, replication.STOP_EVENT:
				return nil
			}
			if len(out) > 0 {
				out[len(out)-1].events = append(out[len(out)-1].events, raw)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("parsing a binlog file: %v", err)
		}
	}
	return out
}

func (r *rig) sourceFiles() [][]byte {
	r.t.Helper()
	names, _ := filepath.Glob(filepath.Join(r.src.BinlogDir(), "*bin*.[0-9]*"))
	sort.Strings(names)
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			r.t.Fatal(err)
		}
		if len(b) > 4 && string(b[:4]) == binlog.Magic {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		r.t.Fatalf("no binlog files in %s", r.src.BinlogDir())
	}
	return out
}

func (r *rig) logFiles(id uint64) [][]byte {
	r.t.Helper()
	ctx := context.Background()
	files, err := r.f.Files(ctx, id)
	if err != nil {
		r.t.Fatal(err)
	}
	var out [][]byte
	for _, f := range files {
		resp, err := r.f.HTTP().Get(r.f.URL(id, "/binlogs/"+f.Name))
		if err != nil {
			r.t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || uint64(len(b)) != f.Size {
			r.t.Fatalf("%s: %d of %d bytes: %v", f.Name, len(b), f.Size, err)
		}
		out = append(out, b)
	}
	return out
}

// TestIngestStoresEveryCommit: 10,000
// transactions from 16 clients commit with semi-sync; yes_tx grows by at
// least that, no_tx does not; the log holds every GTID once, in the
// source's order, byte-identical apart from log_pos and checksum.
func TestIngestStoresEveryCommit(t *testing.T) {
	for _, flavor := range flavors {
		t.Run(string(flavor), func(t *testing.T) {
			r := newRig(t, flavor)
			yes0, no0 := r.semiStatus("yes_tx"), r.semiStatus("no_tx")
			start := time.Now()
			r.writes("t1", 16, 10000)
			t.Logf("10,000 semi-sync commits from 16 clients in %v", time.Since(start))
			yes, no := r.semiStatus("yes_tx")-yes0, r.semiStatus("no_tx")-no0
			t.Logf("yes_tx grew by %d, no_tx by %d", yes, no)
			switch {
			case no != 0:
				t.Fatalf("no_tx grew by %d: commits went without the fleet's ACK", no)
			case flavor == sandbox.MariaDB && yes < 10000:
				t.Fatalf("yes_tx grew by %d, want >= 10000", yes)
			case flavor == sandbox.MySQL:
				// NB: MySQL waits once per binlog group commit (the after_sync
				// hook runs for the group's last position), so with 16 clients
				// yes_tx counts groups. One client at a time makes each commit
				// its own group: then every commit must count.
				if yes < 1 {
					t.Fatalf("yes_tx did not grow")
				}
				y1 := r.semiStatus("yes_tx")
				r.writes("t1", 1, 300)
				if d := r.semiStatus("yes_tx") - y1; d < 300 {
					t.Fatalf("one client's 300 commits grew yes_tx by %d", d)
				}
				if d := r.semiStatus("no_tx") - no0; d != 0 {
					t.Fatalf("no_tx grew by %d", d)
				}
			}
			r.checkLogMatchesSource(10000)
			st, err := r.leaderStatus()
			if err != nil {
				t.Fatal(err)
			}
			if st.Ingest.LastAckFile == "" || st.Ingest.LastAckPos == 0 || !st.Ingest.SemiSync.Enabled || st.Ingest.SemiSync.Degraded {
				t.Fatalf("ingest status %+v", st.Ingest)
			}
		})
	}
}

// insertAsync runs one INSERT and reports when it returns.
func (r *rig) insertAsync(table string, v int) <-chan error {
	done := make(chan error, 1)
	go func() {
		c, err := r.src.Conn(context.Background())
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = c.Execute(fmt.Sprintf("INSERT INTO test.%s (c, v) VALUES (%d, 'quorum')", table, v))
		done <- err
	}()
	return done
}

// TestQuorumGatesTheCommit: with 2 of 3
// members stopped a commit on the source does not return; one member back
// and it returns. And with the commit path slowed on purpose, the source's
// commit latency includes the delay: the ACK waits for the commit.
func TestQuorumGatesTheCommit(t *testing.T) {
	for _, flavor := range flavors {
		t.Run(string(flavor), func(t *testing.T) {
			r := newRig(t, flavor)
			r.writes("q", 1, 5)
			ctx := context.Background()
			l, err := r.f.Leader(ctx, wait)
			if err != nil {
				t.Fatal(err)
			}
			// Stop two members, the leader among them.
			others := []uint64{}
			for _, m := range r.f.Members {
				if m.ID != l {
					others = append(others, m.ID)
				}
			}
			if err := r.f.Stop(l); err != nil {
				t.Fatal(err)
			}
			if err := r.f.Stop(others[0]); err != nil {
				t.Fatal(err)
			}
			done := r.insertAsync("q", 100)
			select {
			case err := <-done:
				t.Fatalf("a commit returned (%v) with 1 of 3 members up: it was ACKed without a quorum", err)
			case <-time.After(5 * time.Second):
			}
			t0 := time.Now()
			if err := r.f.Restart(others[0]); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("the commit returned %v after a second member came back", time.Since(t0).Round(time.Millisecond))
			case <-time.After(wait):
				t.Fatal("the commit did not return after a quorum came back")
			}
			if no := r.semiStatus("no_tx"); no != 0 {
				t.Fatalf("no_tx %d: the source gave up waiting", no)
			}
			if err := r.f.Restart(l); err != nil {
				t.Fatal(err)
			}
			r.waitLogHas(r.sourceGTIDs())
		})
	}
}

func TestACKWaitsForTheCommit(t *testing.T) {
	for _, flavor := range flavors {
		t.Run(string(flavor), func(t *testing.T) {
			const delay = 400 * time.Millisecond
			r := newRig(t, flavor, "--debug-api", "--debug-commit-delay", delay.String())
			r.writes("d", 1, 1)
			for i := 0; i < 5; i++ {
				t0 := time.Now()
				if err := <-r.insertAsync("d", i); err != nil {
					t.Fatal(err)
				}
				if el := time.Since(t0); el < delay {
					t.Fatalf("a commit returned in %v with the commit path delayed by %v: the ACK left before the commit", el, delay)
				}
			}
		})
	}
}

// checkLogMatchesSource waits until the log holds the source's GTID state,
// then checks every member's files: after the fleet's start, exactly the
// source's transactions, each once, in the source's order, byte-identical
// apart from log_pos and checksum.
func (r *rig) checkLogMatchesSource(minTxns int) {
	t := r.t
	t.Helper()
	flavor := r.src.Flavor()
	r.waitLogHas(r.sourceGTIDs())
	src := parseTxns(t, string(flavor), r.sourceFiles(), false)
	for _, id := range []uint64{1, 2, 3} {
		lg := parseTxns(t, string(flavor), r.logFiles(id), true)
		// The log starts where the fleet met the source; after that it
		// holds exactly the source's transactions, in order.
		first := -1
		for i, s := range src {
			if len(lg) > 0 && s.gtid == lg[0].gtid {
				first = i
				break
			}
		}
		if first < 0 {
			t.Fatalf("member %d: the log's first transaction %v is not in the source's binlog", id, lg[:min(1, len(lg))])
		}
		src := src[first:]
		if len(lg) != len(src) || len(lg) < minTxns {
			t.Fatalf("member %d: the log holds %d transactions, the source %d since the fleet's start", id, len(lg), len(src))
		}
		seen := map[string]bool{}
		for i := range src {
			if lg[i].gtid != src[i].gtid || seen[lg[i].gtid] {
				t.Fatalf("member %d: transaction %d is %s, the source's is %s (or repeated)", id, i, lg[i].gtid, src[i].gtid)
			}
			seen[lg[i].gtid] = true
			if len(lg[i].events) != len(src[i].events) {
				t.Fatalf("member %d: %s has %d events, the source's %d", id, src[i].gtid, len(lg[i].events), len(src[i].events))
			}
			for k := range src[i].events {
				a, b := src[i].events[k], lg[i].events[k]
				if len(a) != len(b) || !bytes.Equal(a[:13], b[:13]) || !bytes.Equal(a[17:len(a)-4], b[17:len(b)-4]) {
					t.Fatalf("member %d: %s event %d differs beyond log_pos and checksum", id, src[i].gtid, k)
				}
			}
		}
	}
}

// load runs clients that insert until stop is closed; it returns the number
// of commits the source acknowledged to them, and the longest pause.
func (r *rig) load(table string, clients int, stop <-chan struct{}) (acked int64, maxPause time.Duration, err error) {
	ctx := context.Background()
	if _, err := r.src.Exec(ctx, "CREATE DATABASE IF NOT EXISTS test"); err != nil {
		return 0, 0, err
	}
	if _, err := r.src.Exec(ctx, "CREATE TABLE IF NOT EXISTS test."+table+" (id INT AUTO_INCREMENT PRIMARY KEY, c INT, v VARCHAR(64))"); err != nil {
		return 0, 0, err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.src.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				if _, err := c.Execute(fmt.Sprintf("INSERT INTO test.%s (c, v) VALUES (%d, 'load %d')", table, i, j)); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked++
				maxPause = max(maxPause, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	return acked, maxPause, <-errs
}

// TestLeaderKilledUnderLoad: kill -9 the leader
// during a 16-client load; commits pause, then go on after the new leader
// connects; nothing lost or duplicated in the log.
func TestLeaderKilledUnderLoad(t *testing.T) {
	for _, flavor := range flavors {
		t.Run(string(flavor), func(t *testing.T) {
			r := newRig(t, flavor)
			stop := make(chan struct{})
			type loadRes struct {
				n     int64
				pause time.Duration
				err   error
			}
			done := make(chan loadRes, 1)
			go func() { n, p, err := r.load("k", 16, stop); done <- loadRes{n, p, err} }()
			time.Sleep(2 * time.Second)
			ctx := context.Background()
			l, err := r.f.Leader(ctx, wait)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.f.Kill(l); err != nil {
				t.Fatal(err)
			}
			t.Logf("killed the leader, member %d", l)
			// The others elect a leader that resumes the ingest.
			if err := fleet.Poll(ctx, wait, func() error {
				st, err := r.leaderStatus()
				if err != nil {
					return err
				}
				if st.ID == l || st.Ingest == nil || st.Ingest.State != "streaming" {
					return fmt.Errorf("not streaming yet")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			close(stop)
			out := <-done
			if out.err != nil {
				t.Fatal(out.err)
			}
			t.Logf("%d commits acknowledged; the longest commit took %v", out.n, out.pause.Round(time.Millisecond))
			if out.pause > 20*time.Second {
				t.Fatalf("a commit waited %v: the new leader did not resume ACKing (the source's timeout is what released it)", out.pause)
			}
			if no := r.semiStatus("no_tx"); no != 0 {
				t.Fatalf("no_tx %d: commits went without the fleet's ACK", no)
			}
			res, err := r.src.Exec(ctx, "SELECT COUNT(*) FROM test.k")
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.GetInt(0, 0); n != out.n {
				t.Fatalf("the source holds %d rows, %d commits were acknowledged", n, out.n)
			}
			if err := r.f.Restart(l); err != nil {
				t.Fatal(err)
			}
			r.checkLogMatchesSource(int(out.n))
		})
	}
}

// TestRefusesUnfitSources: a source without
// GTIDs, with STATEMENT format, or without a usable replication account
// gets a clear error naming the fix; the daemon stays up and retries.
func TestRefusesUnfitSources(t *testing.T) {
	cases := []struct {
		name   string
		flavor sandbox.Flavor
		args   []string
		user   string // "" = the sandbox's repl account
		pass   string
		want   string
	}{
		{"mysql without GTIDs", sandbox.MySQL, []string{"--gtid-mode=OFF", "--enforce-gtid-consistency=OFF"}, "", "", "gtid_mode=ON"},
		{"statement format", sandbox.MariaDB, []string{"--binlog-format=STATEMENT"}, "", "", "binlog_format=ROW"},
		{"wrong password", sandbox.MariaDB, nil, "", "not-the-password", "Access denied"},
		{"no such account", sandbox.MySQL, nil, "nobody", "x", "Access denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := sandboxtest.Start(t, sandbox.Options{Flavor: c.flavor, ExtraArgs: c.args})
			user, pass := src.ReplUser()
			if c.user != "" {
				user = c.user
			}
			if c.pass != "" {
				pass = c.pass
			}
			f, err := fleet.Start(context.Background(), fleet.Options{Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ctx := context.Background()
			err = fleet.Poll(ctx, wait, func() error {
				l, err := f.Leader(ctx, wait)
				if err != nil {
					return err
				}
				st, err := f.Status(ctx, l, true)
				if err != nil {
					return err
				}
				msg := st.SourceError
				if st.Ingest != nil {
					msg += " " + st.Ingest.LastError
				}
				if !strings.Contains(msg, c.want) {
					return fmt.Errorf("status says %q, want it to name %q", msg, c.want)
				}
				if st.Transactions != 0 {
					return fmt.Errorf("stored %d transactions from an unfit source", st.Transactions)
				}
				t.Logf("reported: %s", strings.TrimSpace(msg))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			for _, m := range f.Members {
				if !m.Running() {
					t.Fatalf("member %d exited (code %d)\n%s", m.ID, m.ExitCode(), f.LogTails(30))
				}
			}
		})
	}
}

// TestLargeAndDDLTransactions: a row over 16 MiB (packet continuation), a
// 100,000-row transaction, DDL, and transactions on both sides of a source
// binlog rotation; all stored whole and byte-identical.
func TestLargeAndDDLTransactions(t *testing.T) {
	for _, flavor := range flavors {
		t.Run(string(flavor), func(t *testing.T) {
			src := sandboxtest.Start(t, sandbox.Options{Flavor: flavor, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute,
				ExtraArgs: []string{"--max-allowed-packet=256M"}})
			user, pass := src.ReplUser()
			f, err := fleet.Start(context.Background(), fleet.Options{Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass, ExtraArgs: []string{"--debug-api"}})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r := &rig{t: t, src: src, f: f}
			r.waitStreaming()
			ctx := context.Background()
			c, err := src.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			stmts := []string{
				"CREATE DATABASE IF NOT EXISTS test",
				"CREATE TABLE test.big (id INT PRIMARY KEY, b LONGBLOB)",
				"INSERT INTO test.big VALUES (1, REPEAT('x', 20*1024*1024))",
				"CREATE TABLE test.many (id INT PRIMARY KEY, v VARCHAR(16))",
			}
			if flavor == sandbox.MariaDB {
				stmts = append(stmts, "INSERT INTO test.many SELECT seq, 'row' FROM test.seq_1_to_100000")
			} else {
				stmts = append(stmts, "SET SESSION cte_max_recursion_depth = 200000",
					"INSERT INTO test.many WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM s WHERE n < 100000) SELECT n, 'row' FROM s")
			}
			stmts = append(stmts,
				"ALTER TABLE test.many ADD COLUMN w INT DEFAULT 7",
				"INSERT INTO test.many (id, v) VALUES (100001, 'before')",
				"FLUSH BINARY LOGS",
				"INSERT INTO test.many (id, v) VALUES (100002, 'after')",
				"UPDATE test.big SET b = REPEAT('y', 17*1024*1024) WHERE id = 1",
				"DROP TABLE test.many")
			for _, q := range stmts {
				t.Logf("running %s", q[:min(60, len(q))])
				t0 := time.Now()
				if _, err := c.Execute(q); err != nil {
					t.Fatalf("%s: %v", q[:min(60, len(q))], err)
				}
				if el := time.Since(t0); el > 2*time.Second {
					t.Logf("%s took %v", q[:min(60, len(q))], el.Round(time.Millisecond))
				}
			}
			if no := r.semiStatus("no_tx"); no != 0 {
				t.Fatalf("no_tx %d", no)
			}
			r.checkLogMatchesSource(8)
		})
	}
}

// TestReportsAsyncFallback: when the source gives up waiting (its timeout
// is shorter than the commit path, forced here by a delay) and falls back
// to asynchronous commits, the fleet says so in /status.
func TestReportsAsyncFallback(t *testing.T) {
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true, SemiSyncTimeout: 300 * time.Millisecond})
	user, pass := src.ReplUser()
	f, err := fleet.Start(context.Background(), fleet.Options{Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
		ExtraArgs: []string{"--debug-api", "--debug-commit-delay", "1s", "--source-status-interval", "300ms"}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &rig{t: t, src: src, f: f}
	r.waitStreaming()
	r.writes("fb", 1, 3) // each waits 300ms, then the source commits without the ACK
	if r.semiStatus("no_tx") == 0 {
		t.Fatal("the source did not fall back; the test proves nothing")
	}
	err = fleet.Poll(context.Background(), wait, func() error {
		st, err := r.leaderStatus()
		if err != nil {
			return err
		}
		if st.Ingest == nil || !st.Ingest.SemiSync.Degraded {
			return fmt.Errorf("semi-sync status %+v", st.Ingest)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.HTTP().Get(f.URL(1, "/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Body.Close()
	m, _ := io.ReadAll(b.Body)
	if !strings.Contains(string(m), "binlogsvr_semisync_source_protected") {
		t.Fatal("no binlogsvr_semisync_source_protected metric")
	}
}

// TestSourceRestart: the source is killed (-9) and restarted; the fleet
// reconnects with backoff, resumes from the log's GTID state, and the log
// still matches the source exactly.
func TestSourceRestart(t *testing.T) {
	r := newRig(t, sandbox.MariaDB)
	r.writes("sr", 4, 200)
	if err := r.src.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // NB: a few failed reconnects, on purpose
	if err := r.src.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.waitStreaming()
	r.writes("sr", 4, 200)
	r.checkLogMatchesSource(400)
	st, err := r.leaderStatus()
	if err != nil {
		t.Fatal(err)
	}
	if st.Ingest.LastAckGTID == "" {
		t.Fatalf("ingest %+v", st.Ingest)
	}
}
