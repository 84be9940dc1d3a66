package semisync

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// Event types the cutter knows beyond those in package binlog.
const (
	typeMariaStartEn byte = 164 // MariaDB START_ENCRYPTION_EVENT
)

// ErrStream is wrapped by errors about the order of events in the stream.
var ErrStream = errors.New("semisync: unexpected event order from the source")

// cutter assembles the source's event stream into whole transactions. It is
// pure: events in, transactions out. A transaction starts at a GTID event
// and ends at its XID, at a COMMIT/ROLLBACK query, at an XA PREPARE, or,
// for a statement outside BEGIN (DDL), at that statement.
type cutter struct {
	flav binlog.Flavor
	alg  binlog.ChecksumAlg

	file string // the source's current binlog file (from rotate events)
	fde  []byte // the source's current format description event

	cur     []byte // events of the open transaction
	gtid    string
	inBegin bool
	lastPos uint32
	stmts   int // statement-based DML events in the open transaction
}

// cut is one whole transaction and whether the source asked for its ACK.
type cut struct {
	txn     logger.Txn
	needAck bool
	// statements counts its statement-based DML events (a session with
	// binlog_format=STATEMENT on a ROW source).
	statements int
}

// feed takes one event. It returns a transaction when ev ends one.
// needAck is the semi-sync flag of ev's packet.
func (c *cutter) feed(ev []byte, needAck bool) (*cut, error) {
	h, err := binlog.ParseHeader(ev)
	if err != nil {
		return nil, err
	}
	switch h.Type {
	case binlog.TypeRotate:
		// Fake (artificial, at dump start) or real (at the end of a file):
		// both name the file of the events that follow.
		name, err := rotateName(ev, c.alg)
		if err != nil {
			return nil, err
		}
		c.file = name
		return nil, nil
	case binlog.TypeFDE:
		alg, err := binlog.FDEChecksumAlg(ev)
		if err != nil {
			return nil, err
		}
		c.alg, c.fde = alg, append([]byte(nil), ev...)
		return nil, nil
	case binlog.TypePreviousGTIDs, binlog.TypeMariaDBGTIDList, binlog.TypeCheckpoint, binlog.TypeHeartbeat,
		binlog.TypeHeartbeatV2, binlog.TypeStop, typeMariaStartEn:
		return nil, nil
	case binlog.TypeAnonymousGTID:
		return nil, fmt.Errorf("%w: an anonymous transaction (the source has gtid_mode below ON)", ErrSourceUnfit)
	}
	if err := binlog.VerifyChecksum(ev, c.alg); err != nil {
		return nil, err
	}
	if g, ok, err := c.flav.GTIDOfEvent(ev, c.alg); err != nil {
		return nil, err
	} else if ok {
		if c.cur != nil {
			return nil, fmt.Errorf("%w: GTID %s starts while %s is open", ErrStream, g, c.gtid)
		}
		c.cur, c.gtid, c.inBegin = append([]byte(nil), ev...), g, false
		c.lastPos = h.LogPos
		if h.Type == binlog.TypeMariaDBGTID {
			// NB: MariaDB writes no BEGIN: a GTID event without FL_STANDALONE
			// opens a transaction; a standalone one is one statement (DDL).
			p, err := payload(ev, c.alg)
			if err != nil || len(p) < 13 {
				return nil, fmt.Errorf("%w: MariaDB GTID event of %d bytes", ErrMalformedPacket, len(ev))
			}
			c.inBegin = p[12]&0x01 == 0
		}
		return nil, nil
	}
	if c.cur == nil {
		return nil, fmt.Errorf("%w: event type %d at %s:%d outside a transaction", ErrStream, h.Type, c.file, h.LogPos)
	}
	c.cur = append(c.cur, ev...)
	c.lastPos = h.LogPos
	end := false
	switch h.Type {
	case binlog.TypeXID, binlog.TypeXAPrepare, binlog.TypeMariaDBXAPrepare, binlog.TypeTransactionPayload:
		end = true
	case binlog.TypeQuery:
		q, err := queryText(ev, c.alg)
		if err != nil {
			return nil, err
		}
		if isDML(q) {
			c.stmts++
		}
		switch {
		case !c.inBegin && len(c.cur) == len(ev)+int(firstLen(c.cur)) && bytes.EqualFold(q, []byte("BEGIN")):
			c.inBegin = true
		case !c.inBegin:
			end = true // a statement outside BEGIN: DDL
		case hasPrefixFold(q, "COMMIT"), hasPrefixFold(q, "ROLLBACK"), hasPrefixFold(q, "XA PREPARE"), hasPrefixFold(q, "XA COMMIT"), hasPrefixFold(q, "XA ROLLBACK"):
			end = true
		}
	}
	if !end {
		if needAck {
			return nil, fmt.Errorf("%w: the source asks for an ACK in the middle of %s", ErrStream, c.gtid)
		}
		return nil, nil
	}
	out := &cut{txn: logger.Txn{GTID: c.gtid, SourceFile: c.file, SourceEnd: uint64(c.lastPos), Events: c.cur}, needAck: needAck, statements: c.stmts}
	c.cur, c.gtid, c.inBegin, c.stmts = nil, "", false, 0
	return out, nil
}

// open reports whether a transaction is being assembled.
func (c *cutter) open() bool { return c.cur != nil }

// firstLen is the size of the first event of b (the GTID event).
func firstLen(b []byte) uint32 {
	if len(b) < 13 {
		return 0
	}
	return binary.LittleEndian.Uint32(b[9:13])
}

// dmlVerbs start the statements that change rows; in a Query event they
// mean statement-based replication of data (BEGIN, COMMIT, SAVEPOINT and
// DDL are Query events in ROW format too).
var dmlVerbs = []string{"INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD", "WITH", "CALL"}

// isDML reports whether a Query event's statement changes rows. Leading
// blanks and comments (/* ... */, -- and # lines) are skipped. Pure.
func isDML(q []byte) bool {
	for {
		q = bytes.TrimLeft(q, " \t\r\n(")
		switch {
		case bytes.HasPrefix(q, []byte("/*")):
			i := bytes.Index(q[2:], []byte("*/"))
			if i < 0 {
				return false
			}
			q = q[2+i+2:]
			continue
		case bytes.HasPrefix(q, []byte("--")), bytes.HasPrefix(q, []byte("#")):
			i := bytes.IndexByte(q, '\n')
			if i < 0 {
				return false
			}
			q = q[i+1:]
			continue
		}
		break
	}
	for _, v := range dmlVerbs {
		if hasPrefixFold(q, v) && (len(q) == len(v) || !isWordByte(q[len(v)])) {
			return true
		}
	}
	return false
}

func isWordByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

func hasPrefixFold(b []byte, p string) bool {
	return len(b) >= len(p) && bytes.EqualFold(b[:len(p)], []byte(p))
}

// payload returns an event's bytes after the header, without the checksum.
func payload(ev []byte, alg binlog.ChecksumAlg) ([]byte, error) {
	end := len(ev)
	if alg == binlog.ChecksumCRC32 {
		end -= 4
	}
	if end < binlog.HeaderLen {
		return nil, fmt.Errorf("%w: event of %d bytes", ErrMalformedPacket, len(ev))
	}
	return ev[binlog.HeaderLen:end], nil
}

// rotateName returns the next file name of a ROTATE_EVENT. A fake rotate
// may come before the FDE, so a name ending in what looks like a CRC is
// not trusted blindly: binlog names are printable.
func rotateName(ev []byte, alg binlog.ChecksumAlg) (string, error) {
	p, err := payload(ev, alg)
	if err != nil {
		return "", err
	}
	if len(p) < 8 {
		return "", fmt.Errorf("%w: rotate event of %d bytes", ErrMalformedPacket, len(ev))
	}
	name := p[8:]
	for i, ch := range name {
		if ch < 0x20 || ch > 0x7e {
			name = name[:i]
			break
		}
	}
	return string(name), nil
}

// queryText returns a QUERY_EVENT's statement, trimmed.
func queryText(ev []byte, alg binlog.ChecksumAlg) ([]byte, error) {
	q, err := binlog.QueryText(ev, alg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPacket, err)
	}
	return bytes.TrimSpace(q), nil
}
