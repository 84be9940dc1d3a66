package api

import (
	"fmt"
	"time"
)

// Roles, as the group's membership has them.
const (
	RoleLogger  = "logger"  // voting
	RoleLearner = "learner" // non-voting
)

// MembersStatus is the JSON of GET /members.
type MembersStatus struct {
	// AskedMember is the member that answered.
	AskedMember uint64 `json:"asked_member"`
	View
}

// View is the group as one member sees it (learner.View): the membership,
// and each member's progress relative to the leader.
type View struct {
	Leader  uint64   `json:"leader"`
	Members []Member `json:"members"`
	// Removed are ids that can never be used again.
	Removed []uint64  `json:"removed,omitempty"`
	At      time.Time `json:"at"`
	// Complete: the leader's report was available, so lags are known.
	Complete bool `json:"complete"`
	// ReplicaHolds are the replicas the group purge keeps files for:
	// connected ones, and disconnected ones within --replica-hold-ttl.
	ReplicaHolds []ReplicaHold `json:"replica_holds,omitempty"`
	// HoldTTLSeconds is the --replica-hold-ttl of the member that answered.
	HoldTTLSeconds float64 `json:"replica_hold_ttl_seconds,omitempty"`
}

// Get returns member id.
func (v View) Get(id uint64) (Member, bool) {
	for _, m := range v.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// Loggers returns the voting members.
func (v View) Loggers() []Member {
	var out []Member
	for _, m := range v.Members {
		if m.Role == RoleLogger {
			out = append(out, m)
		}
	}
	return out
}

// Member is one member in a View.
type Member struct {
	ID        uint64 `json:"id"`
	Role      string `json:"role"`
	RaftAddr  string `json:"raft_addr"`
	AdminAddr string `json:"admin_addr,omitempty"`
	Leader    bool   `json:"leader"`
	Weight    int    `json:"weight"`
	Applied   uint64 `json:"applied"`
	// LagEntries and LagBytes are how far the member is behind the leader.
	LagEntries  uint64    `json:"lag_entries"`
	LagBytes    uint64    `json:"lag_bytes"`
	LastContact time.Time `json:"last_contact,omitzero"`
	Reachable   bool      `json:"reachable"`
	CaughtUp    bool      `json:"caught_up"`
	Serving     bool      `json:"serving"`
	DumpAddr    string    `json:"dump_addr,omitempty"`
	Profile     string    `json:"profile,omitempty"`
	Retention   Retention `json:"retention"`
	File        uint32    `json:"file"`
	Pos         uint64    `json:"pos"`
	FirstFile   uint32    `json:"first_file"`
	HeldBytes   uint64    `json:"held_bytes"`
	DiskBytes   uint64    `json:"disk_bytes"`
	Snapshots   int64     `json:"snapshots_recovered"`
	Replicas    []Replica `json:"replicas,omitempty"`
	// Progress is set while the member catches up.
	Progress *Progress `json:"progress,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// Retention is a member's own retention (zero: no limit).
type Retention struct {
	Files      int     `json:"files,omitempty"`
	Bytes      uint64  `json:"bytes,omitempty"`
	AgeSeconds float64 `json:"age_seconds,omitempty"`
}

// Limited reports whether any limit is set.
func (r Retention) Limited() bool { return r.Files > 0 || r.Bytes > 0 || r.AgeSeconds > 0 }

// Replica is one dump client of a member and the file it reads.
type Replica struct {
	ServerID   uint32 `json:"server_id"`
	UUID       string `json:"uuid,omitempty"`
	Remote     string `json:"remote,omitempty"`
	Registered bool   `json:"registered"`
	File       uint32 `json:"file"`
	Pos        uint64 `json:"pos"`
}

// Progress is a member's catch-up: how much of the leader's log it holds,
// how fast it gains, and when it should be done.
type Progress struct {
	// Phase is "snapshot" while the member waits for or receives a snapshot
	// (its log is empty), "log" while it applies entries.
	Phase   string  `json:"phase"`
	Percent float64 `json:"percent"`
	Done    uint64  `json:"done_bytes"`
	Total   uint64  `json:"total_bytes"`
	// Rate is in bytes per second over the recent window; ETA in seconds
	// (-1: unknown).
	Rate float64 `json:"rate_bytes_per_second"`
	ETA  float64 `json:"eta_seconds"`
}

// String is the log line's text: "42.0% 12.0 MiB of 28.6 MiB, 3.1 MiB/s, ETA 5s".
func (p Progress) String() string {
	eta := "unknown"
	if p.ETA >= 0 {
		eta = (time.Duration(p.ETA * float64(time.Second))).Round(time.Second).String()
	}
	return fmt.Sprintf("%s: %.1f%% %s of %s, %s/s, ETA %s", p.Phase, p.Percent, Bytes(p.Done), Bytes(p.Total), Bytes(uint64(p.Rate)), eta)
}

// ReplicaHold is one replica's hold on the log.
type ReplicaHold struct {
	ServerID uint32 `json:"server_id"`
	UUID     string `json:"uuid,omitempty"`
	// File and Pos: how far it had read when last recorded (or now, when
	// connected); the purge keeps File and after.
	File uint32 `json:"file"`
	Pos  uint64 `json:"pos"`
	// Member it reads (or read) from, and its address there.
	Member uint64 `json:"member"`
	Remote string `json:"remote,omitempty"`
	// Seen is when it was last seen connected.
	Seen time.Time `json:"seen"`
	// In a View: Connected now (then Seen is the view's time), or
	// disconnected for AgeSeconds and kept until Expires.
	Connected  bool      `json:"connected"`
	AgeSeconds float64   `json:"age_seconds,omitempty"`
	Expires    time.Time `json:"expires,omitzero"`
}

// Outcome is what a membership change did.
type Outcome struct {
	Op      string `json:"op"`
	ID      uint64 `json:"id"`
	NewID   uint64 `json:"new_id,omitempty"`
	Addr    string `json:"addr,omitempty"`
	Leader  uint64 `json:"leader,omitempty"`
	Message string `json:"message"`
}

// Hold is a file the group purge must keep, and why.
type Hold struct {
	File uint32 `json:"file"`
	Name string `json:"name"`
	By   string `json:"by"`
	Why  string `json:"why"`
}

// PurgePlan is the answer to a purge request.
type PurgePlan struct {
	Requested uint32 `json:"requested"`
	// UpTo is what may be purged without a force: files below it go.
	UpTo   uint32 `json:"up_to"`
	Holds  []Hold `json:"holds,omitempty"`
	Forced bool   `json:"forced,omitempty"`
	Done   bool   `json:"done"`
	// FirstFile is the group's oldest file after the purge.
	FirstFile string `json:"first_file,omitempty"`
	Message   string `json:"message"`
}

// Bytes formats a byte count for people.
func Bytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// FileName is the log's name of file number n (logger.FileName), as
// File, FirstFile and the holds number them.
func FileName(n uint32) string { return fmt.Sprintf("binlog.%06d", n) }

// Rotation is the answer to POST /rotate (binlogctl rotate).
type Rotation struct {
	// Rotated: the open file was closed; the next transaction starts File.
	// False when the open file held no transaction yet (nothing to close).
	Rotated bool `json:"rotated"`
	// Closed is the file the rotation ended ("" when Rotated is false).
	Closed string `json:"closed,omitempty"`
	// File is the log's open file after the rotation: the next
	// transaction goes there.
	File    string `json:"file"`
	Message string `json:"message"`
}
