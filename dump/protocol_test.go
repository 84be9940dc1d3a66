package dump_test

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlogsvr/binlogsvr/dump"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
)

// synthFleet is a one-member log with synthetic transactions and a dump
// server over it.
type synthFleet struct {
	node *logger.Node
	syn  *dumptest.Synthetic
	srv  *dump.Server
}

func newSynthFleet(t *testing.T, flav binlog.Flavor, maxFile int) *synthFleet {
	t.Helper()
	cl := loggertest.New(t, 1, loggertest.Options{})
	node := cl.Leader(30 * time.Second)
	if maxFile > 0 {
		dumptest.SetMaxFileSize(t, node, maxFile)
	}
	f := &synthFleet{node: node, syn: dumptest.NewSynthetic(t, node, flav)}
	f.srv = dumptest.Serve(t, node, nil)
	return f
}

func (f *synthFleet) dial(t *testing.T) *dumptest.DumpClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dumptest.Dial(ctx, f.srv.Addr(), dumptest.DumpUser, dumptest.DumpPassword)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustExec(t *testing.T, c *dumptest.DumpClient, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := c.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func header(t *testing.T, ev []byte) binlog.Header {
	t.Helper()
	h, err := binlog.ParseHeader(ev)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func crcOK(ev []byte) bool {
	n := len(ev) - 4
	return n > 0 && crc32.ChecksumIEEE(ev[:n]) == binary.LittleEndian.Uint32(ev[n:])
}

// TestEventSequence checks the events a dump starts with, as a MariaDB or
// MySQL source sends them: the fake ROTATE (with a CRC only for a client
// that declared CRC32), the FDE (in-use flag cleared, created and log_pos
// zeroed when starting past position 4, checksum valid), the file header
// event, the transactions, the real ROTATE, fake ROTATE and FDE of the next
// file, and EOF at the end of a non-blocking dump.
func TestEventSequence(t *testing.T) {
	t.Parallel()
	f := newSynthFleet(t, binlog.MariaDB(), 8192)
	f.syn.MustAppend(t, 30, 600)
	files, _ := f.node.Reader().Files()
	if len(files) < 2 {
		t.Fatalf("want 2+ files, got %d", len(files))
	}

	for _, tc := range []struct {
		name     string
		checksum string
		pos      uint32
	}{{"unaware client", "", 4}, {"CRC32 client", "SET @master_binlog_checksum='CRC32'", 4}, {"past pos 4", "SET @master_binlog_checksum=@@global.binlog_checksum", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.dial(t)
			if tc.checksum != "" {
				mustExec(t, c, tc.checksum)
			}
			pos := tc.pos
			if pos == 0 {
				pos = uint32(files[0].HeaderEnd)
			}
			c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(pos, dumptest.NonBlock, 0, files[0].Name()))
			evs, err := c.All()
			if err != nil {
				t.Fatal(err)
			}
			rot := header(t, evs[0])
			wantLen := 19 + 8 + len("binlog.000001")
			if tc.checksum != "" {
				wantLen += 4
				if !crcOK(evs[0]) {
					t.Errorf("fake rotate CRC invalid")
				}
			}
			if rot.Type != binlog.TypeRotate || rot.Timestamp != 0 || rot.LogPos != 0 || rot.Flags != binlog.FlagArtificial || len(evs[0]) != wantLen {
				t.Errorf("fake rotate %+v len %d, want artificial, ts 0, log_pos 0, len %d", rot, len(evs[0]), wantLen)
			}
			if got := binary.LittleEndian.Uint64(evs[0][19:]); got != uint64(pos) {
				t.Errorf("fake rotate position %d, want %d", got, pos)
			}
			fde := header(t, evs[1])
			created := binary.LittleEndian.Uint32(evs[1][19+2+50:])
			if fde.Type != binlog.TypeFDE || fde.Flags&binlog.FlagInUse != 0 || !crcOK(evs[1]) {
				t.Errorf("FDE %+v crc ok %v", fde, crcOK(evs[1]))
			}
			if pos > 4 && (fde.LogPos != 0 || created != 0) {
				t.Errorf("FDE of a dump from %d: log_pos %d created %d, want 0 and 0", pos, fde.LogPos, created)
			}
			if pos == 4 {
				if h := header(t, evs[2]); h.Type != binlog.TypeMariaDBGTIDList {
					t.Errorf("third event type %d, want GTID_LIST", h.Type)
				}
			} else if h := header(t, evs[2]); h.Type != binlog.TypeMariaDBGTID {
				t.Errorf("first event from HeaderEnd: type %d, want GTID", h.Type)
			}
			// Find the file switch: real rotate, fake rotate with CRC, FDE.
			for i, ev := range evs[2:] {
				h := header(t, ev)
				if h.Type != binlog.TypeRotate {
					continue
				}
				next, next2 := header(t, evs[i+3]), header(t, evs[i+4])
				if h.Flags != 0 || next.Type != binlog.TypeRotate || next.Flags != binlog.FlagArtificial || !crcOK(evs[i+3]) || next2.Type != binlog.TypeFDE {
					t.Errorf("file switch: %+v, then %+v (crc %v), then %+v", h, next, crcOK(evs[i+3]), next2)
				}
				if c := binary.LittleEndian.Uint32(evs[i+4][19+2+50:]); c != 0 {
					t.Errorf("FDE of the next file: created %d, want 0", c)
				}
				break
			}
			for i, ev := range evs[1:] {
				if !crcOK(ev) {
					t.Errorf("event %d (type %d) has a bad CRC", i+1, ev[4])
				}
			}
		})
	}
}

// TestGTIDDumps: a MariaDB GTID dump skips what the client has and sends
// the artificial GTID_LIST just before the first group; a MySQL
// COM_BINLOG_DUMP_GTID skips the client's set.
func TestGTIDDumps(t *testing.T) {
	t.Parallel()
	t.Run("mariadb", func(t *testing.T) {
		t.Parallel()
		f := newSynthFleet(t, binlog.MariaDB(), 0)
		f.syn.MustAppend(t, 10, 300)
		c := f.dial(t)
		mustExec(t, c, "SET @mariadb_slave_capability=4", "SET @slave_connect_state='0-1-6'", "SET @slave_gtid_strict_mode=1")
		c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, dumptest.NonBlock, 0, ""))
		evs, err := c.All()
		if err != nil {
			t.Fatal(err)
		}
		var gtids []string
		for _, ev := range evs {
			if g, ok, _ := binlog.MariaDB().GTIDOfEvent(ev, binlog.ChecksumCRC32); ok {
				gtids = append(gtids, g)
			}
			if ev[4] == binlog.TypeMariaDBGTIDList && header(t, ev).Flags == binlog.FlagArtificial {
				set, err := binlog.MariaDB().FileHeaderSet(ev, binlog.ChecksumCRC32)
				if err != nil || set.String() != "0-1-6" || len(gtids) != 0 {
					t.Errorf("fake GTID_LIST %v (%v) after %d GTIDs, want 0-1-6 before any", set, err, len(gtids))
				}
			}
		}
		if strings.Join(gtids, ",") != "0-1-7,0-1-8,0-1-9,0-1-10" {
			t.Errorf("GTIDs sent: %v", gtids)
		}
	})
	t.Run("mysql", func(t *testing.T) {
		t.Parallel()
		f := newSynthFleet(t, binlog.MySQL(), 0)
		gt := f.syn.MustAppend(t, 10, 300)
		set, _ := binlog.MySQL().ParseSet(dumptest.SyntheticSourceUUID + ":1-4:6")
		enc, _ := binlog.EncodeMySQLSet(set)
		c := f.dial(t)
		c.Send(mysql.COM_BINLOG_DUMP_GTID, dumptest.DumpGTIDPayload(dumptest.NonBlock, 0, "", 4, enc))
		evs, err := c.All()
		if err != nil {
			t.Fatal(err)
		}
		var gtids []string
		for _, ev := range evs {
			if g, ok, _ := binlog.MySQL().GTIDOfEvent(ev, binlog.ChecksumCRC32); ok {
				gtids = append(gtids, g)
			}
		}
		want := []string{gt[4], gt[6], gt[7], gt[8], gt[9]}
		if strings.Join(gtids, ",") != strings.Join(want, ",") {
			t.Errorf("GTIDs sent: %v, want %v", gtids, want)
		}
		// Extra GTIDs of the source are refused once --dump-ahead-wait
		// has passed without the log getting them.
		f.srv = dumptest.Serve(t, f.node, func(c *dump.Config) { c.AheadWait = 500 * time.Millisecond })
		bad, _ := binlog.MySQL().ParseSet(dumptest.SyntheticSourceUUID + ":1-50")
		enc, _ = binlog.EncodeMySQLSet(bad)
		c = f.dial(t)
		t0 := time.Now()
		c.Send(mysql.COM_BINLOG_DUMP_GTID, dumptest.DumpGTIDPayload(0, 0, "", 4, enc))
		_, err = c.Next()
		dumptest.WantMySQLError(t, "replica ahead of the log", err, 1236, "more GTIDs than the master")
		if d := time.Since(t0); d < 500*time.Millisecond {
			t.Errorf("refused after %v, before --dump-ahead-wait 500ms", d)
		}
	})
}

// TestAheadWaits: a replica that holds transactions this member has not
// stored yet (the member restarted, or follows behind) is not refused at
// once: its dump waits for the log and starts when the log has them.
func TestAheadWaits(t *testing.T) {
	t.Parallel()
	for _, flav := range []binlog.Flavor{binlog.MariaDB(), binlog.MySQL()} {
		t.Run(flav.Name(), func(t *testing.T) {
			t.Parallel()
			f := newSynthFleet(t, flav, 0)
			f.syn.MustAppend(t, 10, 300)
			c := f.dial(t)
			if flav.Name() == "mariadb" {
				mustExec(t, c, "SET @mariadb_slave_capability=4", "SET @slave_connect_state='0-1-15'", "SET @slave_gtid_strict_mode=1")
				c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, 0, ""))
			} else {
				set, _ := binlog.MySQL().ParseSet(dumptest.SyntheticSourceUUID + ":1-15")
				enc, _ := binlog.EncodeMySQLSet(set)
				c.Send(mysql.COM_BINLOG_DUMP_GTID, dumptest.DumpGTIDPayload(0, 0, "", 4, enc))
			}
			t0 := time.Now()
			go func() {
				time.Sleep(700 * time.Millisecond)
				if _, err := f.syn.Append(context.Background(), 10, 300); err != nil {
					t.Errorf("append: %v", err)
				}
			}()
			var gtids []string
			for len(gtids) < 5 {
				ev, err := c.Next()
				if err != nil {
					t.Fatalf("after %v, with %d GTIDs: %v", time.Since(t0), len(gtids), err)
				}
				if g, ok, _ := flav.GTIDOfEvent(ev, binlog.ChecksumCRC32); ok {
					gtids = append(gtids, g)
				}
			}
			if waited := time.Since(t0); waited < 600*time.Millisecond {
				t.Errorf("the dump started after %v, before the log had what the replica holds", waited)
			}
			want := []string{f.syn.GTID(16), f.syn.GTID(17), f.syn.GTID(18), f.syn.GTID(19), f.syn.GTID(20)}
			if strings.Join(gtids, ",") != strings.Join(want, ",") {
				t.Errorf("GTIDs sent: %v, want %v", gtids, want)
			}
		})
	}
}

// TestTailAndHeartbeats: a blocking dump gets new commits as they apply,
// heartbeats (v1; MySQL v2 when flag 0x02 asks) while idle, and events
// larger than a 16 MiB packet intact.
func TestTailAndHeartbeats(t *testing.T) {
	t.Parallel()
	for _, flav := range []binlog.Flavor{binlog.MariaDB(), binlog.MySQL()} {
		t.Run(flav.Name(), func(t *testing.T) {
			t.Parallel()
			f := newSynthFleet(t, flav, 0)
			f.syn.MustAppend(t, 3, 300)
			c := f.dial(t)
			mustExec(t, c, "SET @master_heartbeat_period=50000000", "SET @master_binlog_checksum=@@global.binlog_checksum")
			wantHB := binlog.TypeHeartbeat
			flags := uint16(0)
			if flav.Name() == "mysql" {
				wantHB, flags = binlog.TypeHeartbeatV2, 0x02
			}
			c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, flags, 0, ""))
			c.C.SetReadDeadline(time.Now().Add(30 * time.Second))
			seen := func(pred func([]byte) bool) []byte {
				t.Helper()
				for {
					ev, err := c.Next()
					if err != nil {
						t.Fatalf("next: %v", err)
					}
					if pred(ev) {
						return ev
					}
				}
			}
			hb := seen(func(ev []byte) bool { return ev[4] == binlog.TypeHeartbeat || ev[4] == binlog.TypeHeartbeatV2 })
			if hb[4] != wantHB || !crcOK(hb) || !strings.Contains(string(hb), "binlog.000001") {
				t.Errorf("heartbeat type %d crc %v body %q, want type %d", hb[4], crcOK(hb), hb[19:], wantHB)
			}
			if wantHB == binlog.TypeHeartbeat {
				if h := header(t, hb); uint64(h.LogPos) != f.node.Reader().State().Pos {
					t.Errorf("heartbeat log_pos %d, want the end %d", h.LogPos, f.node.Reader().State().Pos)
				}
			}
			// A new commit arrives promptly; so does an event over 16 MiB.
			start := time.Now()
			gt := f.syn.MustAppend(t, 1, 300)
			seen(func(ev []byte) bool { g, ok, _ := flav.GTIDOfEvent(ev, binlog.ChecksumCRC32); return ok && g == gt[0] })
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("a new commit took %v to reach the client", d)
			}
			big := f.syn.MustAppend(t, 1, 17<<20)
			seen(func(ev []byte) bool { g, ok, _ := flav.GTIDOfEvent(ev, binlog.ChecksumCRC32); return ok && g == big[0] })
			ev := seen(func(ev []byte) bool { return len(ev) > 16<<20 })
			if !crcOK(ev) {
				t.Errorf("the %d-byte event arrived corrupted", len(ev))
			}
		})
	}
}

// TestSessions: one dump per server id (the newer replaces the older, which
// gets error 4052), KILL, SHOW SLAVE HOSTS, Clients, and the probe SQL.
func TestSessions(t *testing.T) {
	t.Parallel()
	f := newSynthFleet(t, binlog.MariaDB(), 0)
	f.syn.MustAppend(t, 5, 300)
	reg := func(c *dumptest.DumpClient, id uint32) {
		t.Helper()
		p := binary.LittleEndian.AppendUint32(nil, id)
		p = append(p, 9)
		p = append(p, "127.0.0.9"...)
		p = append(p, 0, 0)
		p = binary.LittleEndian.AppendUint16(p, 3399)
		p = append(p, 0, 0, 0, 0, 0, 0, 0, 0)
		if err := c.Send(mysql.COM_REGISTER_SLAVE, p); err != nil {
			t.Fatal(err)
		}
		if _, err := c.C.ReadOKPacket(); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	a := f.dial(t)
	reg(a, 77)
	a.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, 77, ""))
	if _, err := a.Next(); err != nil {
		t.Fatal(err)
	}
	admin := f.dial(t)
	r, err := admin.Exec("SHOW SLAVE HOSTS")
	if err != nil || r.RowNumber() != 1 {
		t.Fatalf("SHOW SLAVE HOSTS: %v rows, %v", r, err)
	}
	if id, _ := r.GetInt(0, 0); id != 77 {
		t.Errorf("SHOW SLAVE HOSTS lists server id %d, want 77", id)
	}

	b := f.dial(t)
	b.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, 77, ""))
	if _, err := b.Next(); err != nil {
		t.Fatal(err)
	}
	a.C.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, err := a.Next()
		if err != nil {
			dumptest.WantMySQLError(t, "replaced dump", err, 4052, "same server_uuid/server_id")
			break
		}
	}

	// KILL the newer dump by its connection id.
	var id uint32
	for _, st := range f.srv.Clients() {
		if st.Dumping && st.ServerID == 77 {
			id = st.ID
		}
	}
	if id == 0 {
		t.Fatalf("Clients() shows no dump of server id 77: %+v", f.srv.Clients())
	}
	if _, err := admin.Exec("KILL " + itoa(id)); err != nil {
		t.Fatalf("KILL: %v", err)
	}
	b.C.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err := b.Next(); err != nil {
			var me *mysql.MyError
			if errors.As(err, &me) {
				t.Errorf("killed dump got %v, want the connection closed", err)
			}
			break
		}
	}

	// Probe SQL.
	for _, q := range []struct{ sql, want string }{
		{"SELECT @@GLOBAL.SERVER_ID", "1919191919"},
		{"SHOW VARIABLES LIKE 'SERVER_ID'", "1919191919"},
		{"SELECT @@GLOBAL.gtid_domain_id", "0"},
		{"SELECT @@GLOBAL.gtid_current_pos", "0-1-5"},
		{"SHOW MASTER STATUS", "binlog.000001"},
		{"SHOW BINARY LOGS", "binlog.000001"},
		{"SELECT binlog_gtid_pos('binlog.000001', 4)", ""},
		{"select @@GLOBAL.binlog_checksum as checksum", "CRC32"},
		{"SHOW GLOBAL VARIABLES LIKE 'binlog_format'", "ROW"},
		{"SELECT @@global.rpl_semi_sync_source_enabled", "1"}, // semi-sync offered (the default)
		{"SELECT @@global.rpl_semi_sync_master_enabled", "1"},
		{"SELECT VERSION() AS version", "MariaDB"},
	} {
		r, err := admin.Exec(q.sql)
		if err != nil || r.RowNumber() == 0 {
			t.Errorf("%s: %v", q.sql, err)
			continue
		}
		got, _ := r.GetString(0, len(r.Fields)-1)
		if len(r.Fields) > 1 && q.sql[:4] == "SHOW" && strings.Contains(q.sql, "VARIABLES") {
			got, _ = r.GetString(0, 1)
		} else if strings.HasPrefix(q.sql, "SHOW") {
			got, _ = r.GetString(0, 0)
		}
		if !strings.Contains(got, q.want) {
			t.Errorf("%s: got %q, want %q", q.sql, got, q.want)
		}
	}
	if r, err := admin.Exec("SHOW VARIABLES LIKE 'rpl_semi_sync_master_enabled'"); err != nil || r.RowNumber() != 1 {
		t.Errorf("the MariaDB replica's semi-sync probe must find the row (semi-sync is offered by default): %v", err)
	}
	pos := f.node.Reader().State().Pos
	if r, err := admin.Exec("SELECT binlog_gtid_pos('binlog.000001', " + itoa(uint32(pos)) + ")"); err != nil {
		t.Errorf("binlog_gtid_pos: %v", err)
	} else if g, _ := r.GetString(0, 0); g != "0-1-5" {
		t.Errorf("binlog_gtid_pos at the end: %q, want 0-1-5", g)
	}
	if r, err := admin.Exec("SHOW BINLOG EVENTS LIMIT 3"); err != nil || r.RowNumber() != 3 {
		t.Errorf("SHOW BINLOG EVENTS LIMIT 3: %v", err)
	} else if typ, _ := r.GetString(0, 2); typ != "Format_desc" {
		t.Errorf("first event %q, want Format_desc", typ)
	}
}

func itoa(n uint32) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}
