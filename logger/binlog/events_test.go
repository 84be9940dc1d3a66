package binlog_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

func TestRotateEvent(t *testing.T) {
	for _, f := range flavors() {
		for _, tc := range []struct {
			name  string
			alg   binlog.ChecksumAlg
			ts    uint32
			pos   uint32
			flags uint16
			file  string
			next  uint64
		}{
			{"fake", binlog.ChecksumCRC32, 0, 0, binlog.FlagArtificial, "binlog.000001", 4},
			{"fake past 4", binlog.ChecksumCRC32, 0, 0, binlog.FlagArtificial, "binlog.000001", 2036},
			{"fake none", binlog.ChecksumNone, 0, 0, binlog.FlagArtificial, "binlog.000003", 4},
			{"real", binlog.ChecksumCRC32, 1700000000, 2298, 0, "binlog.000002", 4},
			{"big next pos", binlog.ChecksumCRC32, 1, 2, 0, "binlog.999999", 1 << 40},
		} {
			t.Run(f.Name()+"/"+tc.name, func(t *testing.T) {
				ev := binlog.RotateEvent(tc.ts, 9, tc.pos, tc.flags, tc.file, tc.next, tc.alg)
				want := binlog.HeaderLen + 8 + len(tc.file)
				if tc.alg == binlog.ChecksumCRC32 {
					want += 4
				}
				if len(ev) != want {
					t.Fatalf("len %d, want %d", len(ev), want)
				}
				e := goParse(t, f, withAlg(binlogtest.FDE(f, 9), byte(tc.alg)), ev)[0]
				r := e.Event.(*replication.RotateEvent)
				if r.Position != tc.next || string(r.NextLogName) != tc.file ||
					e.Header.Timestamp != tc.ts || e.Header.LogPos != tc.pos || e.Header.Flags != tc.flags ||
					e.Header.ServerID != 9 || e.Header.EventType != replication.ROTATE_EVENT {
					t.Fatalf("go-mysql reads %+v %+v", e.Header, r)
				}
			})
		}
	}
}

func TestHeartbeatEvent(t *testing.T) {
	for _, f := range flavors() {
		for _, alg := range []binlog.ChecksumAlg{binlog.ChecksumCRC32, binlog.ChecksumNone} {
			ev := binlog.HeartbeatEvent(4, 1821, "mysql-bin.000001", alg)
			e := goParse(t, f, withAlg(binlogtest.FDE(f, 1), byte(alg)), ev)[0]
			hb := e.Event.(*replication.HeartbeatEvent)
			if hb.Version != 1 || hb.Filename != "mysql-bin.000001" || e.Header.LogPos != 1821 ||
				e.Header.Timestamp != 0 || e.Header.Flags != 0 || e.Header.ServerID != 4 {
				t.Fatalf("%s/%v: go-mysql reads %+v %+v", f.Name(), alg, e.Header, hb)
			}
		}
	}
	// The size observed from a MariaDB master: 19 + 16 + 4.
	if n := len(binlog.HeartbeatEvent(1, 1821, "mysql-bin.000001", binlog.ChecksumCRC32)); n != 39 {
		t.Fatalf("heartbeat of %d bytes, MariaDB sends 39", n)
	}
}

func TestHeartbeatV2Event(t *testing.T) {
	// The body MySQL writes for binlog.000001 at 158 (go-mysql's test vector).
	golden, _ := hex.DecodeString("010d62696e6c6f672e30303030303102019e00")
	ev := binlog.HeartbeatV2Event(1, "binlog.000001", 158, binlog.ChecksumNone)
	if !bytes.Equal(ev[binlog.HeaderLen:], golden) {
		t.Fatalf("body %x, want %x", ev[binlog.HeaderLen:], golden)
	}
	for _, tc := range []struct {
		file string
		pos  uint64
		alg  binlog.ChecksumAlg
	}{
		{"binlog.000001", 158, binlog.ChecksumCRC32},
		{"binlog.000001", 4, binlog.ChecksumNone},
		{"binlog.000042", 250, binlog.ChecksumCRC32},
		{"binlog.000042", 251, binlog.ChecksumCRC32},
		{"binlog.000042", 70000, binlog.ChecksumCRC32},
		{"binlog.000042", 1 << 20, binlog.ChecksumCRC32},
		{"binlog.000042", 5 << 32, binlog.ChecksumCRC32}, // past 4 GiB: why v2 exists
		{strings.Repeat("f", 200), 1, binlog.ChecksumCRC32},
	} {
		ev := binlog.HeartbeatV2Event(7, tc.file, tc.pos, tc.alg)
		e := goParse(t, binlog.MySQL(), withAlg(binlogtest.FDE(binlog.MySQL(), 1), byte(tc.alg)), ev)[0]
		hb := e.Event.(*replication.HeartbeatEvent)
		if hb.Version != 2 || hb.Filename != tc.file || hb.Offset != tc.pos ||
			e.Header.EventType != replication.HEARTBEAT_LOG_EVENT_V2 || e.Header.LogPos != 0 || e.Header.ServerID != 7 {
			t.Fatalf("pos %d: go-mysql reads %+v %+v", tc.pos, e.Header, hb)
		}
	}
}

func TestAppendLenEnc(t *testing.T) {
	for _, tc := range []struct {
		v    uint64
		want string
	}{
		{0, "00"}, {250, "fa"}, {251, "fcfb00"}, {65535, "fcffff"}, {65536, "fd000001"},
		{1<<24 - 1, "fdffffff"}, {1 << 24, "fe0000000100000000"},
	} {
		got := hex.EncodeToString(binlog.AppendLenEnc(nil, tc.v))
		if got != tc.want || binlog.LenEncSize(tc.v) != len(tc.want)/2 {
			t.Errorf("AppendLenEnc(%d) = %s, want %s", tc.v, got, tc.want)
		}
		if v, _, n := mysql.LengthEncodedInt(binlog.AppendLenEnc(nil, tc.v)); v != tc.v || n != len(tc.want)/2 {
			t.Errorf("go-mysql reads %d (%d bytes) back from %d", v, n, tc.v)
		}
	}
}

func TestFileHeaderEventMySQL(t *testing.T) {
	f := binlog.MySQL()
	for _, s := range []string{
		"",
		"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
		"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7:9-100,4c6d7e8f-0000-1111-2222-333344445555:3",
		"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:blue:1-3:red:7",
	} {
		set, err := f.ParseSet(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, alg := range []binlog.ChecksumAlg{binlog.ChecksumCRC32, binlog.ChecksumNone} {
			ev, err := f.FileHeaderEvent(set, 11, 2, 157, alg)
			if err != nil {
				t.Fatal(err)
			}
			e := goParse(t, f, withAlg(binlogtest.FDE(f, 2), byte(alg)), ev)[0]
			prev := e.Event.(*replication.PreviousGTIDsEvent)
			back, err := f.ParseSet(prev.GTIDSets)
			if err != nil || !back.Equal(set) {
				t.Fatalf("go-mysql decodes %q from %q: %v", prev.GTIDSets, s, err)
			}
			if e.Header.LogPos != 157 || e.Header.Timestamp != 11 || e.Header.ServerID != 2 {
				t.Fatalf("header %+v", e.Header)
			}
			got, err := f.FileHeaderSet(ev, alg)
			if err != nil || !got.Equal(set) {
				t.Fatalf("FileHeaderSet = %v, %v; want %q", got, err, s)
			}
		}
	}
	empty, _ := f.FileHeaderEvent(f.EmptySet(), 0, 1, 0, binlog.ChecksumCRC32)
	if len(empty) != 31 { // as in every MySQL 8 binlog: 19 + 8 + 4
		t.Fatalf("empty Previous_gtids of %d bytes", len(empty))
	}
}

func TestFileHeaderEventMariaDB(t *testing.T) {
	f := binlog.MariaDB()
	for _, s := range []string{"", "0-1-8", "7-3-1,0-1-3", "4294967295-4294967295-18446744073709551615,1-2-3"} {
		set, err := f.ParseSet(s)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := f.FileHeaderEvent(set, 11, 2, 285, binlog.ChecksumCRC32)
		if err != nil {
			t.Fatal(err)
		}
		e := goParse(t, f, nil, ev)[0]
		var parts []string
		for _, g := range e.Event.(*replication.MariadbGTIDListEvent).GTIDs {
			parts = append(parts, g.String())
		}
		if got := strings.Join(parts, ","); got != set.String() {
			t.Fatalf("go-mysql decodes %q, want %q", got, set.String())
		}
		if got, err := f.FileHeaderSet(ev, binlog.ChecksumCRC32); err != nil || !got.Equal(set) {
			t.Fatalf("FileHeaderSet = %v, %v", got, err)
		}
	}
	empty, _ := f.FileHeaderEvent(f.EmptySet(), 0, 1, 285, binlog.ChecksumCRC32)
	if len(empty) != 29 { // the size observed from a MariaDB master
		t.Fatalf("empty GTID_LIST of %d bytes", len(empty))
	}
}

// The fake GTID_LIST a MariaDB master sent after skipping to 0-1-8
// (protocol.md, capture A2), byte for byte.
func TestGTIDListEventGolden(t *testing.T) {
	want, _ := hex.DecodeString("00000000a3010000002b0000001d0700002000" + "01000000" + "00000000010000000800000000000000" + "653c0366")
	set, _ := binlog.MariaDB().ParseSet("0-1-8")
	got, err := binlog.GTIDListEvent(set, 0, 1, 1821, binlog.FlagArtificial, binlog.ChecksumCRC32)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("GTIDListEvent = %x, %v\n                 want %x", got, err, want)
	}
}

func TestFlavorMismatch(t *testing.T) {
	my, ma := binlog.MySQL(), binlog.MariaDB()
	if _, err := my.FileHeaderEvent(ma.EmptySet(), 0, 0, 0, binlog.ChecksumCRC32); !errors.Is(err, binlog.ErrFlavorMismatch) {
		t.Errorf("mysql with a mariadb set: %v", err)
	}
	if _, err := ma.FileHeaderEvent(my.EmptySet(), 0, 0, 0, binlog.ChecksumCRC32); !errors.Is(err, binlog.ErrFlavorMismatch) {
		t.Errorf("mariadb with a mysql set: %v", err)
	}
	if _, err := binlog.EncodeMySQLSet(ma.EmptySet()); !errors.Is(err, binlog.ErrFlavorMismatch) {
		t.Errorf("EncodeMySQLSet of a mariadb set: %v", err)
	}
	if my.EmptySet().Equal(ma.EmptySet()) || ma.EmptySet().Equal(my.EmptySet()) ||
		my.EmptySet().ContainsSet(ma.EmptySet()) || ma.EmptySet().ContainsSet(my.EmptySet()) {
		t.Error("sets of different flavors compare equal or contained")
	}
	hb := binlog.HeartbeatEvent(1, 4, "x", binlog.ChecksumCRC32)
	if _, err := my.FileHeaderSet(hb, binlog.ChecksumCRC32); !errors.Is(err, binlog.ErrMalformed) {
		t.Errorf("mysql FileHeaderSet of a heartbeat: %v", err)
	}
	if _, err := ma.FileHeaderSet(hb, binlog.ChecksumCRC32); !errors.Is(err, binlog.ErrMalformed) {
		t.Errorf("mariadb FileHeaderSet of a heartbeat: %v", err)
	}
}
