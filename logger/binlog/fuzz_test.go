package binlog_test

import (
	"bytes"
	"testing"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
)

func FuzzSplitEvents(f *testing.F) {
	for _, fl := range flavors() {
		raw, _ := binlogtest.Txn(fl, gtidFor(fl, 1), 1, 4, 300)
		f.Add(append(binlogtest.FDE(fl, 1), raw...))
	}
	f.Add(binlog.HeartbeatEvent(1, 4, "binlog.000001", binlog.ChecksumNone))
	f.Add([]byte{})
	f.Add(make([]byte, 19))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := binlog.SplitEvents(b)
		if err != nil {
			return
		}
		var joined []byte
		for _, ev := range evs {
			h, err := binlog.ParseHeader(ev)
			if err != nil || int(h.EventSize) != len(ev) {
				t.Fatalf("event %x: %+v, %v", ev, h, err)
			}
			joined = append(joined, ev...)
		}
		if !bytes.Equal(joined, b) {
			t.Fatal("events do not add up to the input")
		}
	})
}

func FuzzParseSet(f *testing.F) {
	for _, s := range []string{
		"", u1 + ":1-5:7," + u2 + ":1-3", u1 + ":1:tag:2-3", " " + u1 + ":1-3 ,\n" + u2 + ":9",
		"0-1-8,7-1-3", "4294967295-1-18446744073709551615", "0-1-5,0-2-6", "1-2", ",",
	} {
		f.Add(false, s)
		f.Add(true, s)
	}
	f.Fuzz(func(t *testing.T, maria bool, s string) {
		fl := binlog.MySQL()
		if maria {
			fl = binlog.MariaDB()
		}
		set, err := fl.ParseSet(s)
		if err != nil {
			return
		}
		text := set.String()
		back, err := fl.ParseSet(text)
		if err != nil || !back.Equal(set) || back.String() != text {
			t.Fatalf("%q -> %q does not read back: %v", s, text, err)
		}
		if !set.Clone().Equal(set) || !set.ContainsSet(set) || !set.ContainsSet(fl.EmptySet()) {
			t.Fatalf("%q: Clone/ContainsSet", s)
		}
		ev, err := fl.FileHeaderEvent(set, 1, 2, 3, binlog.ChecksumCRC32)
		if err != nil {
			t.Fatal(err)
		}
		if dec, err := fl.FileHeaderSet(ev, binlog.ChecksumCRC32); err != nil || !dec.Equal(set) {
			t.Fatalf("%q: file header round trip: %v, %v", s, dec, err)
		}
	})
}

// FuzzDecoders feeds arbitrary bytes to every decoder: none may panic.
func FuzzDecoders(f *testing.F) {
	for _, fl := range flavors() {
		raw, _ := binlogtest.Txn(fl, gtidFor(fl, 1), 1, 4, 0)
		f.Add(firstEvent(raw))
		f.Add(binlogtest.FDE(fl, 1))
		ev, _ := fl.FileHeaderEvent(mustSetF(fl, map[bool]string{false: u1 + ":1-3:a:5", true: "0-1-2,3-4-5"}[fl.Name() == "mariadb"]), 0, 1, 4, binlog.ChecksumCRC32)
		f.Add(ev)
	}
	raw, _ := binlogtest.Txn(binlog.MySQL(), u1+":tag:7", 1, 4, 0)
	f.Add(firstEvent(raw))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, alg := range []binlog.ChecksumAlg{binlog.ChecksumNone, binlog.ChecksumCRC32} {
			for _, fl := range flavors() {
				if g, ok, err := fl.GTIDOfEvent(b, alg); ok && err == nil {
					if _, err := fl.ParseGTID(g); err != nil {
						t.Fatalf("GTIDOfEvent gave %q: %v", g, err)
					}
				}
				if s, err := fl.FileHeaderSet(b, alg); err == nil {
					if _, err := fl.ParseSet(s.String()); err != nil {
						t.Fatalf("FileHeaderSet gave %q: %v", s, err)
					}
				}
			}
			_ = binlog.Relocate(append([]byte{}, b...), 5, alg)
			_ = binlog.VerifyChecksum(b, alg)
		}
		_, _ = binlog.FDEChecksumAlg(b)
		_, _ = binlog.PrepareFDE(b, 4)
		_ = binlog.ServerVersion(b)
		if len(b) > binlog.HeaderLen {
			_, _ = binlog.DecodeMySQLSet(b[binlog.HeaderLen:])
		}
	})
}

func mustSetF(f binlog.Flavor, s string) binlog.Set {
	set, err := f.ParseSet(s)
	if err != nil {
		panic(err)
	}
	return set
}

func firstEvent(raw []byte) []byte {
	evs, err := binlog.SplitEvents(raw)
	if err != nil {
		panic(err)
	}
	return evs[0]
}
