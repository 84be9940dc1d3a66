package binlog

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"
)

// The statements of a MySQL 8.4/9.x server, in the words it prefers
// (REPLICA, SOURCE).

func (mysqlFlavor) ReplicaSetup(_ string, hb time.Duration, uuid string) []string {
	ns := hb.Nanoseconds()
	return []string{
		fmt.Sprintf("SET @master_heartbeat_period = %d, @source_heartbeat_period = %d", ns, ns),
		"SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum",
		fmt.Sprintf("SET @slave_uuid = %s, @replica_uuid = %s", QuoteSQL(uuid), QuoteSQL(uuid)),
	}
}

func (mysqlFlavor) SemiSyncEnabledQuery() string {
	return "SELECT @@global.rpl_semi_sync_source_enabled"
}

func (mysqlFlavor) ReplicaSemiSyncOn() string {
	return "SET @rpl_semi_sync_replica = 1, @rpl_semi_sync_slave = 1"
}

func (mysqlFlavor) SemiSyncStatusPrefix() string { return "Rpl_semi_sync_source_" }

// DumpCommand: COM_BINLOG_DUMP_GTID: flags, server_id, name length, name,
// pos, data length, the encoded GTID set.
func (mysqlFlavor) DumpCommand(serverID uint32, gtids string) ([]byte, error) {
	set, err := MySQL().ParseSet(gtids)
	if err != nil {
		return nil, err
	}
	data, err := EncodeMySQLSet(set)
	if err != nil {
		return nil, err
	}
	b := []byte{0x1e}
	b = binary.LittleEndian.AppendUint16(b, 0) // as go-mysql sends: v1 heartbeats
	b = binary.LittleEndian.AppendUint32(b, serverID)
	b = binary.LittleEndian.AppendUint32(b, 0) // no file name
	b = binary.LittleEndian.AppendUint64(b, 4)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...), nil
}

func (mysqlFlavor) ServerUUIDQuery() string  { return "SELECT @@GLOBAL.server_uuid" }
func (mysqlFlavor) GTIDModeQuery() string    { return "SELECT @@GLOBAL.gtid_mode" }
func (mysqlFlavor) BinlogGTIDsQuery() string { return "SELECT @@GLOBAL.gtid_executed" }

// PurgedGTIDsQuery: gtid_purged is what the binlog's Previous-GTIDs of its
// oldest file hold (or an operator's SET GLOBAL gtid_purged).
func (mysqlFlavor) PurgedGTIDsQuery(string) string { return "SELECT @@GLOBAL.gtid_purged" }

func (mysqlFlavor) InfoQuery() string {
	return "SELECT @@GLOBAL.server_id, @@GLOBAL.server_uuid, @@GLOBAL.gtid_executed, @@GLOBAL.gtid_executed, @@GLOBAL.read_only"
}
func (mysqlFlavor) ReplicaStatusQuery() string { return "SHOW REPLICA STATUS" }
func (mysqlFlavor) StartReplicaSQL() string    { return "START REPLICA" }
func (mysqlFlavor) StopReplicaSQL() []string   { return []string{"STOP REPLICA", "RESET REPLICA ALL"} }

// ReadOnlySQL: super_read_only, which also holds users with
// CONNECTION_ADMIN; turning it off leaves read_only on.
func (mysqlFlavor) ReadOnlySQL(on bool) []string {
	if on {
		return []string{"SET GLOBAL super_read_only = ON"}
	}
	return []string{"SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF"}
}

func (mysqlFlavor) SemiSyncSourceOnSQL(t time.Duration) []string {
	return []string{
		"SET GLOBAL rpl_semi_sync_source_wait_point = 'AFTER_SYNC'",
		"SET GLOBAL rpl_semi_sync_source_timeout = " + strconv.FormatInt(t.Milliseconds(), 10),
		"SET GLOBAL rpl_semi_sync_source_wait_for_replica_count = 1",
		"SET GLOBAL rpl_semi_sync_source_wait_no_replica = ON",
		"SET GLOBAL rpl_semi_sync_source_enabled = " + onOff(true),
	}
}

func (mysqlFlavor) SemiSyncHoldSQL() (string, string) {
	return "SET GLOBAL rpl_semi_sync_source_wait_no_replica = ON", "rpl_semi_sync_source_timeout"
}

func (mysqlFlavor) SemiSyncSourceVar() string { return "rpl_semi_sync_source_enabled" }

func (mysqlFlavor) SemiSyncSourcePlugin() string {
	return "INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source.so'"
}

func (mysqlFlavor) ChangeSourceSQL(host string, port int, user, password string) string {
	return fmt.Sprintf("CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%d, SOURCE_USER=%s, SOURCE_PASSWORD=%s, "+
		"SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=1, SOURCE_HEARTBEAT_PERIOD=1", QuoteSQL(host), port, QuoteSQL(user), QuoteSQL(password))
}

func (mysqlFlavor) OwnBinlogStartSQL() []string { return nil }
