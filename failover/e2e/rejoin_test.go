package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// TestRejoin: an old source rejoins only once its unacknowledged
// transactions are gone, with the failover hooks on the way.
//
// The fleet reaches the source through a proxy. The proxy is cut, and
// three clients commit straight to the source: with AFTER_SYNC the
// commits are in its binary log but never acknowledged (the clients
// wait). The source is killed -9. The pre-failover hook vetoes while a
// file exists: the source is neither fenced nor replaced; once it allows,
// the fleet fails over, and both hooks saw the right environment. The old
// source restarts: binlogctl rejoin-check lists exactly the three
// transactions, binlogctl rejoin refuses and says what to do; once they
// are undone as it says (MariaDB: a flashback with mariadb-binlog; MySQL:
// by hand, and the GTID state reset), rejoin attaches it to the fleet, and
// it replicates to the same data as the new source.
func TestRejoin(t *testing.T) {
	for _, flavor := range []sandbox.Flavor{sandbox.MariaDB, sandbox.MySQL} {
		t.Run(string(flavor), func(t *testing.T) { rejoinOnce(t, flavor) })
	}
}

const unackedClients = 3

func rejoinOnce(t *testing.T, flavor sandbox.Flavor) {
	var px *proxy
	hk := newHooks(t, true)
	r := newRig(t, flavor, rigOptions{replicas: 2, extra: hk.flags(), sourceVia: func(addr string) string {
		px = startProxy(t, addr)
		return px.addr()
	}})
	old := px.addr() // the address the fleet knows the source by
	// NB: the checks below reach the old source at its own address, which
	// the log knows only behind the proxy; the fleet logs in only to
	// servers the log records, so record it (never promoted).
	if out, err := r.ctl("candidates", "add", "--never-promote", r.src.Addr()); err != nil {
		t.Fatalf("binlogctl candidates add %s: %v\n%s", r.src.Addr(), err, out)
	}

	// Acknowledged history.
	l := r.startLoad(4)
	l.waitCount(t, 100)
	l.stop() // NB: it waits until the source has ended every session of the load
	before := gtidExecuted(t, r.src)
	st := r.waitLogHolds(before)
	epoch0 := st.Epoch
	t.Logf("%d commits acknowledged; the source and the log hold %s at epoch %d", l.count(), before, epoch0)

	// Unacknowledged commits: the fleet is cut off, the clients wait.
	// NB: the commits wait for their ACK in one binlog group: a group
	// waiting for its ACK holds back the next group's binlog write
	// (MariaDB), so commits in later groups would never reach the binlog.
	n0 := binlogGTIDEvents(t, r.src)
	if flavor == sandbox.MariaDB {
		r.exec(r.src, fmt.Sprintf("SET GLOBAL binlog_commit_wait_count = %d", unackedClients), "SET GLOBAL binlog_commit_wait_usec = 10000000")
	} else {
		r.exec(r.src, fmt.Sprintf("SET GLOBAL binlog_group_commit_sync_no_delay_count = %d", unackedClients), "SET GLOBAL binlog_group_commit_sync_delay = 1000000")
	}
	px.cut(refuse)
	var wg sync.WaitGroup
	results := make([]error, unackedClients)
	for i := 0; i < unackedClients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = commitStraight(r.src, fmt.Sprintf("INSERT INTO test.acked (c, n, v) VALUES (%d, 0, 'never acknowledged')", 1000+i))
		}()
	}
	waitBinlogged(t, r.src, n0+unackedClients)
	waitSemiSyncWaiters(t, r.src, 1)
	// NB: the check sees them already, while they wait (MySQL: in the
	// binlog, not yet in gtid_executed).
	live := rejoinCheck(t, r, r.src.Addr())
	if err := r.src.Kill(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range results {
		if err == nil {
			t.Errorf("unacknowledged client %d: its commit returned success", i)
		}
	}
	t.Logf("cut the fleet off, %d commits waited for an ACK on the source, then kill -9", unackedClients)

	// The pre-hook vetoes, then allows.
	hk.waitVetoed(r, old, epoch0)
	hk.allow()
	newSrc := r.waitNewSource(old, wait)
	st, err := r.status()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the fleet failed over to %s (epoch %d -> %d)", newSrc, epoch0, st.Epoch)
	hk.check(string(flavor), old, newSrc, epoch0, st.Epoch, before)
	ns := r.byAddr(newSrc)
	r.exec(ns, "INSERT INTO test.acked (c, n, v) VALUES (2000, 0, 'on the new source')")

	// The old source restarts.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := r.src.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	after := gtidExecuted(t, r.src)
	want := rjMinus(rjSingles(t, flavor, after), rjSingles(t, flavor, before))
	if len(want) != unackedClients {
		t.Fatalf("the restarted old source holds %s, %d transactions beyond %s; want %d", after, len(want), before, unackedClients)
	}
	srcAddr := r.src.Addr()

	out, err := r.ctl("rejoin-check", srcAddr)
	t.Logf("binlogctl rejoin-check %s: %v\n%s", srcAddr, err, out)
	if err == nil {
		t.Error("rejoin-check succeeded with unacknowledged transactions; want a non-zero exit")
	}
	rep := rejoinCheck(t, r, srcAddr)
	for _, c := range []struct {
		when string
		rep  failover.RejoinReport
	}{{"while they waited", live}, {"after the restart", rep}} {
		got := map[string]bool{}
		for _, g := range c.rep.Unacknowledged {
			if flavor == sandbox.MariaDB {
				got[g] = true // NB: one GTID each
				continue
			}
			for k := range rjSingles(t, flavor, g) {
				got[k] = true
			}
		}
		if !rjSame(got, want) || c.rep.Safe {
			t.Fatalf("rejoin-check %s lists %v (safe %v), want exactly %v", c.when, c.rep.Unacknowledged, c.rep.Safe, rjKeys(want))
		}
	}
	if !sameGTIDs(string(flavor), rep.Keep, before) {
		t.Errorf("rejoin-check: without them %q, want %q", rep.Keep, before)
	}

	out, err = r.ctl("rejoin", srcAddr)
	t.Logf("binlogctl rejoin %s (refused): %v\n%s", srcAddr, err, out)
	hint := "gtid_purged"
	if flavor == sandbox.MariaDB {
		hint = "mariadb-binlog --flashback"
	}
	if err == nil || !strings.Contains(out, "never acknowledged") || !strings.Contains(out, hint) || !strings.Contains(out, "rejoin again") {
		t.Fatalf("binlogctl rejoin did not refuse, or did not say what to do (%q): %v\n%s", hint, err, out)
	}
	if rs, _ := dumptest.ReplicaStatus(ctx, r.src); len(rs) > 0 {
		t.Fatalf("the refused old source replicates anyway: %v", rs)
	}

	// Discard them as the advice says: undo their changes, and then,
	// since the GTIDs are still there until the GTID state is reset,
	// rejoin still refuses; then reset the GTID state.
	if flavor == sandbox.MariaDB {
		flashback(t, r.src, rep.Keep)
	} else {
		undoByHand(t, r.src)
	}
	if out, err := r.ctl("rejoin", srcAddr); err == nil {
		t.Fatalf("binlogctl rejoin accepted the old source while its binary log still holds the undone transactions:\n%s", out)
	}
	if flavor == sandbox.MariaDB {
		// NB: a gtid_slave_pos at the last unacknowledged GTID would
		// skip the fleet's transactions of the same sequence numbers.
		last := rjLastMariaDB(want)
		dumptest.Exec(t, r.src, "RESET MASTER", "SET GLOBAL gtid_slave_pos = '"+last+"'")
		if out, err := r.ctl("rejoin", srcAddr); err == nil {
			t.Fatalf("binlogctl rejoin accepted the old source at gtid_slave_pos %s, an unacknowledged GTID:\n%s", last, out)
		}
		dumptest.Exec(t, r.src, "SET GLOBAL gtid_slave_pos = '"+rep.Keep+"'")
	} else {
		dumptest.Exec(t, r.src, "RESET BINARY LOGS AND GTIDS", "SET GLOBAL gtid_purged = '"+rep.Keep+"'")
	}
	out, err = r.ctl("rejoin-check", srcAddr)
	if err != nil || !strings.Contains(out, "Unacknowledged: none") {
		t.Fatalf("binlogctl rejoin-check after the discard: %v\n%s", err, out)
	}
	out, err = r.ctl("rejoin", srcAddr)
	t.Logf("binlogctl rejoin %s: %v\n%s", srcAddr, err, out)
	if err != nil {
		t.Fatal(err)
	}

	// It replicates from the fleet.
	r.exec(ns, "INSERT INTO test.acked (c, n, v) VALUES (2000, 1, 'after the rejoin')")
	for _, s := range append([]*sandbox.Server{r.src}, r.replicas...) {
		if s != ns {
			dumptest.WaitReplicated(t, ns, s, wait)
			dumptest.SameData(t, ns, s, []string{"test.acked"})
		}
	}
	if res, err := r.src.Exec(ctx, "SELECT COUNT(*) FROM test.acked WHERE c >= 1000 AND c < 2000"); err != nil {
		t.Fatal(err)
	} else if n, _ := res.GetInt(0, 0); n != 0 {
		t.Errorf("%d unacknowledged rows remain on the old source", n)
	}
	if res, err := r.src.Exec(ctx, "SELECT @@GLOBAL.read_only"); err != nil {
		t.Fatal(err)
	} else if v, _ := res.GetInt(0, 0); v != 1 {
		t.Errorf("the rejoined old source is not read-only")
	}
	l.verifyAcked(t, r.src)
	h, _ := r.ctl("history")
	if !strings.Contains(h, "rejoined") {
		t.Errorf("history has no rejoin:\n%s", h)
	}
	t.Logf("binlogctl history:\n%s", h)
}

// rejoinCheck reads the rejoin report as JSON.
func rejoinCheck(t *testing.T, r *rig, addr string) failover.RejoinReport {
	t.Helper()
	out, _ := r.ctl("rejoin-check", "--json", addr)
	var rep failover.RejoinReport
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&rep); err != nil {
		t.Fatalf("rejoin-check --json: %v\n%s", err, out)
	}
	return rep
}

// waitLogHolds waits until the log's GTID state is gtids.
func (r *rig) waitLogHolds(gtids string) (st binlogsvr.Status) {
	r.t.Helper()
	err := fleet.Poll(context.Background(), wait, func() error {
		var err error
		if st, err = r.status(); err != nil {
			return err
		}
		if !sameGTIDs(string(r.flavor), st.GTIDExecuted, gtids) {
			return fmt.Errorf("the log holds %s", st.GTIDExecuted)
		}
		return nil
	})
	if err != nil {
		r.t.Fatalf("the log does not hold %s: %v", gtids, err)
	}
	return st
}

// commitStraight commits q on s as the application would, waiting as long
// as the server makes it (bounded by 5 minutes).
func commitStraight(s *sandbox.Server, q string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, err := s.Conn(ctx)
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	_, err = c.Execute(q)
	return err
}

// waitSemiSyncWaiters waits until n sessions wait for a semi-sync ACK:
// their transactions are in the source's binary log (AFTER_SYNC).
func waitSemiSyncWaiters(t *testing.T, s *sandbox.Server, n int) {
	t.Helper()
	err := fleet.Poll(context.Background(), time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := s.Exec(ctx, "SHOW PROCESSLIST")
		if err != nil {
			return err
		}
		k := 0
		var states []string
		for i := 0; i < res.RowNumber(); i++ {
			st, _ := res.GetStringByName(i, "State")
			states = append(states, st)
			if strings.HasPrefix(st, "Waiting for semi-sync ACK") {
				k++
			}
		}
		if k < n {
			return fmt.Errorf("%d of %d sessions wait for an ACK (states %q)", k, n, states)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// binlogGTIDEvents counts the transactions in s's binary logs.
func binlogGTIDEvents(t *testing.T, s *sandbox.Server) int {
	t.Helper()
	n, err := countBinlogGTIDs(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func countBinlogGTIDs(s *sandbox.Server) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.Exec(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return 0, err
	}
	n := 0
	for i := 0; i < res.RowNumber(); i++ {
		name, _ := res.GetString(i, 0)
		ev, err := s.Exec(ctx, "SHOW BINLOG EVENTS IN '"+name+"'")
		if err != nil {
			return 0, err
		}
		for j := 0; j < ev.RowNumber(); j++ {
			typ, _ := ev.GetStringByName(j, "Event_type")
			if strings.HasPrefix(typ, "Gtid") && typ != "Gtid_list" {
				n++
			}
		}
	}
	return n, nil
}

// waitBinlogged waits until s's binary logs hold n transactions.
func waitBinlogged(t *testing.T, s *sandbox.Server, n int) {
	t.Helper()
	err := fleet.Poll(context.Background(), time.Minute, func() error {
		k, err := countBinlogGTIDs(s)
		if err == nil && k < n {
			err = fmt.Errorf("%d transactions in the binary log, want %d", k, n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// gtidExecuted is what a server has executed: MySQL @@gtid_executed;
// MariaDB @@gtid_binlog_pos (the old source writes its own GTIDs only).
func gtidExecuted(t *testing.T, s *sandbox.Server) string {
	t.Helper()
	q := "SELECT @@GLOBAL.gtid_executed"
	if s.Flavor() == sandbox.MariaDB {
		q = "SELECT @@GLOBAL.gtid_binlog_pos"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := s.Exec(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := res.GetString(0, 0)
	return strings.ReplaceAll(v, "\n", "")
}

// rjSingles lists every single GTID of a state: MySQL uuid:lo-hi runs;
// MariaDB d-s-n stands for d-s-1..n (one server wrote the domain).
func rjSingles(t *testing.T, flavor sandbox.Flavor, s string) map[string]bool {
	t.Helper()
	out, err := rjExpand(flavor, s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func rjExpand(flavor sandbox.Flavor, s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if flavor == sandbox.MariaDB {
			i := strings.LastIndexByte(part, '-')
			if i < 0 {
				return nil, fmt.Errorf("GTID %q", part)
			}
			n, err := strconv.ParseUint(part[i+1:], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("GTID %q: %v", part, err)
			}
			for k := uint64(1); k <= n; k++ {
				out[fmt.Sprintf("%s-%d", part[:i], k)] = true
			}
			continue
		}
		toks := strings.Split(part, ":")
		for _, iv := range toks[1:] {
			lo, hi, ok := strings.Cut(iv, "-")
			a, err := strconv.ParseUint(lo, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("GTID set %q: %v", s, err)
			}
			b := a
			if ok {
				if b, err = strconv.ParseUint(hi, 10, 64); err != nil {
					return nil, fmt.Errorf("GTID set %q: %v", s, err)
				}
			}
			for k := a; k <= b; k++ {
				out[fmt.Sprintf("%s:%d", strings.ToLower(toks[0]), k)] = true
			}
		}
	}
	return out, nil
}

// sameGTIDs reports whether two GTID states hold the same transactions.
func sameGTIDs(flavor, a, b string) bool {
	ea, err := rjExpand(sandbox.Flavor(flavor), a)
	if err != nil {
		return false
	}
	eb, err := rjExpand(sandbox.Flavor(flavor), b)
	return err == nil && rjSame(ea, eb)
}

func rjMinus(a, b map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		if !b[k] {
			out[k] = true
		}
	}
	return out
}

func rjSame(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// rjLastMariaDB is the MariaDB GTID of the highest sequence number.
func rjLastMariaDB(m map[string]bool) string {
	var last string
	var top uint64
	for g := range m {
		n, _ := strconv.ParseUint(g[strings.LastIndexByte(g, '-')+1:], 10, 64)
		if n >= top {
			last, top = g, n
		}
	}
	return last
}

func rjKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// flashback undoes a MariaDB server's transactions after keep with
// mariadb-binlog --flashback over its binary logs, applied with
// sql_log_bin=0, as rejoin's advice says.
func flashback(t *testing.T, s *sandbox.Server, keep string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := s.Exec(ctx, "SHOW BINARY LOGS")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--flashback", "--start-position=" + keep}
	for i := 0; i < res.RowNumber(); i++ {
		name, _ := res.GetString(i, 0)
		args = append(args, filepath.Join(s.BinlogDir(), name))
	}
	var stderr strings.Builder
	fb := exec.CommandContext(ctx, "mariadb-binlog", args...)
	fb.Stderr = &stderr
	script, err := fb.Output()
	if err != nil {
		t.Fatalf("mariadb-binlog %v: %v\n%s", args, err, stderr.String())
	}
	user, pw := s.RootUser()
	apply := exec.CommandContext(ctx, "mariadb", "--protocol=TCP", "-h", "127.0.0.1", "-P", strconv.Itoa(s.Port()), "-u", user)
	apply.Env = append(os.Environ(), "MYSQL_PWD="+pw)
	apply.Stdin = io.MultiReader(strings.NewReader("SET SESSION sql_log_bin = 0;\n"), strings.NewReader(string(script)))
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("applying the flashback (%d bytes): %v\n%s", len(script), err, out)
	}
	t.Logf("flashback: mariadb-binlog %s, %d bytes applied with sql_log_bin=0", strings.Join(args[:2], " "), len(script))
}

// undoByHand undoes a MySQL server's unacknowledged rows with
// sql_log_bin=0.
func undoByHand(t *testing.T, s *sandbox.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := s.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	for _, q := range []string{"SET SESSION sql_log_bin = 0", "DELETE FROM test.acked WHERE c >= 1000 AND c < 2000"} {
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
