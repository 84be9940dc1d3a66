package semisync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// fakeSource is an in-process MySQL/MariaDB source on a loopback listener:
// go-mysql's server package does the handshake and the login; the commands
// a replica sends are answered here as the real servers answer them
// (protocol.md section 1): the SELECT @@GLOBAL.x probes, the session SETs,
// COM_REGISTER_SLAVE, the semi-sync variable and status, and the dump
// commands. Each dump connection is handed to the test (dumps), which
// writes the events and reads the ACKs.
type fakeSource struct {
	t        testing.TB
	ln       net.Listener
	flav     binlog.Flavor
	user     string
	password string

	mu        sync.Mutex
	vars      map[string]string // global variables by lower-case name; absent: unknown
	status    map[string]string // SHOW GLOBAL STATUS rows
	queries   []string          // every COM_QUERY, in order
	registers [][]byte          // every COM_REGISTER_SLAVE payload
	conns     []net.Conn
	// badAnswer, when set, is sent raw (one packet) instead of the answer
	// to a query whose text contains the key.
	badAnswer map[string][]byte
	// authMethod is the server's login plugin in its greeting and
	// userAuth the account's (both mysql_native_password by default).
	authMethod, userAuth string

	dumps chan *dumpConn
	wg    sync.WaitGroup
}

// dumpConn is one connection that sent COM_BINLOG_DUMP(_GTID): the test
// owns it from then on.
type dumpConn struct {
	t    testing.TB
	cmd  []byte // the dump command, its command byte first
	vars map[string]string
	raw  net.Conn
	acks chan semiAck // the ACKs the replica sent, closed at EOF
	semi bool         // the session turned semi-sync on
}

type semiAck struct {
	file string
	pos  uint64
}

func newFakeSource(t testing.TB, flav binlog.Flavor) *fakeSource {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeSource{t: t, ln: ln, flav: flav, user: "repl", password: "replpw",
		dumps: make(chan *dumpConn, 16), badAnswer: map[string][]byte{}, authMethod: mysql.AUTH_NATIVE_PASSWORD, userAuth: mysql.AUTH_NATIVE_PASSWORD}
	fs.vars = map[string]string{
		"server_id": "1", "log_bin": "1", "binlog_format": "ROW", "binlog_checksum": "CRC32",
		"binlog_row_image": "FULL", "time_zone": "SYSTEM",
	}
	fs.status = map[string]string{}
	if flav.Name() == "mariadb" {
		fs.vars["version"] = "10.11.19-MariaDB-0+deb12u1-log"
		fs.vars["gtid_binlog_pos"] = "0-1-5"
		fs.vars["rpl_semi_sync_master_enabled"] = "ON"
		fs.status = map[string]string{"Rpl_semi_sync_master_status": "ON", "Rpl_semi_sync_master_clients": "1",
			"Rpl_semi_sync_master_yes_tx": "0", "Rpl_semi_sync_master_no_tx": "0"}
	} else {
		fs.vars["version"] = "9.7.0"
		fs.vars["server_uuid"] = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
		fs.vars["gtid_mode"] = "ON"
		fs.vars["gtid_executed"] = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"
		fs.vars["rpl_semi_sync_source_enabled"] = "ON"
		fs.status = map[string]string{"Rpl_semi_sync_source_status": "ON", "Rpl_semi_sync_source_clients": "1",
			"Rpl_semi_sync_source_yes_tx": "0", "Rpl_semi_sync_source_no_tx": "0"}
	}
	fs.wg.Add(1)
	go fs.accept()
	t.Cleanup(fs.close)
	return fs
}

func (fs *fakeSource) addr() string { return fs.ln.Addr().String() }

func (fs *fakeSource) set(name, value string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if value == "" {
		delete(fs.vars, name)
		return
	}
	fs.vars[name] = value
}

// locked runs f under the source's lock: tests change its fields with it.
func (fs *fakeSource) locked(f func()) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f()
}

func (fs *fakeSource) get(name string) string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.vars[name]
}

func (fs *fakeSource) queryLog() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.queries...)
}

func (fs *fakeSource) close() {
	fs.ln.Close()
	fs.mu.Lock()
	for _, c := range fs.conns {
		c.Close()
	}
	fs.mu.Unlock()
	fs.wg.Wait()
}

func (fs *fakeSource) accept() {
	defer fs.wg.Done()
	for {
		c, err := fs.ln.Accept()
		if err != nil {
			return
		}
		fs.mu.Lock()
		fs.conns = append(fs.conns, c)
		fs.mu.Unlock()
		fs.wg.Add(1)
		go func() {
			defer fs.wg.Done()
			fs.serve(c)
		}()
	}
}

// serve logs the client in and answers its commands until it dumps, quits
// or the connection ends.
func (fs *fakeSource) serve(c net.Conn) {
	fs.mu.Lock()
	version, method, userAuth := fs.vars["version"], fs.authMethod, fs.userAuth
	fs.mu.Unlock()
	// NB: no TLS offered and mysql_native_password: the login stays
	// plaintext, so the dump can be written on the raw connection.
	srv := server.NewServer(version, mysql.DEFAULT_COLLATION_ID, method, nil, nil)
	auth := server.NewInMemoryAuthenticationHandler(userAuth)
	if err := auth.AddUser(fs.user, fs.password); err != nil {
		fs.t.Error(err)
		c.Close()
		return
	}
	sc, err := srv.NewCustomizedConn(c, auth, server.EmptyHandler{})
	if err != nil {
		c.Close() // a failed login: go-mysql sent the ERR packet
		return
	}
	sessionVars := map[string]string{}
	for {
		p, err := sc.ReadPacket()
		if err != nil || len(p) == 0 {
			c.Close()
			return
		}
		var v any
		switch p[0] {
		case mysql.COM_QUIT:
			c.Close()
			return
		case mysql.COM_PING:
			v = nil
		case mysql.COM_QUERY:
			q := string(p[1:])
			fs.mu.Lock()
			fs.queries = append(fs.queries, q)
			var bad []byte
			for k, b := range fs.badAnswer {
				if strings.Contains(q, k) {
					bad = b
				}
			}
			fs.mu.Unlock()
			if bad != nil {
				_ = sc.WritePacket(append(make([]byte, 4), bad...))
				sc.ResetSequence()
				continue
			}
			v = fs.answer(q, sessionVars)
		case mysql.COM_REGISTER_SLAVE:
			fs.mu.Lock()
			fs.registers = append(fs.registers, append([]byte(nil), p[1:]...))
			fs.mu.Unlock()
			v = nil
		case mysql.COM_BINLOG_DUMP, mysql.COM_BINLOG_DUMP_GTID:
			d := &dumpConn{t: fs.t, cmd: append([]byte(nil), p...), vars: sessionVars, raw: c,
				acks: make(chan semiAck, 64), semi: sessionVars["@rpl_semi_sync_slave"] == "1"}
			// NB: the replica sends nothing after the dump command until it
			// has events to ACK, so go-mysql's read buffer is empty: the
			// ACKs are read from the raw connection.
			fs.wg.Add(1)
			go func() { defer fs.wg.Done(); d.readAcks() }()
			fs.dumps <- d
			return
		default:
			v = mysql.NewError(mysql.ER_UNKNOWN_COM_ERROR, "Unknown command")
		}
		if err := sc.WriteValue(v); err != nil {
			c.Close()
			return
		}
		sc.ResetSequence()
	}
}

// answer answers one query as the source would.
func (fs *fakeSource) answer(q string, session map[string]string) any {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	one := func(name, v string) any {
		rs, err := textResultset([]string{name}, [][]any{{v}})
		if err != nil {
			return err
		}
		return &mysql.Result{Resultset: rs}
	}
	lq := strings.ToLower(q)
	switch {
	case lq == "select version()":
		return one("VERSION()", fs.vars["version"])
	case strings.HasPrefix(lq, "select @@global."):
		name := strings.TrimPrefix(lq, "select @@global.")
		v, ok := fs.vars[name]
		if !ok {
			return mysql.NewError(mysql.ER_UNKNOWN_SYSTEM_VARIABLE, fmt.Sprintf("Unknown system variable '%s'", name))
		}
		return one(q[len("select "):], v)
	case strings.HasPrefix(lq, "set "):
		// SET @a = 1, @b = 'x': recorded for the test to read.
		for _, part := range strings.Split(q[4:], ",") {
			k, v, ok := strings.Cut(part, "=")
			if !ok {
				return mysql.NewError(mysql.ER_PARSE_ERROR, "You have an error in your SQL syntax near '"+part+"'")
			}
			session[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), "'")
		}
		return nil
	case strings.HasPrefix(lq, "show global status like "):
		prefix := strings.TrimSuffix(strings.Trim(q[len("show global status like "):], "'"), "%")
		var rows [][]any
		for k, v := range fs.status {
			if strings.HasPrefix(strings.ToLower(k), strings.ToLower(prefix)) {
				rows = append(rows, []any{k, v})
			}
		}
		rs, err := textResultset([]string{"Variable_name", "Value"}, rows)
		if err != nil {
			return err
		}
		return &mysql.Result{Resultset: rs}
	}
	return mysql.NewError(mysql.ER_PARSE_ERROR, "You have an error in your SQL syntax: "+q)
}

func (d *dumpConn) readAcks() {
	defer close(d.acks)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(d.raw, hdr[:]); err != nil {
			return
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		p := make([]byte, n)
		if _, err := io.ReadFull(d.raw, p); err != nil {
			return
		}
		file, pos, err := binlog.ParseSemiSyncAck(p)
		if err != nil {
			d.t.Errorf("fake source: the replica sent a packet that is not an ACK: %x: %v", p, err)
			return
		}
		d.acks <- semiAck{file: file, pos: pos}
	}
}

// writePacket writes one packet with the given payload.
func (d *dumpConn) writePacket(payload []byte) error {
	b := make([]byte, 4, 4+len(payload))
	n := len(payload)
	b[0], b[1], b[2] = byte(n), byte(n>>8), byte(n>>16)
	_ = d.raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := d.raw.Write(append(b, payload...))
	return err
}

// send writes one event as the source's dump thread does: the OK byte, the
// semi-sync header when the session turned semi-sync on, the event.
func (d *dumpConn) send(ev []byte, needAck bool) {
	d.t.Helper()
	p := []byte{0x00}
	if d.semi {
		flag := byte(0)
		if needAck {
			flag = semiNeedsAck
		}
		p = append(p, binlog.SemiSyncMagic, flag)
	}
	if err := d.writePacket(append(p, ev...)); err != nil {
		d.t.Fatalf("fake source: writing an event: %v", err)
	}
}

// sendTxn sends a whole transaction's events, asking for an ACK on its last.
func (d *dumpConn) sendTxn(raw []byte, needAck bool) {
	d.t.Helper()
	evs, err := binlog.SplitEvents(raw)
	if err != nil {
		d.t.Fatal(err)
	}
	for i, ev := range evs {
		d.send(ev, needAck && i == len(evs)-1)
	}
}

// ack waits for the replica's next ACK.
func (d *dumpConn) ack(timeout time.Duration) (semiAck, error) {
	select {
	case a, ok := <-d.acks:
		if !ok {
			return semiAck{}, errors.New("the replica closed the dump connection")
		}
		return a, nil
	case <-time.After(timeout):
		return semiAck{}, fmt.Errorf("no ACK within %v", timeout)
	}
}

// nextDump waits for the next connection that asks for a dump.
func (fs *fakeSource) nextDump(timeout time.Duration) *dumpConn {
	fs.t.Helper()
	select {
	case d := <-fs.dumps:
		return d
	case <-time.After(timeout):
		fs.t.Fatalf("fake source: no dump request within %v; queries: %q", timeout, fs.queryLog())
		return nil
	}
}

// dumpServerID returns the server id in a COM_BINLOG_DUMP(_GTID).
func (d *dumpConn) dumpServerID() uint32 {
	switch d.cmd[0] {
	case mysql.COM_BINLOG_DUMP: // pos(4) flags(2) server_id(4) name
		return binary.LittleEndian.Uint32(d.cmd[7:])
	default: // flags(2) server_id(4) ...
		return binary.LittleEndian.Uint32(d.cmd[3:])
	}
}

// textResultset builds a text result set with fresh fields. NB: go-mysql's
// BuildSimpleTextResultset takes a pooled Resultset whose Fields keep the
// pointers of a result the client in this process closed: it compares the
// new values with those stale fields ("row types aren't consistent") and
// writes into them.
func textResultset(names []string, rows [][]any) (*mysql.Resultset, error) {
	r := &mysql.Resultset{Fields: make([]*mysql.Field, len(names)), FieldNames: map[string]int{}}
	for i, n := range names {
		r.Fields[i] = &mysql.Field{Name: []byte(n), Charset: 33, Type: mysql.MYSQL_TYPE_VAR_STRING}
		r.FieldNames[n] = i
	}
	for _, vs := range rows {
		if len(vs) != len(names) {
			return nil, fmt.Errorf("a row of %d values for %d columns", len(vs), len(names))
		}
		var row []byte
		for j, v := range vs {
			switch v.(type) {
			case int64, uint64:
				r.Fields[j].Type, r.Fields[j].Charset, r.Fields[j].Flag = mysql.MYSQL_TYPE_LONGLONG, 63, mysql.BINARY_FLAG
			}
			b, err := mysql.FormatTextValue(v)
			if err != nil {
				return nil, err
			}
			row = append(row, mysql.PutLengthEncodedString(b)...)
		}
		r.RowDatas = append(r.RowDatas, row)
	}
	return r, nil
}
