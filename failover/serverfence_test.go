package failover

import (
	"slices"
	"testing"
)

func TestFenceKills(t *testing.T) {
	l := []Session{
		{ID: 1, User: "system user", Command: "Daemon"},
		{ID: 2, User: "repl", Command: "Binlog Dump", State: "Master has sent all binlog to slave; waiting for more updates"},
		{ID: 3, User: "app", Command: "Query", State: "Waiting for semi-sync ACK from slave", Info: "INSERT INTO t VALUES (1)"},
		{ID: 4, User: "app", Command: "Query", State: "Commit", Info: "INSERT INTO t VALUES (2)"},
		{ID: 5, User: "app", Command: "Sleep"},
		{ID: 6, User: "root", Command: "Query", State: "Waiting for backup lock", Info: "SET GLOBAL read_only = ON"},
		{ID: 7, User: "root", Command: "Query", State: "starting", Info: "SHOW PROCESSLIST"},
		{ID: 8, User: "app", Command: "Query", State: "Waiting for semi-sync ACK from replica", Info: "INSERT INTO t VALUES (3)"},
		{ID: 9, User: "app", Command: "Query", State: "Waiting for backup lock", Info: "INSERT INTO t VALUES (4)"},
		{ID: 10, User: "system user", Command: "Slave_IO"},
		{ID: 11, User: "repl", Command: "Binlog Dump GTID"},
		{ID: 12, User: "event_scheduler", Command: "Daemon"},
	}
	skip := map[uint64]bool{6: true, 7: true}
	for _, tc := range []struct {
		clients, dumps bool
		want           []uint64
	}{
		// The waiting leaders last among the clients, so that no
		// session a killed leader releases is alive; dumps after them.
		{true, false, []uint64{4, 5, 9, 3, 8}},
		{true, true, []uint64{4, 5, 9, 3, 8, 2, 11}},
		{false, true, []uint64{2, 11}},
		{false, false, nil},
	} {
		if got := fenceKills(l, skip, tc.clients, tc.dumps); !slices.Equal(got, tc.want) {
			t.Errorf("fenceKills(clients %v, dumps %v) = %v, want %v", tc.clients, tc.dumps, got, tc.want)
		}
	}
}

func TestROWaiting(t *testing.T) {
	for _, tc := range []struct {
		s    Session
		want bool
	}{
		{Session{ID: 6, State: "Waiting for backup lock", Info: "SET GLOBAL read_only = ON"}, true},            // MariaDB
		{Session{ID: 6, State: "Waiting for global read lock", Info: "SET GLOBAL super_read_only = ON"}, true}, // MySQL
		{Session{ID: 6, State: "Waiting for commit lock", Info: "SET GLOBAL super_read_only = ON"}, true},      // MySQL
		{Session{ID: 6, State: "starting", Info: "SET GLOBAL read_only = ON"}, false},                          // not at its lock yet
		{Session{ID: 6, State: "Waiting for backup lock", Info: "INSERT INTO t VALUES (1)"}, false},            // another statement
		{Session{ID: 7, State: "Waiting for backup lock", Info: "SET GLOBAL read_only = ON"}, false},           // another session
	} {
		if got := roWaiting([]Session{tc.s}, 6); got != tc.want {
			t.Errorf("roWaiting(%+v) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
