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

// Server is one MySQL or MariaDB server as the failover drives it. Every
// method is bounded by ctx; a Server is used by one goroutine at a time.
// Methods are idempotent, so a step can be retried or resumed by a new
// leader.
type Server interface {
	Ping(ctx context.Context) error
	Info(ctx context.Context) (ServerInfo, error)
	// SetReadOnly turns read_only (and MySQL's super_read_only) on or off.
	SetReadOnly(ctx context.Context, on bool) error
	// KillSessions ends client sessions (clients) and the dump threads of
	// connected replicas (dumps), never the server's own threads or the
	// caller's session; it returns how many it ended.
	KillSessions(ctx context.Context, clients, dumps bool) (int, error)
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
