package learner

import (
	"sort"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// Roles, as the group's membership has them.
const (
	RoleLogger  = api.RoleLogger  // voting
	RoleLearner = api.RoleLearner // non-voting
)

// Profiles of a member.
const (
	ProfileServing = "serving"  // serves dumps (--dump-addr)
	ProfileLogOnly = "log-only" // stores the log for the quorum, serves no dumps
)

// Report is one member's own account of itself (GET /members/self). It is
// what the other members poll to build their View.
type Report struct {
	ID      uint64 `json:"id"`
	Role    string `json:"role"`   // the role it was started with
	Leader  uint64 `json:"leader"` // the leader it knows (0: none)
	Applied uint64 `json:"applied"`
	// File and Pos are the end of the log as applied here (0: empty).
	File uint32 `json:"file"`
	Pos  uint64 `json:"pos"`
	// FirstFile is the oldest file held here; HeldBytes the bytes of the
	// files held here; DiskBytes the member's data directory on disk, which
	// grows while a snapshot streams in.
	FirstFile uint32 `json:"first_file"`
	HeldBytes uint64 `json:"held_bytes"`
	DiskBytes uint64 `json:"disk_bytes"`
	// Snapshots counts the snapshots this process recovered from.
	Snapshots int64     `json:"snapshots_recovered"`
	Serving   bool      `json:"serving"` // serves dumps now
	DumpAddr  string    `json:"dump_addr,omitempty"`
	Profile   string    `json:"profile"`
	Retention Retention `json:"retention"`
	// Replicas are the dump clients of this member with their positions.
	Replicas []Replica `json:"replicas,omitempty"`
	// Files are the files held here, when asked (?files=1).
	Files []FileSize `json:"files,omitempty"`
}

// Retention is a member's own retention (zero: no limit).
type Retention = api.Retention

// Replica is one dump client of a member and the file it reads.
type Replica = api.Replica

// FileSize is one binlog file's number and size.
type FileSize struct {
	Number uint32 `json:"number"`
	Size   uint64 `json:"size"`
}

// Limits say when a member is caught up and when it is reachable.
type Limits struct {
	Entries         uint64
	Bytes           uint64
	ReachableWithin time.Duration
}

// Member is one member in a View.
type Member = api.Member

// View is the group as one member sees it: the membership, and each
// member's progress relative to the leader.
type View = api.View

// Inputs are what a View is built from.
type Inputs struct {
	Loggers  map[uint64]string // id → raft address
	Learners map[uint64]string
	Removed  map[uint64]struct{}
	Leader   uint64
	Reports  map[uint64]Report
	Errors   map[uint64]string    // why a member's report is missing
	Contact  map[uint64]time.Time // last successful report
	Admin    map[uint64]string    // admin addresses registered in the log
	Weights  map[uint64]int
	Limits   Limits
	Now      time.Time
}

// DefaultWeight is a logger's weight until one is set.
const DefaultWeight = 1

// Build makes the View. Pure.
func Build(in Inputs) View {
	v := View{Leader: in.Leader, At: in.Now}
	lr, haveLeader := in.Reports[in.Leader]
	v.Complete = haveLeader
	add := func(ids map[uint64]string, role string) {
		for id, addr := range ids {
			m := Member{ID: id, Role: role, RaftAddr: addr, AdminAddr: in.Admin[id], Leader: id == in.Leader, Weight: DefaultWeight, Error: in.Errors[id]}
			if w, ok := in.Weights[id]; ok {
				m.Weight = w
			}
			m.LastContact = in.Contact[id]
			m.Reachable = !m.LastContact.IsZero() && in.Now.Sub(m.LastContact) <= in.Limits.ReachableWithin
			if r, ok := in.Reports[id]; ok {
				m.Applied, m.File, m.Pos, m.FirstFile, m.HeldBytes = r.Applied, r.File, r.Pos, r.FirstFile, r.HeldBytes
				m.Serving, m.DumpAddr, m.Profile, m.Retention, m.Snapshots = r.Serving, r.DumpAddr, r.Profile, r.Retention, r.Snapshots
				m.Replicas, m.DiskBytes = r.Replicas, r.DiskBytes
				if haveLeader {
					if lr.Applied > r.Applied {
						m.LagEntries = lr.Applied - r.Applied
					}
					m.LagBytes = BytesBetween(lr.Files, r.File, r.Pos, lr.File, lr.Pos)
					m.CaughtUp = m.Reachable && m.LagEntries <= in.Limits.Entries && m.LagBytes <= in.Limits.Bytes
				}
			}
			v.Members = append(v.Members, m)
		}
	}
	add(in.Loggers, RoleLogger)
	add(in.Learners, RoleLearner)
	sort.Slice(v.Members, func(i, j int) bool { return v.Members[i].ID < v.Members[j].ID })
	for id := range in.Removed {
		v.Removed = append(v.Removed, id)
	}
	sort.Slice(v.Removed, func(i, j int) bool { return v.Removed[i] < v.Removed[j] })
	return v
}

// BytesBetween is the number of log bytes from (fromFile, fromPos) to
// (toFile, toPos), by the sizes of files (those the leader holds). A member
// with an empty log (fromFile 0) is behind by everything in files. Files
// missing from the list (purged there) count as empty. Pure.
func BytesBetween(files []FileSize, fromFile uint32, fromPos uint64, toFile uint32, toPos uint64) uint64 {
	if fromFile > toFile || (fromFile == toFile && fromPos >= toPos) {
		return 0
	}
	if fromFile == toFile {
		return toPos - fromPos
	}
	var n uint64
	for _, f := range files {
		switch {
		case f.Number < fromFile || f.Number >= toFile:
		case f.Number == fromFile:
			if f.Size > fromPos {
				n += f.Size - fromPos
			}
		default:
			n += f.Size
		}
	}
	return n + toPos
}
