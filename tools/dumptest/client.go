package dumptest

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// ErrEOF is returned by Next at the end of a non-blocking dump.
var ErrEOF = errors.New("dumptest: end of dump (EOF packet)")

// DumpClient is a raw replication client for tests and benchmarks: it
// logs in with go-mysql's client, then sends dump commands as given and
// returns the events exactly as they arrive.
type DumpClient struct {
	C *client.Conn
}

// Connect logs in to a dump server as DumpUser with go-mysql's client, over
// TLS when tc is not nil, within 10 s.
func Connect(addr, password string, tc *tls.Config) (*client.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var opts []client.Option
	if tc != nil {
		opts = append(opts, func(c *client.Conn) error { c.SetTLSConfig(tc); return nil })
	}
	return client.ConnectWithContext(ctx, addr, DumpUser, password, "", 10*time.Second, opts...)
}

// MySQLErrorCode is the code of the MySQL error in err's chain, 0 if there
// is none.
func MySQLErrorCode(err error) uint16 {
	var me *mysql.MyError
	if errors.As(err, &me) {
		return me.Code
	}
	return 0
}

// WantMySQLError fails t unless err is a MySQL error with code and a
// message containing text; what names the step in the failure.
func WantMySQLError(t testing.TB, what string, err error, code uint16, text string) {
	t.Helper()
	var me *mysql.MyError
	if !errors.As(err, &me) {
		t.Errorf("%s: got %v, want MySQL error %d", what, err, code)
		return
	}
	if me.Code != code || !strings.Contains(me.Message, text) {
		t.Errorf("%s: got error %d %q, want %d containing %q", what, me.Code, me.Message, code, text)
	}
}

// ReadPacket reads one MySQL packet from r and returns its payload; it
// fails t on a read error.
func ReadPacket(t testing.TB, r io.Reader) []byte {
	t.Helper()
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("reading a packet header: %v", err)
	}
	b := make([]byte, int(h[0])|int(h[1])<<8|int(h[2])<<16)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("reading a packet: %v", err)
	}
	return b
}

// ErrCode is the error code of an ERR packet's payload p, 0 if p is not
// one.
func ErrCode(p []byte) uint16 {
	if len(p) < 3 || p[0] != 0xff {
		return 0
	}
	return binary.LittleEndian.Uint16(p[1:])
}

// Dial logs in to a dump server.
func Dial(ctx context.Context, addr, user, password string) (*DumpClient, error) {
	c, err := client.ConnectWithContext(ctx, addr, user, password, "", 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &DumpClient{C: c}, nil
}

// Close closes the connection.
func (d *DumpClient) Close() error { return d.C.Close() }

// Exec runs one statement.
func (d *DumpClient) Exec(q string) (*mysql.Result, error) { return d.C.Execute(q) }

// Send sends one command packet (command byte and payload).
func (d *DumpClient) Send(cmd byte, payload []byte) error {
	d.C.ResetSequence()
	b := make([]byte, 4, 5+len(payload))
	b = append(b, cmd)
	b = append(b, payload...)
	return d.C.WritePacket(b)
}

// Next returns the next event (without the OK byte), ErrEOF at the end of
// a non-blocking dump, or the server's error (*mysql.MyError).
func (d *DumpClient) Next() ([]byte, error) {
	p, err := d.C.ReadPacket()
	if err != nil {
		return nil, err
	}
	switch {
	case len(p) == 0:
		return nil, fmt.Errorf("dumptest: empty packet")
	case p[0] == mysql.OK_HEADER:
		return p[1:], nil
	case p[0] == mysql.EOF_HEADER && len(p) < 9:
		return nil, ErrEOF
	case p[0] == mysql.ERR_HEADER:
		e := &mysql.MyError{}
		if len(p) >= 3 {
			e.Code = binary.LittleEndian.Uint16(p[1:])
		}
		msg := p[3:]
		if len(msg) > 0 && msg[0] == '#' && len(msg) >= 6 {
			e.State, msg = string(msg[1:6]), msg[6:]
		}
		e.Message = string(msg)
		return nil, e
	}
	return nil, fmt.Errorf("dumptest: unexpected packet %x", p[:min(len(p), 16)])
}

// All reads events until ErrEOF (nil error then) or another error.
func (d *DumpClient) All() ([][]byte, error) {
	var out [][]byte
	for {
		ev, err := d.Next()
		if errors.Is(err, ErrEOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

// Dump flags.
const (
	NonBlock = 0x01
)

// DumpPayload is a COM_BINLOG_DUMP payload.
func DumpPayload(pos uint32, flags uint16, serverID uint32, file string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, pos)
	b = binary.LittleEndian.AppendUint16(b, flags)
	b = binary.LittleEndian.AppendUint32(b, serverID)
	return append(b, file...)
}

// DumpGTIDPayload is a COM_BINLOG_DUMP_GTID payload with an encoded MySQL
// GTID set.
func DumpGTIDPayload(flags uint16, serverID uint32, file string, pos uint64, set []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, flags|0x04)
	b = binary.LittleEndian.AppendUint32(b, serverID)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(file)))
	b = append(b, file...)
	b = binary.LittleEndian.AppendUint64(b, pos)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(set)))
	return append(b, set...)
}
