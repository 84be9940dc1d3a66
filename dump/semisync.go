package dump

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// The semi-sync protocol toward the fleet's own replicas (the source side,
// pure): a replica that asked for it gets every event packet as 0x00, then
// the 2-byte header (0xEF, then 0x01 when an ACK is requested), then the
// event; it answers each requested ACK with a packet of sequence 0 holding
// 0xEF, the 8-byte end position of the event and the file name (no NUL).
// After an event that requests an ACK the next packet the fleet sends has
// sequence number 1, as a MySQL or MariaDB source does.
const (
	semiMagic    = binlog.SemiSyncMagic
	semiNeedsAck = 0x01
	// maxAckName bounds the file name of an ACK: FN_REFLEN (512) with its
	// NUL, as a source refuses a longer one.
	maxAckName = 511
)

// ErrBadAck: a semi-sync replica sent an ACK that cannot be decoded. Only
// its own dump ends.
var ErrBadAck = errors.New("dump: malformed semi-sync ACK")

// Payload prefixes of an event packet: the OK byte, then for a semi-sync
// dump the header with or without the ACK request. Never modified.
var (
	semiPlain = []byte{0x00, semiMagic, 0x00}
	semiAsk   = []byte{0x00, semiMagic, semiNeedsAck}
)

// semiWanted reports whether the session's user variables ask for the
// semi-sync header: MySQL 8.0.26+ replicas set @rpl_semi_sync_replica
// (and @rpl_semi_sync_slave), older MySQL and MariaDB replicas
// @rpl_semi_sync_slave. A source takes any non-zero integer as yes.
func semiWanted(vars map[string]string) bool {
	for _, k := range []string{"rpl_semi_sync_replica", "rpl_semi_sync_slave"} {
		v, ok := vars[k]
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if n, err := strconv.ParseFloat(v, 64); err == nil && n != 0 {
			return true
		}
		if strings.EqualFold(v, "ON") || strings.EqualFold(v, "TRUE") {
			return true
		}
	}
	return false
}

// ack is one semi-sync ACK: the replica holds the log up to File:Pos.
type ack struct {
	File string
	Pos  uint64
}

// parseAck decodes an ACK payload. The file must name one of the fleet's
// binlog files: it names what the fleet sent, and nothing else.
func parseAck(p []byte) (ack, error) {
	switch {
	case len(p) == 0 || p[0] != semiMagic:
		return ack{}, fmt.Errorf("%w: the packet does not start with 0xEF", ErrBadAck)
	case len(p) < 1+8+1:
		return ack{}, fmt.Errorf("%w: %d bytes, want 0xEF, an 8-byte position and a file name", ErrBadAck, len(p))
	case len(p)-9 > maxAckName:
		return ack{}, fmt.Errorf("%w: a file name of %d bytes (at most %d)", ErrBadAck, len(p)-9, maxAckName)
	}
	file, pos, err := binlog.ParseSemiSyncAck(p)
	if err != nil {
		return ack{}, fmt.Errorf("%w: %v", ErrBadAck, err)
	}
	a := ack{Pos: pos, File: file}
	// NB: a replica may copy the name's NUL (MariaDB copies it, then sends
	// one byte less; others may not).
	a.File = strings.TrimRight(a.File, "\x00")
	if _, err := logger.ParseFileName(a.File); err != nil {
		return ack{}, fmt.Errorf("%w: %v", ErrBadAck, err)
	}
	return a, nil
}

// after reports whether a names a later point of the log than b.
func (a ack) after(b ack) bool {
	fa, _ := logger.ParseFileName(a.File)
	fb, _ := logger.ParseFileName(b.File)
	if fa != fb {
		return fa > fb
	}
	return a.Pos > b.Pos
}

// recordAck takes one ACK into a client's status: it is counted, and the
// acknowledged point only moves forward.
func recordAck(st *ClientStatus, a ack, now time.Time) {
	st.Acks++
	if st.AckFile == "" || a.after(ack{File: st.AckFile, Pos: st.AckPos}) {
		st.AckFile, st.AckPos, st.AckTime = a.File, a.Pos, now
	}
}

// txEnds finds the last event of each transaction in the events a dump
// sends, to request the replica's ACK on it. Pure. A transaction starts
// at a GTID event and ends at its XID, an XA PREPARE, a COMMIT or
// ROLLBACK query, a compressed transaction payload, or, for a statement
// outside BEGIN (DDL), at that statement.
type txEnds struct {
	open    bool // after a GTID event, before its transaction's end
	inBegin bool
	fresh   bool // the GTID event was the last one seen
}

// end takes the next event sent and reports whether it ends a transaction.
func (t *txEnds) end(ev []byte, alg binlog.ChecksumAlg) bool {
	if len(ev) < binlog.HeaderLen {
		return false
	}
	fresh := t.fresh
	t.fresh = false
	switch ev[4] {
	case binlog.TypeGTID, binlog.TypeGTIDTagged, binlog.TypeAnonymousGTID:
		t.open, t.inBegin, t.fresh = true, false, true
		return false
	case binlog.TypeMariaDBGTID:
		// NB: MariaDB writes no BEGIN: a GTID event without FL_STANDALONE
		// (flags at body offset 12) opens a transaction.
		t.open, t.inBegin, t.fresh = true, false, true
		if body := ev[binlog.HeaderLen:]; len(body) > 12 {
			t.inBegin = body[12]&0x01 == 0
		}
		return false
	case binlog.TypeXID, binlog.TypeXAPrepare, binlog.TypeMariaDBXAPrepare, binlog.TypeTransactionPayload:
		return t.close()
	case binlog.TypeQuery:
		if !t.open {
			return false
		}
		q := queryOf(ev, alg)
		switch {
		case fresh && !t.inBegin && (hasWordPrefix(q, "BEGIN") || hasWordPrefix(q, "XA START") || hasWordPrefix(q, "XA BEGIN")):
			t.inBegin = true
			return false
		case !t.inBegin, hasWordPrefix(q, "COMMIT"), hasWordPrefix(q, "ROLLBACK"), hasWordPrefix(q, "XA COMMIT"), hasWordPrefix(q, "XA ROLLBACK"):
			return t.close()
		}
	}
	return false
}

func (t *txEnds) close() bool {
	was := t.open
	t.open, t.inBegin = false, false
	return was
}

// queryOf returns the statement of a QUERY event (nil if it is too short).
func queryOf(ev []byte, alg binlog.ChecksumAlg) []byte {
	q, err := binlog.QueryText(ev, alg)
	if err != nil {
		return nil
	}
	return q
}

// hasWordPrefix reports whether q starts (after blanks) with the words w,
// case-insensitively, followed by the end or a non-word byte.
func hasWordPrefix(q []byte, w string) bool {
	q = bytes.TrimLeft(q, " \t\r\n")
	if len(q) < len(w) || !bytes.EqualFold(q[:len(w)], []byte(w)) {
		return false
	}
	if len(q) == len(w) {
		return true
	}
	c := q[len(w)]
	return !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z')
}
