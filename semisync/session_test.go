package semisync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
	"github.com/binlogsvr/binlogsvr/logger/mysqltls"
)

// The tests in this file run the ingest (Ingester.Run: Probe, the session,
// the acker) against fakeSource and an in-process log group. NB: they run
// in parallel: each has its own source and group, and mostly waits (for
// elections, reconnect backoffs).

const waitLong = 15 * time.Second

// ingest is an Ingester running on the leader of an in-process group, its
// log seeded with the fake source.
type ingest struct {
	in   *Ingester
	c    *loggertest.Cluster
	node *logger.Node
}

func startIngest(t *testing.T, fs *fakeSource, members int, tune func(*Config)) *ingest {
	return startIngestWith(t, fs, members, tune, nil)
}

func startIngestWith(t *testing.T, fs *fakeSource, members int, tune func(*Config), tuneIn func(*Ingester)) *ingest {
	t.Helper()
	c := loggertest.New(t, members, loggertest.Options{})
	n := c.Leader(waitLong)
	src := logger.Source{Addr: fs.addr(), ServerID: 1, Flavor: fs.flav.Name()}
	start := fs.get("gtid_binlog_pos")
	if fs.flav.Name() == "mysql" {
		src.UUID, start = fs.get("server_uuid"), fs.get("gtid_executed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if res, err := n.Propose(ctx, &logger.SetSource{ExpectedEpoch: 0, NewEpoch: 1, Source: src, StartGTIDs: start}); err != nil || !res.Code.Stored() {
		t.Fatalf("seeding the log's source: %v %v", res.Code, err)
	}
	cfg := DefaultConfig()
	cfg.User, cfg.Password, cfg.ServerID = fs.user, fs.password, 101
	cfg.StatusInterval = 100 * time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	in, err := New(cfg, n, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if tuneIn != nil {
		tuneIn(in)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(rctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Ingester.Run: %v", err)
		}
	})
	return &ingest{in: in, c: c, node: n}
}

// waitStatus polls the ingest's status until ok accepts it.
func (g *ingest) waitStatus(t *testing.T, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		st := g.in.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest status: waited %v for %s; last %+v", waitLong, what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stream is the source's side of one dump: the fake rotate and the FDE,
// then transactions at increasing positions.
type stream struct {
	d    *dumpConn
	flav binlog.Flavor
	file string
	pos  uint32
}

func openStream(t *testing.T, d *dumpConn, flav binlog.Flavor, file string) *stream {
	t.Helper()
	d.send(binlog.RotateEvent(0, 1, 0, 0x20, file, 4, binlog.ChecksumCRC32), false)
	fde := binlogtest.FDE(flav, 1)
	d.send(fde, false)
	return &stream{d: d, flav: flav, file: file, pos: uint32(4 + len(fde))}
}

// txn sends one transaction and returns its end position.
func (s *stream) txn(gtid string, needAck bool) uint32 {
	raw, end := binlogtest.Txn(s.flav, gtid, 1, s.pos, 400)
	s.d.sendTxn(raw, needAck)
	s.pos = end
	return end
}

func TestSessionAcksOnlyStoredTransactions(t *testing.T) {
	t.Parallel()
	fs := newFakeSource(t, binlog.MariaDB())
	g := startIngest(t, fs, 1, nil)
	d := fs.nextDump(waitLong)

	// What the session asked for, as a MariaDB replica asks.
	if d.cmd[0] != mysql.COM_BINLOG_DUMP || d.dumpServerID() != 101 {
		t.Fatalf("dump command %x: want COM_BINLOG_DUMP for server_id 101", d.cmd)
	}
	for k, want := range map[string]string{"@slave_connect_state": "0-1-5", "@slave_gtid_strict_mode": "1",
		"@mariadb_slave_capability": "4", "@rpl_semi_sync_slave": "1"} {
		if got := d.vars[k]; got != want {
			t.Errorf("session variable %s = %q, want %q", k, got, want)
		}
	}
	fs.mu.Lock()
	regs := append([][]byte(nil), fs.registers...)
	fs.mu.Unlock()
	if len(regs) != 1 || binary.LittleEndian.Uint32(regs[0]) != 101 {
		t.Fatalf("COM_REGISTER_SLAVE payloads %x: want one for server_id 101", regs)
	}

	s := openStream(t, d, binlog.MariaDB(), "src-bin.000002")
	end6 := s.txn("0-1-6", true)
	a, err := d.ack(waitLong)
	if err != nil {
		t.Fatal(err)
	}
	// The ACK is sent only once the log holds the transaction: by the time
	// the source reads it, the leader's log has it.
	rec, err := g.node.Reader().FindGTID("0-1-6")
	if err != nil {
		t.Fatalf("the source got an ACK (%+v) for 0-1-6 the log does not hold: %v", a, err)
	}
	if a != (semiAck{"src-bin.000002", uint64(end6)}) {
		t.Fatalf("ACK %+v, want src-bin.000002:%d", a, end6)
	}
	if rec.SourceFile != "src-bin.000002" || rec.SourceEnd != uint64(end6) {
		t.Fatalf("stored record %+v: want the source's file and end position %d", rec, end6)
	}

	// A transaction that asks for no ACK gets none; the next ACK names the
	// newest one that asked.
	s.txn("0-1-7", false)
	end8 := s.txn("0-1-8", true)
	if a, err := d.ack(waitLong); err != nil || a != (semiAck{"src-bin.000002", uint64(end8)}) {
		t.Fatalf("ACK %+v (%v), want src-bin.000002:%d", a, err, end8)
	}
	for _, gtid := range []string{"0-1-7", "0-1-8"} {
		if _, err := g.node.Reader().FindGTID(gtid); err != nil {
			t.Errorf("%s ACKed but not in the log: %v", gtid, err)
		}
	}
	st := g.waitStatus(t, "the last ACK and the source's semi-sync in the status", func(st Status) bool {
		return st.LastAckGTID == "0-1-8" && st.SemiSync.Status
	})
	if st.State != StateStreaming || st.LastAckFile != "src-bin.000002" || st.LastAckPos != uint64(end8) || !st.SemiSync.Enabled {
		t.Fatalf("status %+v: want streaming, semi-sync on, last ACK src-bin.000002:%d", st, end8)
	}
}

func TestSessionReconnectsFromTheLogsState(t *testing.T) {
	t.Parallel()
	fs := newFakeSource(t, binlog.MariaDB())
	g := startIngest(t, fs, 1, nil)
	d := fs.nextDump(waitLong)
	s := openStream(t, d, binlog.MariaDB(), "src-bin.000001")
	end := s.txn("0-1-6", true)
	if _, err := d.ack(waitLong); err != nil {
		t.Fatal(err)
	}

	// The source drops the connection: the ingest reconnects and asks for
	// the binlog after what the log holds.
	d.raw.Close()
	d2 := fs.nextDump(waitLong)
	if got := d2.vars["@slave_connect_state"]; got != "0-1-6" {
		t.Fatalf("the new session starts at %q, want the log's GTID state 0-1-6", got)
	}
	// Its first ACK, once the dump runs, is of what the log already holds
	// from this source (a previous session may have stored it unACKed).
	d2.send(binlog.RotateEvent(0, 1, 0, 0x20, "src-bin.000001", uint64(end), binlog.ChecksumCRC32), false)
	if a, err := d2.ack(waitLong); err != nil || a != (semiAck{"src-bin.000001", uint64(end)}) {
		t.Fatalf("catch-up ACK %+v (%v), want src-bin.000001:%d", a, err, end)
	}
	s2 := &stream{d: d2, flav: binlog.MariaDB(), file: "src-bin.000001", pos: end}
	d2.send(binlogtest.FDE(binlog.MariaDB(), 1), false)
	end7 := s2.txn("0-1-7", true)
	if a, err := d2.ack(waitLong); err != nil || a != (semiAck{"src-bin.000001", uint64(end7)}) {
		t.Fatalf("ACK %+v (%v), want src-bin.000001:%d", a, err, end7)
	}
	st := g.waitStatus(t, "streaming again", func(st Status) bool { return st.State == StateStreaming && st.LastAckGTID == "0-1-7" })
	if st.LastError != "" {
		t.Errorf("status %+v: a streaming session clears the last error", st)
	}
}

func TestSessionMySQLDumpsByGTID(t *testing.T) {
	t.Parallel()
	fs := newFakeSource(t, binlog.MySQL())
	g := startIngest(t, fs, 1, nil)
	d := fs.nextDump(waitLong)
	if d.cmd[0] != mysql.COM_BINLOG_DUMP_GTID || d.dumpServerID() != 101 {
		t.Fatalf("dump command %x: want COM_BINLOG_DUMP_GTID for server_id 101", d.cmd)
	}
	// flags(2) server_id(4) name_len(4) name pos(8) data_len(4) data
	p := d.cmd[1:]
	nameLen := binary.LittleEndian.Uint32(p[6:])
	data := p[10+nameLen+8+4:]
	set, err := binlog.DecodeMySQLSet(data)
	if err != nil {
		t.Fatal(err)
	}
	if want := fs.get("gtid_executed"); set.String() != want {
		t.Fatalf("dump from %s, want the log's state %s", set, want)
	}
	if d.vars["@replica_uuid"] == "" || d.vars["@rpl_semi_sync_replica"] != "1" {
		t.Fatalf("session variables %v: want @replica_uuid and @rpl_semi_sync_replica set", d.vars)
	}
	uuid := fs.get("server_uuid")
	s := openStream(t, d, binlog.MySQL(), "binlog.000003")
	end := s.txn(uuid+":6", true)
	if a, err := d.ack(waitLong); err != nil || a != (semiAck{"binlog.000003", uint64(end)}) {
		t.Fatalf("ACK %+v (%v), want binlog.000003:%d", a, err, end)
	}
	if _, err := g.node.Reader().FindGTID(uuid + ":6"); err != nil {
		t.Fatalf("ACKed but not in the log: %v", err)
	}
	// The source's data-describing variables are recorded in the log.
	g.c.Eventually(waitLong, "binlog_row_image recorded", func() error {
		m, err := g.node.Reader().MetaPrefix(logger.MetaSourceVarPrefix)
		if err != nil {
			return err
		}
		if v := string(m[logger.MetaSourceVarPrefix+"binlog_row_image"]); v != "FULL" {
			return fmt.Errorf("binlog_row_image = %q", v)
		}
		return nil
	})
}

// With no ACK request honoured by a log that cannot commit, the source gets
// no ACK: the leader of a group whose other members are gone cannot store
// the transaction, steps down, and the session ends without ACKing.
func TestSessionNoAckWithoutQuorum(t *testing.T) {
	t.Parallel()
	fs := newFakeSource(t, binlog.MariaDB())
	// NB: the session ends only once its proposal in flight has an
	// outcome, at the latest after the proposal timeout.
	g := startIngestWith(t, fs, 3, nil, func(in *Ingester) { in.proposalTimeout = time.Second })
	d := fs.nextDump(waitLong)
	s := openStream(t, d, binlog.MariaDB(), "src-bin.000001")
	s.txn("0-1-6", true)
	if _, err := d.ack(waitLong); err != nil {
		t.Fatal(err)
	}
	var others []uint64
	for _, id := range g.c.Running() {
		if g.c.Node(id) != g.node {
			others = append(others, id)
		}
	}
	g.c.Partition(others...)
	s.txn("0-1-7", true)
	// The old leader cannot commit: it steps down, and no ACK comes.
	g.c.Eventually(waitLong, "the partitioned leader steps down", func() error {
		if g.node.IsLeader() {
			return errors.New("still leads")
		}
		return nil
	})
	select {
	case a, ok := <-d.acks:
		if ok {
			t.Fatalf("ACK %+v for a transaction no majority stored", a)
		}
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := g.node.Reader().FindGTID("0-1-7"); err == nil {
		t.Fatal("0-1-7 is in the old leader's log without a majority")
	}
	for a := range d.acks {
		t.Fatalf("ACK %+v after the session lost leadership", a)
	}
}

func TestSessionWrongPassword(t *testing.T) {
	t.Parallel()
	fs := newFakeSource(t, binlog.MariaDB())
	_, err := Probe(context.Background(), fs.addr(), "repl", "wrong", mysqltls.Config{})
	if err == nil || !strings.Contains(err.Error(), "1045") || !strings.Contains(err.Error(), "check --source-user") {
		t.Fatalf("Probe with a wrong password: %v; want the 1045 error and the hint to check the account", err)
	}
	g := startIngest(t, fs, 1, func(c *Config) { c.Password = "wrong" })
	st := g.waitStatus(t, "the login error", func(st Status) bool { return st.State == StateRetrying })
	if !strings.Contains(st.LastError, "Access denied") {
		t.Fatalf("status %+v: want the source's Access denied error", st)
	}
	select {
	case d := <-fs.dumps:
		t.Fatalf("a session with a wrong password reached the dump: %x", d.cmd)
	default:
	}
}

func TestProbeRefusesUnfitSources(t *testing.T) {
	t.Parallel()
	cases := []struct {
		flav       binlog.Flavor
		name, val  string
		wantInText string
	}{
		{binlog.MySQL(), "gtid_mode", "OFF", "gtid_mode=OFF"},
		{binlog.MySQL(), "gtid_mode", "ON_PERMISSIVE", "gtid_mode=ON_PERMISSIVE"},
		{binlog.MariaDB(), "server_id", "0", "server_id"},
		{binlog.MariaDB(), "log_bin", "0", "binary logging off"},
		{binlog.MariaDB(), "binlog_format", "STATEMENT", "binlog_format=STATEMENT"},
		{binlog.MySQL(), "binlog_checksum", "XXHASH", "binlog_checksum=XXHASH"},
	}
	for _, tc := range cases {
		t.Run(tc.flav.Name()+"/"+tc.name+"="+tc.val, func(t *testing.T) {
			fs := newFakeSource(t, tc.flav)
			fs.set(tc.name, tc.val)
			_, err := Probe(context.Background(), fs.addr(), fs.user, fs.password, mysqltls.Config{})
			if !errors.Is(err, ErrSourceUnfit) || !strings.Contains(err.Error(), tc.wantInText) {
				t.Fatalf("Probe: %v; want ErrSourceUnfit naming %q", err, tc.wantInText)
			}
		})
	}
}

func TestProbeReadsTheSource(t *testing.T) {
	t.Parallel()
	fs := newFakeSource(t, binlog.MySQL())
	fs.set("gtid_executed", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1")
	info, err := Probe(context.Background(), fs.addr(), fs.user, fs.password, mysqltls.Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := logger.Source{Addr: fs.addr(), UUID: "3e11fa47-71ca-11e1-9e33-c80aa9429562", ServerID: 1, Flavor: "mysql"}
	if info.Source != want || info.Format != "ROW" || info.Checksum != "CRC32" || info.GTIDMode != "ON" {
		t.Fatalf("Probe: %+v, want source %+v, ROW, CRC32, gtid_mode ON", info, want)
	}
	if info.GTIDs != "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4e11fa47-71ca-11e1-9e33-c80aa9429562:1" {
		t.Fatalf("GTIDs %q: want gtid_executed without its newlines", info.GTIDs)
	}
	// A variable the server does not know is left out; the others are read.
	if info.Vars["binlog_row_image"] != "FULL" || info.Vars["time_zone"] != "SYSTEM" {
		t.Fatalf("Vars %v: want binlog_row_image and time_zone", info.Vars)
	}
	if _, ok := info.Vars["binlog_row_metadata"]; ok {
		t.Fatalf("Vars %v: binlog_row_metadata is unknown to this server", info.Vars)
	}
}

// A source with semi-sync off, or without the plugin, is still replicated
// (everything is stored), reported in the status, and never ACKed.
func TestSessionWithoutSemiSync(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value string
		wantErr     string
	}{
		{"off", "OFF", ""},
		{"no plugin", "", "Unknown system variable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFakeSource(t, binlog.MariaDB())
			fs.set("rpl_semi_sync_master_enabled", tc.value)
			g := startIngest(t, fs, 1, nil)
			d := fs.nextDump(waitLong)
			if d.semi {
				t.Fatalf("the session turned semi-sync on (%v) though the source has it %q", d.vars, tc.value)
			}
			s := openStream(t, d, binlog.MariaDB(), "src-bin.000001")
			s.txn("0-1-6", false)
			g.c.Eventually(waitLong, "0-1-6 stored", func() error {
				_, err := g.node.Reader().FindGTID("0-1-6")
				return err
			})
			st := g.in.Status()
			if st.State != StateStreaming || st.SemiSync.Enabled || !strings.Contains(st.SemiSync.Error, tc.wantErr) {
				t.Fatalf("status %+v: want streaming with semi-sync reported off (error %q)", st, tc.wantErr)
			}
			select {
			case a := <-d.acks:
				t.Fatalf("ACK %+v sent to a source without semi-sync", a)
			default:
			}
		})
	}
}

// Malformed or refused packets from the source end the session with an
// error naming them; the ingest reconnects.
func TestSessionMalformedPackets(t *testing.T) {
	t.Parallel()
	fs := newFakeSource(t, binlog.MariaDB())
	g := startIngest(t, fs, 1, nil)
	event := binlog.HeartbeatEvent(1, 4, "src-bin.000001", binlog.ChecksumCRC32)
	errPkt := func(code uint16, state, msg string) []byte {
		b := binary.LittleEndian.AppendUint16([]byte{0xFF}, code)
		return append(append(b, '#'), state+msg...)
	}
	// NB: each case costs the ingest's reconnect backoff (100 ms, doubling),
	// so the list is short; eventOf's table test covers the other shapes.
	cases := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"unknown first byte", append([]byte{0x42}, event...), "first byte 0x42"},
		{"no semi-sync header", append([]byte{0x00}, event...), "semi-sync header missing"},
		{"purged GTIDs", errPkt(1236, "HY000", "Could not find GTID state requested by slave in any binlog files"), "1236"},
		{"no grant", errPkt(1227, "42000", "Access denied; you need the REPLICATION SLAVE privilege"), "GRANT REPLICATION SLAVE"},
	}
	for _, tc := range cases {
		d := fs.nextDump(waitLong)
		if err := d.writePacket(tc.payload); err != nil {
			t.Fatal(err)
		}
		for a := range d.acks { // the session closes the connection
			t.Fatalf("%s: ACK %+v", tc.name, a)
		}
		g.waitStatus(t, tc.name+": the session's error naming "+tc.want, func(st Status) bool { return strings.Contains(st.LastError, tc.want) })
	}
}

// go-mysql's client panics on some malformed answers; Probe returns them as
// ErrMalformedPacket instead of crashing the daemon, and a source that
// stops answering holds it only until ctx ends.
func TestProbeSurvivesMalformedAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer []byte
	}{
		{"bare ERR", []byte{0xff}},
		{"bare OK", []byte{0x00}},
		{"bare EOF", []byte{0xfe}},
		{"empty packet", []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeSource(t, binlog.MariaDB())
			fs.locked(func() { fs.badAnswer["@@GLOBAL.binlog_format"] = tc.answer })
			_, err := Probe(context.Background(), fs.addr(), fs.user, fs.password, mysqltls.Config{})
			if !errors.Is(err, ErrMalformedPacket) || !strings.Contains(err.Error(), "binlog_format") {
				t.Fatalf("Probe: %v; want ErrMalformedPacket naming the query", err)
			}
		})
	}
	t.Run("no answer", func(t *testing.T) {
		fs := newFakeSource(t, binlog.MariaDB())
		fs.locked(func() { fs.badAnswer["@@GLOBAL.log_bin"] = []byte{0x01} }) // one column, then nothing
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Probe(ctx, fs.addr(), fs.user, fs.password, mysqltls.Config{})
		if err == nil || time.Since(start) > 5*time.Second {
			t.Fatalf("Probe of a source that stops answering: %v after %v; want an error when ctx ends", err, time.Since(start))
		}
	})
}

// A source whose login answers make go-mysql's client panic (a
// caching_sha2_password account over plaintext, and no RSA key to send)
// fails the login with an error instead of crashing the daemon.
func TestProbeSurvivesBadLogin(t *testing.T) {
	t.Parallel()
	fs := newFakeSource(t, binlog.MySQL())
	fs.locked(func() { fs.userAuth = mysql.AUTH_CACHING_SHA2_PASSWORD })
	_, err := Probe(context.Background(), fs.addr(), fs.user, fs.password, mysqltls.Config{})
	if !errors.Is(err, mysqltls.ErrBadLogin) {
		t.Fatalf("Probe: %v; want mysqltls.ErrBadLogin", err)
	}
}

// When the source ends one of its files (FLUSH BINARY LOGS), the log's file
// ends there too (FollowSourceRotate); without the setting it goes on.
func TestSessionFollowsSourceRotate(t *testing.T) {
	t.Parallel()
	for _, follow := range []bool{true, false} {
		t.Run(fmt.Sprintf("follow=%v", follow), func(t *testing.T) {
			t.Parallel()
			fs := newFakeSource(t, binlog.MariaDB())
			g := startIngest(t, fs, 1, func(c *Config) { c.FollowSourceRotate = follow })
			d := fs.nextDump(waitLong)
			s := openStream(t, d, binlog.MariaDB(), "src-bin.000001")
			s.txn("0-1-6", true)
			if _, err := d.ack(waitLong); err != nil {
				t.Fatal(err)
			}
			// NB: the log takes a Rotate only once every member reported
			// that it reads its encoding.
			g.c.WaitEncodingReports(waitLong)
			// The real rotate at the end of the file, then the next file's
			// FDE and a transaction in it.
			d.send(binlog.RotateEvent(1767225600, 1, s.pos+31+14, 0, "src-bin.000002", 4, binlog.ChecksumCRC32), false)
			fde := binlogtest.FDE(binlog.MariaDB(), 1)
			d.send(fde, false)
			s.file, s.pos = "src-bin.000002", uint32(4+len(fde))
			end := s.txn("0-1-7", true)
			if a, err := d.ack(waitLong); err != nil || a != (semiAck{"src-bin.000002", uint64(end)}) {
				t.Fatalf("ACK %+v (%v), want src-bin.000002:%d", a, err, end)
			}
			r6, err6 := g.node.Reader().FindGTID("0-1-6")
			r7, err7 := g.node.Reader().FindGTID("0-1-7")
			if err6 != nil || err7 != nil {
				t.Fatalf("records: %v, %v", err6, err7)
			}
			if want := r6.File + map[bool]uint32{true: 1, false: 0}[follow]; r7.File != want {
				t.Fatalf("0-1-6 in file %d, 0-1-7 in file %d; want %d", r6.File, r7.File, want)
			}
		})
	}
}
