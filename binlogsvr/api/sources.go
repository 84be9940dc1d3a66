package api

import (
	"fmt"
	"time"
)

// MaxSourceNameLen is the longest source name: a DNS label's length.
const MaxSourceNameLen = 63

// CheckSourceName checks a source's name: a DNS label, 1 to 63 of a-z,
// 0-9 and '-', starting with a letter and not ending with '-' (it names
// URLs, metric labels and directories). The catalog applies it, and
// clients such as binlogctl check it before they call; the error says
// which part of the rule the name breaks.
func CheckSourceName(name string) error {
	if name == "" || len(name) > MaxSourceNameLen {
		return fmt.Errorf("name %q: 1 to %d characters", name, MaxSourceNameLen)
	}
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z':
		case (c >= '0' && c <= '9' || c == '-') && i > 0:
		default:
			return fmt.Errorf("name %q: lower-case letters, digits and '-', starting with a letter", name)
		}
	}
	if name[len(name)-1] == '-' {
		return fmt.Errorf("name %q: must not end with '-'", name)
	}
	return nil
}

// The routes of a host of several sources (docs/MULTISOURCE.md):
//
//	GET    /sources                  []SourceInfo: every source of the fleet and how it does
//	POST   /sources                  add one (form fields below); SourceChange
//	DELETE /sources/{name}[?force=1] remove one; SourceChange
//	POST   /sources/{name}/move      move one of its loggers to another host (form: from, to,
//	                                 dump_addr: the new host's dump address, "" for none);
//	                                 SourceChange at once, the move goes on in the background:
//	                                 SourceInfo.Move shows where it is
//	GET    /sources/history          the audit trail of the fleet-wide calls above ([]AuditRecord)
//	GET    /hosts                    []HostInfo: the fleet's hosts
//	POST   /hosts                    add a host outside the catalog's voters (form: id, raft_addr,
//	                                 admin_addr): it then starts with --catalog-members naming the
//	                                 voters, joins the catalog as a learner, and can run sources
//	ANY    /sources/{name}/PATH      the route PATH (/status, /members, /failover/..., ...) of
//	                                 that source's log, as a one-source daemon serves it at /PATH
//
// On such a host the root paths (/status, ...) mean the only source, and
// answer 409 with an error naming --source-name when it has several. A
// one-source daemon (started with --source) serves GET /sources with its
// one source too, so a script can list sources on any fleet.
//
// POST /sources takes the form fields: name, source (host:port), hosts
// (comma-separated host ids; empty: the least loaded hosts), loggers (how
// many when hosts is empty: 3 or 5), learners (host ids), dump_addr
// (comma-separated HOST_ID=host:port), failover (the source's failover
// flags, one per line, "--failover-lease=5s"; empty: the host's), and
// retention (its --retain-files, --retain-bytes, --retain-age, one per
// line; empty: the host's).

// SourceInfo is one entry of GET /sources.
type SourceInfo struct {
	Name       string `json:"name"`
	SourceAddr string `json:"source_addr"`
	// ShardID is the source's raft shard (a one-source daemon's --shard).
	ShardID uint64 `json:"shard_id"`
	// State: "active", "removing" (its hosts stop it and delete its data),
	// or "starting" (in the catalog, not yet elected a leader).
	State string `json:"state"`
	// Loggers and Learners: the host ids that run the source's shard.
	Loggers  []uint64 `json:"loggers"`
	Learners []uint64 `json:"learners,omitempty"`
	// DumpAddrs: where each host serves the source's replicas, by host id.
	DumpAddrs map[uint64]string `json:"dump_addrs,omitempty"`
	// Failover and Retention: the source's own flags over the hosts'
	// (sources add --failover, --retain), "--NAME=VALUE" each.
	Failover  []string `json:"failover,omitempty"`
	Retention []string `json:"retention,omitempty"`
	// The fields below are read from the source's log on the host asked
	// (its replica, if it runs one; the leader's host otherwise). Error
	// says why they could not be.
	Epoch  uint64 `json:"epoch"`
	Leader uint64 `json:"leader"` // the host whose replica leads the shard (0: none known)
	// LagSeconds and LagBytes: how far the fleet's log is behind the
	// source (the leader's ingest: IngestStatus's fields of those names).
	LagSeconds float64 `json:"lag_seconds"`
	LagBytes   uint64  `json:"lag_bytes"`
	LastGTID   string  `json:"last_gtid,omitempty"`
	// Ingest is the leader's pull from the source (IngestStatus.State).
	Ingest string `json:"ingest,omitempty"`
	Error  string `json:"error,omitempty"`
	// Move is a move of one of its loggers in progress (nil: none).
	Move *SourceMove `json:"move,omitempty"`
}

// SourceMove is a move of a source's logger from host From to host To:
// To is added as a learner, catches up, is promoted, then From is removed
// ("begun", "learner", "promoted", "removed"; done once it is gone from
// SourceInfo).
type SourceMove struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	Step string `json:"step"`
	// Error is why the last step failed (it is retried), "" otherwise.
	Error string `json:"error,omitempty"`
}

// HostInfo is one entry of GET /hosts.
type HostInfo struct {
	ID        uint64 `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	AdminAddr string `json:"admin_addr"`
	// Catalog: "voter" (it holds the catalog: --catalog-members lists it),
	// "learner" (a copy), "" (added, not yet registered: not started?).
	Catalog string `json:"catalog"`
	// Shards is how many sources' shards the catalog places on it.
	Shards int `json:"shards"`
}

// AuditRecord is one fleet-wide admin call (GET /sources/history): who
// changed the catalog, how, and the HTTP status it got.
type AuditRecord struct {
	Time    time.Time `json:"time"`
	Host    uint64    `json:"host"` // the host that served the call
	Call    string    `json:"call"` // "POST /sources?name=orders&..." (secrets redacted)
	By      string    `json:"by"`   // "token ops", "certificate alice", ...
	Role    string    `json:"role"`
	Status  int       `json:"status"`
	Message string    `json:"message,omitempty"`
}

// SourceChange is the JSON of POST /sources and DELETE /sources/{name}.
type SourceChange struct {
	Source  SourceInfo `json:"source"`
	Message string     `json:"message"`
	// Version is the catalog's version after the change.
	Version uint64 `json:"version"`
}
