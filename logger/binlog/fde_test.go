package binlog_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
	"github.com/go-mysql-org/go-mysql/replication"
)

// mkFDE builds an FDE by hand: version, a post-header table of n zeros and,
// if alg >= 0, the algorithm byte and 4 checksum bytes (a CRC32 if alg==1).
func mkFDE(version string, n int, alg int) []byte {
	b := binary.LittleEndian.AppendUint16(nil, 4)
	b = append(b, version...)
	b = append(b, make([]byte, 50-len(version))...)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = append(b, binlog.HeaderLen)
	b = append(b, make([]byte, n)...)
	if alg < 0 {
		return binlog.NewEvent(binlog.TypeFDE, 1, 1, 0, 0, b, binlog.ChecksumNone)
	}
	b = append(b, byte(alg))
	if alg == 1 {
		return binlog.NewEvent(binlog.TypeFDE, 1, 1, 0, 0, b, binlog.ChecksumCRC32)
	}
	return binlog.NewEvent(binlog.TypeFDE, 1, 1, 0, 0, append(b, 0, 0, 0, 0), binlog.ChecksumNone)
}

func TestFDEChecksumAlg(t *testing.T) {
	wrongType := binlogtest.FDE(binlog.MySQL(), 1)
	wrongType[4] = binlog.TypeRotate
	badHeaderLen := mkFDE("8.0.36", 41, 1)
	badHeaderLen[19+2+50+4] = 20
	for _, tc := range []struct {
		name string
		fde  []byte
		want binlog.ChecksumAlg
		err  error
	}{
		{"mysql test FDE", binlogtest.FDE(binlog.MySQL(), 1), binlog.ChecksumCRC32, nil},
		{"mariadb test FDE", binlogtest.FDE(binlog.MariaDB(), 1), binlog.ChecksumCRC32, nil},
		{"mysql 8.0 none", mkFDE("8.0.36-log", 41, 0), binlog.ChecksumNone, nil},
		{"mysql 5.6.1 crc", mkFDE("5.6.1", 35, 1), binlog.ChecksumCRC32, nil},
		{"mysql 5.6.0 has no alg byte", mkFDE("5.6.0", 35, -1), binlog.ChecksumNone, nil},
		{"mysql 5.5 has no alg byte", mkFDE("5.5.62-log", 27, -1), binlog.ChecksumNone, nil},
		{"mariadb 5.3 crc", mkFDE("5.3.0-MariaDB", 160, 1), binlog.ChecksumCRC32, nil},
		{"mariadb 5.2 has no alg byte", mkFDE("5.2.14-MariaDB", 160, -1), binlog.ChecksumNone, nil},
		{"mariadb 10.11 none", mkFDE("10.11.19-MariaDB-log", 171, 0), binlog.ChecksumNone, nil},
		{"unparsable version", mkFDE("banana", 20, -1), binlog.ChecksumNone, nil},
		{"unknown alg", mkFDE("8.0.36", 41, 7), 0, binlog.ErrMalformed},
		{"undef alg", mkFDE("8.0.36", 41, 255), 0, binlog.ErrMalformed},
		{"not an FDE", wrongType, 0, binlog.ErrMalformed},
		{"truncated", binlogtest.FDE(binlog.MySQL(), 1)[:60], 0, binlog.ErrMalformed},
		{"header length 20", badHeaderLen, 0, binlog.ErrMalformed},
		{"no room for alg", mkFDE("8.0.36", 0, -1), 0, binlog.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := binlog.FDEChecksumAlg(tc.fde)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("FDEChecksumAlg = %v, %v; want %v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestServerVersion(t *testing.T) {
	for _, tc := range []struct {
		fde  []byte
		want string
	}{
		{binlogtest.FDE(binlog.MySQL(), 1), binlogtest.MySQLVersion},
		{binlogtest.FDE(binlog.MariaDB(), 1), binlogtest.MariaDBVersion},
		{mkFDE("12345678901234567890123456789012345678901234567890", 0, -1), "12345678901234567890123456789012345678901234567890"},
		{[]byte{1, 2}, ""},
	} {
		if got := binlog.ServerVersion(tc.fde); got != tc.want {
			t.Errorf("ServerVersion = %q, want %q", got, tc.want)
		}
	}
}

func TestPrepareFDE(t *testing.T) {
	base := binlogtest.FDE(binlog.MariaDB(), 1)
	// A server sets IN_USE in place after computing the CRC without it.
	inUse := append([]byte{}, base...)
	inUse[17] |= byte(binlog.FlagInUse)
	// Some write it with the flag included in the CRC.
	inUseCRC := fixCRC(append([]byte{}, inUse...))
	corrupt := append([]byte{}, inUse...)
	corrupt[30] ^= 1
	none := mkFDE("8.0.36", 41, 0)
	none[17] |= byte(binlog.FlagInUse)
	for _, tc := range []struct {
		name string
		fde  []byte
		pos  uint32
		err  error
	}{
		{"clean", base, 256, nil},
		{"in use, crc without flag", inUse, 4 + uint32(len(base)), nil},
		{"in use, crc with flag", inUseCRC, 1000, nil},
		{"checksum none", none, 0, nil},
		{"corrupt", corrupt, 256, binlog.ErrBadChecksum},
		{"not an FDE", binlog.HeartbeatEvent(1, 4, "x", binlog.ChecksumCRC32), 0, binlog.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := append([]byte{}, tc.fde...)
			got, err := binlog.PrepareFDE(tc.fde, tc.pos)
			if !bytes.Equal(orig, tc.fde) {
				t.Fatal("PrepareFDE modified its input")
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("PrepareFDE = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			h, _ := binlog.ParseHeader(got)
			alg, _ := binlog.FDEChecksumAlg(got)
			if h.Flags&binlog.FlagInUse != 0 || h.LogPos != tc.pos || len(got) != len(tc.fde) {
				t.Fatalf("header %+v, len %d", h, len(got))
			}
			if err := binlog.VerifyChecksum(got, alg); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[binlog.HeaderLen:len(got)-4], tc.fde[binlog.HeaderLen:len(got)-4]) {
				t.Fatal("PrepareFDE changed the body")
			}
		})
	}
}

// The FDEs of binlogtest are what go-mysql expects, and so is a prepared
// copy: both parse with checksum verification in their flavor.
func TestFDEParses(t *testing.T) {
	for _, f := range flavors() {
		raw := binlogtest.FDE(f, 3)
		h, _ := binlog.ParseHeader(raw)
		if h.LogPos != 4+h.EventSize || h.ServerID != 3 || h.Flags != 0 || h.Timestamp != binlogtest.Timestamp {
			t.Errorf("%s: FDE header %+v", f.Name(), h)
		}
		prepared, err := binlog.PrepareFDE(raw, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, fde := range [][]byte{raw, prepared} {
			p := replication.NewBinlogParser()
			p.SetFlavor(f.Name())
			p.SetVerifyChecksum(true)
			e, err := p.Parse(fde)
			if err != nil {
				t.Fatalf("%s: %v", f.Name(), err)
			}
			got := e.Event.(*replication.FormatDescriptionEvent)
			if got.Version != 4 || got.ServerVersion != binlog.ServerVersion(raw) ||
				got.ChecksumAlgorithm != replication.BINLOG_CHECKSUM_ALG_CRC32 ||
				!bytes.Equal(got.EventTypeHeaderLengths, binlogtest.PostHeaderLengths(f)) {
				t.Errorf("%s: go-mysql reads %+v", f.Name(), got)
			}
		}
	}
}
