package binlog_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
	"github.com/go-mysql-org/go-mysql/replication"
)

const (
	u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	u2 = "4c6d7e8f-0000-1111-2222-333344445555"
	u3 = "00000000-0000-0000-0000-000000000001"
)

func TestFlavorByName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"mysql", "mysql", nil},
		{"mariadb", "mariadb", nil},
		{"MariaDB", "mariadb", nil},
		{"", "", binlog.ErrUnknownFlavor},
		{"percona", "", binlog.ErrUnknownFlavor},
	} {
		f, err := binlog.FlavorByName(tc.in)
		if !errors.Is(err, tc.err) || (err == nil && f.Name() != tc.want) {
			t.Errorf("FlavorByName(%q) = %v, %v", tc.in, f, err)
		}
	}
}

func TestParseGTID(t *testing.T) {
	for _, tc := range []struct {
		f        binlog.Flavor
		in, want string
	}{
		{binlog.MySQL(), u1 + ":23", u1 + ":23"},
		{binlog.MySQL(), strings.ToUpper(u1) + ":0023", u1 + ":23"},
		{binlog.MySQL(), u1 + ":Tag_1:5", u1 + ":tag_1:5"},
		{binlog.MySQL(), u1 + ":_:5", u1 + ":_:5"},
		{binlog.MySQL(), u1 + ":9223372036854775806", u1 + ":9223372036854775806"},
		{binlog.MySQL(), u1 + ":" + strings.Repeat("t", 32) + ":1", u1 + ":" + strings.Repeat("t", 32) + ":1"},
		{binlog.MariaDB(), "0-1-5", "0-1-5"},
		{binlog.MariaDB(), "00-01-05", "0-1-5"},
		{binlog.MariaDB(), "4294967295-4294967295-18446744073709551615", "4294967295-4294967295-18446744073709551615"},
		{binlog.MariaDB(), "7-3-0", "7-3-0"},
	} {
		got, err := tc.f.ParseGTID(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%s.ParseGTID(%q) = %q, %v; want %q", tc.f.Name(), tc.in, got, err, tc.want)
		}
	}
}

func TestParseGTIDRejects(t *testing.T) {
	for _, tc := range []struct {
		f  binlog.Flavor
		in string
	}{
		{binlog.MySQL(), ""},
		{binlog.MySQL(), u1},
		{binlog.MySQL(), u1 + ":"},
		{binlog.MySQL(), u1 + ":0"},
		{binlog.MySQL(), u1 + ":-1"},
		{binlog.MySQL(), u1 + ":+1"},
		{binlog.MySQL(), u1 + ": 1"},
		{binlog.MySQL(), u1 + ":1-5"},
		{binlog.MySQL(), u1 + ":9223372036854775807"},
		{binlog.MySQL(), u1 + ":99999999999999999999"},
		{binlog.MySQL(), u1 + ":1:2"},
		{binlog.MySQL(), u1 + ":1tag:2"},
		{binlog.MySQL(), u1 + ":ta-g:2"},
		{binlog.MySQL(), u1 + ":" + strings.Repeat("t", 33) + ":1"},
		{binlog.MySQL(), u1 + ":tag:"},
		{binlog.MySQL(), "{" + u1 + "}:1"},
		{binlog.MySQL(), strings.ReplaceAll(u1, "-", "") + ":1"},
		{binlog.MySQL(), "zze11fa47-71ca-11e1-9e33-c80aa9429562:1"[1:]},
		{binlog.MySQL(), "0-1-5"},
		{binlog.MariaDB(), ""},
		{binlog.MariaDB(), "0-1"},
		{binlog.MariaDB(), "0-1-2-3"},
		{binlog.MariaDB(), "-1-2"},
		{binlog.MariaDB(), "0--1-2"},
		{binlog.MariaDB(), "a-1-2"},
		{binlog.MariaDB(), "0-1-x"},
		{binlog.MariaDB(), "0-1-+2"},
		{binlog.MariaDB(), " 0-1-2"},
		{binlog.MariaDB(), "4294967296-1-1"},
		{binlog.MariaDB(), "0-4294967296-1"},
		{binlog.MariaDB(), "0-1-18446744073709551616"},
		{binlog.MariaDB(), u1 + ":1"},
	} {
		got, err := tc.f.ParseGTID(tc.in)
		if !errors.Is(err, binlog.ErrBadGTID) || !strings.HasPrefix(err.Error(), "binlog: invalid GTID") {
			t.Errorf("%s.ParseGTID(%q) = %q, %v; want ErrBadGTID", tc.f.Name(), tc.in, got, err)
		}
	}
}

func TestMySQLSet(t *testing.T) {
	f := binlog.MySQL()
	set, err := f.ParseSet(" " + u2 + ":1-3 ,\n" + u1 + ":7:1-5:blue:2-4:red:9")
	if err != nil {
		t.Fatal(err)
	}
	const want = u1 + ":1-5:7:blue:2-4:red:9," + u2 + ":1-3"
	if set.String() != want {
		t.Fatalf("String = %q, want %q", set.String(), want)
	}
	for gtid, in := range map[string]bool{
		u1 + ":1": true, u1 + ":5": true, u1 + ":6": false, u1 + ":7": true, u1 + ":8": false,
		u2 + ":3": true, u2 + ":4": false, u3 + ":1": false,
		u1 + ":blue:2": true, u1 + ":BLUE:4": true, u1 + ":blue:5": false, u1 + ":red:9": true, u1 + ":green:1": false,
		"garbage": false, u1 + ":0": false, "0-1-1": false,
	} {
		if got := set.Contains(gtid); got != in {
			t.Errorf("Contains(%q) = %v, want %v", gtid, got, in)
		}
	}
	c := set.Clone()
	for _, g := range []string{u1 + ":6", u3 + ":10", u1 + ":blue:1"} {
		if err := c.Add(g); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Add(u1 + ":0"); !errors.Is(err, binlog.ErrBadGTID) {
		t.Fatalf("Add of a bad GTID: %v", err)
	}
	const wantC = u3 + ":10," + u1 + ":1-7:blue:1-4:red:9," + u2 + ":1-3"
	if c.String() != wantC || set.String() != want {
		t.Fatalf("after Add: clone %q (want %q), original %q", c.String(), wantC, set.String())
	}
	if !c.ContainsSet(set) || set.ContainsSet(c) || !set.ContainsSet(f.EmptySet()) || !set.ContainsSet(set) {
		t.Fatal("ContainsSet")
	}
	if set.Equal(c) || !set.Equal(set.Clone()) {
		t.Fatal("Equal")
	}
}

func TestMySQLSetCanonical(t *testing.T) {
	f := binlog.MySQL()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"  ", ""},
		{u1 + ":5-7:1-3:4", u1 + ":1-7"},
		{u1 + ":1-3:4-5", u1 + ":1-5"},
		{u1 + ":1-3," + u1 + ":3-9", u1 + ":1-9"},
		{u1 + ":9:1", u1 + ":1:9"},
		{strings.ToUpper(u1) + ":1", u1 + ":1"},
		{u1 + ":T:1:2:3", u1 + ":t:1-3"},
		{u2 + ":1," + u1 + ":2", u1 + ":2," + u2 + ":1"},
	} {
		s, err := f.ParseSet(tc.in)
		if err != nil || s.String() != tc.want {
			t.Errorf("ParseSet(%q) = %v, %v; want %q", tc.in, s, err, tc.want)
			continue
		}
		back, err := f.ParseSet(s.String())
		if err != nil || !back.Equal(s) {
			t.Errorf("round trip of %q: %v, %v", tc.in, back, err)
		}
	}
}

func TestParseSetRejects(t *testing.T) {
	for _, tc := range []struct {
		f  binlog.Flavor
		in string
	}{
		{binlog.MySQL(), u1},
		{binlog.MySQL(), u1 + ":"},
		{binlog.MySQL(), u1 + ":0"},
		{binlog.MySQL(), u1 + ":0-3"},
		{binlog.MySQL(), u1 + ":5-3"},
		{binlog.MySQL(), u1 + ":1-2-3"},
		{binlog.MySQL(), u1 + ":1-"},
		{binlog.MySQL(), u1 + ":1-9223372036854775807"},
		{binlog.MySQL(), u1 + ":tag"},
		{binlog.MySQL(), u1 + ":1:tag"},
		{binlog.MySQL(), u1 + ":a:b:1"},
		{binlog.MySQL(), u1 + ":1,"},
		{binlog.MySQL(), ","},
		{binlog.MySQL(), "garbage:1"},
		{binlog.MySQL(), "0-1-5"},
		{binlog.MariaDB(), "0-1"},
		{binlog.MariaDB(), "0-1-5,"},
		{binlog.MariaDB(), ",0-1-5"},
		{binlog.MariaDB(), "0-1-5,0-2-6"},
		{binlog.MariaDB(), "0-1-x"},
		{binlog.MariaDB(), u1 + ":1"},
	} {
		if s, err := tc.f.ParseSet(tc.in); !errors.Is(err, binlog.ErrBadSet) || !strings.HasPrefix(err.Error(), "binlog: invalid GTID set") {
			t.Errorf("%s.ParseSet(%q) = %v, %v; want ErrBadSet", tc.f.Name(), tc.in, s, err)
		}
	}
}

func TestMariaDBSet(t *testing.T) {
	f := binlog.MariaDB()
	set, err := f.ParseSet("7-1-3, 0-1-8")
	if err != nil {
		t.Fatal(err)
	}
	if set.String() != "0-1-8,7-1-3" {
		t.Fatalf("String = %q", set.String())
	}
	for gtid, in := range map[string]bool{
		"0-1-8": true, "0-1-1": true, "0-2-5": true, "0-1-9": false, "0-9-9": false,
		"7-1-3": true, "7-1-4": false, "3-1-1": false, "garbage": false, u1 + ":1": false,
	} {
		if got := set.Contains(gtid); got != in {
			t.Errorf("Contains(%q) = %v, want %v", gtid, got, in)
		}
	}
	c := set.Clone()
	for _, g := range []string{"0-2-5", "10-1-1", "2-4-6"} {
		if err := c.Add(g); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Add("0-2"); !errors.Is(err, binlog.ErrBadGTID) {
		t.Fatalf("Add of a bad GTID: %v", err)
	}
	// Add replaces the domain's entry, even with a lower seq (a new primary).
	if c.String() != "0-2-5,2-4-6,7-1-3,10-1-1" || set.String() != "0-1-8,7-1-3" {
		t.Fatalf("after Add: clone %q, original %q", c.String(), set.String())
	}
	if c.Contains("0-1-8") || !c.Contains("0-1-5") {
		t.Fatal("Contains after replacing domain 0")
	}
	if set.ContainsSet(c) || c.ContainsSet(set) || !set.ContainsSet(f.EmptySet()) || !set.ContainsSet(set) {
		t.Fatal("ContainsSet")
	}
	bigger, _ := f.ParseSet("0-1-9,7-2-3,5-1-1")
	if !bigger.ContainsSet(set) {
		t.Fatal("0-1-9,7-2-3,5-1-1 should contain 0-1-8,7-1-3")
	}
	if set.Equal(c) || !set.Equal(set.Clone()) {
		t.Fatal("Equal")
	}
	other, _ := f.ParseSet("0-2-8,7-1-3")
	if set.Equal(other) {
		t.Fatal("sets differing by server id are Equal")
	}
	for _, tc := range []struct{ in, want string }{
		{"", ""}, {"10-1-1,2-1-1", "2-1-1,10-1-1"}, {"00-01-02", "0-1-2"},
	} {
		s, err := f.ParseSet(tc.in)
		if err != nil || s.String() != tc.want {
			t.Errorf("ParseSet(%q) = %v, %v; want %q", tc.in, s, err, tc.want)
		}
	}
}

func TestGTIDOfEvent(t *testing.T) {
	for _, tc := range []struct {
		f    binlog.Flavor
		gtid string
		want string
	}{
		{binlog.MySQL(), u1 + ":1", u1 + ":1"},
		{binlog.MySQL(), strings.ToUpper(u2) + ":9223372036854775806", u2 + ":9223372036854775806"},
		{binlog.MySQL(), u1 + ":Blue:42", u1 + ":blue:42"},
		{binlog.MySQL(), "ffffffff-ffff-ffff-ffff-ffffffffffff:" + strings.Repeat("z", 32) + ":123456789012", "ffffffff-ffff-ffff-ffff-ffffffffffff:" + strings.Repeat("z", 32) + ":123456789012"},
		{binlog.MariaDB(), "0-1-5", "0-1-5"},
		{binlog.MariaDB(), "4294967295-7-18446744073709551615", "4294967295-7-18446744073709551615"},
	} {
		raw, end := binlogtest.Txn(tc.f, tc.gtid, 7, 1000, 600)
		evs := split(t, raw)
		if end != 1000+uint32(len(raw)) {
			t.Fatalf("end %d", end)
		}
		for i, ev := range evs {
			got, ok, err := tc.f.GTIDOfEvent(ev, binlog.ChecksumCRC32)
			if err != nil || ok != (i == 0) || (i == 0 && got != tc.want) {
				t.Errorf("%s event %d: GTIDOfEvent = %q, %v, %v; want %q", tc.gtid, i, got, ok, err, tc.want)
			}
		}
		other := binlog.MariaDB()
		if tc.f.Name() == "mariadb" {
			other = binlog.MySQL()
		}
		if g, ok, err := other.GTIDOfEvent(evs[0], binlog.ChecksumCRC32); ok || err != nil {
			t.Errorf("%s reads %q, %v from a %s GTID event", other.Name(), g, err, tc.f.Name())
		}
		// go-mysql agrees.
		e := goParse(t, tc.f, nil, evs...)[0]
		var next string
		switch ev := e.Event.(type) {
		case *replication.GTIDEvent:
			s, _ := ev.GTIDNext()
			next = s.String()
		case *replication.GtidTaggedLogEvent:
			s, _ := ev.GTIDNext()
			next = s.String()
		case *replication.MariadbGTIDEvent:
			next = ev.GTID.String()
		}
		if next != tc.want {
			t.Errorf("go-mysql reads GTID %q, want %q", next, tc.want)
		}
	}
}

func TestGTIDOfEventRejects(t *testing.T) {
	mysqlGTID := split(t, first(binlogtest.Txn(binlog.MySQL(), u1+":3", 1, 4, 0)))[0]
	taggedGTID := split(t, first(binlogtest.Txn(binlog.MySQL(), u1+":tag:3", 1, 4, 0)))[0]
	mariaGTID := split(t, first(binlogtest.Txn(binlog.MariaDB(), "0-1-3", 1, 4, 0)))[0]
	anon := append([]byte{}, mysqlGTID...)
	anon[4] = binlog.TypeAnonymousGTID
	zeroGNO := append([]byte{}, mysqlGTID...)
	binary.LittleEndian.PutUint64(zeroGNO[binlog.HeaderLen+17:], 0)
	for _, tc := range []struct {
		name string
		f    binlog.Flavor
		ev   []byte
		err  error
	}{
		{"mysql anonymous", binlog.MySQL(), fixCRC(anon), nil},
		{"mysql gno 0", binlog.MySQL(), fixCRC(zeroGNO), binlog.ErrMalformed},
		{"mysql short body", binlog.MySQL(), binlog.NewEvent(binlog.TypeGTID, 0, 1, 0, 0, make([]byte, 20), binlog.ChecksumCRC32), binlog.ErrMalformed},
		{"mysql truncated", binlog.MySQL(), mysqlGTID[:40], binlog.ErrMalformed},
		{"mysql tagged truncated", binlog.MySQL(), binlog.NewEvent(binlog.TypeGTIDTagged, 0, 1, 0, 0, taggedGTID[binlog.HeaderLen:40], binlog.ChecksumCRC32), binlog.ErrMalformed},
		{"mysql tagged empty", binlog.MySQL(), binlog.NewEvent(binlog.TypeGTIDTagged, 0, 1, 0, 0, nil, binlog.ChecksumCRC32), binlog.ErrMalformed},
		{"mariadb short body", binlog.MariaDB(), binlog.NewEvent(binlog.TypeMariaDBGTID, 0, 1, 0, 0, make([]byte, 12), binlog.ChecksumCRC32), binlog.ErrMalformed},
		{"mariadb truncated", binlog.MariaDB(), mariaGTID[:30], binlog.ErrMalformed},
		{"header only", binlog.MariaDB(), mariaGTID[:10], binlog.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, ok, err := tc.f.GTIDOfEvent(tc.ev, binlog.ChecksumCRC32)
			if !errors.Is(err, tc.err) || ok || g != "" {
				t.Fatalf("GTIDOfEvent = %q, %v, %v; want error %v", g, ok, err, tc.err)
			}
		})
	}
	// Without checksums the same bodies decode.
	ev := binlog.NewEvent(binlog.TypeMariaDBGTID, 0, 9, 0, 0, mariaGTID[binlog.HeaderLen:len(mariaGTID)-4], binlog.ChecksumNone)
	if g, ok, err := binlog.MariaDB().GTIDOfEvent(ev, binlog.ChecksumNone); g != "0-9-3" || !ok || err != nil {
		t.Fatalf("checksum none: %q, %v, %v", g, ok, err)
	}
}

func first(b []byte, _ uint32) []byte { return b }

func TestMySQLSetBinary(t *testing.T) {
	f := binlog.MySQL()
	for _, s := range []string{"", u1 + ":1-5:7", u1 + ":1:a:2:b:3," + u2 + ":9-10"} {
		set, _ := f.ParseSet(s)
		b, err := binlog.EncodeMySQLSet(set)
		if err != nil {
			t.Fatal(err)
		}
		back, err := binlog.DecodeMySQLSet(b)
		if err != nil || !back.Equal(set) {
			t.Fatalf("round trip of %q: %v, %v", s, back, err)
		}
	}
	good, _ := binlog.EncodeMySQLSet(mustSet(t, f, u1+":1-5"))
	mut := func(off int, v uint64) []byte {
		b := append([]byte{}, good...)
		binary.LittleEndian.PutUint64(b[off:], v)
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"short", good[:7]},
		{"sid truncated", good[:20]},
		{"count truncated", good[:28]},
		{"intervals truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"zero intervals", mut(24, 0)},
		{"huge count", mut(24, 1<<62)},
		{"huge sid count", mut(0, 1<<62)},
		{"start 0", mut(32, 0)},
		{"end before start", mut(40, 1)},
		{"end past GNO_END", mut(40, 1<<63)},
	} {
		if s, err := binlog.DecodeMySQLSet(tc.in); !errors.Is(err, binlog.ErrBadSet) {
			t.Errorf("%s: DecodeMySQLSet = %v, %v; want ErrBadSet", tc.name, s, err)
		}
	}
}

func mustSet(t *testing.T, f binlog.Flavor, s string) binlog.Set {
	t.Helper()
	set, err := f.ParseSet(s)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestMySQLSetAdd(t *testing.T) {
	f := binlog.MySQL()
	for _, tc := range []struct {
		gnos []int
		want string
	}{
		{[]int{1, 2, 3}, u1 + ":1-3"},
		{[]int{3, 2, 1}, u1 + ":1-3"},
		{[]int{5, 1, 3, 2, 4}, u1 + ":1-5"},
		{[]int{1, 3, 5}, u1 + ":1:3:5"},
		{[]int{5, 3, 1, 1, 3}, u1 + ":1:3:5"},
		{[]int{10, 1, 2, 9, 3}, u1 + ":1-3:9-10"},
		{[]int{2, 2, 2}, u1 + ":2"},
	} {
		s := f.EmptySet()
		for _, n := range tc.gnos {
			if err := s.Add(gtidFor(f, n)); err != nil {
				t.Fatal(err)
			}
		}
		if s.String() != tc.want || !s.Equal(mustSet(t, f, tc.want)) {
			t.Errorf("adding %v gives %q, want %q", tc.gnos, s.String(), tc.want)
		}
	}
}
