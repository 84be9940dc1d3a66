package binlog

import (
	"encoding/binary"
	"fmt"
)

// HeaderLen is the length of the common event header (binlog v4).
const HeaderLen = 19

// Magic is the 4-byte header of every binlog file. It is an untyped string
// constant so that it cannot be modified: len(Magic) and Magic[i] work as on
// a []byte; use FileMagic for a []byte.
const Magic = "\xfebin"

// FileMagic returns a fresh copy of Magic.
func FileMagic() []byte { return []byte(Magic) }

// Event type codes used by this package and its callers.
const (
	TypeQuery           byte = 2
	TypeStop            byte = 3
	TypeRotate          byte = 4
	TypeFDE             byte = 15 // FORMAT_DESCRIPTION_EVENT
	TypeXID             byte = 16
	TypeTableMap        byte = 19
	TypeHeartbeat       byte = 27 // HEARTBEAT_LOG_EVENT
	TypeGTID            byte = 33 // MySQL GTID_LOG_EVENT
	TypeAnonymousGTID   byte = 34 // MySQL ANONYMOUS_GTID_LOG_EVENT
	TypePreviousGTIDs   byte = 35 // MySQL PREVIOUS_GTIDS_LOG_EVENT
	TypeHeartbeatV2     byte = 41 // MySQL HEARTBEAT_LOG_EVENT_V2
	TypeGTIDTagged      byte = 42 // MySQL GTID_TAGGED_LOG_EVENT (8.3+)
	TypeAnnotateRows    byte = 160
	TypeCheckpoint      byte = 161 // MariaDB BINLOG_CHECKPOINT_EVENT
	TypeMariaDBGTID     byte = 162 // MariaDB GTID_EVENT
	TypeMariaDBGTIDList byte = 163 // MariaDB GTID_LIST_EVENT
)

// Header flags.
const (
	FlagInUse       uint16 = 0x0001 // LOG_EVENT_BINLOG_IN_USE_F, FDE only
	FlagSuppressUse uint16 = 0x0008 // LOG_EVENT_SUPPRESS_USE_F
	FlagArtificial  uint16 = 0x0020 // LOG_EVENT_ARTIFICIAL_F
)

// Offsets of the header fields.
const (
	offType     = 4
	offServerID = 5
	offSize     = 9
	offLogPos   = 13
	offFlags    = 17
)

// Header is the common header of a binlog event.
type Header struct {
	Timestamp uint32
	Type      byte
	ServerID  uint32
	EventSize uint32 // the whole event, header and checksum included
	LogPos    uint32 // position of the next event in the originating file
	Flags     uint16
}

// ParseHeader decodes the first HeaderLen bytes of ev. Only the header is
// needed, so it works on a header read ahead of its body; it does not check
// EventSize against len(ev). An EventSize below HeaderLen is ErrMalformed.
func ParseHeader(ev []byte) (Header, error) {
	if len(ev) < HeaderLen {
		return Header{}, fmt.Errorf("%w: %d bytes, a header needs %d", ErrMalformed, len(ev), HeaderLen)
	}
	h := Header{
		Timestamp: binary.LittleEndian.Uint32(ev[0:]),
		Type:      ev[offType],
		ServerID:  binary.LittleEndian.Uint32(ev[offServerID:]),
		EventSize: binary.LittleEndian.Uint32(ev[offSize:]),
		LogPos:    binary.LittleEndian.Uint32(ev[offLogPos:]),
		Flags:     binary.LittleEndian.Uint16(ev[offFlags:]),
	}
	if h.EventSize < HeaderLen {
		return Header{}, fmt.Errorf("%w: event size %d is below the header length", ErrMalformed, h.EventSize)
	}
	return h, nil
}

// AppendHeader appends the 19 header bytes of h to b.
func AppendHeader(b []byte, h Header) []byte {
	b = binary.LittleEndian.AppendUint32(b, h.Timestamp)
	b = append(b, h.Type)
	b = binary.LittleEndian.AppendUint32(b, h.ServerID)
	b = binary.LittleEndian.AppendUint32(b, h.EventSize)
	b = binary.LittleEndian.AppendUint32(b, h.LogPos)
	return binary.LittleEndian.AppendUint16(b, h.Flags)
}

// NewEvent assembles an event: a header with the given fields and the right
// event_size, the body, and a CRC32 trailer iff alg is ChecksumCRC32.
func NewEvent(typ byte, ts, serverID, logPos uint32, flags uint16, body []byte, alg ChecksumAlg) []byte {
	n := HeaderLen + len(body)
	if alg == ChecksumCRC32 {
		n += ChecksumLen
	}
	ev := make([]byte, 0, n)
	ev = AppendHeader(ev, Header{Timestamp: ts, Type: typ, ServerID: serverID, EventSize: uint32(n), LogPos: logPos, Flags: flags})
	ev = append(ev, body...)
	if alg == ChecksumCRC32 {
		ev = appendCRC(ev)
	}
	return ev
}

// SplitEvents splits concatenated events by each header's event_size. The
// returned slices share b's memory (capacity clipped to the event). A
// truncated event or an event_size below HeaderLen is ErrMalformed; empty
// input gives no events and no error.
func SplitEvents(b []byte) ([][]byte, error) {
	var evs [][]byte
	for off := 0; off < len(b); {
		if len(b)-off < HeaderLen {
			return nil, fmt.Errorf("%w: %d bytes at offset %d, a header needs %d", ErrMalformed, len(b)-off, off, HeaderLen)
		}
		size := binary.LittleEndian.Uint32(b[off+offSize:])
		if size < HeaderLen {
			return nil, fmt.Errorf("%w: event at offset %d has size %d, below the header length", ErrMalformed, off, size)
		}
		if uint64(size) > uint64(len(b)-off) {
			return nil, fmt.Errorf("%w: event at offset %d has size %d, only %d bytes left", ErrMalformed, off, size, len(b)-off)
		}
		end := off + int(size)
		evs = append(evs, b[off:end:end])
		off = end
	}
	return evs, nil
}

// body returns ev's bytes between the header and the checksum, after
// checking that event_size matches len(ev).
func body(ev []byte, alg ChecksumAlg) ([]byte, error) {
	h, err := ParseHeader(ev)
	if err != nil {
		return nil, err
	}
	if int(h.EventSize) != len(ev) {
		return nil, fmt.Errorf("%w: event_size %d, buffer holds %d bytes", ErrMalformed, h.EventSize, len(ev))
	}
	end := len(ev)
	if alg == ChecksumCRC32 {
		end -= ChecksumLen
		if end < HeaderLen {
			return nil, fmt.Errorf("%w: %d bytes leave no room for a checksum", ErrMalformed, len(ev))
		}
	}
	return ev[HeaderLen:end], nil
}
