package failover

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The tests in this file drive SQLConnector's Server against fakeSQL
// through the Server interface and check the server's resulting state.

var admin = Credentials{User: "admin", Password: "admin-pw"}

func connectFake(t *testing.T, f *fakeSQL) Server {
	t.Helper()
	s, err := SQLConnector(dialFake)(context.Background(), f.addr(), admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLServerInfo(t *testing.T) {
	for _, tc := range []struct {
		flavor string
		want   ServerInfo
	}{
		{"mariadb", ServerInfo{Flavor: "mariadb", Version: "10.11.19-MariaDB-log", ServerID: 7, GTIDs: "0-7-20", Held: "0-1-19,0-7-20"}},
		{"mysql", ServerInfo{Flavor: "mysql", Version: "9.7.0", ServerID: 7, UUID: "5a6b0000-0000-0000-0000-000000000007",
			GTIDs: "5a6b0000-0000-0000-0000-000000000007:1-20,3e110000-0000-0000-0000-000000000001:1-5",
			Held:  "5a6b0000-0000-0000-0000-000000000007:1-20,3e110000-0000-0000-0000-000000000001:1-5"}},
	} {
		t.Run(tc.flavor, func(t *testing.T) {
			f := newFakeSQL(t, tc.flavor)
			s := connectFake(t, f)
			ctx := context.Background()
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(info, tc.want) {
				t.Fatalf("Info:\n got %+v\nwant %+v", info, tc.want)
			}
			// A replica: its source and threads, and its last error.
			if err := s.ReplicateFrom(ctx, "10.0.0.9:3307", Credentials{User: "fleet", Password: "pw"}, false); err != nil {
				t.Fatal(err)
			}
			f.locked(func() { f.replica.lastErr = "Error 1236: purged" })
			if err := s.SetReadOnly(ctx, true); err != nil {
				t.Fatal(err)
			}
			info, err = s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := ReplicaInfo{Configured: true, IORunning: true, SQLRunning: true, SourceHost: "10.0.0.9", SourcePort: 3307, LastError: "Error 1236: purged"}
			if info.Replica != want || !info.ReadOnly {
				t.Fatalf("Info of a read-only replica: %+v, want read_only and %+v", info, want)
			}
			// StopReplication forgets the source.
			if err := s.StopReplication(ctx); err != nil {
				t.Fatal(err)
			}
			if info, err := s.Info(ctx); err != nil || info.Replica.Configured {
				t.Fatalf("after StopReplication: %+v, %v; want no replica configuration", info.Replica, err)
			}
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		})
	}
}

func TestSQLServerReadOnly(t *testing.T) {
	for _, flavor := range []string{"mariadb", "mysql"} {
		t.Run(flavor, func(t *testing.T) {
			f := newFakeSQL(t, flavor)
			s := connectFake(t, f)
			ctx := context.Background()
			if err := s.SetReadOnly(ctx, true); err != nil {
				t.Fatal(err)
			}
			if f.get("read_only") != "ON" || flavor == "mysql" && f.get("super_read_only") != "ON" {
				t.Fatalf("after SetReadOnly(true): read_only=%s super_read_only=%s", f.get("read_only"), f.get("super_read_only"))
			}
			if err := s.SetReadOnly(ctx, false); err != nil {
				t.Fatal(err)
			}
			if f.get("read_only") != "OFF" || flavor == "mysql" && f.get("super_read_only") != "OFF" {
				t.Fatalf("after SetReadOnly(false): read_only=%s super_read_only=%s", f.get("read_only"), f.get("super_read_only"))
			}
			f.locked(func() { f.fail["read_only"] = "Lock wait timeout exceeded" })
			if err := s.SetReadOnly(ctx, true); err == nil || !strings.Contains(err.Error(), "Lock wait timeout") {
				t.Fatalf("SetReadOnly on a server that refuses: %v", err)
			}
		})
	}
}

func TestSQLServerSessionsAndKill(t *testing.T) {
	f := newFakeSQL(t, "mysql")
	f.locked(func() {
		f.sessions = []Session{{ID: 11, User: "app", Command: "Query", State: "Waiting for semi-sync ACK from replica", Info: "COMMIT"},
			{ID: 12, User: "app", Command: "Sleep"}, {ID: 13, User: "repl", Command: "Binlog Dump GTID"}}
	})
	s := connectFake(t, f)
	ctx := context.Background()
	got, err := s.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != (Session{ID: 11, User: "app", Command: "Query", State: "Waiting for semi-sync ACK from replica", Info: "COMMIT"}) || got[2].ID != 13 {
		t.Fatalf("Sessions: %+v", got)
	}
	// A session gone meanwhile is not counted; the others end.
	n, err := s.Kill(ctx, []uint64{11, 99, 13})
	if err != nil || n != 2 {
		t.Fatalf("Kill: %d, %v; want 2 ended", n, err)
	}
	if got, _ := s.Sessions(ctx); len(got) != 1 || got[0].ID != 12 {
		t.Fatalf("sessions after Kill: %+v, want only 12", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if n, err := s.Kill(cctx, []uint64{12}); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Kill with an ended ctx: %d, %v", n, err)
	}
}

func TestSQLServerHoldSemiSync(t *testing.T) {
	for _, tc := range []struct {
		flavor, timeoutVar, waitVar string
	}{
		{"mysql", "rpl_semi_sync_source_timeout", "rpl_semi_sync_source_wait_no_replica"},
		{"mariadb", "rpl_semi_sync_master_timeout", "rpl_semi_sync_master_wait_no_slave"},
	} {
		t.Run(tc.flavor, func(t *testing.T) {
			f := newFakeSQL(t, tc.flavor)
			f.locked(func() { f.vars[tc.waitVar] = "OFF" })
			s := connectFake(t, f)
			if err := s.HoldSemiSync(context.Background()); err != nil {
				t.Fatal(err)
			}
			if f.get(tc.timeoutVar) != "3600000" || f.get(tc.waitVar) != "ON" {
				t.Fatalf("after HoldSemiSync: %s=%s %s=%s; want an hour and ON", tc.timeoutVar, f.get(tc.timeoutVar), tc.waitVar, f.get(tc.waitVar))
			}
			// A longer timeout is kept.
			f.locked(func() { f.vars[tc.timeoutVar] = "7200000" })
			if err := s.HoldSemiSync(context.Background()); err != nil || f.get(tc.timeoutVar) != "7200000" {
				t.Fatalf("HoldSemiSync with a 2 h timeout: %v, timeout now %s", err, f.get(tc.timeoutVar))
			}
			f.removePlugin()
			if err := s.HoldSemiSync(context.Background()); err == nil {
				t.Fatal("HoldSemiSync without the semi-sync plugin: no error")
			}
		})
	}
}

func TestSQLServerAckWaits(t *testing.T) {
	ctx := context.Background()
	t.Run("mysql turns the source side off and back on", func(t *testing.T) {
		f := newFakeSQL(t, "mysql")
		f.locked(func() { f.vars["rpl_semi_sync_source_enabled"] = "ON" })
		s := connectFake(t, f)
		if err := s.ReleaseAckWaits(ctx); err != nil || f.get("rpl_semi_sync_source_enabled") != "OFF" {
			t.Fatalf("ReleaseAckWaits: %v, enabled=%s; want OFF", err, f.get("rpl_semi_sync_source_enabled"))
		}
		if err := s.RestoreAckWaits(ctx); err != nil || f.get("rpl_semi_sync_source_enabled") != "ON" {
			t.Fatalf("RestoreAckWaits: %v, enabled=%s; want ON", err, f.get("rpl_semi_sync_source_enabled"))
		}
		// Restore only undoes a release.
		f.locked(func() { f.vars["rpl_semi_sync_source_enabled"] = "OFF" })
		if err := s.RestoreAckWaits(ctx); err != nil || f.get("rpl_semi_sync_source_enabled") != "OFF" {
			t.Fatalf("RestoreAckWaits without a release: %v, enabled=%s", err, f.get("rpl_semi_sync_source_enabled"))
		}
		// Semi-sync off: nothing waits, nothing to release.
		if err := s.ReleaseAckWaits(ctx); err != nil || f.get("rpl_semi_sync_source_enabled") != "OFF" {
			t.Fatalf("ReleaseAckWaits with semi-sync off: %v", err)
		}
		f.removePlugin()
		if err := s.ReleaseAckWaits(ctx); err != nil {
			t.Fatalf("ReleaseAckWaits without the plugin: %v", err)
		}
	})
	t.Run("mariadb's KILL ends the waits", func(t *testing.T) {
		f := newFakeSQL(t, "mariadb")
		f.locked(func() { f.vars["rpl_semi_sync_master_enabled"] = "ON" })
		s := connectFake(t, f)
		if err := s.ReleaseAckWaits(ctx); err != nil || f.get("rpl_semi_sync_master_enabled") != "ON" {
			t.Fatalf("ReleaseAckWaits: %v, enabled=%s; want it left ON", err, f.get("rpl_semi_sync_master_enabled"))
		}
	})
}

func TestSQLServerSemiSyncSource(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		flavor, prefix string
	}{{"mysql", "rpl_semi_sync_source_"}, {"mariadb", "rpl_semi_sync_master_"}} {
		t.Run(tc.flavor, func(t *testing.T) {
			f := newFakeSQL(t, tc.flavor)
			f.locked(func() { f.vars[tc.prefix+"wait_point"] = "AFTER_COMMIT" })
			s := connectFake(t, f)
			if err := s.EnableSemiSyncSource(ctx, 2500*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			for k, want := range map[string]string{"enabled": "ON", "timeout": "2500", "wait_point": "AFTER_SYNC"} {
				if got := f.get(tc.prefix + k); got != want {
					t.Errorf("after EnableSemiSyncSource: %s%s = %s, want %s", tc.prefix, k, got, want)
				}
			}
			if err := s.DisableSemiSyncSource(ctx); err != nil || f.get(tc.prefix+"enabled") != "OFF" {
				t.Fatalf("DisableSemiSyncSource: %v, enabled=%s", err, f.get(tc.prefix+"enabled"))
			}
			f.removePlugin()
			if err := s.DisableSemiSyncSource(ctx); err != nil {
				t.Fatalf("DisableSemiSyncSource without the plugin: %v", err)
			}
		})
	}
	t.Run("mysql loads the plugin", func(t *testing.T) {
		f := newFakeSQL(t, "mysql")
		f.removePlugin()
		s := connectFake(t, f)
		if err := s.EnableSemiSyncSource(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		if f.get("rpl_semi_sync_source_enabled") != "ON" {
			t.Fatalf("after EnableSemiSyncSource on a server without the plugin: enabled=%q", f.get("rpl_semi_sync_source_enabled"))
		}
		f.removePlugin()
		f.locked(func() { f.noInstall = true })
		if err := s.EnableSemiSyncSource(ctx, time.Second); err == nil || !strings.Contains(err.Error(), "loading it failed") {
			t.Fatalf("EnableSemiSyncSource when the plugin cannot load: %v", err)
		}
	})
	t.Run("mariadb without the plugin", func(t *testing.T) {
		f := newFakeSQL(t, "mariadb")
		f.removePlugin()
		s := connectFake(t, f)
		if err := s.EnableSemiSyncSource(ctx, time.Second); err == nil {
			t.Fatal("EnableSemiSyncSource on a MariaDB without semi-sync: no error")
		}
	})
}

func TestSQLServerReplicateFrom(t *testing.T) {
	ctx := context.Background()
	t.Run("mariadb former source", func(t *testing.T) {
		f := newFakeSQL(t, "mariadb")
		s := connectFake(t, f)
		if err := s.ReplicateFrom(ctx, "fleet.example:3306", Credentials{User: "fleet", Password: "o'pw"}, true); err != nil {
			t.Fatal(err)
		}
		// Its own writes count as applied: it continues after them.
		if f.get("gtid_slave_pos") != "0-7-20" {
			t.Fatalf("gtid_slave_pos = %s, want the server's gtid_current_pos 0-7-20", f.get("gtid_slave_pos"))
		}
		f.locked(func() {
			o := f.replica.opts
			if !f.replica.running || o["MASTER_HOST"] != "fleet.example" || o["MASTER_PORT"] != "3306" || o["MASTER_USER"] != "fleet" ||
				o["MASTER_PASSWORD"] != "o'pw" || o["MASTER_USE_GTID"] != "slave_pos" {
				t.Fatalf("replica after ReplicateFrom: running=%v %v", f.replica.running, o)
			}
		})
		// Again, while it replicates: the running replica is stopped first.
		if err := s.ReplicateFrom(ctx, "fleet2.example:3306", Credentials{User: "fleet", Password: "pw"}, false); err != nil {
			t.Fatal(err)
		}
		f.locked(func() {
			if !f.replica.running || f.replica.opts["MASTER_HOST"] != "fleet2.example" {
				t.Fatalf("replica after the second ReplicateFrom: %+v", f.replica)
			}
		})
	})
	t.Run("mysql", func(t *testing.T) {
		f := newFakeSQL(t, "mysql")
		s := connectFake(t, f)
		if err := s.ReplicateFrom(ctx, "[::1]:3306", Credentials{User: "fleet", Password: "pw"}, true); err != nil {
			t.Fatal(err)
		}
		f.locked(func() {
			o := f.replica.opts
			if !f.replica.running || o["SOURCE_HOST"] != "::1" || o["SOURCE_AUTO_POSITION"] != "1" || o["SOURCE_PASSWORD"] != "pw" {
				t.Fatalf("replica after ReplicateFrom: running=%v %v", f.replica.running, o)
			}
		})
	})
	t.Run("errors do not show the password", func(t *testing.T) {
		f := newFakeSQL(t, "mysql")
		f.locked(func() { f.fail["CHANGE REPLICATION SOURCE"] = "Access denied" })
		s := connectFake(t, f)
		err := s.ReplicateFrom(ctx, "fleet:3306", Credentials{User: "fleet", Password: "s3cret-pw"}, false)
		if err == nil || strings.Contains(err.Error(), "s3cret-pw") || !strings.Contains(err.Error(), "PASSWORD=***") {
			t.Fatalf("ReplicateFrom refused: %v; want the statement with its password redacted", err)
		}
		if err := s.ReplicateFrom(ctx, "no-port", Credentials{}, false); err == nil {
			t.Fatal("ReplicateFrom to an address without a port: no error")
		}
	})
}

func TestSQLServerBinlogGTIDs(t *testing.T) {
	defer func(n int) { binlogEventsPage = n }(binlogEventsPage)
	binlogEventsPage = 2 // NB: the files below span several pages
	f := newFakeSQL(t, "mariadb")
	ev := func(g string) fakeEvent { return fakeEvent{"Gtid", "BEGIN GTID " + g} }
	other := func(typ string) fakeEvent { return fakeEvent{typ, ""} }
	f.locked(func() {
		f.binlogs = []fakeBinlog{
			{"m-bin.000001", []fakeEvent{other("Format_desc"), other("Gtid_list"), ev("0-1-1"), other("Query"), other("Xid"), ev("0-1-2")}},
			{"m-bin.000002", []fakeEvent{other("Format_desc"), fakeEvent{"Gtid_list", "[0-1-2]"}, ev("0-1-3"), other("Xid"), ev("0-7-4"), other("Xid"), ev("0-7-5")}},
		}
	})
	s := connectFake(t, f)
	ctx := context.Background()
	all, err := s.BinlogGTIDs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0-1-1", "0-1-2", "0-1-3", "0-7-4", "0-7-5"}; !reflect.DeepEqual(all, want) {
		t.Fatalf("BinlogGTIDs: %v, want %v", all, want)
	}
	// Reading stops after the newest file whose first GTID satisfies stop.
	var asked []string
	got, err := s.BinlogGTIDs(ctx, func(g string) bool { asked = append(asked, g); return g == "0-1-3" })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0-1-3", "0-7-4", "0-7-5"}; !reflect.DeepEqual(got, want) || !reflect.DeepEqual(asked, []string{"0-1-3"}) {
		t.Fatalf("BinlogGTIDs with stop: %v (asked %v), want %v", got, asked, want)
	}
	f.locked(func() { f.fail["SHOW BINLOG EVENTS"] = "Error reading binlog" })
	if _, err := s.BinlogGTIDs(ctx, nil); err == nil || !strings.Contains(err.Error(), "Error reading binlog") {
		t.Fatalf("BinlogGTIDs on a server that fails: %v", err)
	}
}

func TestSQLConnectorErrors(t *testing.T) {
	f := newFakeSQL(t, "mysql")
	_, err := SQLConnector(dialFake)(context.Background(), f.addr(), Credentials{User: "admin", Password: "wrong"})
	if err == nil || !strings.Contains(err.Error(), "connecting to "+f.addr()) || !strings.Contains(err.Error(), "1045") {
		t.Fatalf("a wrong password: %v", err)
	}
	f.locked(func() { f.fail["VERSION()"] = "server shutting down" })
	if _, err := SQLConnector(dialFake)(context.Background(), f.addr(), admin); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("a server that fails its first query: %v", err)
	}
	// A statement is bounded by ctx.
	f.locked(func() { delete(f.fail, "VERSION()") })
	s := connectFake(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping with an expired ctx: no error")
	}
}
