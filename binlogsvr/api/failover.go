package api

import "time"

// Operation kinds.
const (
	KindFailover   = "failover"
	KindSwitchover = "switchover"
)

// Steps of an operation, in order. An operation's Step is the last one
// completed.
const (
	StepStarted  = "started"   // decided; pre-failover hook passed
	StepFenced   = "fenced"    // SetSource to the fence's epoch applied
	StepChosen   = "chosen"    // candidate chosen (Target)
	StepCaughtUp = "caught-up" // the target applied the whole log; its replication stopped
	StepPromoted = "promoted"  // writable, semi-sync source on, SetSource to it applied
	StepResumed  = "resumed"   // the ingest streams from the new source
	StepDone     = "done"      // hooks ran; finished
	StepAborted  = "aborted"   // dropped without a source change
)

// FailoverStatus is the failover's state (failover.Status) for
// /failover/status and binlogctl.
type FailoverStatus struct {
	Leader       bool       `json:"leader"`
	Auto         bool       `json:"auto"`
	Epoch        uint64     `json:"epoch"`
	Source       string     `json:"source"`
	Fenced       bool       `json:"fenced"`
	Lease        string     `json:"lease"`
	LeaseHeld    bool       `json:"lease_held"`
	LeaseExpiry  time.Time  `json:"lease_expiry,omitzero"`
	LastContact  time.Time  `json:"last_contact,omitzero"`
	ProbeError   string     `json:"probe_error,omitempty"`
	Verdict      string     `json:"verdict"`
	Decision     string     `json:"decision"`
	Reason       string     `json:"reason,omitempty"`
	AntiFlapTill time.Time  `json:"anti_flap_until,omitzero"`
	Operation    *Operation `json:"operation,omitempty"`
	Last         *Operation `json:"last,omitempty"`
	// LastStall and LastStallEnd: this member's latest measured stall
	// (its timers or its step loop ran late), after which the lease
	// restarted.
	LastStall    string    `json:"last_stall,omitempty"`
	LastStallEnd time.Time `json:"last_stall_end,omitzero"`
	// FailedProbes counts the fresh failed probes (started after the last
	// contact and the last stall); Vantage is what the other members
	// answered when last asked.
	FailedProbes int      `json:"failed_probes"`
	Vantage      *Vantage `json:"vantage,omitempty"`
	// LeaderSince is when this member began to lead (its lease grace
	// started there).
	LeaderSince time.Time `json:"leader_since,omitzero"`
	// Advice is the one line saying what the operator must do while a
	// failover waits with nothing to promote; RetryInterval is its backoff.
	Advice        string `json:"advice,omitempty"`
	RetryInterval string `json:"retry_interval,omitempty"`
	// PendingFences are the old sources whose fence did not complete and
	// that the leader retries (failover/fence.go), oldest first.
	PendingFences []PendingFence `json:"pending_fences,omitempty"`
	// CatchUp is the target's progress while an operation waits for it to
	// apply the whole log (between the steps chosen and caught-up).
	CatchUp *CatchUp `json:"catch_up,omitempty"`
}

// CatchUp is a failover target's progress through the log's transactions
// it lacked when the wait began.
type CatchUp struct {
	Target string    `json:"target"`
	Since  time.Time `json:"since"`
	// Missing is how many of the log's transactions it has not applied
	// yet; Total is how many it lacked when the wait began.
	Missing uint64 `json:"missing"`
	Total   uint64 `json:"total"`
	// Rate is the transactions it applied per second since the wait
	// began; ETASeconds the time left at that rate (-1: not known yet).
	Rate       float64 `json:"rate_per_second"`
	ETASeconds float64 `json:"eta_seconds"`
}

// PendingFence is an old source whose fence (read_only, client sessions
// ended) did not complete, as recorded in the log and shown in
// /failover/status.
type PendingFence struct {
	Addr string `json:"addr"`
	// Since is when the fence was first tried (the failover's fence step).
	Since time.Time `json:"since"`
	// OpID and Epoch: the operation that fenced it in the log, and the
	// fence's epoch.
	OpID  string `json:"op_id,omitempty"`
	Epoch uint64 `json:"epoch,omitempty"`
	// Attempts counts the tries so far (the failover's included);
	// LastError and LastAttempt are the latest failed one's.
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
}

// Vantage is the answer of the other members when the leader asked them
// to probe the source with their own connections.
type Vantage struct {
	// Asked is when the leader started asking.
	Asked time.Time `json:"asked"`
	// Reached and Unreached are the members whose own probe reached, or
	// failed to reach, the source; a member that could not be asked (down,
	// cut off) is in neither, and Errors says why.
	Reached   []uint64 `json:"reached,omitempty"`
	Unreached []uint64 `json:"unreached,omitempty"`
	Errors    []string `json:"errors,omitempty"`
}

// Operation is one failover or switchover as recorded in the log, so that
// a new leader can finish it.
type Operation struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Forced  bool      `json:"forced,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Step    string    `json:"step"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	Leader  uint64    `json:"leader"`

	OldSource  Source `json:"old_source"`
	FromEpoch  uint64 `json:"from_epoch"`
	FenceEpoch uint64 `json:"fence_epoch,omitempty"`
	// LogGTIDs is the log's GTID state at the fence: what the new source
	// must hold.
	LogGTIDs  string `json:"log_gtids,omitempty"`
	To        string `json:"to,omitempty"` // the operator's choice, if any
	Target    string `json:"target,omitempty"`
	NewSource Source `json:"new_source"`
	NewEpoch  uint64 `json:"new_epoch,omitempty"`
	Message   string `json:"message,omitempty"`
}

// Finished reports whether nothing is left to do.
func (o *Operation) Finished() bool {
	return o.Step == StepDone || o.Step == StepAborted
}

// Record is one audit record: one step of one operation, or a decision
// not to act.
type Record struct {
	Key       string    `json:"key"`
	Time      time.Time `json:"time"`
	OpID      string    `json:"op_id,omitempty"`
	Kind      string    `json:"kind"`
	Step      string    `json:"step"`
	Outcome   string    `json:"outcome"` // ok, failed, vetoed, blocked, waiting
	Leader    uint64    `json:"leader"`
	Epoch     uint64    `json:"epoch"`
	OldSource string    `json:"old_source,omitempty"`
	NewSource string    `json:"new_source,omitempty"`
	GTIDs     string    `json:"gtids,omitempty"`
	Message   string    `json:"message,omitempty"`
	// Elapsed is the time since the operation started.
	Elapsed string `json:"elapsed,omitempty"`
}

// Candidate is a replica the fleet may promote. Candidates are stored in
// the log (failover.MetaCandidatePrefix+Addr) so that every leader knows
// them; they come from --failover-candidate flags or the admin API.
type Candidate struct {
	Addr string `json:"addr"`
	// Credential names the admin account used to log in to it: a line
	// "NAME USER PASSWORD" of --failover-credentials-file on every member.
	// The log holds only the name.
	Credential string `json:"credential,omitempty"`
	// User, without Credential, is the account to use with the fleet's
	// admin password; empty: --failover-admin-user.
	User string `json:"user,omitempty"`
	// Password is only ever read: records written by older versions held
	// it; such a record is still used (with a warning) and never written
	// again (failover's PutCandidate refuses a password).
	Password string `json:"password,omitempty"`
	// Priority breaks ties between equally caught-up candidates: higher
	// wins.
	Priority int `json:"priority"`
	// NeverPromote keeps a replica out of every choice (a delayed replica,
	// a backup host).
	NeverPromote bool `json:"never_promote"`
}

// Redacted returns c without its password, for the API and the audit.
func (c Candidate) Redacted() Candidate {
	if c.Password != "" {
		c.Password = "***"
	}
	return c
}

// CandidateState is one candidate as observed just now.
type CandidateState struct {
	Candidate
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	ServerID  uint32 `json:"server_id,omitempty"`
	UUID      string `json:"uuid,omitempty"`
	// GTIDs is what it has applied: MySQL @@gtid_executed, MariaDB
	// @@gtid_current_pos.
	GTIDs string `json:"gtids,omitempty"`
	// Missing counts the log's transactions it has not applied yet.
	Missing uint64 `json:"missing"`
	// Errant lists GTIDs it holds that the log does not: it never is
	// promoted (rule 4: a promoted replica holds exactly the log).
	Errant []string `json:"errant,omitempty"`
	// IsSource: it is the log's current source.
	IsSource bool `json:"is_source,omitempty"`
	Eligible bool `json:"eligible"`
	// Why it is not eligible.
	Reason string `json:"reason,omitempty"`
}

// RejoinReport is the rejoin check of an old source.
type RejoinReport struct {
	Server   string `json:"server"`
	Flavor   string `json:"flavor"`
	ServerID uint32 `json:"server_id"`
	// ServerGTIDs is what the server has executed; LogGTIDs the log's state.
	ServerGTIDs string `json:"server_gtids"`
	LogGTIDs    string `json:"log_gtids"`
	// Unacknowledged lists the server's transactions the log does not
	// hold. The log stores a transaction before it is ACKed (rule 1), so
	// none of them was ever acknowledged to a client: safe to discard.
	Unacknowledged []string `json:"unacknowledged"`
	// Transactions is how many transactions Unacknowledged holds (a MySQL
	// entry is a run of them).
	Transactions uint64 `json:"transactions"`
	// Keep is the server's GTID state without the unacknowledged
	// transactions: once they are undone, what its gtid_purged (MySQL) or
	// gtid_slave_pos (MariaDB, after RESET MASTER) must be set to.
	Keep string `json:"keep_gtids,omitempty"`
	// Safe: nothing to discard; the server may replicate from the fleet.
	Safe     bool   `json:"safe"`
	IsSource bool   `json:"is_source,omitempty"`
	Advice   string `json:"advice"`
	// Rejoined is set by Rejoin once the server replicates from the fleet.
	Rejoined bool `json:"rejoined,omitempty"`
}
