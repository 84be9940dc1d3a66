package catalog

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// Op names a command.
type Op string

// The commands (see doc.go for what each does and when it is refused).
const (
	OpAdd       Op = "add"
	OpRemove    Op = "remove"
	OpDrop      Op = "drop"
	OpMoveBegin Op = "move-begin"
	OpMoveStep  Op = "move-step"
	OpMoveEnd   Op = "move-end"
	OpHost      Op = "host"
	OpAudit     Op = "audit"
	OpStarted   Op = "started"
)

// Encoding is the version of the commands' encoding this binary writes
// and reads.
const Encoding = 1

// A Command is one change to the catalog. Each op reads the fields its
// comment names and ignores the others.
type Command struct {
	Op Op `json:"op"`
	// IfVersion, when set, makes the command a compare-and-set: it is
	// refused (StaleVersion) unless the catalog is at this version.
	IfVersion *uint64 `json:"if_version,omitempty"`
	// Name: every op.
	Name string `json:"name"`

	// OpAdd: the source's address, its loggers (3 or 5 host ids), its
	// learners and its dump addresses by host.
	SourceAddr string            `json:"source_addr,omitempty"`
	Loggers    []uint64          `json:"loggers,omitempty"`
	Learners   []uint64          `json:"learners,omitempty"`
	DumpAddrs  map[uint64]string `json:"dump_addrs,omitempty"`
	// Failover: the source's own failover flags (Source.Failover).
	Failover []string `json:"failover,omitempty"`
	// Retention: the source's own retention flags (Source.Retention).
	Retention []string `json:"retention,omitempty"`

	// OpMoveBegin: the logger's host From, the host To it moves to, and
	// To's dump address ("": none).
	From   uint64 `json:"from,omitempty"`
	To     uint64 `json:"to,omitempty"`
	ToDump string `json:"to_dump,omitempty"`
	// OpMoveStep: the step done.
	Step MoveStep `json:"step,omitempty"`
	// OpMoveEnd: give the move up instead of finishing it.
	Abort bool `json:"abort,omitempty"`

	// OpAudit: a fleet-wide admin call to keep in State.Audit (Name unused).
	Audit *api.AuditRecord `json:"audit,omitempty"`

	// OpStarted (Name, Host, Replica): host Host bootstrapped its replica
	// Replica of the source's shard (Source.Started).
	Replica uint64 `json:"replica,omitempty"`

	// OpHost: a host of the fleet says where it is (Name unused).
	Host      uint64 `json:"host,omitempty"`
	RaftAddr  string `json:"raft_addr,omitempty"`
	AdminAddr string `json:"admin_addr,omitempty"`
}

// At returns c as a compare-and-set on version v.
func (c Command) At(v uint64) Command {
	c.IfVersion = &v
	return c
}

// envelope is the encoding of a command: its encoding version and the
// command.
type envelope struct {
	V   int     `json:"v"`
	Cmd Command `json:"cmd"`
}

// Encode returns c's encoding: JSON, whose map keys encoding/json sorts,
// so one command has one encoding.
func Encode(c Command) []byte {
	b, err := json.Marshal(envelope{V: Encoding, Cmd: c})
	if err != nil {
		panic(fmt.Sprintf("catalog: encoding a command: %v", err)) // NB: a Command always marshals
	}
	return b
}

// ErrNewerEncoding: a command or snapshot in an encoding newer than this
// binary reads.
var ErrNewerEncoding = errors.New("catalog: written in a newer encoding: upgrade this binary")

// Decode returns the command encoded in b. An error other than
// ErrNewerEncoding means b is not a command.
func Decode(b []byte) (Command, error) {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Command{}, fmt.Errorf("catalog: decoding a command: %w", err)
	}
	switch {
	case e.V > Encoding:
		return Command{}, fmt.Errorf("%w (a command in encoding %d; this binary reads up to %d)", ErrNewerEncoding, e.V, Encoding)
	case e.V < 1:
		return Command{}, fmt.Errorf("catalog: decoding a command: no encoding version")
	}
	return e.Cmd, nil
}

// Code is a command's outcome, the same on every replica.
type Code uint64

const (
	OK             Code = iota
	StaleVersion        // IfVersion is not the catalog's version
	Invalid             // a malformed command or argument
	Exists              // the name is taken
	NotFound            // no source of that name
	WrongState          // the source's state does not allow it (remove twice, drop while active)
	MoveInProgress      // the source has a move in progress
	NoMove              // the source has no move in progress
	WrongStep           // the move step does not follow the recorded one
	AddrInUse           // a dump address the host serves another source on
)

var codeNames = [...]string{"ok", "stale-version", "invalid", "exists", "not-found", "wrong-state", "move-in-progress",
	"no-move", "wrong-step", "addr-in-use"}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code-%d", uint64(c))
}

// Result is what applying a command gave.
type Result struct {
	Code    Code   `json:"code"`
	Message string `json:"message,omitempty"`
	// Version is the catalog's version after the command (unchanged when
	// refused).
	Version uint64 `json:"version"`
	// ShardID: the new source's shard (OpAdd).
	ShardID uint64 `json:"shard_id,omitempty"`
	// ReplicaID: the incoming host's replica id (OpMoveBegin).
	ReplicaID uint64 `json:"replica_id,omitempty"`
}

// OK reports whether the command was applied.
func (r Result) OK() bool { return r.Code == OK }

func (r Result) String() string {
	if r.Message == "" {
		return fmt.Sprintf("%s (version %d)", r.Code, r.Version)
	}
	return fmt.Sprintf("%s: %s (version %d)", r.Code, r.Message, r.Version)
}
