package binlog_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
)

func TestParseHeader(t *testing.T) {
	rot := binlog.RotateEvent(0x01020304, 77, 0x0a0b0c0d, binlog.FlagArtificial, "binlog.000002", 4, binlog.ChecksumCRC32)
	for _, tc := range []struct {
		name string
		in   []byte
		want binlog.Header
		err  error
	}{
		{"rotate", rot, binlog.Header{Timestamp: 0x01020304, Type: binlog.TypeRotate, ServerID: 77, EventSize: uint32(len(rot)), LogPos: 0x0a0b0c0d, Flags: binlog.FlagArtificial}, nil},
		{"header only", rot[:binlog.HeaderLen], binlog.Header{Timestamp: 0x01020304, Type: binlog.TypeRotate, ServerID: 77, EventSize: uint32(len(rot)), LogPos: 0x0a0b0c0d, Flags: binlog.FlagArtificial}, nil},
		{"short", rot[:18], binlog.Header{}, binlog.ErrMalformed},
		{"empty", nil, binlog.Header{}, binlog.ErrMalformed},
		{"size below header", append(append([]byte{}, rot[:9]...), 18, 0, 0, 0, 0, 0, 0, 0, 0, 0), binlog.Header{}, binlog.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := binlog.ParseHeader(tc.in)
			if !errors.Is(err, tc.err) || h != tc.want {
				t.Fatalf("ParseHeader = %+v, %v; want %+v, %v", h, err, tc.want, tc.err)
			}
		})
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := binlog.Header{Timestamp: 1, Type: 2, ServerID: 3, EventSize: 40, LogPos: 5, Flags: 6}
	b := binlog.AppendHeader(nil, h)
	if len(b) != binlog.HeaderLen {
		t.Fatalf("AppendHeader wrote %d bytes", len(b))
	}
	if got, err := binlog.ParseHeader(b); err != nil || got != h {
		t.Fatalf("ParseHeader(AppendHeader(h)) = %+v, %v", got, err)
	}
}

func TestMagic(t *testing.T) {
	if len(binlog.Magic) != 4 || binlog.Magic[0] != 0xfe || !bytes.Equal(binlog.FileMagic(), []byte{0xfe, 'b', 'i', 'n'}) {
		t.Fatalf("Magic = %q", binlog.Magic)
	}
	m := binlog.FileMagic()
	m[0] = 0
	if binlog.FileMagic()[0] != 0xfe {
		t.Fatal("FileMagic returned shared memory")
	}
}

func TestSplitEvents(t *testing.T) {
	a := binlog.HeartbeatEvent(1, 100, "binlog.000001", binlog.ChecksumCRC32)
	b := binlog.RotateEvent(0, 1, 0, binlog.FlagArtificial, "binlog.000002", 4, binlog.ChecksumNone)
	ab := append(append([]byte{}, a...), b...)
	tooSmall := append([]byte{}, a...)
	tooSmall[9] = 10 // event_size 10 < 19
	for _, tc := range []struct {
		name string
		in   []byte
		want [][]byte
		err  error
	}{
		{"empty", nil, nil, nil},
		{"one", a, [][]byte{a}, nil},
		{"two", ab, [][]byte{a, b}, nil},
		{"truncated header", ab[:len(a)+10], nil, binlog.ErrMalformed},
		{"truncated body", ab[:len(ab)-1], nil, binlog.ErrMalformed},
		{"trailing byte", append(append([]byte{}, ab...), 0), nil, binlog.ErrMalformed},
		{"size below header", tooSmall, nil, binlog.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := binlog.SplitEvents(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d events, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) || cap(got[i]) != len(got[i]) {
					t.Fatalf("event %d = %x (cap %d), want %x", i, got[i], cap(got[i]), tc.want[i])
				}
			}
		})
	}
}

func TestVerifyChecksum(t *testing.T) {
	good := binlog.HeartbeatEvent(1, 100, "binlog.000001", binlog.ChecksumCRC32)
	flipped := append([]byte{}, good...)
	flipped[binlog.HeaderLen] ^= 1
	badCRC := append([]byte{}, good...)
	badCRC[len(badCRC)-1] ^= 0x80
	none := binlog.HeartbeatEvent(1, 100, "binlog.000001", binlog.ChecksumNone)
	for _, tc := range []struct {
		name string
		ev   []byte
		alg  binlog.ChecksumAlg
		err  error
	}{
		{"good", good, binlog.ChecksumCRC32, nil},
		{"body flipped", flipped, binlog.ChecksumCRC32, binlog.ErrBadChecksum},
		{"crc flipped", badCRC, binlog.ChecksumCRC32, binlog.ErrBadChecksum},
		{"no checksum", none, binlog.ChecksumNone, nil},
		{"no checksum, corrupt body undetectable", flipped, binlog.ChecksumNone, nil},
		{"truncated", good[:len(good)-1], binlog.ChecksumCRC32, binlog.ErrMalformed},
		{"header only", good[:binlog.HeaderLen], binlog.ChecksumNone, binlog.ErrMalformed},
		{"too short for crc", binlog.NewEvent(1, 0, 0, 0, 0, []byte{1, 2}, binlog.ChecksumNone), binlog.ChecksumCRC32, binlog.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := binlog.VerifyChecksum(tc.ev, tc.alg); !errors.Is(err, tc.err) {
				t.Fatalf("VerifyChecksum = %v, want %v", err, tc.err)
			}
		})
	}
}

func TestRelocate(t *testing.T) {
	txn, _ := binlogtest.Txn(binlog.MySQL(), gtidFor(binlog.MySQL(), 9), 5, 4, 400)
	for _, tc := range []struct {
		name string
		ev   []byte
		alg  binlog.ChecksumAlg
		pos  uint32
	}{
		{"crc32 heartbeat", binlog.HeartbeatEvent(1, 100, "binlog.000001", binlog.ChecksumCRC32), binlog.ChecksumCRC32, 0xdeadbeef},
		{"crc32 txn event", split(t, txn)[2], binlog.ChecksumCRC32, 123456},
		{"none", binlog.RotateEvent(9, 1, 50, 0, "binlog.000009", 4, binlog.ChecksumNone), binlog.ChecksumNone, 7},
		{"same position", binlog.HeartbeatEvent(1, 100, "f", binlog.ChecksumCRC32), binlog.ChecksumCRC32, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := append([]byte{}, tc.ev...)
			if err := binlog.Relocate(ev, tc.pos, tc.alg); err != nil {
				t.Fatal(err)
			}
			if err := binlog.VerifyChecksum(ev, tc.alg); err != nil {
				t.Fatalf("relocated event fails its checksum: %v", err)
			}
			h, _ := binlog.ParseHeader(ev)
			if h.LogPos != tc.pos {
				t.Fatalf("log_pos = %d, want %d", h.LogPos, tc.pos)
			}
			end := len(ev)
			if tc.alg == binlog.ChecksumCRC32 {
				end -= 4
			}
			for i := range ev {
				if ev[i] != tc.ev[i] && (i < 13 || i > 16) && i < end {
					t.Fatalf("byte %d changed: %#x -> %#x", i, tc.ev[i], ev[i])
				}
			}
			// Back to the original position gives back the original bytes.
			h0, _ := binlog.ParseHeader(tc.ev)
			if err := binlog.Relocate(ev, h0.LogPos, tc.alg); err != nil || !bytes.Equal(ev, tc.ev) {
				t.Fatalf("relocating back: %v, %x != %x", err, ev, tc.ev)
			}
		})
	}
}

func TestRelocateRefusesBadEvents(t *testing.T) {
	good := binlog.HeartbeatEvent(1, 100, "binlog.000001", binlog.ChecksumCRC32)
	corrupt := append([]byte{}, good...)
	corrupt[binlog.HeaderLen+1] ^= 4
	for _, tc := range []struct {
		name string
		ev   []byte
		err  error
	}{
		{"corrupt body", corrupt, binlog.ErrBadChecksum},
		{"truncated", good[:len(good)-2], binlog.ErrMalformed},
		{"short", good[:10], binlog.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := append([]byte{}, tc.ev...)
			if err := binlog.Relocate(ev, 999, binlog.ChecksumCRC32); !errors.Is(err, tc.err) {
				t.Fatalf("Relocate = %v, want %v", err, tc.err)
			}
			if !bytes.Equal(ev, tc.ev) {
				t.Fatal("Relocate modified an event it refused")
			}
		})
	}
}
