package dump

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// streamCore decides what one dump sends, with no I/O: it is given what
// the log returned (file metadata, bytes, errors), the time, heartbeat
// ticks and new-data notifications, and returns the packets to write and
// the next thing to do. streamer.run (stream.go) is its driver: it does
// the reads, the writes, the waiting and the stats. The scripts under
// testdata/stream drive it on a fake clock and a fake log.
//
// Each input method returns a streamStep: packets to write in order, a
// flush to do after them, then either an error (the dump ends: the driver
// writes the packets and the flush first, as a source would have sent them
// before failing) or the next action (streamAct).
//
// Invariants:
//
//  1. Bytes: the core sends the log's bytes unchanged, each whole event
//     once, in order, from the start point; it synthesizes only the fake
//     ROTATE, the FDE's created/log_pos and checksum, heartbeats and
//     MariaDB's artificial GTID_LIST. A GTID dump leaves out whole groups
//     (from a GTID event to the next GTID or file-level event).
//  2. Memory, in place of reference counting by hand: the packets of a
//     step refer to the input of that step (a slice of a shared chunk,
//     or the driver's read buffer) or to the core's own memory, and the
//     core changes neither until its next input. It never keeps a slice
//     of an input past the step that took it: the head of an event that a
//     read cut is copied into the core's own buffer. So the driver holds
//     a chunk for exactly one step: read, feed, write, flush, release. A
//     step over a shared chunk asks for flushShared even when it ends in
//     an error, so that the packet writer drops every reference to the
//     chunk before the driver releases it (the driver's error packet must
//     never send a released chunk's bytes).
//  3. Bounded work per step: one step sends at most what one read
//     returned (readSize bytes, or one event), so a slow client slows the
//     reads (the driver blocks in its writes) rather than queueing
//     packets. The head of a cut event is the only thing carried between
//     steps; an event larger than readSize is read whole (actReadHuge),
//     never beyond the file's size.
//  4. Time: the core reads no clock. The driver reports when it finished
//     writing (written) and asks when the next heartbeat is due
//     (heartbeatAt): a heartbeat period after the last write, only while
//     caught up.
//  5. A closed file that ends inside an event, an event shorter than a
//     header, a file that does not start with an FDE and a GTID event that
//     does not parse are logger.ErrCorrupted; a purged or missing file is
//     ErrStart with the text replicas show (readError).
type streamCore struct {
	o        streamOpts
	skip     skipper
	fakeList binlog.Set

	file     uint32
	name     string // the file's, from its metadata
	pos      uint64 // the file position of buf[off]: an event boundary
	alg      binlog.ChecksumAlg
	startPos uint64 // of the file being opened
	first    bool   // the file being opened is the dump's first
	head     binlog.Header
	stage    streamStage
	skipping bool // the current group is left out
	tx       txEnds
	lastSend time.Time

	// buf holds the head of an event that the last read cut (from off).
	// The core's own memory: packets may refer to it until the next input.
	buf []byte
	off int
	// hugeFailed: the last huge read returned nothing; read normally to
	// learn whether the file ended.
	hugeFailed bool

	pkts []streamPacket // reused from step to step
}

type streamStage uint8

const (
	stageFile streamStage = iota // waiting for the file's metadata
	stageHead                    // for the FDE's header
	stageFDE                     // for the FDE
	stageRead                    // reading events
	stageWait                    // caught up, waiting
	stageDone                    // ended
)

// streamActKind is what the driver does next.
type streamActKind uint8

const (
	// actFile: Log.File(file), then fileMeta.
	actFile streamActKind = iota + 1
	// actReadAt: Log.ReadAt(file, pos, max), then readAt.
	actReadAt
	// actRead: a read of up to max bytes at file:pos through the chunk
	// cache, then read; a chunk returned is released after the step's
	// packets are written and flushed.
	actRead
	// actReadHuge: Log.File(file) for its size, room(size) for the
	// buffer, Log.ReadAtInto(that buffer, file, pos, max), then readHuge.
	actReadHuge
	// actWait: caught up. Flush, then wait for Log.Changed (then changed)
	// or until heartbeatAt, if not zero (then tick).
	actWait
	// actEOF: a non-blocking dump reached the end: flush; the dump ends
	// with an EOF packet.
	actEOF
)

func (k streamActKind) String() string {
	switch k {
	case actFile:
		return "file"
	case actReadAt:
		return "read-at"
	case actRead:
		return "read"
	case actReadHuge:
		return "read-huge"
	case actWait:
		return "wait"
	case actEOF:
		return "eof"
	}
	return "none"
}

// streamAct is the core's next request to the driver.
type streamAct struct {
	kind streamActKind
	file uint32
	pos  uint64
	max  int
}

// streamFlush is what the driver flushes after a step's packets.
type streamFlush uint8

const (
	flushNone   streamFlush = iota
	flushShared             // packetWriter.flushShared: drop references to the step's chunk
	flushAll                // packetWriter.flush
)

// streamPacket is one event to write as one logical packet: prefix, then
// ev.
type streamPacket struct {
	prefix []byte
	ev     []byte
	// shared: ev is a slice of the step's shared chunk (writeShared).
	shared bool
	// heartbeat: a heartbeat (counted apart; never shared).
	heartbeat bool
	// ask: the event asks for a semi-sync ACK: the driver expects the
	// client's ACK to restart the sequence (next packet is 1).
	ask  bool
	file uint32 // where the event ends, for ClientStatus
	pos  uint64
}

// streamStep is the outcome of one input.
type streamStep struct {
	pkts  []streamPacket // valid until the next input
	flush streamFlush
	err   error // non-nil: the dump ends after pkts and flush
	act   streamAct
}

func newStreamCore(sp startPoint, o streamOpts) *streamCore {
	return &streamCore{o: o, skip: sp.Skip, fakeList: sp.FakeList, file: sp.File, startPos: sp.Pos, first: true}
}

// start returns the first action: the start file's metadata.
func (c *streamCore) start() streamStep {
	c.stage = stageFile
	return streamStep{act: streamAct{kind: actFile, file: c.file}}
}

// begin starts an input: the previous step's packets are written, so the
// core's memory they referred to may change.
func (c *streamCore) begin() {
	c.pkts = c.pkts[:0]
	if c.off > 0 {
		rest := c.buf[c.off:]
		if cap(c.buf) > 4*c.o.readSize {
			c.buf = append([]byte(nil), rest...) // after a huge event, do not keep its memory
		} else {
			c.buf = append(c.buf[:0], rest...)
		}
		c.off = 0
	}
}

// fail ends the dump.
func (c *streamCore) fail(err error, flush streamFlush) streamStep {
	c.stage = stageDone
	return streamStep{pkts: c.pkts, flush: flush, err: err}
}

// fileMeta takes Log.File's answer for actFile and sends the fake ROTATE.
func (c *streamCore) fileMeta(m logger.FileMeta, err error) streamStep {
	c.begin()
	if err != nil {
		return c.fail(readError(err), flushNone)
	}
	c.alg = binlog.ChecksumAlg(m.ChecksumAlg)
	rotAlg := c.alg
	if c.first && !c.o.clientCRC {
		rotAlg = binlog.ChecksumNone
	}
	c.name = m.Name()
	c.send(binlog.RotateEvent(0, c.o.serverID, 0, binlog.FlagArtificial, c.name, c.startPos, rotAlg), c.startPos, false, false)
	c.stage = stageHead
	return streamStep{pkts: c.pkts, act: streamAct{kind: actReadAt, file: c.file, pos: uint64(len(binlog.Magic)), max: binlog.HeaderLen}}
}

// readAt takes Log.ReadAt's answer for actReadAt: the FDE's header, then
// the FDE, which it sends fixed as a source does.
func (c *streamCore) readAt(b []byte, err error) streamStep {
	c.begin()
	if err != nil {
		return c.fail(readError(err), flushNone)
	}
	name := c.name
	switch c.stage {
	case stageHead:
		h, err := binlog.ParseHeader(b)
		if err != nil || h.Type != binlog.TypeFDE {
			return c.fail(fmt.Errorf("%w: %s does not start with a format description event", logger.ErrCorrupted, name), flushNone)
		}
		c.head, c.stage = h, stageFDE
		return streamStep{act: streamAct{kind: actReadAt, file: c.file, pos: uint64(len(binlog.Magic)), max: int(h.EventSize)}}
	case stageFDE:
		if len(b) != int(c.head.EventSize) {
			return c.fail(fmt.Errorf("%w: %s: truncated format description event", logger.ErrCorrupted, name), flushNone)
		}
		magic := uint64(len(binlog.Magic))
		past := magic + uint64(len(b))
		fde := fixFDE(b, c.alg, !c.first || c.o.gtid || c.startPos > magic, c.first && c.startPos > magic)
		c.send(fde, past, false, false)
		c.pos = c.startPos
		if c.startPos <= magic {
			c.pos = past
		}
		c.first, c.stage = false, stageRead
		return streamStep{pkts: c.pkts, act: c.plan()}
	}
	return c.fail(fmt.Errorf("dump: stream core: unexpected read-at in stage %d", c.stage), flushNone)
}

// plan returns the next read: the rest of a cut event (all of it at once
// if larger than readSize), else readSize bytes.
func (c *streamCore) plan() streamAct {
	c.stage = stageRead
	at := c.pos + uint64(len(c.buf)-c.off)
	want := c.o.readSize
	if n := len(c.buf) - c.off; n > 0 {
		need := binlog.HeaderLen - n
		if need <= 0 {
			need = int(binary.LittleEndian.Uint32(c.buf[c.off+9:])) - n
		}
		if need > want && !c.hugeFailed {
			// NB: the rest of a huge event is read at once, into buf:
			// Pebble holds it in one value (one block), which every read
			// of a piece would decompress again.
			return streamAct{kind: actReadHuge, file: c.file, pos: at, max: need}
		} else if need > 0 && need <= want {
			want = need
		}
	}
	c.hugeFailed = false
	return streamAct{kind: actRead, file: c.file, pos: at, max: want}
}

// room returns the buffer for actReadHuge, given the file's size: the
// tail of buf, with room for the rest of the event but never more than
// the file holds (a corrupt size must not allocate gigabytes), and the
// bytes to read into it.
func (c *streamCore) room(fileSize uint64) ([]byte, int) {
	c.begin()
	n := len(c.buf)
	need := binlog.HeaderLen - n
	if need <= 0 {
		need = int(binary.LittleEndian.Uint32(c.buf[9:])) - n
	}
	grow := max(need, 0)
	if at := c.pos + uint64(n); at >= fileSize {
		grow = 0
	} else if left := fileSize - at; uint64(grow) > left {
		grow = int(left)
	}
	if cap(c.buf)-n < grow {
		c.buf = append(make([]byte, 0, n+grow), c.buf...)
	}
	return c.buf[n:n:cap(c.buf)], grow
}

// readHuge takes what Log.ReadAtInto read into room's buffer for
// actReadHuge.
func (c *streamCore) readHuge(data []byte, err error) streamStep {
	c.begin()
	if err != nil {
		return c.fail(readError(err), flushNone)
	}
	if len(data) == 0 {
		// NB: nothing more in the file: an ordinary read tells whether it
		// ended (closed inside the event) or grows later.
		c.hugeFailed = true
		return streamStep{act: c.plan()}
	}
	n := len(c.buf)
	if tail := c.buf[n:cap(c.buf)]; len(data) <= len(tail) && &tail[0] == &data[0] {
		c.buf = c.buf[:n+len(data)] // NB: data was read into buf's tail
	} else {
		c.buf = append(c.buf, data...)
	}
	if size := int(binary.LittleEndian.Uint32(c.buf[9:])); size >= binlog.HeaderLen && len(c.buf) < size {
		return streamStep{act: c.plan()}
	}
	rest, k, err := c.events(c.buf)
	if err != nil {
		return c.fail(err, flushNone)
	}
	c.pos += uint64(k)
	// NB: a fresh buffer, not the huge one (the packets still refer to it).
	c.buf = append([]byte(nil), rest...)
	return streamStep{pkts: c.pkts, act: c.plan()}
}

// read takes a read's answer for actRead: data (a slice of a shared chunk
// if shared, else the driver's buffer), or none and the file's metadata.
func (c *streamCore) read(data []byte, m logger.FileMeta, shared bool, err error) streamStep {
	c.begin()
	flush := flushNone
	if shared {
		flush = flushShared
	}
	if err != nil {
		return c.fail(readError(err), flush)
	}
	if len(data) == 0 {
		return c.ended(m)
	}
	work := data
	if len(c.buf) > 0 {
		// NB: copy only the rest of the cut event (not the whole read,
		// which was most of the CPU time in memmove and 300 KiB per
		// client); the events after it are sent straight from the read.
		// The chunk is not referred to: nothing to flush before its release.
		c.buf = append(c.buf, data...)
		shared, flush = false, flushNone
		if len(c.buf) < binlog.HeaderLen {
			return streamStep{flush: flush, act: c.plan()}
		}
		if size := int(binary.LittleEndian.Uint32(c.buf[9:])); size >= binlog.HeaderLen && len(c.buf) < size {
			return streamStep{flush: flush, act: c.plan()}
		}
		work = c.buf
	}
	// NB: the events of a shared chunk are sent uncopied (so are events
	// synthesized meanwhile, fresh allocations).
	mark := len(c.pkts)
	rest, k, err := c.events(work)
	for i := mark; i < len(c.pkts); i++ {
		c.pkts[i].shared = shared
	}
	if err != nil {
		return c.fail(err, flush)
	}
	c.pos += uint64(k)
	if len(c.buf) > 0 {
		c.off = k // NB: the packets refer to buf: it moves down at the next input
	} else {
		c.buf = append(c.buf[:0], rest...) // NB: never keep a slice of the input
	}
	return streamStep{pkts: c.pkts, flush: flush, act: c.plan()}
}

// ended handles an empty read: the next file, or the end of the log.
func (c *streamCore) ended(m logger.FileMeta) streamStep {
	if len(c.buf) > 0 && m.Closed {
		return c.fail(fmt.Errorf("%w: %s ends inside an event at %d", logger.ErrCorrupted, m.Name(), c.pos), flushNone)
	}
	if m.Closed {
		c.file++
		c.startPos = uint64(len(binlog.Magic))
		return c.start()
	}
	// Caught up with the committed log.
	if c.fakeList != nil {
		if err := c.sendFakeList(c.pos); err != nil {
			return c.fail(err, flushNone)
		}
	}
	if c.o.nonBlock {
		c.stage = stageDone
		return streamStep{pkts: c.pkts, flush: flushAll, act: streamAct{kind: actEOF}}
	}
	c.stage = stageWait
	return streamStep{pkts: c.pkts, flush: flushAll, act: streamAct{kind: actWait, file: c.file, pos: c.pos}}
}

// written takes the time the driver finished writing a step's packets:
// heartbeats count from there.
func (c *streamCore) written(now time.Time) { c.lastSend = now }

// heartbeatAt returns when, waiting since now, the next heartbeat is due
// (zero: the dump has none).
func (c *streamCore) heartbeatAt(now time.Time) time.Time {
	if c.o.heartbeat <= 0 {
		return time.Time{}
	}
	at := c.lastSend.Add(c.o.heartbeat)
	if soonest := now.Add(time.Millisecond); at.Before(soonest) {
		at = soonest
	}
	return at
}

// changed takes Log.Changed's notice while waiting: read again.
func (c *streamCore) changed() streamStep {
	c.begin()
	return streamStep{act: c.plan()}
}

// tick takes the heartbeat timer's firing while waiting: a heartbeat
// naming the current file and position, then a read (the log may have
// grown meanwhile).
func (c *streamCore) tick() streamStep {
	c.begin()
	if c.stage != stageWait {
		return streamStep{act: c.plan()}
	}
	name := logger.FileName(c.file)
	var ev []byte
	if c.o.hbV2 {
		ev = binlog.HeartbeatV2Event(c.o.serverID, name, c.pos, c.alg)
	} else {
		ev = binlog.HeartbeatEvent(c.o.serverID, uint32(c.pos), name, c.alg)
	}
	c.pkts = append(c.pkts, streamPacket{prefix: c.prefix(false), ev: ev, heartbeat: true, file: c.file, pos: c.pos})
	return streamStep{pkts: c.pkts, flush: flushAll, act: c.plan()}
}

var okByte = []byte{0}

// prefix returns what precedes an event in its packet: the OK byte, and
// for a semi-sync client the header (asking for an ACK if ask).
func (c *streamCore) prefix(ask bool) []byte {
	switch {
	case !c.o.semi:
		return okByte
	case ask:
		return semiAsk
	}
	return semiPlain
}

// send queues one event ending at file position pos.
func (c *streamCore) send(ev []byte, pos uint64, ask, shared bool) {
	c.pkts = append(c.pkts, streamPacket{prefix: c.prefix(ask), ev: ev, shared: shared, ask: ask, file: c.file, pos: pos})
}

// events sends the whole events at the start of b, which starts at file
// position c.pos; it returns the incomplete tail and the bytes consumed.
func (c *streamCore) events(b []byte) ([]byte, int, error) {
	n := 0
	for len(b)-n >= binlog.HeaderLen {
		size := int(binary.LittleEndian.Uint32(b[n+9:]))
		if size < binlog.HeaderLen {
			return nil, 0, fmt.Errorf("%w: event of size %d at %s:%d", logger.ErrCorrupted, size, logger.FileName(c.file), c.pos+uint64(n))
		}
		if len(b)-n < size {
			break
		}
		if err := c.event(b[n:n+size], c.pos+uint64(n)); err != nil {
			return nil, 0, err
		}
		n += size
	}
	return b[n:], n, nil
}

// event sends or leaves out one event of the log at position at.
func (c *streamCore) event(ev []byte, at uint64) error {
	switch ev[4] {
	case binlog.TypeGTID, binlog.TypeGTIDTagged, binlog.TypeMariaDBGTID:
		c.skipping = false
		if c.skip != nil {
			g, ok, err := c.o.flavor.GTIDOfEvent(ev, c.alg)
			if err != nil {
				return fmt.Errorf("%w: GTID event at %s:%d: %v", logger.ErrCorrupted, logger.FileName(c.file), at, err)
			}
			c.skipping = ok && c.skip.skip(g)
		}
		if c.skipping {
			return nil
		}
		if c.fakeList != nil {
			if err := c.sendFakeList(at); err != nil {
				return err
			}
		}
	case binlog.TypeRotate, binlog.TypeFDE, binlog.TypeMariaDBGTIDList, binlog.TypePreviousGTIDs, binlog.TypeCheckpoint:
		c.skipping = false
	case binlog.TypeAnnotateRows:
		if !c.o.annotate {
			return nil
		}
	}
	if c.skipping {
		return nil
	}
	ask := c.o.semi && c.tx.end(ev, c.alg)
	c.send(ev, at+uint64(len(ev)), ask, false)
	return nil
}

// sendFakeList sends MariaDB's artificial GTID_LIST: where the client's
// state ends, at the position of the next event.
func (c *streamCore) sendFakeList(at uint64) error {
	ev, err := binlog.GTIDListEvent(c.fakeList, 0, c.o.serverID, uint32(at), binlog.FlagArtificial, c.alg)
	c.fakeList = nil
	if err != nil {
		return err
	}
	c.send(ev, at, false, false)
	return nil
}
