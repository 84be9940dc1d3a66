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

// streamer sends the log from a start point to one client: the driver of
// streamCore (streamcore.go), which decides what is sent. It runs on the
// session's goroutine; the only concurrency is Log's and the stats'
// atomics.
//
// The driver's duties, for each step the core returns:
//
//  1. Write its packets in order (writeShared for those marked shared),
//     then the flush it names, even after a write error.
//  2. Release the chunk the step read (if any) only then, and exactly
//     once: the chunk never outlives the step that read it.
//  3. Stop on the step's error, or on a write error (ErrClientGone);
//     otherwise do the action: read the log, or wait for Log.Changed
//     (taken before the read that found nothing, so no change is missed)
//     and the heartbeat time, and feed the answer back with the time.
//  4. Keep ClientStatus: events sent, ACKs asked, heartbeats, caught up.
type streamer struct {
	lg    Log
	sp    startPoint
	o     streamOpts
	pw    *packetWriter
	stats *clientStats
	cache *chunkCache // shared by the server's dumps; nil: none
}

// run streams until ctx ends, the client goes, or (non-blocking) the end.
func (s *streamer) run(ctx context.Context) error {
	c := newStreamCore(s.sp, s.o)
	// rbuf is this dump's own buffer for reads the shared cache does not
	// serve.
	var rbuf []byte
	// held is the chunk the step being written read, if any.
	var held *chunk
	var changed <-chan struct{}
	var hb *time.Timer
	defer func() {
		if hb != nil {
			hb.Stop()
		}
	}()
	st := c.start()
	for {
		err := s.write(c, st)
		// NB: the step's packets are written and flushed (even after an
		// error), so nothing refers to its chunk any more.
		s.cache.release(held)
		held = nil
		if err != nil {
			return err
		}
		if st.err != nil {
			return st.err
		}
		act := st.act
		switch act.kind {
		case actFile:
			s.pw.arm()
			m, err := s.lg.File(act.file)
			st = c.fileMeta(m, err)
		case actReadAt:
			b, _, err := s.lg.ReadAt(act.file, act.pos, act.max)
			st = c.readAt(b, err)
		case actReadHuge:
			s.pw.arm()
			m, err := s.lg.File(act.file)
			if err != nil {
				st = c.readHuge(nil, err)
				break
			}
			dst, n := c.room(m.Size)
			data, _, err := s.lg.ReadAtInto(dst, act.file, act.pos, n)
			st = c.readHuge(data, err)
		case actRead:
			s.pw.arm()
			changed = s.lg.Changed()
			data, ch, meta, err := s.cache.readAt(s.lg, act.file, act.pos, act.max, rbuf)
			if ch == nil && cap(data) > cap(rbuf) {
				rbuf = data[:0]
			}
			held = ch
			st = c.read(data, meta, ch != nil, err)
		case actEOF:
			s.stats.caughtUp(true)
			return errEOFSent
		case actWait:
			s.stats.caughtUp(true)
			var hbC <-chan time.Time
			if at := c.heartbeatAt(time.Now()); !at.IsZero() {
				d := time.Until(at)
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
				st = c.changed()
			case <-hbC:
				s.pw.arm()
				st = c.tick()
			}
			if hb != nil && !hb.Stop() {
				select {
				case <-hb.C:
				default:
				}
			}
		default:
			return fmt.Errorf("dump: stream core: unknown action %v", act.kind)
		}
	}
}

// write writes a step's packets, then flushes as it says (even after a
// write error, so that the writer holds no slice of a chunk).
func (s *streamer) write(c *streamCore, st streamStep) error {
	var err error
	for _, p := range st.pkts {
		write := s.pw.write
		if p.shared {
			write = s.pw.writeShared
		}
		if werr := write(p.prefix, p.ev); werr != nil {
			err = fmt.Errorf("%w: %v", ErrClientGone, werr)
			break
		}
		if p.heartbeat {
			s.stats.heartbeat()
			continue
		}
		if p.ask {
			// NB: the client answers with a packet of sequence 0, and then
			// expects 1 (MySQL's and MariaDB's sources do the same).
			s.pw.seq = 1
			s.stats.askedAck(p.file, p.pos)
		}
		s.stats.sent(p.file, p.pos, p.ev)
		if s.o.semi {
			s.stats.bytes.Add(2) // the semi-sync header
		}
	}
	if err == nil && len(st.pkts) > 0 {
		c.written(time.Now())
	}
	var ferr error
	switch st.flush {
	case flushShared:
		ferr = s.pw.flushShared()
	case flushAll:
		ferr = s.pw.flush()
	}
	if ferr != nil && err == nil {
		err = fmt.Errorf("%w: %v", ErrClientGone, ferr)
	}
	return err
}

// readError turns a log read error into what the client is told.
func readError(err error) error {
	if errors.Is(err, logger.ErrPurged) || errors.Is(err, logger.ErrNoFile) {
		return startError("binlogsvr: the binlog file being read is gone from this member: %v", err)
	}
	return err
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
