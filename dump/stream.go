package dump

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// FDE body offsets (binlog v4).
const (
	offLogPos     = 13
	offFDECreated = binlog.HeaderLen + 2 + 50
)

// streamOpts are the per-dump choices made from the request and the
// session's variables.
type streamOpts struct {
	flavor   binlog.Flavor
	serverID uint32 // the fleet's, in synthesized events
	// clientCRC: the client declared itself checksum-aware with CRC32
	// (@master_binlog_checksum); only the first fake ROTATE depends on it.
	clientCRC bool
	heartbeat time.Duration // 0: none
	hbV2      bool          // MySQL HEARTBEAT_LOG_EVENT_V2
	annotate  bool          // MariaDB: send ANNOTATE_ROWS events
	nonBlock  bool
	gtid      bool // a GTID dump (FDE created=0)
	readSize  int
	// semi: the client asked for semi-sync: every event packet carries the
	// semi-sync header, and the last event of each transaction asks for
	// the client's ACK.
	semi bool
}

// errEOFSent ends a non-blocking dump that reached the end of the log.
var errEOFSent = errors.New("dump: end of log sent")

// streamer sends the log from a start point to one client. It runs on the
// session's goroutine; the only concurrency is Log's and the stats' atomics.
type streamer struct {
	lg    Log
	sp    startPoint
	o     streamOpts
	pw    *packetWriter
	stats *clientStats
	cache *chunkCache // shared by the server's dumps; nil: none

	file     uint32
	alg      binlog.ChecksumAlg
	lastSend time.Time
	skipping bool // the current group is left out
	fakeList binlog.Set
	// shared: the events being sent are slices of the shared chunk cache,
	// which never change, so the packet writer may send them uncopied.
	shared bool
	tx     txEnds // semi-sync: where transactions end
}

var okByte = []byte{0}

// prefix returns what precedes an event in its packet: the OK byte, and
// for a semi-sync client the header (asking for an ACK if ask).
func (s *streamer) prefix(ask bool) []byte {
	switch {
	case !s.o.semi:
		return okByte
	case ask:
		return semiAsk
	}
	return semiPlain
}

// send writes one event of the log, or one the fleet made (never the end
// of a transaction), as a packet.
func (s *streamer) send(ev []byte, pos uint64) error { return s.sendEvent(ev, pos, false) }

// sendEvent writes one event as a packet; ask requests a semi-sync ACK.
func (s *streamer) sendEvent(ev []byte, pos uint64, ask bool) error {
	write := s.pw.write
	if s.shared {
		write = s.pw.writeShared
	}
	if err := write(s.prefix(ask), ev); err != nil {
		return fmt.Errorf("%w: %v", ErrClientGone, err)
	}
	if ask {
		// NB: the client answers with a packet of sequence 0, and then
		// expects 1 (MySQL's and MariaDB's sources do the same).
		s.pw.seq = 1
		s.stats.askedAck(s.file, pos)
	}
	s.lastSend = time.Now()
	s.stats.sent(s.file, pos, ev)
	if s.o.semi {
		s.stats.bytes.Add(2) // the semi-sync header
	}
	return nil
}

// run streams until ctx ends, the client goes, or (non-blocking) the end.
func (s *streamer) run(ctx context.Context) error {
	s.file, s.fakeList = s.sp.File, s.sp.FakeList
	pos, err := s.openFile(s.sp.Pos, true)
	if err != nil {
		return err
	}
	// buf holds the head of an event that the last read cut: the next
	// reads fetch only the rest of that event. rbuf is this dump's own
	// buffer for reads the shared cache does not serve.
	var buf, rbuf []byte
	var hb *time.Timer
	defer func() {
		if hb != nil {
			hb.Stop()
		}
	}()
	for {
		s.pw.arm()
		changed := s.lg.Changed()
		want := s.o.readSize
		if len(buf) > 0 {
			need := binlog.HeaderLen - len(buf)
			if need <= 0 {
				need = int(binary.LittleEndian.Uint32(buf[9:])) - len(buf)
			}
			if need > want {
				// NB: the rest of a huge event is read at once, into buf:
				// Pebble holds it in one value (one block), which every
				// read of a piece would decompress again.
				m, err := s.lg.File(s.file)
				if err != nil {
					return readError(err)
				}
				// NB: no more room than the file holds (a corrupt size must
				// not allocate gigabytes).
				grow := need
				if at := pos + uint64(len(buf)); at >= m.Size {
					grow = 0
				} else if left := m.Size - at; uint64(grow) > left {
					grow = int(left)
				}
				if cap(buf)-len(buf) < grow {
					buf = append(make([]byte, 0, len(buf)+grow), buf...)
				}
				data, _, err := s.lg.ReadAtInto(buf[len(buf):], s.file, pos+uint64(len(buf)), grow)
				if err != nil {
					return readError(err)
				}
				if len(data) > 0 {
					buf = buf[:len(buf)+len(data)] // NB: data was read into buf's tail
					if len(data) < need {
						continue
					}
					rest, n, err := s.events(buf, pos)
					if err != nil {
						return err
					}
					pos += uint64(n)
					buf = append(buf[:0:0], rest...) // NB: not keeping the huge buffer
					continue
				}
			} else if need > 0 {
				want = need
			}
		}
		data, ch, meta, err := s.cache.readAt(s.lg, s.file, pos+uint64(len(buf)), want, rbuf)
		if err != nil {
			return readError(err)
		}
		if ch == nil && cap(data) > cap(rbuf) {
			rbuf = data[:0]
		}
		if len(data) == 0 {
			s.cache.release(ch)
		} else {
			work := data
			if len(buf) > 0 {
				// NB: copy only the rest of the cut event (not the whole
				// read, which was most of the CPU time in memmove and
				// 300 KiB per client); the events after it are sent
				// straight from the read.
				buf = append(buf, data...)
				s.cache.release(ch)
				ch = nil
				if len(buf) < binlog.HeaderLen {
					continue
				}
				if size := int(binary.LittleEndian.Uint32(buf[9:])); size >= binlog.HeaderLen && len(buf) < size {
					continue
				}
				work = buf
			}
			// NB: the events of a shared chunk are sent uncopied (so are
			// events synthesized meanwhile, fresh allocations); the
			// packet writer holds them until it flushes, which it does
			// before the chunk is released.
			s.shared = ch != nil
			rest, n, err := s.events(work, pos)
			s.shared = false
			if err == nil {
				pos += uint64(n)
				if len(buf) > 0 && cap(buf) > 4*s.o.readSize {
					buf = nil // after a huge event, do not keep its memory
				}
				// NB: a rest that lies in buf moves down with memmove.
				buf = append(buf[:0], rest...)
			}
			if ch != nil {
				// NB: even after an error, so that nothing written later
				// (an error packet) sends bytes of a released chunk.
				if ferr := s.pw.flushShared(); ferr != nil && err == nil {
					err = fmt.Errorf("%w: %v", ErrClientGone, ferr)
				}
			}
			s.cache.release(ch)
			if err != nil {
				return err
			}
			continue
		}
		if len(buf) > 0 && meta.Closed {
			return fmt.Errorf("%w: %s ends inside an event at %d", logger.ErrCorrupted, meta.Name(), pos)
		}
		if meta.Closed {
			s.file++
			if pos, err = s.openFile(uint64(len(binlog.Magic)), false); err != nil {
				return err
			}
			continue
		}
		// Caught up with the committed log.
		if s.fakeList != nil {
			if err := s.sendFakeList(pos); err != nil {
				return err
			}
		}
		s.stats.caughtUp(true)
		if err := s.pw.flush(); err != nil {
			return fmt.Errorf("%w: %v", ErrClientGone, err)
		}
		if s.o.nonBlock {
			return errEOFSent
		}
		var hbC <-chan time.Time
		if s.o.heartbeat > 0 {
			d := s.o.heartbeat - time.Since(s.lastSend)
			if d < time.Millisecond {
				d = time.Millisecond
			}
			if hb == nil {
				hb = time.NewTimer(d)
			} else {
				hb.Reset(d)
			}
			hbC = hb.C
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-changed:
			s.stats.caughtUp(false)
		case <-hbC:
			s.pw.arm()
			if err := s.heartbeat(pos); err != nil {
				return err
			}
			if err := s.pw.flush(); err != nil {
				return fmt.Errorf("%w: %v", ErrClientGone, err)
			}
		}
		if hb != nil && !hb.Stop() {
			select {
			case <-hb.C:
			default:
			}
		}
	}
}

// readError turns a log read error into what the client is told.
func readError(err error) error {
	if errors.Is(err, logger.ErrPurged) || errors.Is(err, logger.ErrNoFile) {
		return startError("binlogsvr: the binlog file being read is gone from this member: %v", err)
	}
	return err
}

// events sends the whole events at the start of b, which starts at file
// position pos; it returns the incomplete tail and the bytes consumed.
func (s *streamer) events(b []byte, pos uint64) ([]byte, int, error) {
	n := 0
	for len(b)-n >= binlog.HeaderLen {
		size := int(binary.LittleEndian.Uint32(b[n+9:]))
		if size < binlog.HeaderLen {
			return nil, 0, fmt.Errorf("%w: event of size %d at %s:%d", logger.ErrCorrupted, size, logger.FileName(s.file), pos+uint64(n))
		}
		if len(b)-n < size {
			break
		}
		ev := b[n : n+size]
		if err := s.event(ev, pos+uint64(n)); err != nil {
			return nil, 0, err
		}
		n += size
	}
	return b[n:], n, nil
}

// event sends or leaves out one event of the log at position at.
func (s *streamer) event(ev []byte, at uint64) error {
	typ := ev[4]
	switch typ {
	case binlog.TypeGTID, binlog.TypeGTIDTagged, binlog.TypeMariaDBGTID:
		s.skipping = false
		if s.sp.Skip != nil {
			g, ok, err := s.o.flavor.GTIDOfEvent(ev, s.alg)
			if err != nil {
				return fmt.Errorf("%w: GTID event at %s:%d: %v", logger.ErrCorrupted, logger.FileName(s.file), at, err)
			}
			s.skipping = ok && s.sp.Skip.skip(g)
		}
		if s.skipping {
			return nil
		}
		if s.fakeList != nil {
			if err := s.sendFakeList(at); err != nil {
				return err
			}
		}
	case binlog.TypeRotate, binlog.TypeFDE, binlog.TypeMariaDBGTIDList, binlog.TypePreviousGTIDs, binlog.TypeCheckpoint:
		s.skipping = false
	case binlog.TypeAnnotateRows:
		if !s.o.annotate {
			return nil
		}
	}
	if s.skipping {
		return nil
	}
	ask := s.o.semi && s.tx.end(ev, s.alg)
	return s.sendEvent(ev, at+uint64(len(ev)), ask)
}

// sendFakeList sends MariaDB's artificial GTID_LIST: where the client's
// state ends, at the position of the next event.
func (s *streamer) sendFakeList(at uint64) error {
	ev, err := binlog.GTIDListEvent(s.fakeList, 0, s.o.serverID, uint32(at), binlog.FlagArtificial, s.alg)
	s.fakeList = nil
	if err != nil {
		return err
	}
	return s.send(ev, at)
}

// heartbeat sends a HEARTBEAT event naming the current file and position.
func (s *streamer) heartbeat(pos uint64) error {
	name := logger.FileName(s.file)
	var ev []byte
	if s.o.hbV2 {
		ev = binlog.HeartbeatV2Event(s.o.serverID, name, pos, s.alg)
	} else {
		ev = binlog.HeartbeatEvent(s.o.serverID, uint32(pos), name, s.alg)
	}
	if err := s.pw.write(s.prefix(false), ev); err != nil {
		return fmt.Errorf("%w: %v", ErrClientGone, err)
	}
	s.lastSend = time.Now()
	s.stats.heartbeat()
	return nil
}

// openFile sends the fake ROTATE and the FDE that open file s.file and
// returns the position to stream from: pos, or just past the FDE.
func (s *streamer) openFile(pos uint64, first bool) (uint64, error) {
	m, err := s.lg.File(s.file)
	if err != nil {
		return 0, readError(err)
	}
	s.alg = binlog.ChecksumAlg(m.ChecksumAlg)
	rotAlg := s.alg
	if first && !s.o.clientCRC {
		rotAlg = binlog.ChecksumNone
	}
	name := m.Name()
	if err := s.send(binlog.RotateEvent(0, s.o.serverID, 0, binlog.FlagArtificial, name, pos, rotAlg), pos); err != nil {
		return 0, err
	}
	hdr, _, err := s.lg.ReadAt(s.file, uint64(len(binlog.Magic)), binlog.HeaderLen)
	if err != nil {
		return 0, readError(err)
	}
	h, err := binlog.ParseHeader(hdr)
	if err != nil || h.Type != binlog.TypeFDE {
		return 0, fmt.Errorf("%w: %s does not start with a format description event", logger.ErrCorrupted, name)
	}
	fde, _, err := s.lg.ReadAt(s.file, uint64(len(binlog.Magic)), int(h.EventSize))
	if err != nil {
		return 0, readError(err)
	}
	if len(fde) != int(h.EventSize) {
		return 0, fmt.Errorf("%w: %s: truncated format description event", logger.ErrCorrupted, name)
	}
	past := uint64(len(binlog.Magic)) + uint64(len(fde))
	fde = fixFDE(fde, s.alg, !first || s.o.gtid || pos > uint64(len(binlog.Magic)), first && pos > uint64(len(binlog.Magic)))
	if err := s.send(fde, past); err != nil {
		return 0, err
	}
	if pos <= uint64(len(binlog.Magic)) {
		return past, nil
	}
	return pos, nil
}

// fixFDE returns a copy of a file's FDE with created (and log_pos) zeroed
// as a source does when a dump does not start at the file's beginning, and
// its checksum recomputed.
func fixFDE(fde []byte, alg binlog.ChecksumAlg, zeroCreated, zeroLogPos bool) []byte {
	out := append([]byte(nil), fde...)
	if zeroCreated && len(out) >= offFDECreated+4 {
		binary.LittleEndian.PutUint32(out[offFDECreated:], 0)
	}
	if zeroLogPos {
		binary.LittleEndian.PutUint32(out[offLogPos:], 0)
	}
	if alg == binlog.ChecksumCRC32 && len(out) > binlog.HeaderLen+binlog.ChecksumLen {
		n := len(out) - binlog.ChecksumLen
		binary.LittleEndian.PutUint32(out[n:], crc32.ChecksumIEEE(out[:n]))
	}
	return out
}
