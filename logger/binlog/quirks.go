package binlog

import (
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Quirks are the differences of protocol and behaviour between MySQL and
// MariaDB that are not GTID text or SQL: how each takes a dump, what a
// server of the flavor announces and answers, and what its state means to
// the failover. Every method is pure.
type Quirks interface {
	// TakesDumpGTID reports whether a source of this flavor takes
	// COM_BINLOG_DUMP_GTID. MariaDB answers it "unknown command": its GTID
	// dumps are COM_BINLOG_DUMP after SET @slave_connect_state.
	TakesDumpGTID() bool
	// DumpsFromConnectState reports whether a COM_BINLOG_DUMP starts at
	// @slave_connect_state when the session set it (MariaDB).
	DumpsFromConnectState() bool
	// HeartbeatV2 reports whether dump flags ask for HEARTBEAT_LOG_EVENT_V2
	// (MySQL's flag 0x02).
	HeartbeatV2(dumpFlags uint16) bool
	// AnnotateRows reports whether dump flags ask for ANNOTATE_ROWS events
	// (MariaDB's BINLOG_SEND_ANNOTATE_ROWS_EVENT, the same flag 0x02).
	AnnotateRows(dumpFlags uint16) bool
	// AnnouncedVersion is the VERSION() a server of this flavor answers,
	// given the server version of the source's FDE ("" if none yet): the
	// source's own if it is of this flavor, else a default.
	AnnouncedVersion(fdeVersion string) string
	// Greeting returns the handshake's version string for version and the
	// authentication method offered: MariaDB clients get
	// mysql_native_password and a "5.5.5-" prefix (a MariaDB replica falls
	// back to file/position unless it reads "MariaDB" there); MySQL
	// clients get caching_sha2_password.
	Greeting(version string) (greeting, authMethod string)
	// ShowsMySQLColumns reports whether SHOW MASTER STATUS, SHOW BINARY
	// LOGS and SHOW REPLICAS carry MySQL's extra columns
	// (Executed_Gtid_Set, Encrypted, Replica_UUID).
	ShowsMySQLColumns() bool
	// GTIDVars returns the GTID system variables a server of this flavor
	// answers: gtids is its GTID state, purged what it no longer holds,
	// domain the MariaDB domain of its newest GTID.
	GTIDVars(gtids, purged string, domain uint32) map[string]string
	// GTIDEventInfo is the Info column of SHOW BINLOG EVENTS for a GTID
	// event.
	GTIDEventInfo(gtid string) string
	// HasServerUUID reports whether servers of this flavor have a
	// server_uuid that identifies them.
	HasServerUUID() bool
	// KillEndsAckWait reports whether killing a session ends its commit's
	// wait for a semi-sync ACK (MariaDB); a MySQL commit waits on until
	// semi-sync is turned off or times out.
	KillEndsAckWait() bool
	// CurrentPosHeld reports whether a server's current GTID position can
	// hold GTIDs its binlog state lacks (MariaDB after RESET MASTER: its
	// gtid_slave_pos, where it would start replicating from).
	CurrentPosHeld() bool
	// DiscardAdvice tells an operator how to discard a server's
	// unacknowledged GTIDs (transactions of them) and set its GTID state
	// to keep.
	DiscardAdvice(transactions uint64, unacknowledged []string, keep string) string
	// GTIDPrefix is the text before the sequence number of the GTIDs a
	// writer of this identity appends after last ("" if none): MySQL
	// last's uuid[:tag], else uuid; MariaDB domain 0 and serverID.
	GTIDPrefix(uuid string, serverID uint32, last string) string
}

func (mysqlFlavor) TakesDumpGTID() bool         { return true }
func (mariadbFlavor) TakesDumpGTID() bool       { return false }
func (mysqlFlavor) DumpsFromConnectState() bool { return false }

func (mariadbFlavor) DumpsFromConnectState() bool { return true }

// dumpFlag0x02 is BINLOG_SEND_ANNOTATE_ROWS_EVENT on MariaDB and
// USE_HEARTBEAT_EVENT_V2 on MySQL.
const dumpFlag0x02 = 0x0002

func (mysqlFlavor) HeartbeatV2(f uint16) bool    { return f&dumpFlag0x02 != 0 }
func (mariadbFlavor) HeartbeatV2(uint16) bool    { return false }
func (mysqlFlavor) AnnotateRows(uint16) bool     { return false }
func (mariadbFlavor) AnnotateRows(f uint16) bool { return f&dumpFlag0x02 != 0 }

// NB: the FDE's text is matched as servers write it ("MariaDB").
func (mysqlFlavor) AnnouncedVersion(v string) string {
	if v == "" || strings.Contains(v, "MariaDB") {
		return "8.4.0-binlogsvr"
	}
	return v
}

func (mariadbFlavor) AnnouncedVersion(v string) string {
	if !strings.Contains(v, "MariaDB") {
		return "10.11.0-MariaDB-binlogsvr"
	}
	return v
}

func (mysqlFlavor) Greeting(v string) (string, string) { return v, mysql.AUTH_CACHING_SHA2_PASSWORD }
func (mariadbFlavor) Greeting(v string) (string, string) {
	return "5.5.5-" + v, mysql.AUTH_NATIVE_PASSWORD
}

func (mysqlFlavor) ShowsMySQLColumns() bool   { return true }
func (mariadbFlavor) ShowsMySQLColumns() bool { return false }

func (mysqlFlavor) GTIDVars(gtids, purged string, _ uint32) map[string]string {
	return map[string]string{
		"gtid_mode":                      "ON",
		"enforce_gtid_consistency":       "ON",
		"gtid_executed":                  gtids,
		"gtid_purged":                    purged,
		"log_replica_updates":            "ON",
		"log_slave_updates":              "ON",
		"binlog_row_metadata":            "MINIMAL",
		"binlog_transaction_compression": "OFF",
		"binlog_expire_logs_seconds":     "0",
	}
}

func (mariadbFlavor) GTIDVars(gtids, _ string, domain uint32) map[string]string {
	return map[string]string{
		"gtid_domain_id":             fmt.Sprint(domain),
		"gtid_current_pos":           gtids,
		"gtid_binlog_pos":            gtids,
		"gtid_binlog_state":          gtids,
		"gtid_slave_pos":             "",
		"gtid_strict_mode":           "OFF",
		"log_slave_updates":          "ON",
		"binlog_annotate_row_events": "ON",
		"binlog_row_metadata":        "NO_LOG",
	}
}

func (mysqlFlavor) GTIDEventInfo(g string) string   { return "SET @@SESSION.GTID_NEXT= '" + g + "'" }
func (mariadbFlavor) GTIDEventInfo(g string) string { return "BEGIN GTID " + g }

func (mysqlFlavor) HasServerUUID() bool     { return true }
func (mariadbFlavor) HasServerUUID() bool   { return false }
func (mysqlFlavor) KillEndsAckWait() bool   { return false }
func (mariadbFlavor) KillEndsAckWait() bool { return true }
func (mysqlFlavor) CurrentPosHeld() bool    { return false }
func (mariadbFlavor) CurrentPosHeld() bool  { return true }

func (mysqlFlavor) DiscardAdvice(n uint64, unacked []string, keep string) string {
	return fmt.Sprintf("%d transactions (%s) were never acknowledged: discard them first. Either rebuild the server from a replica of the fleet (CLONE or a backup), "+
		"or undo them by hand with sql_log_bin=0; then RESET BINARY LOGS AND GTIDS and SET GLOBAL gtid_purged = '%s'; then run binlogctl rejoin again", n, strings.Join(unacked, ","), keep)
}

func (mariadbFlavor) DiscardAdvice(_ uint64, unacked []string, keep string) string {
	start := keep
	if start == "" {
		start = "''"
	}
	return fmt.Sprintf("%d transactions (%s) were never acknowledged: discard them first. Either rebuild the server from a replica of the fleet, "+
		"or undo them with a flashback: mariadb-binlog --flashback --start-position=%s over its binlog files, applied with sql_log_bin=0; "+
		"then RESET MASTER and SET GLOBAL gtid_slave_pos = '%s'; then run binlogctl rejoin again", len(unacked), strings.Join(unacked, ","), start, keep)
}

func (mysqlFlavor) GTIDPrefix(uuid string, _ uint32, last string) string {
	if i := strings.LastIndexByte(last, ':'); i >= 0 {
		return last[:i+1]
	}
	return uuid + ":"
}

func (mariadbFlavor) GTIDPrefix(_ string, serverID uint32, _ string) string {
	return fmt.Sprintf("0-%d-", serverID)
}
