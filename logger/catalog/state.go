package catalog

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// The catalog's ids.
const (
	// ShardID is the catalog's own shard on a fleet created multi-source.
	ShardID uint64 = 1
	// FirstSourceShard is the first shard id handed to a source.
	FirstSourceShard uint64 = 2
	// MaxHost bounds host ids: a host's replica ids in a shard are
	// H + ReplicaStride·k, which must not collide with another host's.
	MaxHost uint64 = ReplicaStride - 1
	// ReplicaStride separates the replica ids one host gets in one shard.
	ReplicaStride uint64 = 1024
	// MaxLearners bounds a source's learners.
	MaxLearners = 16
	// MaxNameLen is a DNS label's length.
	MaxNameLen = api.MaxSourceNameLen
	// MaxAudit bounds State.Audit: the catalog is read whole (snapshots,
	// GET /sources), so its trail keeps the last calls only.
	MaxAudit = 500
)

// SourceState is where a source is in its life.
type SourceState string

const (
	// Active: the source's hosts run its shard.
	Active SourceState = "active"
	// Removing: RemoveSource was applied; the hosts stop the shard and
	// remove its data, then Drop deletes the entry.
	Removing SourceState = "removing"
)

// MoveStep is how far a move of one logger from host to host went. Each
// step is recorded after it happened in the source's shard, so that
// whoever resumes the move knows what is left (docs/MULTISOURCE.md).
type MoveStep string

const (
	MoveBegun    MoveStep = "begun"    // recorded: To is incoming, nothing done in the shard yet
	MoveLearner  MoveStep = "learner"  // To was added to the shard as a learner (To's host starts it with Join)
	MovePromoted MoveStep = "promoted" // To was promoted to a voting member
	MoveRemoved  MoveStep = "removed"  // From was removed from the shard
)

// moveOrder gives each step's place; a step may only follow its
// predecessor.
var moveOrder = map[MoveStep]int{MoveBegun: 0, MoveLearner: 1, MovePromoted: 2, MoveRemoved: 3}

// A Move is a logger's move in progress from host From (outgoing) to host
// To (incoming), which gets replica id ToReplica in the shard.
type Move struct {
	From      uint64   `json:"from"`
	To        uint64   `json:"to"`
	ToReplica uint64   `json:"to_replica"`
	ToDump    string   `json:"to_dump,omitempty"` // To's dump address ("": none)
	Step      MoveStep `json:"step"`
}

// A Source is one source cluster and where its shard runs.
type Source struct {
	Name    string `json:"name"`
	ShardID uint64 `json:"shard_id"`
	// SourceAddr is the MySQL/MariaDB source's host:port.
	SourceAddr string `json:"source_addr"`
	// Loggers are the shard's voting members, host id → replica id.
	Loggers map[uint64]uint64 `json:"loggers"`
	// Learners are its non-voting members, host id → replica id.
	Learners map[uint64]uint64 `json:"learners,omitempty"`
	// DumpAddrs is where each host serves the source's replicas.
	DumpAddrs map[uint64]string `json:"dump_addrs,omitempty"`
	State     SourceState       `json:"state"`
	Move      *Move             `json:"move,omitempty"`
	// Held counts, per host, the replica ids it was given in this shard:
	// the next one is host + ReplicaStride·Held[host].
	Held map[uint64]uint64 `json:"held,omitempty"`
	// Failover holds the source's own failover flags, one "--name=value"
	// each, applied over the host's (the daemon checks them; the catalog
	// keeps them as given). No secret is ever among them.
	Failover []string `json:"failover,omitempty"`
	// Initial are the loggers the source was added with: the only hosts
	// that may bootstrap its shard (the others join a running shard).
	Initial []uint64 `json:"initial,omitempty"`
	// Started records, per host, the replica of the shard it bootstrapped
	// or joined with (OpStarted): a host that finds no raft data for a
	// replica listed here lost it, and must not start it again as a new,
	// empty voter (it would count toward the quorum without the entries
	// the quorum acknowledged).
	Started map[uint64]uint64 `json:"started,omitempty"`
	// Retention holds the source's own retention flags, one
	// "--retain-NAME=VALUE" each, applied over the host's on every host
	// that runs it.
	Retention []string `json:"retention,omitempty"`
}

// A Host is where one host of the fleet is: the raft address its shards
// use and its admin API's address (what members and binlogctl call).
type Host struct {
	RaftAddr  string `json:"raft_addr"`
	AdminAddr string `json:"admin_addr"`
}

// Hosts returns the hosts that run the source's shard, host id → replica
// id: its loggers and learners, with a move's incoming host once it was
// added to the shard, and without its outgoing host once it was removed.
func (s *Source) Hosts() map[uint64]uint64 {
	out := maps.Clone(s.Loggers)
	if out == nil {
		out = map[uint64]uint64{}
	}
	maps.Copy(out, s.Learners)
	if m := s.Move; m != nil {
		if m.Step != MoveBegun {
			out[m.To] = m.ToReplica
		}
		if m.Step == MoveRemoved {
			delete(out, m.From)
		}
	}
	return out
}

// StartMode says how host me starts its replica of the source's shard:
// "restart" from its own raft data (hasData); "bootstrap" with the initial
// members (an initial logger that never started it); "join" a running
// shard (a learner, a move's incoming replica, the leader adds it). A
// voter that started the replica before (Started) and has no raft data
// lost it: starting it again, empty, would let it count toward the quorum
// without the entries the quorum acknowledged, so that is an error.
func (s *Source) StartMode(me uint64, hasData bool) (string, error) {
	replica, ok := s.Hosts()[me]
	if !ok {
		return "", fmt.Errorf("source %q does not run on host %d", s.Name, me)
	}
	_, voter := s.Loggers[me]
	if m := s.Move; m != nil && m.To == me && (m.Step == MovePromoted || m.Step == MoveRemoved) {
		voter = true
	}
	switch {
	case hasData:
		return "restart", nil
	case voter && s.Started[me] == replica:
		return "", fmt.Errorf("host %d ran replica %d of source %q and its raft data is gone (a wiped or replaced disk?): it must not vote again from an empty log; "+
			"move it away and back: binlogctl sources move %s --from %d --to OTHER_HOST", me, replica, s.Name, s.Name, me)
	case replica == me && slices.Contains(s.Initial, me) && s.Started[me] == 0:
		return "bootstrap", nil
	}
	return "join", nil
}

// clone returns a deep copy.
func (s *Source) clone() *Source {
	c := *s
	c.Loggers, c.Learners, c.DumpAddrs, c.Held = maps.Clone(s.Loggers), maps.Clone(s.Learners), maps.Clone(s.DumpAddrs), maps.Clone(s.Held)
	c.Failover = slices.Clone(s.Failover)
	c.Started = maps.Clone(s.Started)
	c.Initial = slices.Clone(s.Initial)
	c.Retention = slices.Clone(s.Retention)
	if s.Move != nil {
		m := *s.Move
		c.Move = &m
	}
	return &c
}

// nextReplica hands out host's next replica id in the source's shard.
func (s *Source) nextReplica(host uint64) uint64 {
	if s.Held == nil {
		s.Held = map[uint64]uint64{}
	}
	id := host + ReplicaStride*s.Held[host]
	s.Held[host]++
	return id
}

// State is the catalog: every source, the catalog's version and the
// counter of shard ids. Apply never changes a State in place: a State that
// was handed out may be read without a lock.
type State struct {
	// Version counts the applied changes (0: an empty catalog).
	Version uint64 `json:"version"`
	// NextShard is the next source's shard id; ids are never reused.
	NextShard uint64             `json:"next_shard"`
	Sources   map[string]*Source `json:"sources"`
	// Hosts are the fleet's hosts that said where they are (OpHost), by
	// host id: a source's shard is placed only on hosts listed here.
	Hosts map[uint64]Host `json:"hosts,omitempty"`
	// Audit is the trail of the fleet-wide admin calls (OpAudit), oldest
	// first, the last MaxAudit of them.
	Audit []api.AuditRecord `json:"audit,omitempty"`
}

// NewState returns an empty catalog.
func NewState() *State {
	return &State{NextShard: FirstSourceShard, Sources: map[string]*Source{}}
}

// Names returns the sources' names, sorted.
func (s *State) Names() []string {
	return slices.Sorted(maps.Keys(s.Sources))
}

// Source returns the source named name, or nil.
func (s *State) Source(name string) *Source { return s.Sources[name] }

// OnHost returns the shards host runs, shard id → replica id: the
// reconcile loop's "want" (step 4).
func (s *State) OnHost(host uint64) map[uint64]uint64 {
	out := map[uint64]uint64{}
	for _, src := range s.Sources {
		if src.State != Active {
			continue
		}
		if r, ok := src.Hosts()[host]; ok {
			out[src.ShardID] = r
		}
	}
	return out
}

// Load returns how many shards each host runs (placement's input).
func (s *State) Load() map[uint64]int {
	out := map[uint64]int{}
	for _, src := range s.Sources {
		for h := range src.Hosts() {
			out[h]++
		}
		if src.Move != nil && src.Move.Step == MoveBegun {
			out[src.Move.To]++ // NB: reserved, so placement does not pick it twice
		}
	}
	return out
}

// clone returns a copy that shares the unchanged sources (Apply replaces a
// source it changes, never edits it).
func (s *State) clone() *State {
	c := *s
	c.Sources = maps.Clone(s.Sources)
	if c.Sources == nil {
		c.Sources = map[string]*Source{}
	}
	c.Hosts = maps.Clone(s.Hosts)
	// NB: Audit is shared; audit appends to a copy.
	return &c
}

// validName is the source name rule (api.CheckSourceName).
func validName(name string) error { return api.CheckSourceName(name) }

// validAddr is host:port with a port in 1..65535; the host may be empty
// (every interface) where wildcard allows it.
func validAddr(addr string, wildcard bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err // "address X: missing port in address"
	}
	if host == "" && !wildcard {
		return fmt.Errorf("address %q: no host", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("address %q: the port must be 1 to 65535", addr)
	}
	return nil
}

// addrsClash reports whether one host cannot listen on both a and b
// (valid addresses): the same port, and the same IP or a wildcard.
func addrsClash(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}
