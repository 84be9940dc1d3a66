package semisync

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// Semi-sync wire constants (protocol.md section 2).
const (
	semiMagic     = binlog.SemiSyncMagic // first byte of the semi-sync header and of the ACK
	semiNeedsAck  = 0x01                 // flag: the source waits for an ACK of this event
	maxPayloadLen = 1<<24 - 1
)

// Errors of the codec.
var (
	ErrMalformedPacket = errors.New("semisync: malformed packet from the source")
	ErrEOF             = errors.New("semisync: the source ended the dump (EOF packet)")
)

// SourceError is an ERR packet the source sent.
type SourceError struct {
	Code    uint16
	State   string
	Message string
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("semisync: source error %d (%s): %s", e.Code, e.State, e.Message)
}

// packetReader reads MySQL packets, joining 16 MiB continuations. It does
// not enforce sequence numbers: the source resets them after each event
// that asks for an ACK, asynchronously to the ACKs this side writes.
type packetReader struct {
	r   *bufio.Reader
	hdr [4]byte
}

func newPacketReader(r io.Reader) *packetReader {
	return &packetReader{r: bufio.NewReaderSize(r, 256<<10)}
}

// next returns the next whole payload.
func (p *packetReader) next() ([]byte, error) {
	var out []byte
	for {
		if _, err := io.ReadFull(p.r, p.hdr[:]); err != nil {
			return nil, err
		}
		n := int(p.hdr[0]) | int(p.hdr[1])<<8 | int(p.hdr[2])<<16
		start := len(out)
		out = append(out, make([]byte, n)...)
		if _, err := io.ReadFull(p.r, out[start:]); err != nil {
			return nil, err
		}
		if n < maxPayloadLen {
			return out, nil
		}
	}
}

// eventOf interprets one dump payload: an event (after the 0x00 OK byte
// and, with semi-sync on, the 2-byte header), an EOF, or an ERR packet.
func eventOf(payload []byte, semi bool) (ev []byte, needAck bool, err error) {
	if len(payload) == 0 {
		return nil, false, fmt.Errorf("%w: empty packet", ErrMalformedPacket)
	}
	switch payload[0] {
	case 0x00:
	case 0xFE:
		if len(payload) < 9 {
			return nil, false, ErrEOF
		}
	case 0xFF:
		return nil, false, parseErr(payload)
	default:
		return nil, false, fmt.Errorf("%w: first byte 0x%02x", ErrMalformedPacket, payload[0])
	}
	ev = payload[1:]
	if semi {
		if len(ev) < 2 || ev[0] != semiMagic {
			return nil, false, fmt.Errorf("%w: semi-sync header missing (the source did not turn semi-sync on for this session)", ErrMalformedPacket)
		}
		needAck = ev[1]&semiNeedsAck != 0
		ev = ev[2:]
	}
	if len(ev) < 19 {
		return nil, false, fmt.Errorf("%w: event of %d bytes", ErrMalformedPacket, len(ev))
	}
	return ev, needAck, nil
}

func parseErr(p []byte) error {
	e := &SourceError{}
	if len(p) >= 3 {
		e.Code = binary.LittleEndian.Uint16(p[1:])
		rest := p[3:]
		if len(rest) >= 6 && rest[0] == '#' {
			e.State, rest = string(rest[1:6]), rest[6:]
		}
		e.Message = string(rest)
	}
	return e
}

// ackPacket returns a whole ACK packet (header with sequence 0, then 0xEF,
// the 8-byte position and the file name) for the source's (file, pos).
func ackPacket(file string, pos uint64) []byte {
	n := 1 + 8 + len(file)
	b := make([]byte, 4, 4+n)
	b[0], b[1], b[2], b[3] = byte(n), byte(n>>8), byte(n>>16), 0
	return binlog.AppendSemiSyncAck(b, file, pos)
}

// parseAck decodes an ACK payload (for tests and diagnostics).
func parseAck(p []byte) (file string, pos uint64, err error) {
	file, pos, err = binlog.ParseSemiSyncAck(p)
	if err != nil {
		return "", 0, fmt.Errorf("%w: not an ACK: %v", ErrMalformedPacket, err)
	}
	return file, pos, nil
}
