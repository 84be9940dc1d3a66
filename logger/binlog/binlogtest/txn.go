package binlogtest

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/bits"
	"strconv"
	"strings"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/google/uuid"
)

// SetupSQL creates the table the transactions of Txn insert into.
const SetupSQL = "CREATE DATABASE IF NOT EXISTS binlogsvr_bench; " +
	"CREATE TABLE IF NOT EXISTS binlogsvr_bench.t (v LONGTEXT) ENGINE=InnoDB"

// insertPrefix and insertSuffix frame the padding of the INSERT statement.
const (
	insertPrefix = "INSERT INTO binlogsvr_bench.t VALUES ('"
	insertSuffix = "')"
)

// Values written in the events, as the servers' defaults write them.
const (
	threadID          = 8
	mysqlSQLMode      = 1168113696 // ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION
	mariadbSQLMode    = 1411383296 // MariaDB 10.11's default
	mysqlServerVer    = 90704      // immediate_server_version of 9.7.4
	mysqlGTIDFlags    = 1          // FLAG_MAY_HAVE_SBR: the transaction has a statement
	mariadbGTIDFlags2 = 0x0c       // FL_TRANSACTIONAL | FL_ALLOW_PARALLEL
)

// Txn returns one whole transaction as the flavor's source writes it in its
// binlog with binlog_format=STATEMENT and CRC32 checksums, starting at
// startPos of the source's file, and the position where it ends. Each
// event's log_pos is its end position in that file.
//
// MySQL (serverID in every header): GTID_LOG_EVENT for "uuid:N"
// (GTID_TAGGED_LOG_EVENT for "uuid:tag:N") with last_committed N-1,
// sequence_number N and transaction_length set; QUERY "BEGIN"; QUERY INSERT;
// XID.
//
// MariaDB: GTID_EVENT for "d-s-n" (flags FL_TRANSACTIONAL|FL_ALLOW_PARALLEL);
// QUERY INSERT; XID. MariaDB writes no BEGIN query: its GTID event opens
// the transaction. Every header carries the GTID's server id s, which is
// how MariaDB conveys it; serverID is ignored.
//
// The INSERT is padded so the transaction is payloadBytes long: exactly,
// except a few bytes more where MySQL's length-encoded transaction_length
// changes size (at 64 KiB and 16 MiB), and never below the minimal
// transaction (282 bytes for MySQL, 177 for MariaDB). It panics on a GTID
// invalid for the flavor.
func Txn(f binlog.Flavor, gtid string, serverID uint32, startPos uint32, payloadBytes int) (raw []byte, endPos uint32) {
	g, err := f.ParseGTID(gtid)
	if err != nil {
		panic(fmt.Sprintf("binlogtest.Txn: %v", err))
	}
	build := func(pad int) []byte { return buildMySQL(g, serverID, startPos, pad) }
	if f.Name() == "mariadb" {
		build = func(pad int) []byte { return buildMariaDB(g, startPos, pad) }
	}
	pad := 0
	raw = build(pad)
	for i := 0; i < 3 && len(raw) != payloadBytes && pad+payloadBytes-len(raw) >= 0; i++ {
		pad += payloadBytes - len(raw)
		raw = build(pad)
	}
	return raw, startPos + uint32(len(raw))
}

// chain concatenates events and sets each one's log_pos to its end.
type chain struct {
	pos uint32
	out []byte
}

// add appends mk(end), where mk(pos) builds the event with log_pos pos.
func (c *chain) add(mk func(logPos uint32) []byte) {
	n := uint32(len(mk(0)))
	c.pos += n
	c.out = append(c.out, mk(c.pos)...)
}

func buildMySQL(gtid string, serverID, startPos uint32, pad int) []byte {
	parts := strings.Split(gtid, ":")
	sid := uuid.MustParse(parts[0])
	gno, _ := strconv.ParseInt(parts[len(parts)-1], 10, 64)
	tag := ""
	if len(parts) == 3 {
		tag = parts[1]
	}
	crc := binlog.ChecksumCRC32
	begin := func(pos uint32) []byte {
		return query(serverID, pos, binlog.FlagSuppressUse, mysqlStatus(), "BEGIN")
	}
	insert := func(pos uint32) []byte {
		return query(serverID, pos, 0, mysqlStatus(), insertPrefix+strings.Repeat("x", pad)+insertSuffix)
	}
	xid := func(pos uint32) []byte {
		return binlog.NewEvent(binlog.TypeXID, Timestamp, serverID, pos, 0, binary.LittleEndian.AppendUint64(nil, uint64(gno)), crc)
	}
	gtidEv := func(pos uint32, trxLen uint64) []byte {
		if tag != "" {
			return binlog.NewEvent(binlog.TypeGTIDTagged, Timestamp, serverID, pos, 0, taggedGTIDBody(sid, tag, gno, trxLen), crc)
		}
		return binlog.NewEvent(binlog.TypeGTID, Timestamp, serverID, pos, 0, gtidBody(sid, gno, trxLen), crc)
	}
	rest := len(begin(0)) + len(insert(0)) + len(xid(0))
	// NB: transaction_length counts the GTID event itself, whose size
	// depends on the length's encoding: iterate to the fixpoint.
	trxLen := uint64(rest)
	for {
		n := uint64(len(gtidEv(0, trxLen))) + uint64(rest)
		if n == trxLen {
			break
		}
		trxLen = n
	}
	c := chain{pos: startPos}
	c.add(func(pos uint32) []byte { return gtidEv(pos, trxLen) })
	c.add(begin)
	c.add(insert)
	c.add(xid)
	return c.out
}

// gtidBody is a GTID_LOG_EVENT body: flags, sid, gno, logical clock
// (type 2, last_committed, sequence_number), immediate commit timestamp (7
// bytes; top bit clear: the original is the same), transaction_length
// (length-encoded), immediate server version (4 bytes; top bit clear).
func gtidBody(sid uuid.UUID, gno int64, trxLen uint64) []byte {
	b := append([]byte{mysqlGTIDFlags}, sid[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(gno))
	b = append(b, 2)
	b = binary.LittleEndian.AppendUint64(b, uint64(gno-1))
	b = binary.LittleEndian.AppendUint64(b, uint64(gno))
	var ts [8]byte
	binary.LittleEndian.PutUint64(ts[:], uint64(Timestamp)*1e6)
	b = append(b, ts[:7]...)
	b = binlog.AppendLenEnc(b, trxLen)
	return binary.LittleEndian.AppendUint32(b, mysqlServerVer)
}

// taggedGTIDBody is a GTID_TAGGED_LOG_EVENT body in MySQL's serialization
// format: version 0, message size, last non-ignorable field id, then
// (field id, value) for fields 0 gtid_flags, 1 uuid (16 varlen bytes),
// 2 gno, 3 tag, 4 last_committed, 5 sequence_number,
// 6 immediate_commit_timestamp, 8 transaction_length and
// 9 immediate_server_version. The optional fields 7 and 10 (original
// timestamp and version, equal to the immediate ones) and 11 are left out,
// as MySQL leaves them out.
func taggedGTIDBody(sid uuid.UUID, tag string, gno int64, trxLen uint64) []byte {
	var f []byte
	f = appendVar(appendVar(f, 0), mysqlGTIDFlags)
	f = appendVar(f, 1)
	for _, c := range sid {
		f = appendVar(f, uint64(c))
	}
	f = appendVarInt(appendVar(f, 2), gno)
	f = append(appendVar(appendVar(f, 3), uint64(len(tag))), tag...)
	f = appendVarInt(appendVar(f, 4), gno-1)
	f = appendVarInt(appendVar(f, 5), gno)
	f = appendVar(appendVar(f, 6), uint64(Timestamp)*1e6)
	f = appendVar(appendVar(f, 8), trxLen)
	f = appendVar(appendVar(f, 9), mysqlServerVer)
	const lastNonIgnorable = 10 // field 9, plus one
	// NB: the size counts the fields and the two varlens before them, but
	// for its own varlen only the size of the fields' length, as MySQL's
	// get_size_serializable does.
	size := uint64(len(f) + varSize(uint64(len(f))) + varSize(lastNonIgnorable))
	b := appendVar(appendVar([]byte{0}, size), lastNonIgnorable)
	return append(b, f...)
}

func buildMariaDB(gtid string, startPos uint32, pad int) []byte {
	var domain, server uint32
	var seq uint64
	if _, err := fmt.Sscanf(gtid, "%d-%d-%d", &domain, &server, &seq); err != nil {
		panic(fmt.Sprintf("binlogtest.Txn: %q: %v", gtid, err))
	}
	crc := binlog.ChecksumCRC32
	c := chain{pos: startPos}
	c.add(func(pos uint32) []byte {
		b := binary.LittleEndian.AppendUint64(nil, seq)
		b = binary.LittleEndian.AppendUint32(b, domain)
		b = append(b, mariadbGTIDFlags2, 0, 0, 0, 0, 0, 0) // NB: 6 bytes of padding when no commit id
		return binlog.NewEvent(binlog.TypeMariaDBGTID, Timestamp, server, pos, binlog.FlagSuppressUse, b, crc)
	})
	c.add(func(pos uint32) []byte {
		return query(server, pos, 0, mariadbStatus(), insertPrefix+strings.Repeat("x", pad)+insertSuffix)
	})
	c.add(func(pos uint32) []byte {
		return binlog.NewEvent(binlog.TypeXID, Timestamp, server, pos, 0, binary.LittleEndian.AppendUint64(nil, seq), crc)
	})
	return c.out
}

// query builds a QUERY_EVENT with no default database: thread id,
// exec_time 0, db length 0, error 0, status variables, db "" + NUL, SQL.
func query(serverID, logPos uint32, flags uint16, status []byte, sql string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, threadID)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = append(b, 0, 0, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(status)))
	b = append(b, status...)
	b = append(b, 0)
	b = append(b, sql...)
	return binlog.NewEvent(binlog.TypeQuery, Timestamp, serverID, logPos, flags, b, binlog.ChecksumCRC32)
}

// Query status variable codes.
const (
	qFlags2  = 0
	qSQLMode = 1
	qCharset = 4
	qCatalog = 6
)

// status returns Q_FLAGS2, Q_SQL_MODE, Q_CATALOG_NZ "std" and Q_CHARSET
// (client charset, connection and server collation).
func status(flags2 uint32, sqlMode uint64, client, conn, server uint16) []byte {
	b := binary.LittleEndian.AppendUint32([]byte{qFlags2}, flags2)
	b = binary.LittleEndian.AppendUint64(append(b, qSQLMode), sqlMode)
	b = append(b, qCatalog, 3, 's', 't', 'd', qCharset)
	b = binary.LittleEndian.AppendUint16(b, client)
	b = binary.LittleEndian.AppendUint16(b, conn)
	return binary.LittleEndian.AppendUint16(b, server)
}

// mysqlStatus: utf8mb4 with utf8mb4_0900_ai_ci (255) everywhere.
func mysqlStatus() []byte { return status(0, mysqlSQLMode, 255, 255, 255) }

// mariadbStatus: as MariaDB 10.11 writes it: flags2 with
// explicit_defaults_for_timestamp (1<<24), utf8mb3 client 33, server 8.
func mariadbStatus() []byte { return status(1<<24, mariadbSQLMode, 33, 33, 8) }

// varSize is the length of v in MySQL's serialization varlen format.
func varSize(v uint64) int { return bits.Len64(v)*575>>12 + 1 }

// appendVar appends v in MySQL's serialization varlen format: n-1 trailing
// one bits and a zero bit give the length n, the value follows them.
func appendVar(b []byte, v uint64) []byte {
	n := varSize(v)
	b = append(b, byte(1<<(n-1)-1)|byte(v<<n))
	if n == 1 {
		return b
	}
	shift := 8 - n
	if n == 9 {
		shift = 0
	}
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], v>>shift)
	return append(b, buf[:n-1]...)
}

// appendVarInt appends a signed varlen integer: the sign moves to bit 0.
func appendVarInt(b []byte, v int64) []byte {
	m := uint64(v >> 63)
	return appendVar(b, (uint64(v)^m)<<1|m&1)
}

// Retag returns a copy of a transaction made by Txn whose GTID event names
// gtid instead (same domain/server or UUID shape; only the sequence number
// or GNO and the GTID event's checksum change). It is much cheaper than
// Txn, for load generators.
func Retag(f binlog.Flavor, raw []byte, gtid string) ([]byte, error) {
	g, err := f.ParseGTID(gtid)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), raw...)
	h, err := binlog.ParseHeader(out)
	if err != nil {
		return nil, err
	}
	ev := out[:h.EventSize]
	i := strings.LastIndexAny(g, ":-")
	n, err := strconv.ParseUint(g[i+1:], 10, 64)
	if err != nil {
		return nil, err
	}
	off := binlog.HeaderLen // MariaDB GTID_EVENT: seq_no first
	if f.Name() == "mysql" {
		off = binlog.HeaderLen + 1 + 16 // MySQL GTID_LOG_EVENT: flags, SID, GNO
	}
	binary.LittleEndian.PutUint64(ev[off:], n)
	c := len(ev) - binlog.ChecksumLen
	binary.LittleEndian.PutUint32(ev[c:], crc32.ChecksumIEEE(ev[:c]))
	if got, ok, err := f.GTIDOfEvent(ev, binlog.ChecksumCRC32); err != nil || !ok || got != g {
		return nil, fmt.Errorf("binlogtest.Retag: made %q (%v), want %q", got, err, g)
	}
	return out, nil
}
