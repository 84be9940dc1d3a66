package sandbox_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

var flavors = []sandbox.Flavor{sandbox.MariaDB, sandbox.MySQL}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// query returns the first column of the first row of q, as a string.
func query(t *testing.T, s *sandbox.Server, q string) string {
	t.Helper()
	r, err := s.Exec(ctxT(t, 30*time.Second), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer r.Close()
	if r.RowNumber() == 0 {
		t.Fatalf("%s: no rows", q)
	}
	v, err := r.GetString(0, 0)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// variable returns the value of a global variable or status counter, or "" when it does not exist.
func variable(t *testing.T, s *sandbox.Server, kind, name string) string {
	t.Helper()
	r, err := s.Exec(ctxT(t, 30*time.Second), fmt.Sprintf("SHOW GLOBAL %s LIKE '%s'", kind, name))
	if err != nil {
		t.Fatalf("show %s %s: %v", kind, name, err)
	}
	defer r.Close()
	if r.RowNumber() == 0 {
		return ""
	}
	v, _ := r.GetString(0, 1)
	return v
}

func gtidState(t *testing.T, s *sandbox.Server) string {
	if s.Flavor() == sandbox.MySQL {
		return query(t, s, "SELECT @@GLOBAL.gtid_executed")
	}
	return query(t, s, "SELECT @@GLOBAL.gtid_binlog_pos")
}

// gone reports whether pid no longer runs (a zombie counts as gone).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if gone(pid) {
			return
		}
	}
	t.Fatalf("pid %d still running", pid)
}

func TestServer(t *testing.T) {
	for _, f := range flavors {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			t0 := time.Now()
			s := sandboxtest.Start(t, sandbox.Options{Flavor: f})
			t.Logf("Start took %v", time.Since(t0))

			if s.Flavor() != f || s.Port() == 0 || s.Addr() != "127.0.0.1:"+strconv.Itoa(s.Port()) || s.PID() == 0 {
				t.Fatalf("flavor %s addr %s pid %d", s.Flavor(), s.Addr(), s.PID())
			}
			if got := query(t, s, "SELECT @@GLOBAL.server_id"); got != strconv.Itoa(int(s.ServerID())) || s.ServerID() == 0 {
				t.Errorf("server_id %s, ServerID() %d", got, s.ServerID())
			}
			for name, want := range map[string]string{
				"log_bin":           "ON",
				"binlog_format":     "ROW",
				"binlog_row_image":  "FULL",
				"log_slave_updates": "ON",
				"bind_address":      "127.0.0.1",
				"skip_name_resolve": "ON",
				"max_connections":   "200",
			} {
				if got := variable(t, s, "VARIABLES", name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if f == sandbox.MySQL {
				for name, want := range map[string]string{
					"gtid_mode":                "ON",
					"enforce_gtid_consistency": "ON",
					"log_replica_updates":      "ON",
					"secure_file_priv":         "",
					"performance_schema":       "OFF",
				} {
					if got := variable(t, s, "VARIABLES", name); got != want {
						t.Errorf("%s = %q, want %q", name, got, want)
					}
				}
			}
			if g := gtidState(t, s); g != "" {
				t.Errorf("a fresh server has GTID history %q", g)
			}

			ctx := ctxT(t, time.Minute)
			for _, q := range []string{
				"CREATE DATABASE sbx",
				"CREATE TABLE sbx.t (id INT PRIMARY KEY, v VARCHAR(20))",
			} {
				if _, err := s.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Exec(ctx, "INSERT INTO sbx.t VALUES (?, ?)", 1, "one"); err != nil {
				t.Fatal(err)
			}
			g1 := gtidState(t, s)
			switch f {
			case sandbox.MySQL:
				uuid := query(t, s, "SELECT @@GLOBAL.server_uuid")
				if g1 != uuid+":1-3" {
					t.Errorf("gtid_executed %q, want %s:1-3", g1, uuid)
				}
			case sandbox.MariaDB:
				if want := fmt.Sprintf("0-%d-3", s.ServerID()); g1 != want {
					t.Errorf("gtid_binlog_pos %q, want %s", g1, want)
				}
			}
			if _, err := os.Stat(filepath.Join(s.BinlogDir(), "binlog.000001")); err != nil {
				t.Errorf("binlog file: %v", err)
			}
			if fi, err := os.Stat(s.ErrorLog()); err != nil || fi.Size() == 0 {
				t.Errorf("error log %s: %v", s.ErrorLog(), err)
			}
			if _, err := os.Stat(s.DataDir()); err != nil {
				t.Errorf("data dir: %v", err)
			}

			// The replication account logs in over plain TCP (for MySQL: a caching_sha2 full
			// authentication, since this account never logged in before) and may read the binlog
			// coordinates.
			user, pw := s.ReplUser()
			rc, err := client.ConnectWithContext(ctx, s.Addr(), user, pw, "", 10*time.Second)
			if err != nil {
				t.Fatalf("repl login: %v", err)
			}
			status := "SHOW MASTER STATUS"
			if f == sandbox.MySQL {
				status = "SHOW BINARY LOG STATUS"
			}
			for _, q := range []string{status, "SHOW BINARY LOGS", "SELECT @@GLOBAL.server_id"} {
				if r, err := rc.Execute(q); err != nil {
					t.Errorf("repl %s: %v", q, err)
				} else if r.RowNumber() == 0 {
					t.Errorf("repl %s: no rows", q)
				}
			}
			if _, err := rc.Execute("SELECT * FROM sbx.t"); err == nil {
				t.Errorf("repl account can read tables; want a minimal account")
			}
			rc.Close()

			// A crash keeps committed data; Restart reuses the port and data directory.
			port, pid := s.Port(), s.PID()
			if err := s.Kill(); err != nil {
				t.Fatal(err)
			}
			waitGone(t, pid)
			if s.PID() != 0 || s.Running() {
				t.Errorf("PID %d after Kill", s.PID())
			}
			if _, err := s.Exec(ctx, "SELECT 1"); err == nil {
				t.Errorf("Exec works on a killed server")
			}
			t1 := time.Now()
			if err := s.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("Restart after kill -9 took %v", time.Since(t1))
			if s.Port() != port || s.PID() == 0 || s.PID() == pid {
				t.Errorf("after Restart: port %d (was %d), pid %d (was %d)", s.Port(), port, s.PID(), pid)
			}
			if v := query(t, s, "SELECT v FROM sbx.t WHERE id = 1"); v != "one" {
				t.Errorf("row after crash: %q", v)
			}
			if g := gtidState(t, s); g != g1 {
				t.Errorf("GTID state after crash %q, want %q", g, g1)
			}

			// Clean Stop and Restart.
			pid = s.PID()
			if err := s.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			waitGone(t, pid)
			if err := s.Stop(ctx); err != nil {
				t.Errorf("second Stop: %v", err)
			}
			if err := s.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Exec(ctx, "INSERT INTO sbx.t VALUES (2, 'two')"); err != nil {
				t.Fatal(err)
			}
			if n := query(t, s, "SELECT COUNT(*) FROM sbx.t"); n != "2" {
				t.Errorf("count %s", n)
			}

			// Close stops the process and removes the directory; twice is fine.
			pid, dir := s.PID(), s.Dir()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			waitGone(t, pid)
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("dir %s after Close: %v", dir, err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if err := s.Restart(ctx); err == nil {
				t.Errorf("Restart after Close succeeded")
			}
		})
	}
}

// Two servers of a flavor get distinct ports, server_ids and (MySQL) server_uuids.
func TestServersAreDistinct(t *testing.T) {
	for _, f := range flavors {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			a := sandboxtest.Start(t, sandbox.Options{Flavor: f})
			b := sandboxtest.Start(t, sandbox.Options{Flavor: f, ServerID: 7})
			if a.Port() == b.Port() || a.ServerID() == b.ServerID() || b.ServerID() != 7 {
				t.Errorf("ports %d %d, server ids %d %d", a.Port(), b.Port(), a.ServerID(), b.ServerID())
			}
			if f == sandbox.MySQL {
				ua, ub := query(t, a, "SELECT @@server_uuid"), query(t, b, "SELECT @@server_uuid")
				if ua == ub {
					t.Errorf("both servers have server_uuid %s", ua)
				}
			}
		})
	}
}

// A semi-sync source and a semi-sync replica, replicating through the sandbox's replication
// account with GTID auto-positioning; the source counts the replica's ACK.
func TestSemiSyncReplication(t *testing.T) {
	for _, f := range flavors {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			src := sandboxtest.Start(t, sandbox.Options{Flavor: f, SemiSyncSource: true, SemiSyncTimeout: 20 * time.Second})
			rep := sandboxtest.Start(t, sandbox.Options{Flavor: f, SemiSyncReplica: true})

			vars := map[string]string{
				"rpl_semi_sync_master_enabled":    "ON",
				"rpl_semi_sync_master_wait_point": "AFTER_SYNC",
				"rpl_semi_sync_master_timeout":    "20000",
			}
			repVar, clients, yes := "rpl_semi_sync_slave_enabled", "Rpl_semi_sync_master_clients", "Rpl_semi_sync_master_yes_tx"
			if f == sandbox.MySQL {
				vars = map[string]string{
					"rpl_semi_sync_source_enabled":    "ON",
					"rpl_semi_sync_source_wait_point": "AFTER_SYNC",
					"rpl_semi_sync_source_timeout":    "20000",
				}
				repVar, clients, yes = "rpl_semi_sync_replica_enabled", "Rpl_semi_sync_source_clients", "Rpl_semi_sync_source_yes_tx"
			}
			for name, want := range vars {
				if got := variable(t, src, "VARIABLES", name); got != want {
					t.Errorf("source %s = %q, want %q", name, got, want)
				}
			}
			if got := variable(t, rep, "VARIABLES", repVar); got != "ON" {
				t.Errorf("replica %s = %q, want ON", repVar, got)
			}
			for name := range vars {
				if got := variable(t, rep, "VARIABLES", name); strings.HasSuffix(name, "_enabled") && got != "" && got != "OFF" {
					t.Errorf("replica %s = %q, want OFF or absent", name, got)
				}
			}

			ctx := ctxT(t, 2*time.Minute)
			user, pw := src.ReplUser()
			change := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos", src.Port(), user, pw)
			startRepl, showRepl := "START SLAVE", "SHOW SLAVE STATUS"
			if f == sandbox.MySQL {
				change = fmt.Sprintf("CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT=%d, SOURCE_USER='%s', SOURCE_PASSWORD='%s', SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1", src.Port(), user, pw)
				startRepl, showRepl = "START REPLICA", "SHOW REPLICA STATUS"
			}
			for _, q := range []string{change, startRepl} {
				if _, err := rep.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			tStart := time.Now()
			// Write only once the semi-sync replica is attached, so the commit waits for its ACK
			// rather than for the timeout.
			for variable(t, src, "STATUS", clients) != "1" {
				if ctx.Err() != nil {
					r, _ := rep.Exec(context.Background(), showRepl)
					t.Fatalf("semi-sync replica never attached; %s: %v", showRepl, rowString(r))
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("semi-sync replica attached %v after START", time.Since(tStart))
			t0 := time.Now()
			for _, q := range []string{"CREATE DATABASE sbx", "CREATE TABLE sbx.t (id INT PRIMARY KEY)", "INSERT INTO sbx.t VALUES (1)"} {
				if _, err := src.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("three semi-sync commits took %v", time.Since(t0))
			if d := time.Since(t0); d > 10*time.Second {
				t.Errorf("three semi-sync commits took %v: ACKs missing?", d)
			}
			if got := variable(t, src, "STATUS", yes); got != "3" {
				t.Errorf("%s = %s, want 3", yes, got)
			}
			for {
				r, err := rep.Exec(ctx, "SELECT COUNT(*) FROM sbx.t")
				if err == nil {
					if n, _ := r.GetInt(0, 0); n == 1 {
						break
					}
				}
				if ctx.Err() != nil {
					r, _ := rep.Exec(context.Background(), showRepl)
					t.Fatalf("row never replicated (%v); %s: %v", err, showRepl, rowString(r))
				}
				time.Sleep(100 * time.Millisecond)
			}
			if gs, gr := gtidState(t, src), gtidState(t, rep); f == sandbox.MySQL && gs != gr {
				t.Errorf("GTID state: source %q, replica %q", gs, gr)
			}
		})
	}
}

// rowString renders the first row of a SHOW ... STATUS result, for failure messages.
func rowString(r *mysql.Result) string {
	if r == nil || r.Resultset == nil || r.RowNumber() == 0 {
		return "<no rows>"
	}
	var b strings.Builder
	for i, fl := range r.Fields {
		v, _ := r.GetString(0, i)
		if v != "" {
			fmt.Fprintf(&b, "\n  %s: %s", fl.Name, v)
		}
	}
	return b.String()
}

func TestAvailable(t *testing.T) {
	for _, f := range flavors {
		if err := sandbox.Available(f); err != nil {
			t.Errorf("Available(%s): %v", f, err)
		}
	}
	if err := sandbox.Available("postgres"); err == nil {
		t.Errorf("Available(postgres) = nil")
	}
	t.Setenv("BINLOGSVR_MYSQL_CHROOT", t.TempDir())
	err := sandbox.Available(sandbox.MySQL)
	if err == nil || !strings.Contains(err.Error(), "run: sudo bash tools/sandbox/install.sh") {
		t.Errorf("Available(mysql) with no chroot: %v", err)
	}
	if _, err := sandbox.Start(context.Background(), sandbox.Options{Flavor: sandbox.MySQL}); err == nil {
		t.Errorf("Start(mysql) with no chroot succeeded")
	}
}

func TestMySQLDirMustBeInChroot(t *testing.T) {
	_, err := sandbox.Start(ctxT(t, time.Minute), sandbox.Options{Flavor: sandbox.MySQL, Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "inside") {
		t.Fatalf("Start with Dir outside the chroot: %v", err)
	}
}

// A server must not outlive the process that started it, even when that process is killed
// without running any cleanup.
func TestServerDiesWithParent(t *testing.T) {
	if os.Getenv("SANDBOX_HELPER") != "" {
		return // the helper process runs helperMain from TestMain
	}
	for _, f := range flavors {
		t.Run(string(f), func(t *testing.T) {
			if err := sandbox.Available(f); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "SANDBOX_HELPER="+string(f))
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			var pid int
			var dir string
			line, err := bufio.NewReader(out).ReadString('\n')
			if _, serr := fmt.Sscanf(line, "pid %d dir %s", &pid, &dir); serr != nil || pid == 0 {
				t.Fatalf("helper said %q (%v)", line, err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if gone(pid) {
				t.Fatalf("server %d not running", pid)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			waitGone(t, pid)
		})
	}
}

func TestMain(m *testing.M) {
	if f := os.Getenv("SANDBOX_HELPER"); f != "" {
		helperMain(sandbox.Flavor(f))
		return
	}
	os.Exit(m.Run())
}

// helperMain starts a server, reports it, and waits to be killed.
func helperMain(f sandbox.Flavor) {
	s, err := sandbox.Start(context.Background(), sandbox.Options{Flavor: f})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("pid %d dir %s\n", s.PID(), s.Dir())
	time.Sleep(time.Hour)
}
