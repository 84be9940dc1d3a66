package dump

import (
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// fakeEnv is a queryEnv over fixed data.
type fakeEnv struct{ f facts }

func (e *fakeEnv) facts() *facts { return &e.f }
func (e *fakeEnv) files() ([]logger.FileMeta, error) {
	return []logger.FileMeta{{Number: 1, Size: 1000}, {Number: 2, Size: 300}}, nil
}
func (e *fakeEnv) gtidPos(file string, pos uint64) (string, bool, error) {
	return "0-1-" + file + "-" + strings.Repeat("x", int(pos%3)), true, nil
}
func (e *fakeEnv) binlogEvents(string, uint64, int, int) ([][]any, error) { return nil, nil }
func (e *fakeEnv) replicaHosts(bool, bool) ([]string, [][]any) {
	return []string{"Server_id", "Host", "Port", "Master_id"}, [][]any{{uint64(2), "h", uint64(1), uint64(9)}}
}
func (e *fakeEnv) connID() uint32   { return 42 }
func (e *fakeEnv) userName() string { return "repl" }
func (e *fakeEnv) database() string { return "" }
func (e *fakeEnv) now() time.Time   { return time.Unix(1795238870, 0) }

func newFakeEnv(flav binlog.Flavor) *fakeEnv {
	return &fakeEnv{f: facts{Flavor: flav, Version: "10.11.19-MariaDB-log", ServerID: 7, ServerUUID: "u-u-i-d",
		Checksum: binlog.ChecksumCRC32, GTIDs: "0-1-46", File: "binlog.000002", Pos: 300}}
}

// cell returns row 0, column col of a reply as text.
func cell(t *testing.T, r reply, col int) string {
	t.Helper()
	if r.err != nil || r.res == nil || r.res.Resultset == nil {
		t.Fatalf("no result set: %+v", r)
	}
	if len(r.res.RowDatas) == 0 {
		return "<no rows>"
	}
	v, err := r.res.RowDatas[0].Parse(r.res.Fields, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v[col].Value() == nil {
		return "<NULL>"
	}
	s, _ := mysql.FormatTextValue(v[col].Value())
	return string(s)
}

func TestAnswer(t *testing.T) {
	env := newFakeEnv(binlog.MariaDB())
	vars := map[string]string{}
	for _, tc := range []struct {
		q    string
		col  int
		want string // "ERR <code>", "OK", "PASS" or the cell
	}{
		{"SELECT UNIX_TIMESTAMP()", 0, "1795238870"},
		{"\x00\x01SELECT @@GLOBAL.SERVER_ID", 0, "7"},
		{"SHOW VARIABLES LIKE 'SERVER_ID'", 1, "7"},
		{"SET @master_heartbeat_period= 5000000000", 0, "OK"},
		{"SET @master_binlog_checksum= @@global.binlog_checksum", 0, "OK"},
		{"SELECT @master_binlog_checksum", 0, "CRC32"},
		{"SET @master_binlog_checksum='NONE', @source_binlog_checksum='NONE'", 0, "OK"},
		{"SELECT @source_binlog_checksum", 0, "NONE"},
		{"SET @slave_connect_state='7-1-3,0-1-46'", 0, "OK"},
		{"SELECT @slave_connect_state", 0, "7-1-3,0-1-46"},
		{"SELECT @never_set", 0, "<NULL>"},
		{"SELECT @@GLOBAL.gtid_domain_id", 0, "0"},
		{"SELECT binlog_gtid_pos('binlog.000001',2036)", 0, "0-1-binlog.000001-xx"},
		{"SHOW VARIABLES LIKE 'rpl_semi_sync_master_enabled'", 1, "<no rows>"},
		{"SHOW VARIABLES WHERE Variable_name IN ('rpl_semi_sync_master_enabled', 'rpl_semi_sync_source_enabled')", 1, "<no rows>"},
		{"SELECT @@global.rpl_semi_sync_source_enabled", 0, "ERR 1193"}, // semi-sync not offered: as without the plugin
		{"SELECT @@global.rpl_semi_sync_master_enabled", 0, "ERR 1193"},
		{"SHOW GLOBAL VARIABLES LIKE 'BINLOG_CHECKSUM'", 1, "CRC32"},
		{"show variables like 'binlog_format'", 1, "ROW"},
		{"SHOW MASTER STATUS", 1, "300"},
		{"SHOW BINLOG STATUS", 0, "binlog.000002"},
		{"SHOW BINARY LOGS", 0, "binlog.000001"},
		{"SELECT @@GLOBAL.gtid_current_pos", 0, "0-1-46"},
		{"SELECT VERSION() AS version", 0, "10.11.19-MariaDB-log"},
		{"select @@GLOBAL.binlog_checksum as checksum", 0, "CRC32"},
		{"select @@version_comment limit 1", 0, "binlogsvr"},
		{"SELECT @@GLOBAL.GTID_MODE", 0, "ERR 1193"},
		{"SHOW SLAVE HOSTS", 0, "2"},
		{"KILL 10001", 0, "KILL 10001"},
		{"KILL QUERY x", 0, "ERR 1064"},
		{"SET NAMES 'binary'", 0, "OK"},
		{"SET wait_timeout=28800, net_read_timeout=3600", 0, "OK"},
		{"SET GLOBAL read_only=0", 0, "ERR 1227"},
		{"show full columns from `t1`.`a`", 0, "PASS"},
		{"SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA='a'", 0, "PASS"},
		{"DROP TABLE x", 0, "ERR 1235"},
		{"", 0, "ERR 1065"},
		{"SELECT 'unterminated", 0, "ERR 1064"},
		{"/*!40101 SET NAMES utf8mb4 */", 0, "OK"},
	} {
		r := answer(tc.q, vars, env)
		var got string
		switch {
		case r.err != nil:
			me, _ := r.err.(*mysql.MyError)
			got = "ERR ?"
			if me != nil {
				got = "ERR " + itoa(me.Code)
			}
		case r.kill != 0:
			got = "KILL " + itoa(uint16(r.kill%65536)+0)
			if r.kill == 10001 {
				got = "KILL 10001"
			}
		case r.passthrough:
			got = "PASS"
		case r.res == nil:
			got = "OK"
		default:
			got = cell(t, r, tc.col)
		}
		if got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.q, got, tc.want)
		}
	}
	// MySQL has GTID_MODE and gtid_executed, not gtid_domain_id.
	my := newFakeEnv(binlog.MySQL())
	my.f.GTIDs = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"
	if got := cell(t, answer("SELECT @@GLOBAL.GTID_MODE", vars, my), 0); got != "ON" {
		t.Errorf("MySQL GTID_MODE: %s", got)
	}
	if got := cell(t, answer("SELECT @@GLOBAL.gtid_executed", vars, my), 0); got != my.f.GTIDs {
		t.Errorf("MySQL gtid_executed: %s", got)
	}
	if r := answer("SELECT @@GLOBAL.gtid_domain_id", vars, my); r.err == nil {
		t.Errorf("MySQL gtid_domain_id: want an error")
	}
}

// TestSemiSyncProbes: with semi-sync offered, each flavor's replica finds
// the source-side switch on the way its plugin asks; without, the probes
// answer as a server without the plugin. The source's own semi-sync
// variables are never shown as the fleet's.
func TestSemiSyncProbes(t *testing.T) {
	vars := map[string]string{}
	show := func(env *fakeEnv, q string) string {
		t.Helper()
		r := answer(q, vars, env)
		if r.err != nil {
			return "ERR"
		}
		if len(r.res.RowDatas) == 0 {
			return "<no rows>"
		}
		return cell(t, r, 0) + "=" + cell(t, r, 1)
	}
	for _, flav := range []binlog.Flavor{binlog.MariaDB(), binlog.MySQL()} {
		env := newFakeEnv(flav)
		env.f.SourceVars = map[string]string{"rpl_semi_sync_source_enabled": "ON", "rpl_semi_sync_master_enabled": "ON", "binlog_row_image": "FULL"}
		off := map[string]string{
			"SHOW VARIABLES LIKE 'rpl_semi_sync_master_enabled'":                                                     "<no rows>",
			"SHOW VARIABLES WHERE Variable_name IN ('rpl_semi_sync_master_enabled', 'rpl_semi_sync_source_enabled')": "<no rows>",
		}
		for q, want := range off {
			if got := show(env, q); got != want {
				t.Errorf("%s, semi-sync off: %q: %s, want %s", flav.Name(), q, got, want)
			}
		}
		for _, q := range []string{"SELECT @@global.rpl_semi_sync_source_enabled", "SELECT @@global.rpl_semi_sync_master_enabled", "SELECT @@rpl_semi_sync_replica_enabled"} {
			if r := answer(q, vars, env); r.err == nil || r.err.(*mysql.MyError).Code != 1193 {
				t.Errorf("%s, semi-sync off: %q: %v, want error 1193 (as without the plugin)", flav.Name(), q, r.err)
			}
		}
		env.f.SemiSync = true
		name := "rpl_semi_sync_master_enabled"
		if flav.Name() == "mysql" {
			name = "rpl_semi_sync_source_enabled"
		}
		for q, want := range map[string]string{
			"SHOW VARIABLES LIKE 'rpl_semi_sync_master_enabled'":                                                     map[bool]string{true: "<no rows>", false: "rpl_semi_sync_master_enabled=ON"}[flav.Name() == "mysql"],
			"SHOW VARIABLES WHERE Variable_name IN ('rpl_semi_sync_master_enabled', 'rpl_semi_sync_source_enabled')": name + "=ON",
			"SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync%'":                                                            name + "=ON",
		} {
			if got := show(env, q); got != want {
				t.Errorf("%s, semi-sync on: %q: %s, want %s", flav.Name(), q, got, want)
			}
		}
		for q, want := range map[string]string{
			"SELECT @@global.rpl_semi_sync_source_enabled": "1",
			"SELECT @@global.rpl_semi_sync_master_enabled": "1",
			"SELECT @@rpl_semi_sync_replica_enabled":       "0",
		} {
			if got := cell(t, answer(q, vars, env), 0); got != want {
				t.Errorf("%s, semi-sync on: %q: %s, want %s", flav.Name(), q, got, want)
			}
		}
	}
}

func itoa(n uint16) string {
	s := ""
	for {
		s = string(rune('0'+n%10)) + s
		n /= 10
		if n == 0 {
			return s
		}
	}
}

func TestMatchLike(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"SERVER_ID", "server_id", true}, {"server\\_id", "server_id", true}, {"server_id", "serverxid", true},
		{"rpl_semi_sync%", "rpl_semi_sync_master_enabled", true}, {"%format", "binlog_format", true},
		{"binlog_format", "binlog_formats", false}, {"[a]", "a", false},
	} {
		if got := matchLike(tc.p, tc.s); got != tc.want {
			t.Errorf("matchLike(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}

func TestHeartbeatPeriodAndChecksum(t *testing.T) {
	if d := heartbeatPeriod(map[string]string{"master_heartbeat_period": "30000001024"}); d != 30000001024 {
		t.Errorf("period %v", d)
	}
	if d := heartbeatPeriod(map[string]string{"master_heartbeat_period": "junk"}); d != 0 {
		t.Errorf("junk period %v", d)
	}
	if !clientCRC(map[string]string{"master_binlog_checksum": "crc32"}) || clientCRC(map[string]string{"source_binlog_checksum": "NONE"}) {
		t.Errorf("clientCRC")
	}
}

func FuzzAnswer(f *testing.F) {
	for _, q := range []string{"SET @a='x', @b=@@global.binlog_checksum", "SELECT binlog_gtid_pos('f', 4)", "SHOW BINLOG EVENTS IN 'x' FROM 4 LIMIT 1, 2", "KILL 5", "/*!4 SELECT 1 */"} {
		f.Add(q)
	}
	env := newFakeEnv(binlog.MariaDB())
	f.Fuzz(func(t *testing.T, q string) {
		answer(q, map[string]string{}, env)
	})
}

func TestResultOfMixedColumnTypes(t *testing.T) {
	r := resultOf([]string{"Variable_name", "Value"}, [][]any{{"server_id", uint32(7)}, {"server_uuid", "u"}, {"x", []byte("b")}})
	if r.err != nil {
		t.Fatalf("mixed value types: %v", r.err)
	}
	if n := len(r.res.Resultset.RowDatas); n != 3 {
		t.Fatalf("%d rows", n)
	}
	if !strings.Contains(string(r.res.Resultset.RowDatas[0]), "7") {
		t.Fatalf("server_id row %q", r.res.Resultset.RowDatas[0])
	}
}
