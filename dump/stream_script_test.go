package dump

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
)

// TestStreamScripts drives the dump stream's pure core (streamCore)
// through testdata/stream/ with a fake log, a fake writer and a fake
// clock: the script's driver does what streamer.run does, and prints what
// the client would receive. Regenerate the expected output with -rewrite
// and read the diff.
//
//	log [flavor=mariadb|mysql] [checksum=crc32|none]   a new log: binlog.000001 open, with FDE and header event
//	txn gtid=G [size=N]              a transaction appended to the open file
//	rotate                           the open file closed by a real ROTATE; the next one opened
//	truncated bytes=N [size=N]       the open file closed inside a transaction of size bytes, after N bytes
//	annotate                         an ANNOTATE_ROWS event appended (MariaDB)
//	bad-fde file=N                   file N starts with another event than an FDE
//	purge file=N                     file N purged
//	dump [file=N] [pos=P|header-end] [skip=G,...] [fake-list=SET] [gtid] [semi] [nonblock]
//	     [heartbeat=DUR] [hbv2] [crc] [read=N] [chunks]
//	                                 a dump starts and runs until it waits or ends; chunks: reads
//	                                 come as shared chunks, scribbled over once released
//	writer [delay=DUR] [fail=K]      from now on the writer takes DUR a packet, or fails on the K-th packet
//	notify                           Log.Changed fires: the dump runs until it waits or ends
//	sleep DUR                        the clock moves on; heartbeats fall due meanwhile
//
// Each packet prints as: TYPE size=N end=FILE:POS, then what matters of
// it (artificial flag, next file of a ROTATE, the FDE's created and
// log_pos, a GTID, a valid CRC32, the semi-sync header). A packet whose
// bytes differ from the log's at its position (other than those the
// fleet makes) prints "NOT THE LOG'S BYTES".
func TestStreamScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/stream", func(t *testing.T, path string) {
		var lg *scriptLog
		var r *scriptRun
		var delay time.Duration // the writer's, per packet
		var failAt int
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(key, def string) string {
				if a, ok := d.Arg(key); ok {
					return strings.Join(a.Vals, ",")
				}
				return def
			}
			num := func(key string, def int) int {
				n, err := strconv.Atoi(arg(key, strconv.Itoa(def)))
				if err != nil {
					t.Fatalf("%s: %s: %v", d.Pos, key, err)
				}
				return n
			}
			dur := func(key, def string) time.Duration {
				v, err := time.ParseDuration(arg(key, def))
				if err != nil {
					t.Fatalf("%s: %s: %v", d.Pos, key, err)
				}
				return v
			}
			if d.Cmd != "log" && lg == nil {
				t.Fatalf("%s: no log yet", d.Pos)
			}
			switch d.Cmd {
			case "log":
				f, err := binlog.FlavorByName(arg("flavor", "mariadb"))
				if err != nil {
					t.Fatal(err)
				}
				alg := binlog.ChecksumNone
				if arg("checksum", "none") == "crc32" {
					alg = binlog.ChecksumCRC32
				}
				lg, r, delay, failAt = &scriptLog{flav: f, alg: alg, purged: map[uint32]bool{}}, nil, 0, 0
				lg.open()
				return ""
			case "txn":
				lg.txn(arg("gtid", ""), num("size", 300))
				return ""
			case "rotate":
				lg.rotate()
				return ""
			case "truncated":
				lg.truncated(num("bytes", 10), num("size", 300))
				return ""
			case "annotate":
				i := lg.last()
				ev := binlog.NewEvent(binlog.TypeAnnotateRows, binlogtest.Timestamp, 1, 0, 0, []byte("INSERT INTO t VALUES (1)"), lg.alg)
				lg.files[i] = append(lg.files[i], lg.relocate(ev, uint32(len(lg.files[i])))...)
				return ""
			case "bad-fde":
				lg.files[num("file", 1)-1][len(binlog.Magic)+4] = binlog.TypeQuery
				return ""
			case "purge":
				lg.purged[uint32(num("file", 1))] = true
				return ""
			case "dump":
				sp := startPoint{File: uint32(num("file", 1)), Pos: 4}
				switch p := arg("pos", "4"); p {
				case "header-end":
					sp.Pos = lg.headerEnd[sp.File-1]
				default:
					sp.Pos = uint64(num("pos", 4))
				}
				if s := arg("skip", ""); s != "" {
					sp.Skip = scriptSkip(strings.Split(s, ","))
				}
				if s := arg("fake-list", ""); s != "" {
					set, err := lg.flav.ParseSet(s)
					if err != nil {
						t.Fatal(err)
					}
					sp.FakeList = set
				}
				o := streamOpts{
					flavor: lg.flav, serverID: 77, clientCRC: d.HasArg("crc"), heartbeat: dur("heartbeat", "0s"),
					hbV2: d.HasArg("hbv2"), nonBlock: d.HasArg("nonblock"), gtid: d.HasArg("gtid"),
					readSize: num("read", 4096), semi: d.HasArg("semi"), annotate: d.HasArg("annotate"),
				}
				r = &scriptRun{lg: lg, core: newStreamCore(sp, o), chunks: d.HasArg("chunks"), t0: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC),
					writeDelay: delay, failAt: failAt}
				r.run(r.core.start())
				return r.out()
			}
			if d.Cmd == "writer" {
				delay, failAt = dur("delay", "0s"), num("fail", 0)
				if r != nil {
					r.writeDelay, r.failAt, r.writes = delay, failAt, 0
				}
				return ""
			}
			if r == nil {
				t.Fatalf("%s: no dump yet", d.Pos)
			}
			switch d.Cmd {
			case "notify":
				if r.state != "waiting" {
					return "not waiting\n"
				}
				r.printf("+%v: the log changed", r.now)
				r.run(r.core.changed())
				return r.out()
			case "sleep":
				if len(d.CmdArgs) != 1 {
					t.Fatalf("%s: sleep DURATION", d.Pos)
				}
				v, err := time.ParseDuration(d.CmdArgs[0].Key)
				if err != nil {
					t.Fatal(err)
				}
				until := r.now + v
				for r.state == "waiting" {
					at := r.core.heartbeatAt(r.t0.Add(r.now))
					if at.IsZero() || at.Sub(r.t0) > until {
						break
					}
					r.now = at.Sub(r.t0)
					r.printf("+%v: heartbeat due", r.now)
					r.run(r.core.tick())
				}
				r.now = max(r.now, until) // NB: a slow heartbeat write may have gone past it
				return r.out()
			}
			t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			return ""
		})
	})
}

// scriptSkip leaves out the listed GTIDs' groups.
type scriptSkip []string

func (s scriptSkip) skip(g string) bool {
	for _, x := range s {
		if x == g {
			return true
		}
	}
	return false
}

// scriptLog is a log of whole files in memory.
type scriptLog struct {
	flav      binlog.Flavor
	alg       binlog.ChecksumAlg
	files     [][]byte
	closed    []bool
	headerEnd []uint64
	purged    map[uint32]bool
}

const scriptCreated = 1765000000

// open starts the next file: magic, FDE (created set, as in a source's
// first file), header event.
func (l *scriptLog) open() {
	fde := binlogtest.FDE(l.flav, 1)
	binary.LittleEndian.PutUint32(fde[offFDECreated:], scriptCreated)
	fde[len(fde)-binlog.ChecksumLen-1] = byte(l.alg)
	n := len(fde) - binlog.ChecksumLen
	binary.LittleEndian.PutUint32(fde[n:], crc32.ChecksumIEEE(fde[:n]))
	f := append([]byte(binlog.Magic), fde...)
	hdr, err := l.flav.FileHeaderEvent(l.flav.EmptySet(), binlogtest.Timestamp, 1, uint32(len(f)), l.alg)
	if err != nil {
		panic(err)
	}
	hdr = l.relocate(hdr, uint32(len(f)))
	f = append(f, hdr...)
	l.files = append(l.files, f)
	l.closed = append(l.closed, false)
	l.headerEnd = append(l.headerEnd, uint64(len(f)))
}

// relocate sets log_pos (start plus the event's length) and the CRC32.
func (l *scriptLog) relocate(ev []byte, start uint32) []byte {
	binary.LittleEndian.PutUint32(ev[13:], start+uint32(len(ev)))
	if l.alg == binlog.ChecksumCRC32 {
		n := len(ev) - binlog.ChecksumLen
		binary.LittleEndian.PutUint32(ev[n:], crc32.ChecksumIEEE(ev[:n]))
	}
	return ev
}

func (l *scriptLog) last() int { return len(l.files) - 1 }

func (l *scriptLog) txn(gtid string, size int) {
	i := l.last()
	l.files[i] = append(l.files[i], l.txnBytes(gtid, size, uint32(len(l.files[i])))...)
}

// txnBytes returns a transaction of the log's checksum, starting at start.
func (l *scriptLog) txnBytes(gtid string, size int, start uint32) []byte {
	raw, _ := binlogtest.Txn(l.flav, gtid, 1, start, size)
	evs, err := binlog.SplitEvents(raw)
	if err != nil {
		panic(err)
	}
	var out []byte
	for _, ev := range evs {
		e := append([]byte(nil), ev...) // NB: binlogtest's events carry a CRC32
		if l.alg == binlog.ChecksumNone {
			e = e[:len(e)-binlog.ChecksumLen]
			binary.LittleEndian.PutUint32(e[9:], uint32(len(e)))
		}
		out = append(out, l.relocate(e, start+uint32(len(out)))...)
	}
	return out
}

func (l *scriptLog) rotate() {
	i := l.last()
	ev := binlog.RotateEvent(binlogtest.Timestamp, 1, 0, 0, logger.FileName(uint32(i+2)), 4, l.alg)
	l.files[i] = append(l.files[i], l.relocate(ev, uint32(len(l.files[i])))...)
	l.closed[i] = true
	l.open()
}

func (l *scriptLog) truncated(n, size int) {
	i := l.last()
	g := map[string]string{"mariadb": "0-1-999", "mysql": "3e11fa47-71ca-11e1-9e33-c80aa9429562:999"}[l.flav.Name()]
	l.files[i] = append(l.files[i], l.txnBytes(g, size, uint32(len(l.files[i])))[:n]...)
	l.closed[i] = true
}

func (l *scriptLog) meta(n uint32) (logger.FileMeta, error) {
	if l.purged[n] {
		return logger.FileMeta{}, fmt.Errorf("%w: %s", logger.ErrPurged, logger.FileName(n))
	}
	if n == 0 || int(n) > len(l.files) {
		return logger.FileMeta{}, fmt.Errorf("%w: %s", logger.ErrNoFile, logger.FileName(n))
	}
	return logger.FileMeta{Number: n, Size: uint64(len(l.files[n-1])), Closed: l.closed[n-1], ChecksumAlg: byte(l.alg)}, nil
}

func (l *scriptLog) readAt(n uint32, pos uint64, max int) ([]byte, logger.FileMeta, error) {
	m, err := l.meta(n)
	if err != nil {
		return nil, m, err
	}
	f := l.files[n-1]
	if pos >= uint64(len(f)) {
		return nil, m, nil
	}
	return f[pos:min(uint64(len(f)), pos+uint64(max))], m, nil
}

// scriptRun is streamer.run's work with a fake writer and clock.
type scriptRun struct {
	lg         *scriptLog
	core       *streamCore
	chunks     bool
	t0         time.Time
	now        time.Duration
	writeDelay time.Duration
	failAt     int // fail the write of this packet (counted from the writer command)
	writes     int
	state      string // running, waiting, ended
	rbuf       []byte
	sb         strings.Builder
	onWrite    func(streamPacket) // if set, called for each packet written
}

func (r *scriptRun) printf(format string, args ...any) {
	fmt.Fprintf(&r.sb, format+"\n", args...)
}

func (r *scriptRun) out() string {
	s := r.sb.String()
	r.sb.Reset()
	return s
}

// run does what streamer.run does until the core waits or the dump ends.
func (r *scriptRun) run(st streamStep) {
	r.state = "running"
	for {
		if !r.write(st) {
			r.printf("the dump ends")
			r.state = "ended"
			return
		}
		if st.err != nil {
			r.printf("error: %v", st.err)
			r.state = "ended"
			return
		}
		act := st.act
		switch act.kind {
		case actFile:
			st = r.core.fileMeta(r.lg.meta(act.file))
		case actReadAt:
			b, _, err := r.lg.readAt(act.file, act.pos, act.max)
			st = r.core.readAt(append([]byte(nil), b...), err)
		case actReadHuge:
			m, err := r.lg.meta(act.file)
			if err != nil {
				st = r.core.readHuge(nil, err)
				break
			}
			dst, n := r.core.room(m.Size)
			b, _, err := r.lg.readAt(act.file, act.pos, n)
			r.printf("read-huge %s:%d max=%d: %d bytes", logger.FileName(act.file), act.pos, n, len(b))
			st = r.core.readHuge(append(dst, b...), err)
		case actRead:
			b, m, err := r.lg.readAt(act.file, act.pos, act.max)
			var chunk []byte
			if r.chunks && len(b) > 0 {
				chunk = append([]byte(nil), b...)
				b = chunk
				r.printf("read %s:%d max=%d: %d bytes, shared chunk", logger.FileName(act.file), act.pos, act.max, len(b))
			} else {
				r.rbuf = append(r.rbuf[:0], b...)
				b = r.rbuf
				switch {
				case err != nil:
					r.printf("read %s:%d max=%d: %v", logger.FileName(act.file), act.pos, act.max, err)
				case len(b) > 0:
					r.printf("read %s:%d max=%d: %d bytes", logger.FileName(act.file), act.pos, act.max, len(b))
				default:
					r.printf("read %s:%d max=%d: nothing, file closed %v", logger.FileName(act.file), act.pos, act.max, m.Closed)
				}
			}
			st = r.core.read(b, m, chunk != nil, err)
			ok := r.write(st)
			if chunk != nil {
				// The chunk is released: its memory becomes another's.
				for i := range chunk {
					chunk[i] = 0xEE
				}
				r.printf("release chunk")
			}
			if !ok {
				r.printf("the dump ends")
				r.state = "ended"
				return
			}
			st.pkts, st.flush = nil, flushNone
		case actEOF:
			r.printf("EOF: the end of the log (non-blocking)")
			r.state = "ended"
			return
		case actWait:
			msg := fmt.Sprintf("+%v: wait at ", r.now) + logger.FileName(act.file) + ":" + strconv.FormatUint(act.pos, 10)
			if at := r.core.heartbeatAt(r.t0.Add(r.now)); !at.IsZero() {
				msg += fmt.Sprintf(", heartbeat due at +%v", at.Sub(r.t0))
			}
			r.printf("%s", msg)
			r.state = "waiting"
			return
		default:
			r.printf("unknown action %v", act.kind)
			r.state = "ended"
			return
		}
	}
}

// write writes a step's packets as streamer.write does; false: the
// client is gone.
func (r *scriptRun) write(st streamStep) bool {
	ok := true
	for _, p := range st.pkts {
		r.writes++
		if r.failAt > 0 && r.writes == r.failAt {
			r.printf("write fails: the client is gone")
			ok = false
			break
		}
		r.now += r.writeDelay
		r.printf("%s", r.describe(p))
		if r.onWrite != nil {
			r.onWrite(p)
		}
	}
	if ok && len(st.pkts) > 0 {
		r.core.written(r.t0.Add(r.now))
	}
	switch st.flush {
	case flushShared:
		r.printf("flush shared")
	case flushAll:
		r.printf("flush")
	}
	return ok
}

var scriptTypes = map[byte]string{
	binlog.TypeQuery: "QUERY", binlog.TypeRotate: "ROTATE", binlog.TypeFDE: "FDE", binlog.TypeXID: "XID",
	binlog.TypeHeartbeat: "HEARTBEAT", binlog.TypeHeartbeatV2: "HEARTBEAT_V2", binlog.TypeGTID: "GTID",
	binlog.TypePreviousGTIDs: "PREVIOUS_GTIDS", binlog.TypeMariaDBGTID: "GTID", binlog.TypeMariaDBGTIDList: "GTID_LIST",
	binlog.TypeTableMap: "TABLE_MAP", binlog.TypeAnnotateRows: "ANNOTATE_ROWS",
}

func (r *scriptRun) describe(p streamPacket) string {
	ev := p.ev
	h, err := binlog.ParseHeader(ev)
	if err != nil {
		return "bad event: " + err.Error()
	}
	typ := scriptTypes[h.Type]
	if typ == "" {
		typ = fmt.Sprintf("type-%d", h.Type)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s size=%d end=%s:%d", typ, len(ev), logger.FileName(p.file), p.pos)
	if h.Flags&binlog.FlagArtificial != 0 {
		sb.WriteString(" artificial")
	}
	alg := r.lg.alg
	switch h.Type {
	case binlog.TypeRotate:
		body := ev[binlog.HeaderLen:]
		if crcValid(ev) {
			body = body[:len(body)-binlog.ChecksumLen]
		}
		fmt.Fprintf(&sb, " next=%s:%d", body[8:], binary.LittleEndian.Uint64(body))
	case binlog.TypeFDE:
		fmt.Fprintf(&sb, " created=%d log_pos=%d", binary.LittleEndian.Uint32(ev[offFDECreated:]), h.LogPos)
	case binlog.TypeGTID, binlog.TypeMariaDBGTID:
		if g, ok, err := r.lg.flav.GTIDOfEvent(ev, alg); err == nil && ok {
			sb.WriteString(" gtid=" + g)
		}
	case binlog.TypeMariaDBGTIDList, binlog.TypePreviousGTIDs:
		if set, err := r.lg.flav.FileHeaderSet(ev, alg); err == nil {
			fmt.Fprintf(&sb, " set=%q", set.String())
		}
	case binlog.TypeHeartbeat, binlog.TypeHeartbeatV2:
	default:
		if bytes.Equal(ev, r.logBytes(p)) {
			break
		}
		sb.WriteString(" NOT THE LOG'S BYTES")
	}
	if crcValid(ev) {
		sb.WriteString(" crc")
	}
	switch {
	case p.ask:
		sb.WriteString(" semi=ask")
	case len(p.prefix) > 1:
		sb.WriteString(" semi")
	}
	if p.shared {
		sb.WriteString(" shared")
	}
	return sb.String()
}

// logBytes returns the log's bytes where the packet's event lies.
func (r *scriptRun) logBytes(p streamPacket) []byte {
	f := r.lg.files[p.file-1]
	if p.pos > uint64(len(f)) || uint64(len(p.ev)) > p.pos {
		return nil
	}
	return f[p.pos-uint64(len(p.ev)) : p.pos]
}

func crcValid(ev []byte) bool {
	n := len(ev) - binlog.ChecksumLen
	return n > binlog.HeaderLen && crc32.ChecksumIEEE(ev[:n]) == binary.LittleEndian.Uint32(ev[n:])
}

// TestStreamCoreReadSizes checks, for many read sizes, that a dump from
// position 4 sends every byte of every file after its FDE, event by event
// and unchanged, whether the reads come as shared chunks (scribbled over
// once released) or in the driver's buffer.
func TestStreamCoreReadSizes(t *testing.T) {
	for _, flav := range []binlog.Flavor{binlog.MariaDB(), binlog.MySQL()} {
		lg := &scriptLog{flav: flav, alg: binlog.ChecksumCRC32, purged: map[uint32]bool{}}
		lg.open()
		gtid := func(i int) string {
			if flav.Name() == "mariadb" {
				return fmt.Sprintf("0-1-%d", i)
			}
			return fmt.Sprintf("3e11fa47-71ca-11e1-9e33-c80aa9429562:%d", i)
		}
		for i, size := range []int{300, 5000, 400, 1 << 16, 350, 2000, 300} {
			lg.txn(gtid(i+1), size)
			if i == 3 {
				lg.rotate()
			}
		}
		for _, readSize := range []int{19, 20, 37, 100, 333, 1000, 4096, 1 << 20} {
			for _, chunks := range []bool{false, true} {
				name := fmt.Sprintf("%s/read=%d/chunks=%v", flav.Name(), readSize, chunks)
				got := map[uint32][]byte{}
				r := &scriptRun{lg: lg, chunks: chunks, t0: time.Unix(0, 0)}
				r.core = newStreamCore(startPoint{File: 1, Pos: 4}, streamOpts{flavor: flav, serverID: 77, nonBlock: true, readSize: readSize})
				r.onWrite = func(p streamPacket) {
					if p.ev[4] != binlog.TypeFDE && binary.LittleEndian.Uint16(p.ev[17:])&binlog.FlagArtificial == 0 {
						got[p.file] = append(got[p.file], p.ev...)
					}
				}
				r.run(r.core.start())
				if out := r.out(); r.state != "ended" || !strings.Contains(out, "EOF") || strings.Contains(out, "NOT THE LOG") {
					t.Fatalf("%s: %s", name, out)
				}
				for i, f := range lg.files {
					fdeEnd := len(binlog.Magic) + int(binary.LittleEndian.Uint32(f[len(binlog.Magic)+9:]))
					if !bytes.Equal(got[uint32(i+1)], f[fdeEnd:]) {
						t.Errorf("%s: file %d: sent %d bytes, want the %d after the FDE", name, i+1, len(got[uint32(i+1)]), len(f)-fdeEnd)
					}
				}
			}
		}
	}
}
