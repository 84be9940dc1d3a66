package binlogtest

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// Server versions written in the FDEs.
const (
	MySQLVersion   = "9.7.4"
	MariaDBVersion = "10.11.19-MariaDB-log"
)

// Timestamp is the header timestamp of every event built here
// (2026-01-01T00:00:00Z).
const Timestamp uint32 = 1767225600

// mariadbPostHeaders is the post-header length table copied from the FDE of
// a MariaDB 10.11.19 binlog (171 types).
const mariadbPostHeaders = "" +
	"380d000800120004040404120000e400041a08000000080808020000000a0a0a" +
	"0000000000000a0a0a0000000000000000000000000000000000000000000000" +
	"0000000000000000000000000000000000000000000000000000000000000000" +
	"0000000000000000000000000000000000000000000000000000000000000000" +
	"0000000000000000000000000000000000000000000000000000000000000000" +
	"041304000d0808080a0a0a"

// PostHeaderLengths returns the post-header length table written in the
// flavor's FDE: entry i is for event type i+1. MySQL's is the 8.4/9.x table
// (42 types, up to GTID_TAGGED_LOG_EVENT) from Format_description_event's
// constructor in libs/mysql/binlog/event/control_events.cpp; the 40 at type
// 40 is MySQL's own (it stores the TRANSACTION_PAYLOAD_EVENT type code
// there). Types not listed have no post-header.
func PostHeaderLengths(f binlog.Flavor) []byte {
	if f.Name() == "mariadb" {
		return mustHex(mariadbPostHeaders)
	}
	t := make([]byte, 42)
	for typ, n := range map[int]byte{
		2: 13, 4: 8, 9: 4, 11: 4, 15: 2 + 50 + 4 + 1 + 42, 17: 4, 18: 13 + 13, 19: 8, 26: 2,
		30: 10, 31: 10, 32: 10, 33: 42, 34: 42, 36: 18, 37: 52, 39: 10, 40: 40,
	} {
		t[typ-1] = n
	}
	return t
}

// FDE returns a FORMAT_DESCRIPTION_EVENT as the flavor's source writes it at
// the start of a file: binlog version 4, server version MySQLVersion or
// MariaDBVersion, created 0 (as in every file but the first after a server
// start), the server's real post-header length table, checksum CRC32, flags
// 0 and log_pos = 4 + its length.
func FDE(f binlog.Flavor, serverID uint32) []byte {
	version := MySQLVersion
	if f.Name() == "mariadb" {
		version = MariaDBVersion
	}
	b := binary.LittleEndian.AppendUint16(nil, 4)
	b = append(b, version...)
	b = append(b, make([]byte, 50-len(version))...)
	b = binary.LittleEndian.AppendUint32(b, 0) // created
	b = append(b, binlog.HeaderLen)
	b = append(b, PostHeaderLengths(f)...)
	b = append(b, byte(binlog.ChecksumCRC32))
	n := uint32(binlog.HeaderLen + len(b) + binlog.ChecksumLen)
	return binlog.NewEvent(binlog.TypeFDE, Timestamp, serverID, uint32(len(binlog.Magic))+n, 0, b, binlog.ChecksumCRC32)
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(fmt.Sprintf("binlogtest: bad table: %v", err))
	}
	return b
}
