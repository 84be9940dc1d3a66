package semisync

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// dialect is the one seam between MySQL and MariaDB on the replica side:
// the session variables, the semi-sync names and the dump command.
type dialect interface {
	flavor() binlog.Flavor
	// setup returns the statements sent before COM_REGISTER_SLAVE.
	setup(gtids string, heartbeat time.Duration, replicaUUID string) []string
	// semiSyncEnabledQuery reads whether the source's semi-sync is on
	// (one value: ON/OFF or 1/0); an error means no semi-sync plugin.
	semiSyncEnabledQuery() string
	semiSyncOn() string
	// statusPrefix is the prefix of the source's semi-sync status variables.
	statusPrefix() string
	// dump returns the COM_BINLOG_DUMP(_GTID) payload starting at gtids.
	dump(serverID uint32, gtids string) ([]byte, error)
}

func dialectFor(flavor string) (dialect, error) {
	switch flavor {
	case "mysql":
		return mysqlDialect{}, nil
	case "mariadb":
		return mariadbDialect{}, nil
	}
	return nil, fmt.Errorf("semisync: unknown flavor %q", flavor)
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

type mysqlDialect struct{}

func (mysqlDialect) flavor() binlog.Flavor { return binlog.MySQL() }

func (mysqlDialect) setup(_ string, hb time.Duration, uuid string) []string {
	ns := hb.Nanoseconds()
	return []string{
		fmt.Sprintf("SET @master_heartbeat_period = %d, @source_heartbeat_period = %d", ns, ns),
		"SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum",
		fmt.Sprintf("SET @slave_uuid = %s, @replica_uuid = %s", quote(uuid), quote(uuid)),
	}
}

func (mysqlDialect) semiSyncEnabledQuery() string {
	return "SELECT @@global.rpl_semi_sync_source_enabled"
}

func (mysqlDialect) semiSyncOn() string {
	return "SET @rpl_semi_sync_replica = 1, @rpl_semi_sync_slave = 1"
}

func (mysqlDialect) statusPrefix() string { return "Rpl_semi_sync_source_" }

// dump: COM_BINLOG_DUMP_GTID: flags, server_id, name length, name, pos,
// data length, the encoded GTID set.
func (mysqlDialect) dump(serverID uint32, gtids string) ([]byte, error) {
	set, err := binlog.MySQL().ParseSet(gtids)
	if err != nil {
		return nil, err
	}
	data, err := binlog.EncodeMySQLSet(set)
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

type mariadbDialect struct{}

func (mariadbDialect) flavor() binlog.Flavor { return binlog.MariaDB() }

func (mariadbDialect) setup(gtids string, hb time.Duration, _ string) []string {
	return []string{
		fmt.Sprintf("SET @master_heartbeat_period = %d", hb.Nanoseconds()),
		"SET @master_binlog_checksum = @@global.binlog_checksum",
		"SET @mariadb_slave_capability = 4",
		"SET @slave_connect_state = " + quote(gtids),
		// NB: strict: the source refuses a start state it cannot continue
		// exactly, rather than skipping ahead.
		"SET @slave_gtid_strict_mode = 1",
		"SET @slave_gtid_ignore_duplicates = 0",
	}
}

func (mariadbDialect) semiSyncEnabledQuery() string {
	return "SELECT @@global.rpl_semi_sync_master_enabled"
}

func (mariadbDialect) semiSyncOn() string { return "SET @rpl_semi_sync_slave = 1" }

func (mariadbDialect) statusPrefix() string { return "Rpl_semi_sync_master_" }

// dump: COM_BINLOG_DUMP with an empty name; @slave_connect_state gives the
// start.
func (mariadbDialect) dump(serverID uint32, _ string) ([]byte, error) {
	b := []byte{0x12}
	b = binary.LittleEndian.AppendUint32(b, 4)
	// NB: BINLOG_SEND_ANNOTATE_ROWS_EVENT: store the source's events as its
	// binlog holds them (without it the source leaves out ANNOTATE_ROWS).
	b = binary.LittleEndian.AppendUint16(b, 0x02)
	b = binary.LittleEndian.AppendUint32(b, serverID)
	return b, nil
}

// registerPacket is COM_REGISTER_SLAVE for this member.
func registerPacket(serverID uint32, host string, port uint16) []byte {
	b := []byte{0x15}
	b = binary.LittleEndian.AppendUint32(b, serverID)
	b = append(b, byte(len(host)))
	b = append(b, host...)
	b = append(b, 0, 0) // user, password: empty, as real replicas send
	b = binary.LittleEndian.AppendUint16(b, port)
	b = binary.LittleEndian.AppendUint32(b, 0) // rank
	b = binary.LittleEndian.AppendUint32(b, 0) // master id
	return b
}
