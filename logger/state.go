package logger

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// DefaultMaxFileSize is the size at which the log's files rotate unless a
// Meta entry with key MetaMaxFileSize sets another.
const DefaultMaxFileSize = 256 << 20

// State is the log's replicated state: identical on every member after the
// same entries are applied.
type State struct {
	Epoch  uint64 `json:"epoch"`
	Source Source `json:"source"`
	// Flavor is fixed by the first SetSource: "mysql" or "mariadb".
	Flavor string `json:"flavor"`
	// GTIDs is the log's GTID state in the flavor's text form.
	GTIDs    string `json:"gtids"`
	LastGTID string `json:"last_gtid"`
	// FDE is the current source's Format Description event as received; nil
	// until the first Append after a SetSource.
	FDE []byte `json:"fde,omitempty"`
	// File is the number of the open file (0: none yet) and Pos its size,
	// which is the position the next event is written at.
	File uint32 `json:"file"`
	Pos  uint64 `json:"pos"`
	// FileTxns counts the transactions in the open file.
	FileTxns uint64 `json:"file_txns"`
	// OpenMeta is the meta of the open file, kept here so that apply can
	// update it without reading.
	OpenMeta FileMeta `json:"open_meta"`
	// NeedRotate is set by a source change: the next Append opens a new file.
	NeedRotate  bool   `json:"need_rotate"`
	MaxFileSize uint64 `json:"max_file_size"`
	// FirstFile is the oldest file not purged group-wide.
	FirstFile uint32 `json:"first_file"`
	Txns      uint64 `json:"txns"`
	// LastTimestamp is the timestamp of the newest event; synthesized events
	// (rotate, file headers) carry it, so that apply needs no clock.
	LastTimestamp uint32 `json:"last_timestamp"`
}

// FileMeta describes one file of the log.
type FileMeta struct {
	Number uint32 `json:"number"`
	// StartGTIDs is the log's GTID state when the file was opened: the
	// Previous-GTIDs (MySQL) or GTID-list (MariaDB) of the file.
	StartGTIDs string `json:"start_gtids"`
	Size       uint64 `json:"size"`
	Closed     bool   `json:"closed"`
	Epoch      uint64 `json:"epoch"`
	Source     string `json:"source"`
	Flavor     string `json:"flavor"`
	// HeaderEnd is the position after the FDE and the GTID header event: the
	// first transaction's position.
	HeaderEnd    uint64 `json:"header_end"`
	Txns         uint64 `json:"txns"`
	FirstTime    uint32 `json:"first_time"`
	LastTime     uint32 `json:"last_time"`
	ChecksumAlg  byte   `json:"checksum_alg"`
	SourceServer uint32 `json:"source_server_id"`
}

// Name returns the file's name.
func (f FileMeta) Name() string { return FileName(f.Number) }

// TxnRecord indexes one stored transaction.
type TxnRecord struct {
	GTID       string `json:"gtid"`
	File       uint32 `json:"file"`
	Pos        uint64 `json:"pos"`
	End        uint64 `json:"end"`
	SourceFile string `json:"source_file"`
	SourceEnd  uint64 `json:"source_end"`
	Epoch      uint64 `json:"epoch"`
}

// encode is the stored form of a record: compact, as one is written per
// transaction.
func (r TxnRecord) encode() []byte {
	var e enc
	e.b = make([]byte, 0, 32+len(r.GTID)+len(r.SourceFile))
	e.b = append(e.b, 1) // version
	e.str(r.GTID)
	e.uvarint(uint64(r.File))
	e.uvarint(r.Pos)
	e.uvarint(r.End)
	e.str(r.SourceFile)
	e.uvarint(r.SourceEnd)
	e.uvarint(r.Epoch)
	return e.b
}

func decodeTxnRecord(b []byte) (TxnRecord, error) {
	var r TxnRecord
	if len(b) == 0 || b[0] != 1 {
		return r, fmt.Errorf("transaction record version %v", b[:min(1, len(b))])
	}
	d := dec{b: b[1:]}
	r.GTID = d.str()
	f := d.uvarint()
	r.File = uint32(f)
	r.Pos = d.uvarint()
	r.End = d.uvarint()
	r.SourceFile = d.str()
	r.SourceEnd = d.uvarint()
	r.Epoch = d.uvarint()
	if d.err == nil && (f > 1<<32-1 || len(d.b) != 0) {
		d.err = fmt.Errorf("bad file number or trailing bytes")
	}
	return r, d.err
}

// Code is the outcome of applying one command. It is carried in the
// dragonboat result value; it is never an Update error.
type Code uint64

// Result codes. 0 is never used, so a zero sm.Result is never mistaken for
// a success.
const (
	ResultOK               Code = 1 // applied
	ResultDuplicate        Code = 2 // every transaction was already in the log (idempotent retry)
	ResultStaleEpoch       Code = 3 // Append/SetSource for an epoch that is not the current one
	ResultWrongSource      Code = 4 // Append from a source that is not the current source
	ResultWrongPredecessor Code = 5 // Append does not continue the log's last transaction
	ResultMalformed        Code = 6 // the command or its events are invalid
	ResultNoSource         Code = 7 // Append before any SetSource
	ResultFlavorMismatch   Code = 8 // SetSource of a flavor other than the log's
	ResultInvalid          Code = 9 // a well-formed command that cannot apply (e.g. purging the open file)
)

func (c Code) String() string {
	switch c {
	case ResultOK:
		return "ok"
	case ResultDuplicate:
		return "duplicate"
	case ResultStaleEpoch:
		return "stale epoch"
	case ResultWrongSource:
		return "wrong source"
	case ResultWrongPredecessor:
		return "wrong predecessor"
	case ResultMalformed:
		return "malformed"
	case ResultNoSource:
		return "no source"
	case ResultFlavorMismatch:
		return "flavor mismatch"
	case ResultInvalid:
		return "invalid"
	}
	return fmt.Sprintf("code(%d)", uint64(c))
}

// Stored reports whether the command's effect is in the log.
func (c Code) Stored() bool { return c == ResultOK || c == ResultDuplicate }

// Result is what applying a command returns to its proposer: the code, a
// message for rejections, and the log's state after the command.
type Result struct {
	Code     Code   `json:"code"`
	Message  string `json:"message,omitempty"`
	Epoch    uint64 `json:"epoch"`
	Source   string `json:"source"`
	LastGTID string `json:"last_gtid"`
	File     uint32 `json:"file"`
	Pos      uint64 `json:"pos"`
	Appended int    `json:"appended,omitempty"`
	Skipped  int    `json:"skipped,omitempty"`
}

// resultV1 versions Result's binary encoding (results go from the state
// machine to the proposer of the same process, never to disk).
const resultV1 = 1

// encode is compact and allocation-light: one result per raft entry is
// encoded on every member and decoded by the proposer, on the commit path.
func (r Result) encode() []byte {
	b := make([]byte, 0, 32+len(r.Message)+len(r.Source)+len(r.LastGTID))
	b = append(b, resultV1)
	b = binary.AppendUvarint(b, uint64(r.Code))
	for _, s := range [...]string{r.Message, r.Source, r.LastGTID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, v := range [...]uint64{r.Epoch, uint64(r.File), r.Pos, uint64(r.Appended), uint64(r.Skipped)} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

func decodeResult(code uint64, data []byte) Result {
	r, err := parseResult(data)
	if err != nil {
		r = Result{Message: fmt.Sprintf("undecodable result: %v", err)}
	}
	r.Code = Code(code)
	return r
}

func parseResult(b []byte) (Result, error) {
	var r Result
	if len(b) == 0 {
		return r, nil
	}
	if b[0] != resultV1 {
		return r, fmt.Errorf("result encoding version %d", b[0])
	}
	b = b[1:]
	next := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errors.New("truncated result")
		}
		b = b[n:]
		return v, nil
	}
	c, err := next()
	if err != nil {
		return r, err
	}
	r.Code = Code(c)
	for _, p := range [...]*string{&r.Message, &r.Source, &r.LastGTID} {
		n, err := next()
		if err != nil {
			return r, err
		}
		if n > uint64(len(b)) {
			return r, errors.New("truncated result")
		}
		*p, b = string(b[:n]), b[n:]
	}
	var v [5]uint64
	for i := range v {
		if v[i], err = next(); err != nil {
			return r, err
		}
	}
	r.Epoch, r.File, r.Pos, r.Appended, r.Skipped = v[0], uint32(v[1]), v[2], int(v[3]), int(v[4])
	return r, nil
}
