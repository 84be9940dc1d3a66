package dump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func dumpPayload(pos uint32, flags uint16, id uint32, name string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, pos)
	b = binary.LittleEndian.AppendUint16(b, flags)
	b = binary.LittleEndian.AppendUint32(b, id)
	return append(b, name...)
}

func TestParseDump(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want Request
		err  bool
	}{
		{"replica", dumpPayload(1821, 2, 2, "binlog.000001"), Request{Pos: 1821, Flags: 2, ServerID: 2, File: "binlog.000001"}, false},
		{"zongji trailing NUL", dumpPayload(4, 0, 2001, "binlog.000002\x00"), Request{Pos: 4, ServerID: 2001, File: "binlog.000002"}, false},
		{"empty name", dumpPayload(4, 3, 0, ""), Request{Pos: 4, Flags: 3}, false},
		{"short", []byte{1, 2, 3}, Request{}, true},
		{"control byte", dumpPayload(4, 0, 0, "bin\x01"), Request{}, true},
		{"slash", dumpPayload(4, 0, 0, "../etc"), Request{}, true},
	} {
		got, err := parseDump(tc.in)
		if (err != nil) != tc.err || (err == nil && !equalReq(got, tc.want)) {
			t.Errorf("%s: got %+v, %v; want %+v, err %v", tc.name, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v is not ErrMalformed", tc.name, err)
		}
	}
}

func equalReq(a, b Request) bool {
	return a.GTID == b.GTID && a.Flags == b.Flags && a.ServerID == b.ServerID && a.File == b.File && a.Pos == b.Pos && bytes.Equal(a.GTIDSet, b.GTIDSet)
}

func TestParseDumpGTID(t *testing.T) {
	mk := func(flags uint16, name string, pos uint64, set []byte, withSet bool) []byte {
		b := binary.LittleEndian.AppendUint16(nil, flags)
		b = binary.LittleEndian.AppendUint32(b, 9)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
		b = append(b, name...)
		b = binary.LittleEndian.AppendUint64(b, pos)
		if withSet {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(set)))
			b = append(b, set...)
		}
		return b
	}
	set := bytes.Repeat([]byte{7}, 8)
	for _, tc := range []struct {
		name string
		in   []byte
		want Request
		err  bool
	}{
		{"mysql replica", mk(6, "", 4, set, true), Request{GTID: true, Flags: 6, ServerID: 9, Pos: 4, GTIDSet: set}, false},
		{"go-mysql flags 0 with set", mk(0, "", 4, set, true), Request{GTID: true, ServerID: 9, Pos: 4, GTIDSet: set}, false},
		{"no set", mk(0, "binlog.000001", 4, nil, false), Request{GTID: true, ServerID: 9, Pos: 4, File: "binlog.000001"}, false},
		{"set announced, absent", mk(4, "", 4, nil, false), Request{}, true},
		{"set length lies", append(mk(4, "", 4, set, true), 1), Request{}, true},
		{"name length lies", mk(0, "", 4, nil, false)[:10], Request{}, true},
		{"huge name length", append(binary.LittleEndian.AppendUint32([]byte{0, 0, 0, 0, 0, 0}, 1<<31), make([]byte, 12)...), Request{}, true},
	} {
		got, err := parseDumpGTID(tc.in)
		if (err != nil) != tc.err || (err == nil && !equalReq(got, tc.want)) {
			t.Errorf("%s: got %+v, %v; want %+v, err %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestParseRegister(t *testing.T) {
	p := binary.LittleEndian.AppendUint32(nil, 2)
	p = append(p, 2, 'h', '1', 1, 'u', 0)
	p = binary.LittleEndian.AppendUint16(p, 3322)
	p = append(p, 0, 0, 0, 0, 1, 0, 0, 0)
	r, err := parseRegister(p)
	if err != nil || r.ServerID != 2 || r.Host != "h1" || r.User != "u" || r.Port != 3322 || r.MasterID != 1 {
		t.Errorf("got %+v, %v", r, err)
	}
	for i := 0; i < len(p)-8; i++ {
		if _, err := parseRegister(p[:i]); err == nil && i < 12 {
			t.Errorf("truncated at %d: no error", i)
		}
	}
}

// TestPacketFraming: payloads of every size around the 16 MiB boundary
// are split as MySQL does (an exact multiple ends with an empty packet),
// and the reader joins them back.
func TestPacketFraming(t *testing.T) {
	for _, n := range []int{0, 1, maxPayload - 1, maxPayload - 2, maxPayload, maxPayload + 1, 2 * maxPayload} {
		a, b := net.Pipe()
		payload := bytes.Repeat([]byte{0xab}, n)
		go func() {
			w := newPacketWriter(a, time.Minute, 64<<10)
			w.seq = 5
			w.write([]byte{0}, payload)
			w.flush()
			a.Close()
		}()
		raw, _ := io.ReadAll(b)
		r := newPacketReader(bytes.NewReader(raw), 1<<30)
		got, seq, err := r.read()
		if err != nil || seq != 5 || len(got) != n+1 || (n > 0 && got[n] != 0xab) {
			t.Errorf("size %d: got %d bytes seq %d err %v", n, len(got), seq, err)
		}
		wantPackets := (n+1)/maxPayload + 1
		if len(raw) != n+1+4*wantPackets {
			t.Errorf("size %d: %d bytes on the wire, want %d packets", n, len(raw), wantPackets)
		}
	}
	// A reader refuses a command over its bound.
	raw := []byte{0xff, 0xff, 0xff, 0}
	if _, _, err := newPacketReader(bytes.NewReader(raw), 1000).read(); !errors.Is(err, errPacketTooLarge) {
		t.Errorf("oversized command: %v", err)
	}
}

// TestPacketWriterVector: on TCP the writer gathers packets for writev;
// shared parts are sent uncopied, others are the caller's again once write
// returns (here overwritten at once), and the stream is what a copying
// writer would send.
func TestPacketWriterVector(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sizes := []int{0, 1, 4, 511, 512, 4096, 64<<10 - 6, 64 << 10, 64<<10 + 1, 300 << 10, maxPayload - 1, maxPayload, maxPayload + 1}
	payload := func(i, n int) []byte {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(i*31 + j)
		}
		return b
	}
	errc := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		w := newPacketWriter(c, time.Minute, 64<<10)
		if w.w != nil {
			errc <- errors.New("not in vector mode on TCP")
			return
		}
		for i, n := range sizes {
			b := payload(i, n)
			if i%2 == 0 {
				err = w.writeShared(okByte, b)
			} else {
				err = w.write(okByte, b)
				for j := range b {
					b[j] = 0xee // the caller reuses its buffer
				}
			}
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- w.flush()
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := newPacketReader(c, 1<<30)
	for i, n := range sizes {
		got, seq, err := r.read()
		if err != nil {
			t.Fatalf("payload %d (%d bytes): %v", i, n, err)
		}
		if want := append([]byte{0}, payload(i, n)...); !bytes.Equal(got, want) {
			t.Fatalf("payload %d (%d bytes): got %d bytes, differ", i, n, len(got))
		}
		_ = seq
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func FuzzParseDump(f *testing.F) {
	f.Add(dumpPayload(4, 1, 2, "binlog.000001"))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseDump(b)
		parseDumpGTID(b)
		parseRegister(b)
	})
}

// TestCommandBudget: large commands of all sessions share one budget: a
// second 2 MiB command is refused while the first is held, and accepted
// once the first reader moved on.
func TestCommandBudget(t *testing.T) {
	b := &memBudget{limit: 3 << 20}
	frame := func(n int) []byte {
		return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), 0}, make([]byte, n)...)
	}
	two, small := frame(2<<20), frame(10)
	r1 := newPacketReader(bytes.NewReader(append(append([]byte{}, two...), small...)), 64<<20)
	r1.budget = b
	r2 := newPacketReader(bytes.NewReader(append(append([]byte{}, two...), two...)), 64<<20)
	r2.budget = b
	if _, _, err := r1.read(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r2.read(); !errors.Is(err, errNoMemory) {
		t.Fatalf("second large command while the first is held: %v, want errNoMemory", err)
	}
	if _, _, err := r1.read(); err != nil {
		t.Fatal(err)
	}
	r2 = newPacketReader(bytes.NewReader(two), 64<<20)
	r2.budget = b
	if _, _, err := r2.read(); err != nil {
		t.Fatalf("after the first was released: %v", err)
	}
	r2.release()
	if u := b.used.Load(); u != 0 {
		t.Fatalf("budget in use after release: %d", u)
	}
}
