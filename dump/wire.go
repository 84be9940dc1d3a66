package dump

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"time"
)

// maxPayload is the largest payload of one MySQL packet; a longer payload
// continues in the next packets, and one of exactly this size is followed
// by an empty packet.
const maxPayload = 1<<24 - 1

// packetWriter frames MySQL packets onto a connection with its own
// sequence numbers. Not safe for concurrent use: one goroutine writes.
type packetWriter struct {
	conn    net.Conn
	w       *bufio.Writer
	seq     uint8
	timeout time.Duration
	hdr     [4]byte
	n       uint64 // bytes written
}

func newPacketWriter(c net.Conn, timeout time.Duration, size int) *packetWriter {
	return &packetWriter{conn: c, w: bufio.NewWriterSize(c, size), timeout: timeout}
}

// arm sets the write deadline for the writes that follow.
func (p *packetWriter) arm() {
	if p.timeout > 0 {
		p.conn.SetWriteDeadline(time.Now().Add(p.timeout))
	}
}

// write sends one logical payload, the concatenation of parts, split into
// packets of at most maxPayload bytes.
func (p *packetWriter) write(parts ...[]byte) error {
	total := 0
	for _, b := range parts {
		total += len(b)
	}
	pi, off := 0, 0
	for {
		n := min(total, maxPayload)
		p.hdr[0], p.hdr[1], p.hdr[2], p.hdr[3] = byte(n), byte(n>>8), byte(n>>16), p.seq
		p.seq++
		if _, err := p.w.Write(p.hdr[:]); err != nil {
			return err
		}
		for left := n; left > 0; {
			b := parts[pi][off:]
			if len(b) > left {
				b = b[:left]
			}
			if _, err := p.w.Write(b); err != nil {
				return err
			}
			left -= len(b)
			off += len(b)
			if off == len(parts[pi]) {
				pi, off = pi+1, 0
			}
		}
		p.n += uint64(n) + 4
		total -= n
		if n < maxPayload {
			return nil
		}
	}
}

// flush sends what is buffered.
func (p *packetWriter) flush() error { return p.w.Flush() }

// Buffered reports how many bytes wait for flush.
func (p *packetWriter) buffered() int { return p.w.Buffered() }

// packetReader reads MySQL packets (joining continued ones). maxLen
// bounds a command so a hostile client cannot make the server allocate
// without limit.
type packetReader struct {
	r      *bufio.Reader
	maxLen int
	seq    uint8 // sequence number of the last packet read
}

func newPacketReader(r io.Reader, maxLen int) *packetReader {
	return &packetReader{r: bufio.NewReaderSize(r, 16<<10), maxLen: maxLen}
}

// read returns the next payload and the sequence number of its first packet.
func (p *packetReader) read() ([]byte, uint8, error) {
	var out []byte
	var first uint8
	for i := 0; ; i++ {
		var h [4]byte
		if _, err := io.ReadFull(p.r, h[:]); err != nil {
			return nil, 0, err
		}
		n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
		if i == 0 {
			first = h[3]
		}
		p.seq = h[3]
		if len(out)+n > p.maxLen {
			return nil, 0, fmt.Errorf("%w: a command of more than %d bytes", ErrMalformed, p.maxLen)
		}
		start := len(out)
		out = append(out, make([]byte, n)...)
		if _, err := io.ReadFull(p.r, out[start:]); err != nil {
			return nil, 0, err
		}
		if n < maxPayload {
			return out, first, nil
		}
	}
}
