package failover

import (
	"context"
	"time"
)

// Credentials log in to a MySQL or MariaDB server.
type Credentials struct {
	User     string
	Password string
}

// ReplicaInfo is a server's replication, as SHOW REPLICA/SLAVE STATUS says.
type ReplicaInfo struct {
	Configured bool   `json:"configured"`
	IORunning  bool   `json:"io_running"`
	SQLRunning bool   `json:"sql_running"`
	SourceHost string `json:"source_host,omitempty"`
	SourcePort int    `json:"source_port,omitempty"`
	LastError  string `json:"last_error,omitempty"`
}

// ServerInfo is what the failover reads from a server.
type ServerInfo struct {
	Flavor   string `json:"flavor"`
	Version  string `json:"version"`
	ServerID uint32 `json:"server_id"`
	UUID     string `json:"uuid,omitempty"`
	// GTIDs is what the server has applied: MySQL @@gtid_executed, MariaDB
	// @@gtid_current_pos.
	GTIDs string `json:"gtids"`
	// Held lists what the server holds, for the errant check: MySQL
	// @@gtid_executed; MariaDB @@gtid_binlog_state (one GTID per domain and
	// server id, so that a local write stays visible after replication
	// moves the domain on).
	Held     string      `json:"held"`
	ReadOnly bool        `json:"read_only"`
	Replica  ReplicaInfo `json:"replica"`
}

// Session is one row of a server's process list.
type Session struct {
	ID                         uint64
	User, Command, State, Info string
}

// Server is one MySQL or MariaDB server as the failover drives it. Every
// method is bounded by ctx; a Server is used by one goroutine at a time.
// Methods are idempotent, so a step can be retried or resumed by a new
// leader.
type Server interface {
	Ping(ctx context.Context) error
	Info(ctx context.Context) (ServerInfo, error)
	// SetReadOnly turns read_only (and MySQL's super_read_only) on or off.
	SetReadOnly(ctx context.Context, on bool) error
	// ConnID is this session's id on the server (its processlist Id).
	ConnID() uint64
	// Sessions lists the server's sessions (SHOW PROCESSLIST).
	Sessions(ctx context.Context) ([]Session, error)
	// Kill ends the sessions ids (KILL CONNECTION), in that order, and
	// returns how many it ended (one that is gone already is not counted).
	Kill(ctx context.Context, ids []uint64) (int, error)
	// HoldSemiSync makes the semi-sync source side keep waiting: it waits
	// even with no semi-sync replica connected, and its timeout is at
	// least an hour. A wait already in progress keeps its deadline.
	HoldSemiSync(ctx context.Context) error
	// ReleaseAckWaits ends the commits that wait for a semi-sync ACK
	// after their sessions were killed: MySQL's wait ignores KILL, so its
	// semi-sync source side is turned off (they commit without an ACK);
	// MariaDB's ends at the KILL, so nothing is done there.
	ReleaseAckWaits(ctx context.Context) error
	// RestoreAckWaits turns back on what ReleaseAckWaits turned off.
	RestoreAckWaits(ctx context.Context) error
	StartReplication(ctx context.Context) error
	// StopReplication stops the replica threads and forgets the source
	// (RESET SLAVE/REPLICA ALL), so a restart does not reconnect.
	StopReplication(ctx context.Context) error
	// EnableSemiSyncSource turns the semi-sync source side on (loading the
	// plugin on MySQL if needed): AFTER_SYNC, wait for one replica, wait
	// even with none connected, timeout as given.
	EnableSemiSyncSource(ctx context.Context, timeout time.Duration) error
	DisableSemiSyncSource(ctx context.Context) error
	// ReplicateFrom points the server at the fleet by GTID and starts
	// replication. ownBinlog: MariaDB first sets gtid_slave_pos to its
	// gtid_current_pos (a former source, whose own writes are in its binlog).
	ReplicateFrom(ctx context.Context, addr string, cred Credentials, ownBinlog bool) error
	// BinlogGTIDs returns the GTIDs in the server's binary logs, newest
	// file first, stopping after the first file whose first GTID satisfies
	// stop.
	BinlogGTIDs(ctx context.Context, stop func(gtid string) bool) ([]string, error)
	Close() error
}

// Connector opens a Server.
type Connector func(ctx context.Context, addr string, cred Credentials) (Server, error)
