package binlog_test

import (
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"testing"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
	"github.com/go-mysql-org/go-mysql/replication"
)

// flavors lists both flavors for tests that run on each.
func flavors() []binlog.Flavor { return []binlog.Flavor{binlog.MySQL(), binlog.MariaDB()} }

// gtidFor returns a valid GTID of the flavor with sequence n.
func gtidFor(f binlog.Flavor, n int) string {
	if f.Name() == "mariadb" {
		return "0-1-" + strconv.Itoa(n)
	}
	return "3e11fa47-71ca-11e1-9e33-c80aa9429562:" + strconv.Itoa(n)
}

// goParse parses events with go-mysql's parser in the flavor, checksum
// verification on, after feeding it fde (the flavor's test FDE if nil).
func goParse(t *testing.T, f binlog.Flavor, fde []byte, evs ...[]byte) []*replication.BinlogEvent {
	t.Helper()
	p := replication.NewBinlogParser()
	p.SetFlavor(f.Name())
	p.SetVerifyChecksum(true)
	if fde == nil {
		fde = binlogtest.FDE(f, 1)
	}
	var out []*replication.BinlogEvent
	for _, ev := range append([][]byte{fde}, evs...) {
		e, err := p.Parse(ev)
		if err != nil {
			t.Fatalf("go-mysql (%s) cannot parse type %d event: %v", f.Name(), ev[4], err)
		}
		out = append(out, e)
	}
	return out[1:]
}

// withAlg returns a copy of fde with checksum algorithm alg, its CRC fixed.
func withAlg(fde []byte, alg byte) []byte {
	out := append([]byte(nil), fde...)
	out[len(out)-5] = alg
	binary.LittleEndian.PutUint32(out[len(out)-4:], crc32.ChecksumIEEE(out[:len(out)-4]))
	return out
}

// fixCRC recomputes the CRC32 trailer of ev in place and returns ev.
func fixCRC(ev []byte) []byte {
	binary.LittleEndian.PutUint32(ev[len(ev)-4:], crc32.ChecksumIEEE(ev[:len(ev)-4]))
	return ev
}

// split splits raw into events, failing the test on error.
func split(t *testing.T, raw []byte) [][]byte {
	t.Helper()
	evs, err := binlog.SplitEvents(raw)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
