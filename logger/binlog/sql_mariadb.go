package binlog

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"
)

// The statements of a MariaDB 10.11 server, in its words (SLAVE, MASTER).

func (mariadbFlavor) ReplicaSetup(gtids string, hb time.Duration, _ string) []string {
	return []string{
		fmt.Sprintf("SET @master_heartbeat_period = %d", hb.Nanoseconds()),
		"SET @master_binlog_checksum = @@global.binlog_checksum",
		"SET @mariadb_slave_capability = 4",
		"SET @slave_connect_state = " + QuoteSQL(gtids),
		// NB: strict: the source refuses a start state it cannot continue
		// exactly, rather than skipping ahead.
		"SET @slave_gtid_strict_mode = 1",
		"SET @slave_gtid_ignore_duplicates = 0",
	}
}

func (mariadbFlavor) SemiSyncEnabledQuery() string {
	return "SELECT @@global.rpl_semi_sync_master_enabled"
}

func (mariadbFlavor) ReplicaSemiSyncOn() string { return "SET @rpl_semi_sync_slave = 1" }

func (mariadbFlavor) SemiSyncStatusPrefix() string { return "Rpl_semi_sync_master_" }

// DumpCommand: COM_BINLOG_DUMP with an empty name; @slave_connect_state
// (ReplicaSetup) gives the start.
func (mariadbFlavor) DumpCommand(serverID uint32, _ string) ([]byte, error) {
	b := []byte{0x12}
	b = binary.LittleEndian.AppendUint32(b, 4)
	// NB: BINLOG_SEND_ANNOTATE_ROWS_EVENT: store the source's events as its
	// binlog holds them (without it the source leaves out ANNOTATE_ROWS).
	b = binary.LittleEndian.AppendUint16(b, 0x02)
	b = binary.LittleEndian.AppendUint32(b, serverID)
	return b, nil
}

func (mariadbFlavor) ServerUUIDQuery() string  { return "" }
func (mariadbFlavor) GTIDModeQuery() string    { return "" }
func (mariadbFlavor) BinlogGTIDsQuery() string { return "SELECT @@GLOBAL.gtid_binlog_pos" }

// PurgedGTIDsQuery: MariaDB has no gtid_purged; the GTID list at the start
// of the oldest file held is where its binlog begins. NB: BINLOG_GTID_POS
// answers "" for a file no longer held as for a file that begins the
// server's history (MariaDB 10.11), so the file must be the oldest listed.
func (mariadbFlavor) PurgedGTIDsQuery(oldest string) string {
	return "SELECT BINLOG_GTID_POS(" + QuoteSQL(oldest) + ", 4)"
}

func (mariadbFlavor) InfoQuery() string {
	return "SELECT @@GLOBAL.server_id, '', @@GLOBAL.gtid_current_pos, @@GLOBAL.gtid_binlog_state, @@GLOBAL.read_only"
}
func (mariadbFlavor) ReplicaStatusQuery() string { return "SHOW SLAVE STATUS" }
func (mariadbFlavor) StartReplicaSQL() string    { return "START SLAVE" }
func (mariadbFlavor) StopReplicaSQL() []string   { return []string{"STOP SLAVE", "RESET SLAVE ALL"} }

func (mariadbFlavor) ReadOnlySQL(on bool) []string {
	return []string{"SET GLOBAL read_only = " + onOff(on)}
}

func (mariadbFlavor) SemiSyncSourceOnSQL(t time.Duration) []string {
	return []string{
		"SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'",
		"SET GLOBAL rpl_semi_sync_master_timeout = " + strconv.FormatInt(t.Milliseconds(), 10),
		"SET GLOBAL rpl_semi_sync_master_wait_no_slave = ON",
		"SET GLOBAL rpl_semi_sync_master_enabled = " + onOff(true),
	}
}

func (mariadbFlavor) SemiSyncHoldSQL() (string, string) {
	return "SET GLOBAL rpl_semi_sync_master_wait_no_slave = ON", "rpl_semi_sync_master_timeout"
}

func (mariadbFlavor) SemiSyncSourceVar() string { return "rpl_semi_sync_master_enabled" }

func (mariadbFlavor) SemiSyncSourcePlugin() string { return "" }

func (mariadbFlavor) ChangeSourceSQL(host string, port int, user, password string) string {
	return fmt.Sprintf("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, "+
		"MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1", QuoteSQL(host), port, QuoteSQL(user), QuoteSQL(password))
}

func (mariadbFlavor) OwnBinlogStartSQL() []string {
	return []string{"SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_current_pos"}
}
