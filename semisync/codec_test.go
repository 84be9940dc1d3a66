package semisync

import (
	"bytes"
	"errors"
	"testing"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
)

func TestEventOf(t *testing.T) {
	ev := binlog.RotateEvent(0, 1, 0, binlog.FlagArtificial, "bin.000001", 4, binlog.ChecksumNone)
	cases := []struct {
		name    string
		payload []byte
		semi    bool
		needAck bool
		err     error
	}{
		{"plain event", append([]byte{0}, ev...), false, false, nil},
		{"semi-sync, no ACK asked", append([]byte{0, 0xEF, 0}, ev...), true, false, nil},
		{"semi-sync, ACK asked", append([]byte{0, 0xEF, 1}, ev...), true, true, nil},
		{"semi-sync header missing", append([]byte{0}, ev...), true, false, ErrMalformedPacket},
		{"EOF", []byte{0xFE, 0, 0, 2, 0}, false, false, ErrEOF},
		{"short event", []byte{0, 1, 2, 3}, false, false, ErrMalformedPacket},
		{"empty", nil, false, false, ErrMalformedPacket},
		{"garbage first byte", append([]byte{7}, ev...), false, false, ErrMalformedPacket},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ack, err := eventOf(c.payload, c.semi)
			if !errors.Is(err, c.err) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if err == nil && (!bytes.Equal(got, ev) || ack != c.needAck) {
				t.Fatalf("event %x ack %v", got, ack)
			}
		})
	}
	err := func() error {
		_, _, err := eventOf([]byte("\xff\xe4\x04#HY000Could not find GTID state"), false)
		return err
	}()
	var se *SourceError
	if !errors.As(err, &se) || se.Code == 0 || se.State != "HY000" || se.Message != "Could not find GTID state" {
		t.Fatalf("ERR packet: %#v", err)
	}
}

func TestAckPacket(t *testing.T) {
	p := ackPacket("mysql-bin.000003", 1234)
	if p[3] != 0 || int(p[0])|int(p[1])<<8|int(p[2])<<16 != len(p)-4 {
		t.Fatalf("header %x", p[:4])
	}
	f, pos, err := parseAck(p[4:])
	if err != nil || f != "mysql-bin.000003" || pos != 1234 {
		t.Fatalf("%q %d %v", f, pos, err)
	}
}

func TestPacketReaderJoinsContinuations(t *testing.T) {
	big := bytes.Repeat([]byte{7}, maxPayloadLen+10)
	var wire []byte
	rest := big
	for seq := byte(0); ; seq++ {
		n := min(len(rest), maxPayloadLen)
		wire = append(wire, byte(n), byte(n>>8), byte(n>>16), seq)
		wire = append(wire, rest[:n]...)
		rest = rest[n:]
		if n < maxPayloadLen {
			break
		}
	}
	wire = append(wire, 1, 0, 0, 9, 'x')
	pr := newPacketReader(bytes.NewReader(wire))
	got, err := pr.next()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("continued packet: %d bytes, %v", len(got), err)
	}
	if got, err := pr.next(); err != nil || string(got) != "x" {
		t.Fatalf("next packet %q %v", got, err)
	}
}

func TestCutter(t *testing.T) {
	for _, f := range []binlog.Flavor{binlog.MySQL(), binlog.MariaDB()} {
		t.Run(f.Name(), func(t *testing.T) {
			g := func(n string) string {
				if f.Name() == "mysql" {
					return "3e11fa47-71ca-11e1-9e33-c80aa9429562:" + n
				}
				return "0-1-" + n
			}
			c := &cutter{flav: f, alg: binlog.ChecksumCRC32}
			feedAll := func(raw []byte, ack bool) []*cut {
				evs, err := binlog.SplitEvents(raw)
				if err != nil {
					t.Fatal(err)
				}
				var out []*cut
				for i, ev := range evs {
					x, err := c.feed(ev, ack && i == len(evs)-1)
					if err != nil {
						t.Fatal(err)
					}
					if x != nil {
						out = append(out, x)
					}
				}
				return out
			}
			rot := binlog.RotateEvent(0, 1, 0, binlog.FlagArtificial, "src-bin.000007", 4, binlog.ChecksumCRC32)
			if out := feedAll(append(rot, binlogtest.FDE(f, 1)...), false); len(out) != 0 || c.file != "src-bin.000007" || c.fde == nil {
				t.Fatalf("rotate+FDE: %v file %q", out, c.file)
			}
			t1, end1 := binlogtest.Txn(f, g("1"), 1, 4, 300)
			t2, end2 := binlogtest.Txn(f, g("2"), 1, end1, 300)
			out := feedAll(append(append([]byte{}, t1...), t2...), true)
			if len(out) != 2 || out[0].txn.GTID != g("1") || out[1].txn.GTID != g("2") {
				t.Fatalf("cut %d transactions", len(out))
			}
			if !bytes.Equal(out[0].txn.Events, t1) || out[0].txn.SourceEnd != uint64(end1) || out[1].txn.SourceEnd != uint64(end2) || out[1].txn.SourceFile != "src-bin.000007" {
				t.Fatalf("transaction %+v", out[0].txn)
			}
			if !out[1].needAck || out[0].needAck {
				t.Fatalf("ACK flags %v %v", out[0].needAck, out[1].needAck)
			}
			if c.open() {
				t.Fatal("a transaction is left open")
			}
			// A GTID inside an open transaction is a broken stream.
			evs, _ := binlog.SplitEvents(t1)
			if _, err := c.feed(evs[0], false); err != nil {
				t.Fatal(err)
			}
			if _, err := c.feed(evs[0], false); !errors.Is(err, ErrStream) {
				t.Fatalf("GTID inside a transaction: %v", err)
			}
		})
	}
}

func TestCheckIdentity(t *testing.T) {
	want := logger.Source{Addr: "a:1", UUID: "u1", ServerID: 7, Flavor: "mysql"}
	if err := checkIdentity(want, logger.Source{UUID: "u1", ServerID: 7}); err != nil {
		t.Fatal(err)
	}
	if err := checkIdentity(want, logger.Source{UUID: "u2", ServerID: 7}); !errors.Is(err, ErrWrongSource) {
		t.Fatalf("another server_uuid: %v", err)
	}
	m := logger.Source{Addr: "a:1", ServerID: 7, Flavor: "mariadb"}
	if err := checkIdentity(m, logger.Source{ServerID: 8}); !errors.Is(err, ErrWrongSource) {
		t.Fatalf("another server_id: %v", err)
	}
}
