package dump_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlogsvr/binlogsvr/dump"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
)

// semiClient is a dump client that speaks semi-sync as a MySQL replica's
// plugin does: the go-mysql connection checks every packet's sequence
// number, and an ACK is a packet of sequence 0 after which the next
// packet from the server must have sequence 1.
type semiClient struct {
	t    *testing.T
	c    *dumptest.DumpClient
	file string // from the last ROTATE
}

// next reads one event packet: the event, whether it asked for an ACK.
func (s *semiClient) next() ([]byte, bool) {
	s.t.Helper()
	p, err := s.c.C.ReadPacket()
	if err != nil {
		s.t.Fatalf("reading the dump: %v", err)
	}
	if len(p) < 3 || p[0] != 0 || p[1] != 0xEF || p[2] > 1 {
		s.t.Fatalf("packet %x: want 00 EF 00|01 and an event", p[:min(len(p), 8)])
	}
	ev := p[3:]
	if ev[4] == binlog.TypeRotate {
		s.file = string(ev[binlog.HeaderLen+8 : len(ev)-4])
	}
	return ev, p[2] == 1
}

// ack sends an ACK payload.
func (s *semiClient) ack(payload []byte) {
	s.t.Helper()
	s.c.C.Sequence = 0
	if err := s.c.C.WritePacket(append(make([]byte, 4), payload...)); err != nil {
		s.t.Fatalf("sending an ACK: %v", err)
	}
}

func ackPayload(file string, pos uint64) []byte {
	b := binary.LittleEndian.AppendUint64([]byte{0xEF}, pos)
	return append(b, file...)
}

// readTxns reads until n events asked for an ACK, ACKing each, and
// returns every event read and the last ACKed position.
func (s *semiClient) readTxns(n int) (evs [][]byte, lastPos uint64) {
	s.t.Helper()
	for n > 0 {
		ev, ask := s.next()
		evs = append(evs, ev)
		if !ask {
			continue
		}
		if typ := ev[4]; typ != binlog.TypeXID {
			s.t.Fatalf("an ACK was asked on an event of type %d, want the XID that ends the transaction", typ)
		}
		lastPos = uint64(binary.LittleEndian.Uint32(ev[13:]))
		s.ack(ackPayload(s.file, lastPos))
		n--
	}
	return evs, lastPos
}

// clientByServerID polls the dump server's client list until f accepts
// the entry of server id id.
func clientByServerID(t *testing.T, srv *dump.Server, id uint32, what string, f func(dump.ClientStatus) error) dump.ClientStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		err = fmt.Errorf("no client with server id %d", id)
		for _, c := range srv.Clients() {
			if c.ServerID == id {
				if err = f(c); err == nil {
					return c
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
	return dump.ClientStatus{}
}

// TestSemiSyncDump: a client that sets @rpl_semi_sync_replica gets every
// event with the semi-sync header, an ACK request on each transaction's
// XID, and the sequence number reset after it; its ACKs show in the
// client list and advance; a client that does not ask gets the very same
// events without the header; a malformed ACK ends that dump alone with
// error 1236.
func TestSemiSyncDump(t *testing.T) {
	t.Parallel()
	f := newSynthFleet(t, binlog.MySQL(), 0)
	f.syn.MustAppend(t, 3, 300)

	start := func(id uint32, semi bool) *semiClient {
		c := f.dial(t)
		mustExec(t, c, "SET @master_binlog_checksum = @@global.binlog_checksum")
		if r, err := c.Exec("SELECT @@global.rpl_semi_sync_source_enabled"); err != nil {
			t.Fatalf("the MySQL replica's probe: %v", err)
		} else if v, _ := r.GetString(0, 0); v != "1" {
			t.Fatalf("the MySQL replica's probe: %q, want 1", v)
		}
		if semi {
			mustExec(t, c, "SET @rpl_semi_sync_replica = 1, @rpl_semi_sync_slave = 1")
		}
		if err := c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, id, "binlog.000001")); err != nil {
			t.Fatal(err)
		}
		return &semiClient{t: t, c: c}
	}

	a := start(201, true)
	evs, pos := a.readTxns(3)
	st := clientByServerID(t, f.srv, 201, "the ACKs of the 3 transactions", func(c dump.ClientStatus) error {
		if !c.SemiSync || c.Acks != 3 || c.AckFile != "binlog.000001" || c.AckPos != pos {
			return fmt.Errorf("semi_sync %v, acks %d at %s:%d; want 3 at binlog.000001:%d", c.SemiSync, c.Acks, c.AckFile, c.AckPos, pos)
		}
		return nil
	})
	if st.AckTime.IsZero() || st.AckLatencySeconds <= 0 || st.AckLatencySeconds > 30 {
		t.Errorf("ack_time %v, ack_latency_seconds %v", st.AckTime, st.AckLatencySeconds)
	}

	// A client without semi-sync gets the same events, without the header.
	plain := f.dial(t)
	mustExec(t, plain, "SET @master_binlog_checksum = @@global.binlog_checksum")
	if err := plain.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, dumptest.NonBlock, 202, "binlog.000001")); err != nil {
		t.Fatal(err)
	}
	plainEvs, err := plain.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(plainEvs) != len(evs) {
		t.Fatalf("the plain dump sent %d events, the semi-sync one %d", len(plainEvs), len(evs))
	}
	for i := range evs {
		if !bytes.Equal(plainEvs[i], evs[i]) {
			t.Fatalf("event %d differs between the plain and the semi-sync dump", i)
		}
	}
	for _, c := range f.srv.Clients() {
		if c.ServerID == 202 && (c.SemiSync || c.Acks != 0) {
			t.Errorf("the plain client shows semi-sync: %+v", c)
		}
	}

	// The ACKs advance with new transactions.
	b := start(203, true)
	b.readTxns(3)
	f.syn.MustAppend(t, 2, 300)
	_, pos2 := a.readTxns(2)
	b.readTxns(2)
	if pos2 <= pos {
		t.Fatalf("new transactions end at %d, before %d", pos2, pos)
	}
	clientByServerID(t, f.srv, 201, "the ACKs after 2 more transactions", func(c dump.ClientStatus) error {
		if c.Acks != 5 || c.AckPos != pos2 {
			return fmt.Errorf("acks %d at %s:%d; want 5 at %d", c.Acks, c.AckFile, c.AckPos, pos2)
		}
		return nil
	})

	// A malformed ACK (a file that is not the fleet's) ends client a's dump
	// with error 1236; b carries on.
	f.syn.MustAppend(t, 1, 300)
	for _, ask := a.next(); !ask; _, ask = a.next() {
	}
	a.ack(ackPayload("mysql-bin.000001", 4))
	_, err = a.c.Next()
	var me *mysql.MyError
	if !errors.As(err, &me) || me.Code != 1236 || !strings.Contains(me.Message, "malformed semi-sync ACK") || !strings.Contains(me.Message, "mysql-bin.000001") {
		t.Fatalf("after a malformed ACK: %v, want error 1236 naming the malformed ACK", err)
	}
	if _, err := a.c.C.ReadPacket(); err == nil {
		t.Errorf("the connection stays open after a malformed ACK")
	}
	_, pos3 := b.readTxns(1)
	f.syn.MustAppend(t, 1, 300)
	_, pos4 := b.readTxns(1)
	clientByServerID(t, f.srv, 203, "the other client's ACKs", func(c dump.ClientStatus) error {
		if !c.Dumping || c.Acks != 7 || c.AckPos != pos4 || pos4 <= pos3 {
			return fmt.Errorf("dumping %v, acks %d at %d; want 7 at %d", c.Dumping, c.Acks, c.AckPos, pos4)
		}
		return nil
	})
	for _, c := range f.srv.Clients() {
		if c.ServerID == 201 {
			t.Errorf("the client that sent a malformed ACK is still listed: %+v", c)
		}
	}
}
