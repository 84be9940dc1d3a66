package binlog

import (
	"strings"
	"time"
)

// ReplicaSQL is what the fleet sends as a server's replica (semisync's
// session and probe): the session variables, the semi-sync names and the
// dump command. Every method is pure.
type ReplicaSQL interface {
	// ReplicaSetup returns the statements sent before COM_REGISTER_SLAVE
	// for a dump starting at gtids (MariaDB passes them as
	// @slave_connect_state; MySQL sends them in the dump command).
	ReplicaSetup(gtids string, heartbeat time.Duration, replicaUUID string) []string
	// SemiSyncEnabledQuery reads whether the source's semi-sync is on (one
	// value: ON/OFF or 1/0); an error means the source has no semi-sync
	// plugin.
	SemiSyncEnabledQuery() string
	// ReplicaSemiSyncOn declares the session a semi-sync replica.
	ReplicaSemiSyncOn() string
	// SemiSyncStatusPrefix is the prefix of the source's semi-sync status
	// variables (SHOW GLOBAL STATUS).
	SemiSyncStatusPrefix() string
	// DumpCommand returns the COM_BINLOG_DUMP(_GTID) payload starting at
	// gtids. Errors wrap ErrBadSet.
	DumpCommand(serverID uint32, gtids string) ([]byte, error)
	// ServerUUIDQuery reads the server's uuid; "" if the flavor has none.
	ServerUUIDQuery() string
	// GTIDModeQuery reads the server's gtid_mode, which must be ON; "" if
	// the flavor's GTIDs are always on.
	GTIDModeQuery() string
	// BinlogGTIDsQuery reads the GTIDs of the server's binlog as
	// ParseSet reads them.
	BinlogGTIDsQuery() string
	// PurgedGTIDsQuery reads, as ParseSet reads them, the GTIDs the
	// server's binlog no longer holds, given the oldest file SHOW BINARY
	// LOGS lists: MySQL @@gtid_purged; MariaDB the GTID state at the start
	// of that file (BINLOG_GTID_POS(file, 4)). "" means the binlog holds
	// every transaction since the server began.
	PurgedGTIDsQuery(oldestFile string) string
}

// AdminSQL is what the failover sends to the servers it fences, promotes
// and repoints. Every method is pure; a statement list runs in order.
type AdminSQL interface {
	// InfoQuery reads one row: server_id, server_uuid ('' if none), the
	// GTIDs applied, the GTIDs held (MySQL gtid_executed again; MariaDB
	// gtid_binlog_state) and read_only.
	InfoQuery() string
	// ReplicaStatusQuery is SHOW REPLICA STATUS in the flavor's words.
	ReplicaStatusQuery() string
	StartReplicaSQL() string
	// StopReplicaSQL stops replication and forgets its source; the first
	// statement alone only stops it.
	StopReplicaSQL() []string
	// ReadOnlySQL makes the server read-only (also for privileged users
	// where the flavor can) or writable.
	ReadOnlySQL(on bool) []string
	// SemiSyncSourceOnSQL turns the semi-sync source side on, AFTER_SYNC,
	// waiting even with no replica, with the timeout given.
	SemiSyncSourceOnSQL(timeout time.Duration) []string
	// SemiSyncHoldSQL returns the statement that makes the source wait
	// with no replica connected, and the name of its timeout variable.
	SemiSyncHoldSQL() (waitNoReplica, timeoutVar string)
	// SemiSyncSourceVar is the variable that turns the semi-sync source
	// side on and off.
	SemiSyncSourceVar() string
	// SemiSyncSourcePlugin is the statement that loads the semi-sync
	// source plugin; "" if the flavor has it built in.
	SemiSyncSourcePlugin() string
	// ChangeSourceSQL points the server's replication at host:port with
	// GTID auto-positioning.
	ChangeSourceSQL(host string, port int, user, password string) string
	// OwnBinlogStartSQL runs before ChangeSourceSQL when the server
	// resumes from the GTIDs of its own binlog (an old source rejoining):
	// MariaDB starts from gtid_slave_pos, so it is set to the server's
	// current position; none on MySQL.
	OwnBinlogStartSQL() []string
}

// QuoteSQL returns s as a single-quoted SQL string literal.
func QuoteSQL(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

func onOff(on bool) string {
	if on {
		return "ON"
	}
	return "OFF"
}
