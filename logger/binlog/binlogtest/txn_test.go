package binlogtest_test

import (
	"testing"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
	"github.com/go-mysql-org/go-mysql/replication"
)

func TestTxn(t *testing.T) {
	for _, tc := range []struct {
		f       binlog.Flavor
		gtid    string
		payload int
		events  int
	}{
		{binlog.MySQL(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1", 0, 4},
		{binlog.MySQL(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:77", 1000, 4},
		{binlog.MySQL(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:77", 70000, 4},
		{binlog.MySQL(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:77", 1 << 20, 4},
		{binlog.MySQL(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:bench:5", 4096, 4},
		{binlog.MariaDB(), "0-1-1", 0, 3},
		{binlog.MariaDB(), "3-9-123456", 1000, 3},
		{binlog.MariaDB(), "3-9-123456", 1 << 20, 3},
	} {
		fde := binlogtest.FDE(tc.f, 5)
		start := uint32(4 + len(fde))
		raw, end := binlogtest.Txn(tc.f, tc.gtid, 5, start, tc.payload)
		if tc.payload > 300 && len(raw) != tc.payload {
			t.Errorf("%s: %d bytes, want %d", tc.gtid, len(raw), tc.payload)
		}
		if end != start+uint32(len(raw)) {
			t.Errorf("%s: end %d, want %d", tc.gtid, end, start+uint32(len(raw)))
		}
		evs, err := binlog.SplitEvents(raw)
		if err != nil || len(evs) != tc.events {
			t.Fatalf("%s: %d events, %v", tc.gtid, len(evs), err)
		}
		p := replication.NewBinlogParser()
		p.SetFlavor(tc.f.Name())
		p.SetVerifyChecksum(true)
		if _, err := p.Parse(fde); err != nil {
			t.Fatal(err)
		}
		pos := start
		for i, ev := range evs {
			e, err := p.Parse(ev)
			if err != nil {
				t.Fatalf("%s event %d: %v", tc.gtid, i, err)
			}
			pos += e.Header.EventSize
			if e.Header.LogPos != pos || e.Header.Timestamp != binlogtest.Timestamp {
				t.Errorf("%s event %d: header %+v", tc.gtid, i, e.Header)
			}
			switch g := e.Event.(type) {
			case *replication.GTIDEvent:
				if g.TransactionLength != uint64(len(raw)) || g.SequenceNumber != g.LastCommitted+1 {
					t.Errorf("%s: GTID event %+v, transaction of %d bytes", tc.gtid, g, len(raw))
				}
			case *replication.GtidTaggedLogEvent:
				if g.TransactionLength != uint64(len(raw)) || g.SequenceNumber != g.LastCommitted+1 {
					t.Errorf("%s: tagged GTID event %+v, transaction of %d bytes", tc.gtid, g, len(raw))
				}
			}
		}
		// Deterministic.
		again, _ := binlogtest.Txn(tc.f, tc.gtid, 5, start, tc.payload)
		if string(again) != string(raw) {
			t.Errorf("%s: two calls differ", tc.gtid)
		}
	}
}

func TestTxnPanicsOnBadGTID(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	binlogtest.Txn(binlog.MariaDB(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1", 1, 4, 0)
}
