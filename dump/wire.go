package dump

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// maxPayload is the largest payload of one MySQL packet; a longer payload
// continues in the next packets, and one of exactly this size is followed
// by an empty packet.
const maxPayload = 1<<24 - 1

// packetWriter frames MySQL packets onto a connection with its own
// sequence numbers. Not safe for concurrent use: one goroutine writes.
//
// On a plain TCP connection it gathers the packets and sends them with
// writev: bytes passed to writeShared (the log's shared, immutable
// chunks) go to the socket without being copied, and the headers and
// other payloads are copied into a small staging buffer. Other
// connections (TLS) go through a bufio.Writer.
type packetWriter struct {
	conn    net.Conn
	w       *bufio.Writer // nil: vector mode
	seq     uint8
	timeout time.Duration
	hdr     [4]byte
	n       uint64 // bytes written

	// vector mode
	stage    []byte      // copied bytes; never grows past its capacity, so iov's slices of it stay valid
	iov      net.Buffers // pending, in order: slices of stage and shared slices
	runStart int         // iov[len(iov)-1] is stage[runStart:] when run
	run      bool
	pending  int  // bytes in iov
	mustSend bool // iov holds a caller's bytes that are not ours to keep
}

// Vector mode sends once this much is pending.
const vecFlushAt = 256 << 10

// vecStage bounds the staging buffer of vector mode: the log's bytes go to
// the socket from the shared cache without a copy, so it only stages
// headers and small events.
const vecStage = 16 << 10

// newPacketWriter returns a writer that buffers up to size bytes (on TCP,
// stages at most vecStage).
func newPacketWriter(c net.Conn, timeout time.Duration, size int) *packetWriter {
	if _, ok := c.(*net.TCPConn); ok {
		return &packetWriter{conn: c, timeout: timeout, stage: make([]byte, 0, min(size, vecStage))}
	}
	return &packetWriter{conn: c, w: bufio.NewWriterSize(c, size), timeout: timeout}
}

// arm sets the write deadline for the writes that follow.
func (p *packetWriter) arm() {
	if p.timeout > 0 {
		p.conn.SetWriteDeadline(time.Now().Add(p.timeout))
	}
}

// write sends one logical payload, the concatenation of parts, split into
// packets of at most maxPayload bytes. The parts are the caller's again
// once it returns.
func (p *packetWriter) write(parts ...[]byte) error { return p.writeParts(false, parts) }

// writeShared is write for parts that never change (slices of the shared
// chunk cache): the writer may keep them until a later flush and send
// them without a copy.
func (p *packetWriter) writeShared(parts ...[]byte) error { return p.writeParts(true, parts) }

func (p *packetWriter) writeParts(shared bool, parts [][]byte) error {
	total := 0
	for _, b := range parts {
		total += len(b)
	}
	pi, off := 0, 0
	for {
		n := min(total, maxPayload)
		p.hdr[0], p.hdr[1], p.hdr[2], p.hdr[3] = byte(n), byte(n>>8), byte(n>>16), p.seq
		p.seq++
		if err := p.put(p.hdr[:], false); err != nil {
			return err
		}
		for left := n; left > 0; {
			b := parts[pi][off:]
			if len(b) > left {
				b = b[:left]
			}
			if err := p.put(b, shared); err != nil {
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
			break
		}
	}
	if p.w == nil && (p.mustSend || p.pending >= vecFlushAt) {
		return p.flush()
	}
	return nil
}

// put queues b: by reference if shared (or too big to stage, then sent
// before write returns), else copied.
func (p *packetWriter) put(b []byte, shared bool) error {
	if p.w != nil {
		_, err := p.w.Write(b)
		return err
	}
	if len(b) == 0 {
		return nil
	}
	if !shared || len(b) < 512 {
		if len(b) > cap(p.stage)-len(p.stage) && p.pending > 0 {
			if err := p.flush(); err != nil {
				return err
			}
		}
		if len(b) <= cap(p.stage)-len(p.stage) {
			at := len(p.stage)
			p.stage = append(p.stage, b...)
			if p.run {
				p.iov[len(p.iov)-1] = p.stage[p.runStart:]
			} else {
				p.iov = append(p.iov, p.stage[at:])
				p.run, p.runStart = true, at
			}
			p.pending += len(b)
			return nil
		}
		p.mustSend = true // NB: larger than the stage: send it before write returns
	}
	p.iov = append(p.iov, b)
	p.run = false
	p.pending += len(b)
	return nil
}

// flush sends what is buffered.
func (p *packetWriter) flush() error {
	if p.w != nil {
		return p.w.Flush()
	}
	if p.pending == 0 {
		return nil
	}
	iov := p.iov
	_, err := iov.WriteTo(p.conn) // NB: writev; consumes its copy of the slice header
	clear(p.iov)                  // drop references to shared chunks
	p.iov, p.stage, p.run, p.pending, p.mustSend = p.iov[:0], p.stage[:0], false, 0, false
	return err
}

// flushShared sends what writeShared may still hold (vector mode; a
// bufio.Writer copied it already).
func (p *packetWriter) flushShared() error {
	if p.w != nil {
		return nil
	}
	return p.flush()
}

// errPacketTooLarge: a client announced a packet longer than the
// reader's limit (refused from the header, before reading or allocating).
var errPacketTooLarge = errors.New("dump: packet too large")

// errNoMemory: the server-wide budget for large commands is spent.
var errNoMemory = errors.New("dump: the memory for large commands is in use")

// largeCommand is the size from which a command's buffer is taken from
// the server-wide budget (memBudget).
const largeCommand = 1 << 20

// memBudget bounds the bytes all sessions together hold in commands of
// largeCommand bytes or more, so many clients sending huge COM_QUERYs at
// once cannot exhaust memory. Safe for concurrent use.
type memBudget struct {
	used  atomic.Int64
	limit int64
}

func (b *memBudget) take(n int64) bool {
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *memBudget) give(n int64) { b.used.Add(-n) }

// packetReader reads MySQL packets (joining continued ones). maxLen
// bounds a command so a hostile client cannot make the server allocate
// without limit: a longer one is refused from its header. Not safe for
// concurrent use.
type packetReader struct {
	r      *bufio.Reader
	maxLen int
	seq    uint8      // sequence number of the last packet read
	budget *memBudget // nil: no server-wide budget
	held   int64      // bytes of budget held by the last command
}

func newPacketReader(r io.Reader, maxLen int) *packetReader {
	if br, ok := r.(*bufio.Reader); ok {
		return &packetReader{r: br, maxLen: maxLen}
	}
	return &packetReader{r: bufio.NewReaderSize(r, min(16<<10, maxLen+4)), maxLen: maxLen}
}

// release gives back the budget the last command held: call it when the
// command's bytes are no longer used (read does so itself).
func (p *packetReader) release() {
	if p.held > 0 {
		p.budget.give(p.held)
		p.held = 0
	}
}

// read returns the next payload and the sequence number of its first
// packet. The previous payload's budget is given back.
func (p *packetReader) read() ([]byte, uint8, error) {
	p.release()
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
		total := len(out) + n
		if total > p.maxLen {
			return nil, 0, fmt.Errorf("%w: more than %d bytes", errPacketTooLarge, p.maxLen)
		}
		if p.budget != nil && total >= largeCommand {
			if !p.budget.take(int64(total) - p.held) {
				return nil, 0, errNoMemory
			}
			p.held = int64(total)
		}
		// NB: grown to the exact size (append would round a 64 MiB command
		// up), and only for bytes the header announced within the limit.
		grown := make([]byte, total)
		copy(grown, out)
		start := len(out)
		out = grown
		if _, err := io.ReadFull(p.r, out[start:]); err != nil {
			return nil, 0, err
		}
		if n < maxPayload {
			return out, first, nil
		}
	}
}
