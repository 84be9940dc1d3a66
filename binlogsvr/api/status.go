package api

import "time"

// Status is the JSON of GET /status: the group as this member sees it.
type Status struct {
	ID     uint64 `json:"id"`
	Role   string `json:"role"`
	Leader uint64 `json:"leader"`
	Epoch  uint64 `json:"epoch"`
	Source string `json:"source"` // Source.String: "fenced:" + address while fenced
	// SourceFenced: a failover fenced the source and has not named the
	// next one yet.
	SourceFenced bool   `json:"source_fenced"`
	Flavor       string `json:"flavor"`
	GTIDExecuted string `json:"gtid_executed"`
	LastGTID     string `json:"last_gtid"`
	FirstFile    string `json:"first_file"`
	LastFile     string `json:"last_file"`
	LastPosition uint64 `json:"last_position"`
	Applied      uint64 `json:"applied"`
	Transactions uint64 `json:"transactions"`
	SourceError  string `json:"source_error,omitempty"`
	// Insecure: this member runs with --insecure (no TLS, no tokens).
	Insecure bool `json:"insecure,omitempty"`
	// Ingest is the leader's pull from the source (on other members: idle).
	Ingest *IngestStatus `json:"ingest,omitempty"`
	// DumpAddr and DumpClients: this member's serving of replicas and CDC
	// subscribers (empty when it does not serve).
	DumpAddr    string             `json:"dump_addr,omitempty"`
	DumpClients []DumpClientStatus `json:"dump_clients,omitempty"`
	Members     []MemberStatus     `json:"members"`
	// MembershipNote is set when Members comes from this member's own view
	// because the group could not answer (no quorum, an election).
	MembershipNote string `json:"membership_note,omitempty"`
	// DiskFreeBytes and DiskState: this member's data directory's disk
	// (logger.DiskOK, DiskLow, DiskReserve: appends paused, DiskUnknown).
	DiskFreeBytes uint64 `json:"disk_free_bytes"`
	DiskState     string `json:"disk_state"`
	// Removed is set once this member was removed from the group: who did
	// it and what to do (the member exits shortly after).
	Removed string `json:"removed,omitempty"`
}

// MemberStatus is one member in Status.Members. The fields after Leader are
// read from the member itself; Error says why they could not be.
type MemberStatus struct {
	ID           uint64 `json:"id"`
	Role         string `json:"role"`
	RaftAddr     string `json:"raft_addr"`
	AdminAddr    string `json:"admin_addr,omitempty"`
	Leader       bool   `json:"leader"`
	Applied      uint64 `json:"applied"`
	GTIDExecuted string `json:"gtid_executed,omitempty"`
	LastFile     string `json:"last_file,omitempty"`
	LastPosition uint64 `json:"last_position,omitempty"`
	Error        string `json:"error,omitempty"`
}

// SemiSyncStatus is the source's semi-sync state as last read.
type SemiSyncStatus struct {
	Enabled bool   `json:"enabled"` // rpl_semi_sync_{master,source}_enabled
	Status  bool   `json:"status"`  // Rpl_semi_sync_*_status: false = fallen back to async
	Clients int64  `json:"clients"`
	YesTx   int64  `json:"yes_tx"`
	NoTx    int64  `json:"no_tx"`
	Error   string `json:"error,omitempty"`
	// Degraded: the source commits without waiting for the fleet: commits
	// are NOT protected.
	Degraded bool `json:"degraded"`
}

// IngestStatus is the ingest's state (semisync.Status) in Status.Ingest.
type IngestStatus struct {
	State        string         `json:"state"`
	Source       string         `json:"source"`
	LastError    string         `json:"last_error,omitempty"`
	SemiSync     SemiSyncStatus `json:"semi_sync"`
	LastAckFile  string         `json:"last_ack_file,omitempty"`
	LastAckPos   uint64         `json:"last_ack_position,omitempty"`
	LastAckGTID  string         `json:"last_ack_gtid,omitempty"`
	LastAckTime  time.Time      `json:"last_ack_time,omitzero"`
	SourceFile   string         `json:"source_file,omitempty"`
	SourcePos    uint64         `json:"source_position,omitempty"`
	LagSeconds   float64        `json:"lag_seconds"`
	LagBytes     uint64         `json:"lag_bytes"`
	Version      string         `json:"source_version,omitempty"`
	SessionStart time.Time      `json:"session_start,omitzero"`
	// StatementEvents counts the statement-based DML events received (a
	// session on the source with binlog_format=STATEMENT): stored and
	// ACKed, but CDC tools cannot read them and replicas may diverge.
	StatementEvents   uint64    `json:"statement_events"`
	LastStatementGTID string    `json:"last_statement_gtid,omitempty"`
	LastStatementTime time.Time `json:"last_statement_time,omitzero"`
	// LastEventTime is when the stream last brought an event (heartbeats
	// included): the source's lease counts it as contact.
	LastEventTime time.Time `json:"last_event_time,omitzero"`
	// SourceOldestFile and SourcePurged say where the source's history
	// ends: its oldest binlog file held, and the GTIDs it can no longer
	// send (MySQL gtid_purged; MariaDB the GTID state at the start of that
	// file; "" with SourceOldestFile set: nothing purged). Read at each
	// session's start and every --source-status-interval.
	SourceOldestFile string `json:"source_oldest_file,omitempty"`
	SourcePurged     string `json:"source_purged,omitempty"`
	// Backfill is the ingest's way through the source's binlog while it
	// reads from behind the source's end: the source's history after the
	// log was seeded (--source-start), or a catch-up after a pause. The
	// last one stays, inactive, once it reached the end.
	Backfill *BackfillStatus `json:"backfill,omitempty"`
}

// BackfillStatus is the progress of a read from behind the source's end
// (IngestStatus.Backfill). Bytes are offsets in the source's binlog files
// as SHOW BINARY LOGS lists them, counted from the start of the oldest
// file it holds.
type BackfillStatus struct {
	// Active: the ingest has not reached the source's end yet.
	Active bool `json:"active"`
	// ReadBytes is the ingest's position in the source's files; TotalBytes
	// their sizes as last read (SizesRead): the source's end.
	ReadBytes  uint64    `json:"read_bytes"`
	TotalBytes uint64    `json:"total_bytes"`
	Files      int       `json:"files"`
	SizesRead  time.Time `json:"sizes_read,omitzero"`
	// FromFile is the source's file the read began in; SourceFile the one
	// it reads now (IngestStatus.SourceFile has the position).
	FromFile   string `json:"from_file,omitempty"`
	SourceFile string `json:"source_file,omitempty"`
	// RateBytesPerSecond is the mean rate since the read began; ETASeconds
	// the time left at that rate (0 once done or while unknown).
	RateBytesPerSecond float64   `json:"rate_bytes_per_second"`
	ETASeconds         float64   `json:"eta_seconds"`
	Started            time.Time `json:"started,omitzero"`
	Finished           time.Time `json:"finished,omitzero"`
}

// DumpClientStatus describes one connection to the dump server
// (dump.ClientStatus) in Status.DumpClients.
type DumpClientStatus struct {
	ID       uint32    `json:"id"` // the connection id (what KILL takes)
	Remote   string    `json:"remote"`
	User     string    `json:"user"`
	Since    time.Time `json:"since"`
	ServerID uint32    `json:"server_id,omitempty"` // from COM_REGISTER_SLAVE or the dump
	UUID     string    `json:"uuid,omitempty"`      // @slave_uuid / @replica_uuid
	// ReportHost/ReportPort are what COM_REGISTER_SLAVE announced.
	ReportHost string `json:"report_host,omitempty"`
	ReportPort uint16 `json:"report_port,omitempty"`
	Registered bool   `json:"registered"`
	// Dumping is set while a dump runs; Mode is "file", "gtid" (MySQL
	// COM_BINLOG_DUMP_GTID) or "mariadb-gtid"; Start is the requested start.
	Dumping bool   `json:"dumping"`
	Mode    string `json:"mode,omitempty"`
	Start   string `json:"start,omitempty"`
	// File and Pos are the position after the last event sent.
	File       string  `json:"file,omitempty"`
	Pos        uint64  `json:"pos,omitempty"`
	Events     uint64  `json:"events"`
	Bytes      uint64  `json:"bytes"`
	Heartbeats uint64  `json:"heartbeats"`
	CaughtUp   bool    `json:"caught_up"`
	LagSeconds float64 `json:"lag_seconds"`
	// SemiSync is set while the client's dump speaks semi-sync (it set
	// @rpl_semi_sync_replica or @rpl_semi_sync_slave): its events carry the
	// semi-sync header and the last event of each transaction asks for an
	// ACK. The fleet's own ACK to its source never waits for these ACKs.
	SemiSync bool `json:"semi_sync,omitempty"`
	// Acks counts the ACKs the client sent; AckFile:AckPos is the furthest
	// point of the log it acknowledged, at AckTime (this member's clock).
	Acks    uint64    `json:"acks,omitempty"`
	AckFile string    `json:"ack_file,omitempty"`
	AckPos  uint64    `json:"ack_pos,omitempty"`
	AckTime time.Time `json:"ack_time,omitzero"`
	// AckLatencySeconds is the time from writing the newest event that
	// asked for an ACK to that ACK.
	AckLatencySeconds float64 `json:"ack_latency_seconds,omitempty"`
}

// Source identifies the source (the MySQL or MariaDB primary) the log pulls
// from (logger.Source): the log's record, which failover operations name.
// It has no JSON tags: its JSON names are the field names, as the log's
// failover records have always stored them.
type Source struct {
	Addr     string // host:port the fleet connects to
	UUID     string // MySQL server_uuid; empty for MariaDB
	ServerID uint32 // the source's server_id
	Flavor   string // "mysql" or "mariadb"
	// Fenced: a failover's fence. The log's epoch moved away from the
	// source at Addr and nothing more is accepted from it (no Append is
	// stored, so nothing is ACKed) until a SetSource names a new source.
	Fenced bool `json:",omitempty"`
}

// FencedPrefix starts the text form of a fenced source ("fenced:" + Addr):
// what status pages and older logs show.
const FencedPrefix = "fenced:"

// String is the source's text form in status pages: its address, or
// "fenced:" + its address when fenced.
func (s Source) String() string {
	if s.Fenced {
		return FencedPrefix + s.Addr
	}
	return s.Addr
}
