package dumptest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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
