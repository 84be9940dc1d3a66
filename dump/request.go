package dump

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Dump flags of COM_BINLOG_DUMP and COM_BINLOG_DUMP_GTID.
const (
	flagNonBlock = 0x0001 // BINLOG_DUMP_NON_BLOCK: EOF at the end of the log
	// NB: flag 0x0002 is BINLOG_SEND_ANNOTATE_ROWS_EVENT on MariaDB and
	// USE_HEARTBEAT_EVENT_V2 on MySQL: binlog.Quirks reads it.
	flagThroughGTID = 0x0004 // MySQL BINLOG_THROUGH_GTID: the GTID set follows
)

// Request is one decoded dump command.
type Request struct {
	GTID     bool   // COM_BINLOG_DUMP_GTID
	Flags    uint16 // dump flags
	ServerID uint32 // the client's server id (0: not tracked)
	File     string // start file ("" = the oldest)
	Pos      uint64 // start position
	// GTIDSet is the raw encoded MySQL GTID set of COM_BINLOG_DUMP_GTID.
	GTIDSet []byte
}

// NonBlocking reports whether the dump ends with EOF at the end of the log.
func (r Request) NonBlocking() bool { return r.Flags&flagNonBlock != 0 }

// parseDump decodes a COM_BINLOG_DUMP payload (without the command byte):
// pos u32, flags u16, server_id u32, file name (rest; a trailing NUL, as
// zongji sends, is stripped).
func parseDump(b []byte) (Request, error) {
	if len(b) < 10 {
		return Request{}, fmt.Errorf("%w: COM_BINLOG_DUMP of %d bytes, need at least 10", ErrMalformed, len(b))
	}
	r := Request{
		Pos:      uint64(binary.LittleEndian.Uint32(b)),
		Flags:    binary.LittleEndian.Uint16(b[4:]),
		ServerID: binary.LittleEndian.Uint32(b[6:]),
	}
	name := b[10:]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	if err := checkName(name); err != nil {
		return Request{}, err
	}
	r.File = string(name)
	return r, nil
}

// parseDumpGTID decodes a COM_BINLOG_DUMP_GTID payload: flags u16,
// server_id u32, name_len u32, name, pos u64, then (whenever bytes remain:
// go-mysql sends them without flag 0x04) data_len u32 and the encoded set.
func parseDumpGTID(b []byte) (Request, error) {
	if len(b) < 18 {
		return Request{}, fmt.Errorf("%w: COM_BINLOG_DUMP_GTID of %d bytes, need at least 18", ErrMalformed, len(b))
	}
	r := Request{GTID: true, Flags: binary.LittleEndian.Uint16(b), ServerID: binary.LittleEndian.Uint32(b[2:])}
	n := uint64(binary.LittleEndian.Uint32(b[6:]))
	b = b[10:]
	if n > uint64(len(b)) || len(b)-int(n) < 8 {
		return Request{}, fmt.Errorf("%w: COM_BINLOG_DUMP_GTID file name of %d bytes in %d", ErrMalformed, n, len(b))
	}
	name := b[:n]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	if err := checkName(name); err != nil {
		return Request{}, err
	}
	r.File = string(name)
	r.Pos = binary.LittleEndian.Uint64(b[n:])
	b = b[n+8:]
	if len(b) == 0 {
		if r.Flags&flagThroughGTID != 0 {
			return Request{}, fmt.Errorf("%w: COM_BINLOG_DUMP_GTID announces a GTID set but carries none", ErrMalformed)
		}
		return r, nil
	}
	if len(b) < 4 {
		return Request{}, fmt.Errorf("%w: COM_BINLOG_DUMP_GTID GTID set length truncated", ErrMalformed)
	}
	dl := uint64(binary.LittleEndian.Uint32(b))
	if dl != uint64(len(b)-4) {
		return Request{}, fmt.Errorf("%w: COM_BINLOG_DUMP_GTID GTID set of %d bytes, %d present", ErrMalformed, dl, len(b)-4)
	}
	r.GTIDSet = append([]byte(nil), b[4:]...)
	return r, nil
}

// checkName refuses file names no server would write (control bytes,
// slashes, overlong), so they never reach logs or messages unescaped.
func checkName(name []byte) error {
	if len(name) > 512 {
		return fmt.Errorf("%w: file name of %d bytes", ErrMalformed, len(name))
	}
	for _, c := range name {
		if c < 0x20 || c == '/' || c == '\\' || c >= 0x7f {
			return fmt.Errorf("%w: file name %q", ErrMalformed, name)
		}
	}
	return nil
}

// Registration is a decoded COM_REGISTER_SLAVE.
type Registration struct {
	ServerID uint32
	Host     string
	User     string
	Port     uint16
	MasterID uint32
}

// parseRegister decodes COM_REGISTER_SLAVE: server_id u32, host, user and
// password as u8-length strings, port u16, rank u32, master_id u32.
func parseRegister(b []byte) (Registration, error) {
	var r Registration
	bad := func(what string) (Registration, error) {
		return Registration{}, fmt.Errorf("%w: COM_REGISTER_SLAVE %s truncated", ErrMalformed, what)
	}
	if len(b) < 4 {
		return bad("server id")
	}
	r.ServerID = binary.LittleEndian.Uint32(b)
	b = b[4:]
	var strs [3]string
	for i, what := range []string{"host", "user", "password"} {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return bad(what)
		}
		strs[i] = string(b[1 : 1+int(b[0])])
		b = b[1+int(b[0]):]
	}
	r.Host, r.User = printable(strs[0]), printable(strs[1])
	if len(b) < 2 {
		return bad("port")
	}
	r.Port = binary.LittleEndian.Uint16(b)
	b = b[2:]
	if len(b) >= 8 {
		r.MasterID = binary.LittleEndian.Uint32(b[4:])
	}
	return r, nil
}

// printable replaces bytes outside printable ASCII with '?'.
func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}
