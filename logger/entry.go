package logger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// Entry encodings. The first byte of every encoded command names its
// encoding; a member decodes every encoding up to MaxEncoding.
//
//   - EncodingV1: the first. A fenced source is a SetSource whose address
//     starts with "fenced:".
//   - EncodingV2: a SetSource ends with flags (FlagFenced); the address is
//     the source's own. Other kinds are encoded as in V1.
//   - EncodingV3: a Rotate is proposed only in this encoding (it has no
//     fields): a member that reads V3 applies a Rotate by closing the open
//     file and opening the next one at once (apply.go). A Rotate is never
//     proposed in V1 or V2, so a member that predates V3 never meets one: it
//     stops at the V3 entry instead (ErrNewerEncoding). Other kinds are
//     encoded as in V1.
//
// The version gate (gate.go): a member proposes a command in an encoding
// above V1 only once every member of the group has reported (in the log)
// that it reads it, so no member ever meets an entry it cannot apply while
// the others apply it. A member that does meet one (a newer member wrote
// it, and this one was started from an older binary) stops applying: see
// ErrNewerEncoding and Config.OnNewerEncoding.
const (
	EncodingV1  = 1
	EncodingV2  = 2
	EncodingV3  = 3
	MaxEncoding = EncodingV3
)

// SetSource flags (EncodingV2).
const (
	FlagFenced = 1 << 0
)

// Kind is the type of a log command.
type Kind byte

// The command kinds.
const (
	KindAppend    Kind = 1
	KindSetSource Kind = 2
	KindPurge     Kind = 3
	KindRotate    Kind = 4
	KindMeta      Kind = 5
)

func (k Kind) String() string {
	switch k {
	case KindAppend:
		return "append"
	case KindSetSource:
		return "set-source"
	case KindPurge:
		return "purge"
	case KindRotate:
		return "rotate"
	case KindMeta:
		return "meta"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// ErrMalformed is returned when an encoded command cannot be decoded.
var ErrMalformed = errors.New("logger: malformed command")

// ErrNewerEncoding is returned (wrapped) by Decode for an entry in an
// encoding above MaxEncoding: a newer member wrote it. It is not a verdict
// on the command: the member cannot apply it and must not reject it either.
var ErrNewerEncoding = errors.New("logger: entry in a newer encoding")

// Source identifies the source (the MySQL or MariaDB primary) the log pulls from.
// It is api.Source, because failover operations in the admin API name it.
type Source = api.Source

// FencedPrefix is how EncodingV1 and stored states written before
// EncodingV2 mark a fenced source's address; Decode and the state's load
// turn it into Source.Fenced.
const FencedPrefix = api.FencedPrefix

// legacySource turns a V1 fenced address ("fenced:" + addr) into the typed
// form.
func legacySource(s Source) Source {
	if a, ok := strings.CutPrefix(s.Addr, FencedPrefix); ok {
		s.Addr, s.Fenced = a, true
	}
	return s
}

// Txn is one whole transaction as the source wrote it.
type Txn struct {
	GTID       string // the flavor's text form: "uuid:N" or "d-s-n"
	SourceFile string // the source's binlog file holding the transaction
	SourceEnd  uint64 // the source's end position of the transaction (what the ACK names)
	Events     []byte // the raw events, concatenated, as the source sent them
}

// Append adds transactions to the log. It is accepted only if Epoch and
// Source match the log's current epoch and source and Predecessor is the GTID
// of the log's last transaction (empty for an empty log).
type Append struct {
	Epoch       uint64
	Source      string // Source.Addr of the proposer's source
	Predecessor string
	// FDE is the source's Format Description event for the events in Txns.
	// It is required when the log has none for this source yet, and may always
	// be sent; a different FDE starts a new file.
	FDE  []byte
	Txns []Txn
}

// SetSource moves the log to a new source and epoch: compare-and-set on the
// epoch. It is the only way the epoch moves.
type SetSource struct {
	ExpectedEpoch uint64
	NewEpoch      uint64
	Source        Source
	// StartGTIDs is where an empty log begins: the source's executed GTID
	// state when the fleet first met it. What came before is not in the log
	// (as if purged), so a dump client asking for it gets an error instead
	// of silently missing it. Ignored once the log holds a GTID state.
	StartGTIDs string
}

// Purge removes every file numbered below UpTo from all members.
type Purge struct {
	UpTo uint32
}

// Rotate closes the current file (if it holds any transaction); the next
// Append opens a new one.
type Rotate struct{}

// Meta sets (or, with an empty Value, deletes) one metadata key: roles,
// weights, failover audit records, and the log's settings (MetaMaxFileSize).
type Meta struct {
	Key   string
	Value []byte
}

// MetaMaxFileSize is the Meta key that sets the size at which files rotate,
// as a decimal string. It is group-wide so that positions stay identical on
// every member.
const MetaMaxFileSize = "log.max_file_size"

// MetaSourceVarPrefix + a variable's name holds the current source's value
// of a global variable that describes its binlog's data (binlog_row_image,
// binlog_row_metadata, ...): the dump servers answer with the source's
// values, which CDC tools check before they stream.
const MetaSourceVarPrefix = "source.var."

// Command is one of *Append, *SetSource, *Purge, *Rotate, *Meta.
type Command interface{ kind() Kind }

func (*Append) kind() Kind    { return KindAppend }
func (*SetSource) kind() Kind { return KindSetSource }
func (*Purge) kind() Kind     { return KindPurge }
func (*Rotate) kind() Kind    { return KindRotate }
func (*Meta) kind() Kind      { return KindMeta }

// KindOf returns the kind of a command.
func KindOf(c Command) Kind { return c.kind() }

// Encode returns c in EncodingV1, which every member reads.
func Encode(c Command) []byte { return EncodeAs(c, EncodingV1) }

// EncodeAs returns c in encoding v (EncodingV1 .. MaxEncoding; a command
// means the same in each). Propose only an encoding every member reads
// (gate.go).
func EncodeAs(c Command, v byte) []byte {
	if v < EncodingV1 || v > MaxEncoding {
		panic(fmt.Sprintf("logger: no encoding %d", v)) // NB: a programming error, never input
	}
	var e enc
	e.b = append(e.b, v, byte(c.kind()))
	switch c := c.(type) {
	case *Append:
		e.uvarint(c.Epoch)
		e.str(c.Source)
		e.str(c.Predecessor)
		e.bytes(c.FDE)
		e.uvarint(uint64(len(c.Txns)))
		for _, t := range c.Txns {
			e.str(t.GTID)
			e.str(t.SourceFile)
			e.uvarint(t.SourceEnd)
			e.bytes(t.Events)
		}
	case *SetSource:
		e.uvarint(c.ExpectedEpoch)
		e.uvarint(c.NewEpoch)
		src := c.Source
		if v == EncodingV1 && src.Fenced {
			src.Addr = FencedPrefix + src.Addr
		}
		e.source(src)
		e.str(c.StartGTIDs)
		if v >= EncodingV2 {
			var flags uint64
			if c.Source.Fenced {
				flags |= FlagFenced
			}
			e.uvarint(flags)
		}
	case *Purge:
		e.uvarint(uint64(c.UpTo))
	case *Rotate:
	case *Meta:
		e.str(c.Key)
		e.bytes(c.Value)
	}
	return e.b
}

// Decode parses an encoded command. Errors wrap ErrMalformed, or
// ErrNewerEncoding for an encoding above MaxEncoding.
func Decode(b []byte) (Command, error) { return decodeUpTo(b, MaxEncoding) }

// decodeUpTo is Decode by a member that reads encodings up to max.
func decodeUpTo(b []byte, max byte) (Command, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	v := b[0]
	switch {
	case v > max:
		return nil, fmt.Errorf("%w: encoding %d (this binlogsvr reads up to %d)", ErrNewerEncoding, v, max)
	case v < EncodingV1:
		return nil, fmt.Errorf("%w: encoding %d", ErrMalformed, v)
	}
	d := dec{b: b[2:]}
	var c Command
	switch Kind(b[1]) {
	case KindAppend:
		a := &Append{}
		a.Epoch = d.uvarint()
		a.Source = d.str()
		a.Predecessor = d.str()
		a.FDE = d.bytes()
		n := d.uvarint()
		if n > uint64(len(b)) { // each txn takes at least one byte
			return nil, fmt.Errorf("%w: %d transactions in %d bytes", ErrMalformed, n, len(b))
		}
		a.Txns = make([]Txn, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			var t Txn
			t.GTID = d.str()
			t.SourceFile = d.str()
			t.SourceEnd = d.uvarint()
			t.Events = d.bytes()
			a.Txns = append(a.Txns, t)
		}
		c = a
	case KindSetSource:
		s := &SetSource{}
		s.ExpectedEpoch = d.uvarint()
		s.NewEpoch = d.uvarint()
		s.Source = d.source()
		s.StartGTIDs = d.str()
		if v == EncodingV1 {
			s.Source = legacySource(s.Source)
		} else {
			flags := d.uvarint()
			if flags&^FlagFenced != 0 {
				d.err = fmt.Errorf("unknown set-source flags %#x", flags)
			}
			s.Source.Fenced = flags&FlagFenced != 0
			if strings.HasPrefix(s.Source.Addr, FencedPrefix) {
				d.err = fmt.Errorf("address %q: a fence is a flag in encoding %d", s.Source.Addr, v)
			}
		}
		c = s
	case KindPurge:
		p := &Purge{}
		v := d.uvarint()
		if v > 1<<32-1 {
			return nil, fmt.Errorf("%w: purge file number %d", ErrMalformed, v)
		}
		p.UpTo = uint32(v)
		c = p
	case KindRotate:
		c = &Rotate{}
	case KindMeta:
		m := &Meta{}
		m.Key = d.str()
		m.Value = d.bytes()
		c = m
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrMalformed, b[1])
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, Kind(b[1]), d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %s: %d trailing bytes", ErrMalformed, Kind(b[1]), len(d.b))
	}
	return c, nil
}

type enc struct{ b []byte }

func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) bytes(v []byte)   { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) str(v string)     { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) source(s Source) {
	e.str(s.Addr)
	e.str(s.UUID)
	e.uvarint(uint64(s.ServerID))
	e.str(s.Flavor)
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("length %d exceeds the %d bytes left", n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.bytes()) }

func (d *dec) source() Source {
	var s Source
	s.Addr = d.str()
	s.UUID = d.str()
	id := d.uvarint()
	if id > 1<<32-1 {
		d.err = fmt.Errorf("server id %d out of range", id)
	}
	s.ServerID = uint32(id)
	s.Flavor = d.str()
	return s
}
