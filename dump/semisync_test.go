package dump

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
)

func TestSemiWanted(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want bool
	}{
		{map[string]string{}, false},
		{map[string]string{"rpl_semi_sync_replica": "1", "rpl_semi_sync_slave": "1"}, true}, // MySQL 8.0.26+
		{map[string]string{"rpl_semi_sync_slave": "1"}, true},                               // MariaDB, older MySQL
		{map[string]string{"rpl_semi_sync_replica": "1"}, true},
		{map[string]string{"rpl_semi_sync_slave": "0"}, false},
		{map[string]string{"rpl_semi_sync_slave": " 1 "}, true},
		{map[string]string{"rpl_semi_sync_slave": "abc"}, false},
		{map[string]string{"master_heartbeat_period": "1"}, false},
	} {
		if got := semiWanted(tc.vars); got != tc.want {
			t.Errorf("semiWanted(%v) = %v, want %v", tc.vars, got, tc.want)
		}
	}
}

func TestParseAck(t *testing.T) {
	good := binlog.AppendSemiSyncAck(nil, "binlog.000003", 1586)
	if a, err := parseAck(good); err != nil || a != (ack{File: "binlog.000003", Pos: 1586}) {
		t.Fatalf("parseAck(%x) = %+v, %v", good, a, err)
	}
	// The bytes a MariaDB replica sends (protocol.md 2.2), with its name.
	wire := append([]byte{0xef, 0x32, 0x06, 0, 0, 0, 0, 0, 0}, "binlog.000001"...)
	if a, err := parseAck(wire); err != nil || a.Pos != 1586 || a.File != "binlog.000001" {
		t.Errorf("parseAck(wire) = %+v, %v", a, err)
	}
	if a, err := parseAck(append(append([]byte(nil), good...), 0)); err != nil || a.File != "binlog.000003" {
		t.Errorf("an ACK with the name's NUL: %+v, %v", a, err)
	}
	for _, tc := range []struct {
		name string
		p    []byte
		want string
	}{
		{"empty", nil, "does not start with 0xEF"},
		{"not magic", append([]byte{0xee}, good[1:]...), "does not start with 0xEF"},
		{"magic only", []byte{0xef}, "1 bytes"},
		{"no name", good[:9], "9 bytes"},
		{"short position", good[:5], "5 bytes"},
		{"long name", append(append([]byte(nil), good[:9]...), strings.Repeat("b", 512)...), "file name of 512 bytes"},
		{"foreign name", binlog.AppendSemiSyncAck(nil, "mysql-bin.000001", 4), "not a binlog file name of this fleet"},
		{"name with junk", binlog.AppendSemiSyncAck(nil, "binlog.00000x", 4), "not a binlog file name of this fleet"},
	} {
		_, err := parseAck(tc.p)
		if !errors.Is(err, ErrBadAck) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: parseAck = %v, want ErrBadAck with %q", tc.name, err, tc.want)
		}
	}
}

func TestRecordAckOnlyMovesForward(t *testing.T) {
	var st ClientStatus
	t0 := time.Unix(1000, 0)
	steps := []struct {
		a        ack
		wantFile string
		wantPos  uint64
	}{
		{ack{"binlog.000001", 500}, "binlog.000001", 500},
		{ack{"binlog.000001", 900}, "binlog.000001", 900},
		{ack{"binlog.000001", 700}, "binlog.000001", 900}, // older: counted, ignored
		{ack{"binlog.000002", 200}, "binlog.000002", 200}, // a later file, a smaller position
		{ack{"binlog.000001", 9999}, "binlog.000002", 200},
		{ack{"binlog.1000000", 4}, "binlog.1000000", 4}, // numbers, not text, order files
	}
	for i, s := range steps {
		recordAck(&st, s.a, t0.Add(time.Duration(i)*time.Second))
		if st.AckFile != s.wantFile || st.AckPos != s.wantPos {
			t.Fatalf("step %d: %s:%d, want %s:%d", i, st.AckFile, st.AckPos, s.wantFile, s.wantPos)
		}
	}
	if st.Acks != uint64(len(steps)) || !st.AckTime.Equal(t0.Add(5*time.Second)) {
		t.Errorf("acks %d at %v", st.Acks, st.AckTime)
	}
}

// queryEv is a QUERY event of statement q in database db (CRC32).
func queryEv(db, q string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 8) // thread id
	b = binary.LittleEndian.AppendUint32(b, 0)    // exec time
	b = append(b, byte(len(db)))
	b = binary.LittleEndian.AppendUint16(b, 0) // error code
	status := []byte{0x00, 0, 0, 0, 0}         // Q_FLAGS2_CODE
	b = binary.LittleEndian.AppendUint16(b, uint16(len(status)))
	b = append(b, status...)
	b = append(b, db...)
	b = append(b, 0)
	b = append(b, q...)
	return binlog.NewEvent(binlog.TypeQuery, 1, 1, 100, 0, b, binlog.ChecksumCRC32)
}

func ev(typ byte, body ...byte) []byte {
	return binlog.NewEvent(typ, 1, 1, 100, 0, body, binlog.ChecksumCRC32)
}

// mariaGTID is a MariaDB GTID event; standalone marks a DDL.
func mariaGTID(standalone bool) []byte {
	b := binary.LittleEndian.AppendUint64(nil, 7) // seq_no
	b = binary.LittleEndian.AppendUint32(b, 0)    // domain
	flags := byte(0x0c)
	if standalone {
		flags |= 0x01
	}
	return ev(binlog.TypeMariaDBGTID, append(b, flags)...)
}

func TestTxEnds(t *testing.T) {
	split := func(raw []byte) [][]byte {
		evs, err := binlog.SplitEvents(raw)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	mysqlTxn, _ := binlogtest.Txn(binlog.MySQL(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:5", 1, 4, 400)
	mariaTxn, _ := binlogtest.Txn(binlog.MariaDB(), "0-1-5", 1, 4, 400)
	mysqlGTID := split(mysqlTxn)[0]
	rows := ev(30, 1, 2, 3) // WRITE_ROWS
	tm := ev(binlog.TypeTableMap, 1, 2, 3)
	for _, tc := range []struct {
		name string
		evs  [][]byte
		ends []int // indexes of the events that end a transaction
	}{
		{"mysql transaction", split(mysqlTxn), []int{3}},
		{"mariadb transaction", split(mariaTxn), []int{2}},
		{"two in a row", append(split(mysqlTxn), split(mysqlTxn)...), []int{3, 7}},
		{"mysql DDL", [][]byte{mysqlGTID, queryEv("w", "CREATE TABLE t (a INT)")}, []int{1}},
		{"mysql row transaction", [][]byte{mysqlGTID, queryEv("", "BEGIN"), tm, rows, ev(binlog.TypeXID, 1, 0, 0, 0, 0, 0, 0, 0)}, []int{4}},
		{"mysql non-transactional commit", [][]byte{mysqlGTID, queryEv("", "BEGIN"), tm, rows, queryEv("", "COMMIT")}, []int{4}},
		{"mysql compressed", [][]byte{mysqlGTID, ev(binlog.TypeTransactionPayload, 1, 2)}, []int{1}},
		{"mysql XA", [][]byte{mysqlGTID, queryEv("", "XA START X'01',X'',1"), tm, rows, queryEv("", "XA END X'01',X'',1"), ev(binlog.TypeXAPrepare, 0, 1),
			mysqlGTID, queryEv("", "XA COMMIT X'01',X'',1")}, []int{5, 7}},
		{"a COMMIT-like name is not a COMMIT", [][]byte{mysqlGTID, queryEv("", "BEGIN"), queryEv("", "COMMITTED_THINGS"), ev(binlog.TypeXID, 1, 0, 0, 0, 0, 0, 0, 0)}, []int{3}},
		{"mariadb DDL", [][]byte{mariaGTID(true), queryEv("w", "CREATE TABLE t (a INT)")}, []int{1}},
		{"mariadb MyISAM", [][]byte{mariaGTID(false), queryEv("w", "INSERT INTO m VALUES (1)"), queryEv("", "COMMIT")}, []int{2}},
		{"mariadb annotate and rows", [][]byte{mariaGTID(false), ev(binlog.TypeAnnotateRows, 'x'), tm, rows, ev(binlog.TypeXID, 1, 0, 0, 0, 0, 0, 0, 0)}, []int{4}},
		{"mariadb XA prepare", [][]byte{mariaGTID(false), tm, rows, ev(binlog.TypeMariaDBXAPrepare, 1)}, []int{3}},
		{"file events are no ends", [][]byte{ev(binlog.TypeRotate, 4, 0, 0, 0, 0, 0, 0, 0, 'b'), ev(binlog.TypePreviousGTIDs, 0, 0, 0, 0, 0, 0, 0, 0),
			ev(binlog.TypeCheckpoint, 1, 0, 0, 0, 'b'), ev(binlog.TypeHeartbeat, 'b')}, nil},
		{"an XID outside a transaction (a dump that started mid-way) is no end", [][]byte{ev(binlog.TypeXID, 1, 0, 0, 0, 0, 0, 0, 0)}, nil},
		{"a truncated query", [][]byte{mysqlGTID, ev(binlog.TypeQuery, 1, 2)}, []int{1}}, // not BEGIN: a statement
	} {
		var tr txEnds
		var got []int
		for i, e := range tc.evs {
			if tr.end(e, binlog.ChecksumCRC32) {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, tc.ends) {
			t.Errorf("%s: ends at %v, want %v", tc.name, got, tc.ends)
		}
	}
}

func TestQueryOf(t *testing.T) {
	if q := string(queryOf(queryEv("db1", "DROP TABLE x"), binlog.ChecksumCRC32)); q != "DROP TABLE x" {
		t.Errorf("queryOf = %q", q)
	}
	if q := queryOf(ev(binlog.TypeQuery, 1), binlog.ChecksumCRC32); q != nil {
		t.Errorf("queryOf(short) = %q", q)
	}
	// A status-variables length past the event's end.
	bad := queryEv("", "BEGIN")
	binary.LittleEndian.PutUint16(bad[binlog.HeaderLen+11:], 60000)
	if q := queryOf(bad, binlog.ChecksumCRC32); q != nil {
		t.Errorf("queryOf(bad lengths) = %q", q)
	}
}

// FuzzSemiSyncInput: what a semi-sync replica sends (ACKs) and the events
// the transaction tracker reads never panic; a decoded ACK encodes back to
// the same packet (without a trailing NUL).
func FuzzSemiSyncInput(f *testing.F) {
	f.Add(binlog.AppendSemiSyncAck(nil, "binlog.000001", 1586))
	f.Add([]byte{0xef})
	f.Add(queryEv("db", "BEGIN"))
	f.Add(mariaGTID(false))
	f.Fuzz(func(t *testing.T, in []byte) {
		if a, err := parseAck(in); err == nil {
			if out := binlog.AppendSemiSyncAck(nil, a.File, a.Pos); !strings.HasPrefix(string(in), string(out)) || strings.Trim(string(in[len(out):]), "\x00") != "" {
				t.Fatalf("ACK %x decodes to %+v, which encodes to %x", in, a, out)
			}
		} else if !errors.Is(err, ErrBadAck) {
			t.Fatalf("parseAck: %v, want ErrBadAck", err)
		}
		var tr txEnds
		for _, alg := range []binlog.ChecksumAlg{binlog.ChecksumCRC32, binlog.ChecksumNone} {
			tr.end(in, alg)
			tr.end(in, alg)
		}
	})
}
