package failover

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
)

// fakeSQL is a MySQL or MariaDB server in process, on a loopback listener,
// that keeps the state the failover's statements change and answers its
// queries from that state: global variables (SET GLOBAL / SELECT
// @@GLOBAL.x), the semi-sync source plugin (absent: its variables are
// unknown), the replica configuration (CHANGE ... TO, START/STOP/RESET,
// SHOW REPLICA/SLAVE STATUS), the process list (SHOW PROCESSLIST, KILL)
// and the binary logs (SHOW BINARY LOGS, SHOW BINLOG EVENTS). go-mysql's
// server package does the login. Tests read the state, not the statement
// text: the statements are the dialect's to choose.
type fakeSQL struct {
	t       testing.TB
	ln      net.Listener
	flavor  string
	version string

	mu        sync.Mutex
	vars      map[string]string // global variables, lower-case names
	plugin    bool              // the semi-sync source plugin is loaded
	noInstall bool              // INSTALL PLUGIN fails
	replica   *fakeReplica
	sessions  []Session
	binlogs   []fakeBinlog
	fail      map[string]string // a statement containing the key fails with the message
	stmts     []string
	conns     []net.Conn
	wg        sync.WaitGroup
}

type fakeReplica struct {
	opts    map[string]string // CHANGE ... TO options, upper-case names
	running bool
	lastErr string
}

type fakeBinlog struct {
	name   string
	events []fakeEvent
}

type fakeEvent struct {
	typ, info string
}

// semiVars are the semi-sync source plugin's variables and their defaults.
func semiVars(flavor string) map[string]string {
	p := "rpl_semi_sync_source_"
	noReplica := "wait_no_replica"
	if flavor == "mariadb" {
		p, noReplica = "rpl_semi_sync_master_", "wait_no_slave"
	}
	m := map[string]string{p + "enabled": "OFF", p + "timeout": "10000", p + "wait_point": "AFTER_SYNC", p + noReplica: "ON"}
	if flavor == "mysql" {
		m[p+"wait_for_replica_count"] = "1"
	}
	return m
}

func newFakeSQL(t testing.TB, flavor string) *fakeSQL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSQL{t: t, ln: ln, flavor: flavor, vars: map[string]string{}, fail: map[string]string{}, plugin: true}
	f.vars["server_id"] = "7"
	f.vars["read_only"] = "OFF"
	if flavor == "mariadb" {
		f.version = "10.11.19-MariaDB-log"
		f.vars["gtid_current_pos"] = "0-7-20"
		f.vars["gtid_binlog_state"] = "0-1-19,0-7-20"
		f.vars["gtid_slave_pos"] = "0-1-19"
	} else {
		f.version = "9.7.0"
		f.vars["server_uuid"] = "5a6b0000-0000-0000-0000-000000000007"
		f.vars["gtid_executed"] = "5a6b0000-0000-0000-0000-000000000007:1-20,\n3e110000-0000-0000-0000-000000000001:1-5"
		f.vars["super_read_only"] = "OFF"
	}
	for k, v := range semiVars(flavor) {
		f.vars[k] = v
	}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *fakeSQL) addr() string { return f.ln.Addr().String() }

func (f *fakeSQL) close() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// locked runs fn under the server's lock: tests read and change its state.
func (f *fakeSQL) locked(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *fakeSQL) get(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vars[name]
}

// removePlugin unloads the semi-sync source plugin.
func (f *fakeSQL) removePlugin() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plugin = false
	for k := range semiVars(f.flavor) {
		delete(f.vars, k)
	}
}

func (f *fakeSQL) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() { defer f.wg.Done(); f.serve(c) }()
	}
}

func (f *fakeSQL) serve(c net.Conn) {
	defer c.Close()
	srv := server.NewServer(f.version, mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, nil, nil)
	auth := server.NewInMemoryAuthenticationHandler(mysql.AUTH_NATIVE_PASSWORD)
	if err := auth.AddUser("admin", "admin-pw"); err != nil {
		f.t.Error(err)
		return
	}
	sc, err := srv.NewCustomizedConn(c, auth, server.EmptyHandler{})
	if err != nil {
		return
	}
	for {
		p, err := sc.ReadPacket()
		if err != nil || len(p) == 0 {
			return
		}
		var v any
		switch p[0] {
		case mysql.COM_QUIT:
			return
		case mysql.COM_PING:
			v = nil
		case mysql.COM_QUERY:
			v = f.answer(string(p[1:]))
		default:
			v = mysql.NewError(mysql.ER_UNKNOWN_COM_ERROR, "Unknown command")
		}
		if err := sc.WriteValue(v); err != nil {
			return
		}
		sc.ResetSequence()
	}
}

func resultSet(names []string, rows [][]any) any {
	rs, err := textResultset(names, rows)
	if err != nil {
		return err
	}
	return &mysql.Result{Resultset: rs}
}

// value is a variable's value as the server selects it: booleans as 1/0,
// numbers as numbers.
func value(v string) any {
	switch strings.ToUpper(v) {
	case "ON":
		return int64(1)
	case "OFF":
		return int64(0)
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n
	}
	return v
}

var (
	setGlobalRe = regexp.MustCompile(`(?i)^SET GLOBAL (\w+)\s*=\s*(.+)$`)
	changeRe    = regexp.MustCompile(`(?i)^CHANGE (MASTER|REPLICATION SOURCE) TO (.*)$`)
	optionRe    = regexp.MustCompile(`(\w+)=('(?:[^']|'')*'|[^,\s]+)`)
	killRe      = regexp.MustCompile(`(?i)^KILL (?:CONNECTION )?(\d+)$`)
	eventsRe    = regexp.MustCompile(`(?i)^SHOW BINLOG EVENTS IN '([^']*)' FROM (\d+) LIMIT (\d+)$`)
)

func unknownVar(name string) error {
	return mysql.NewError(mysql.ER_UNKNOWN_SYSTEM_VARIABLE, fmt.Sprintf("Unknown system variable '%s'", name))
}

// replicaWord is the flavor's word in replication statements: MySQL 9
// refuses SLAVE; MariaDB takes both.
func (f *fakeSQL) replicaWord(q string) bool {
	return f.flavor == "mariadb" || !strings.Contains(strings.ToUpper(q), "SLAVE")
}

func (f *fakeSQL) answer(q string) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stmts = append(f.stmts, q)
	for k, msg := range f.fail {
		if strings.Contains(q, k) {
			return mysql.NewError(mysql.ER_UNKNOWN_ERROR, msg)
		}
	}
	uq := strings.ToUpper(q)
	syntax := mysql.NewError(mysql.ER_PARSE_ERROR, "You have an error in your SQL syntax near '"+q+"'")
	switch {
	case uq == "SELECT VERSION()":
		return resultSet([]string{"VERSION()"}, [][]any{{f.version}})
	case uq == "SELECT 1":
		return resultSet([]string{"1"}, [][]any{{int64(1)}})
	case strings.HasPrefix(uq, "SELECT "):
		var names []string
		var row []any
		for _, item := range strings.Split(q[len("SELECT "):], ", ") {
			names = append(names, item)
			switch {
			case strings.HasPrefix(strings.ToUpper(item), "@@GLOBAL."):
				name := strings.ToLower(item[len("@@GLOBAL."):])
				v, ok := f.vars[name]
				if !ok {
					return unknownVar(name)
				}
				row = append(row, value(v))
			case item == "''":
				row = append(row, "")
			default:
				return syntax
			}
		}
		return resultSet(names, [][]any{row})
	case strings.HasPrefix(uq, "SET SESSION "):
		return nil
	case setGlobalRe.MatchString(q):
		m := setGlobalRe.FindStringSubmatch(q)
		name, v := strings.ToLower(m[1]), strings.TrimSpace(m[2])
		if _, ok := f.vars[name]; !ok {
			return unknownVar(name)
		}
		if strings.HasPrefix(strings.ToUpper(v), "@@GLOBAL.") {
			v = f.vars[strings.ToLower(v[len("@@GLOBAL."):])]
		}
		f.vars[name] = strings.Trim(v, "'")
		// MySQL: super_read_only ON sets read_only ON; read_only OFF sets
		// super_read_only OFF.
		if name == "super_read_only" && strings.EqualFold(v, "ON") {
			f.vars["read_only"] = "ON"
		}
		if name == "read_only" && strings.EqualFold(v, "OFF") && f.flavor == "mysql" {
			f.vars["super_read_only"] = "OFF"
		}
		return nil
	case strings.HasPrefix(uq, "INSTALL PLUGIN "):
		if f.noInstall {
			return mysql.NewError(1126, "Can't open shared library 'semisync_source.so'")
		}
		f.plugin = true
		for k, v := range semiVars(f.flavor) {
			f.vars[k] = v
		}
		return nil
	case changeRe.MatchString(q):
		m := changeRe.FindStringSubmatch(q)
		if (f.flavor == "mysql") != strings.EqualFold(m[1], "REPLICATION SOURCE") {
			return syntax
		}
		if f.replica != nil && f.replica.running {
			return mysql.NewError(1198, "This operation cannot be performed with a running replica; run STOP REPLICA first")
		}
		r := &fakeReplica{opts: map[string]string{}}
		for _, o := range optionRe.FindAllStringSubmatch(m[2], -1) {
			v := o[2]
			if strings.HasPrefix(v, "'") {
				v = strings.ReplaceAll(v[1:len(v)-1], "''", "'")
			}
			r.opts[strings.ToUpper(o[1])] = v
		}
		f.replica = r
		return nil
	case uq == "START SLAVE" || uq == "START REPLICA":
		if !f.replicaWord(q) {
			return syntax
		}
		if f.replica == nil {
			return mysql.NewError(1200, "The server is not configured as replica")
		}
		f.replica.running = true
		return nil
	case uq == "STOP SLAVE" || uq == "STOP REPLICA":
		if !f.replicaWord(q) {
			return syntax
		}
		if f.replica != nil {
			f.replica.running = false
		}
		return nil
	case uq == "RESET SLAVE ALL" || uq == "RESET REPLICA ALL":
		if !f.replicaWord(q) {
			return syntax
		}
		if f.replica != nil && f.replica.running {
			return mysql.NewError(1198, "This operation cannot be performed with a running replica")
		}
		f.replica = nil
		return nil
	case uq == "SHOW SLAVE STATUS" || uq == "SHOW REPLICA STATUS":
		if !f.replicaWord(q) {
			return syntax
		}
		names := []string{"Replica_IO_Running", "Replica_SQL_Running", "Source_Host", "Source_Port", "Last_IO_Error", "Last_SQL_Error"}
		host, port := "SOURCE_HOST", "SOURCE_PORT"
		if f.flavor == "mariadb" {
			names = []string{"Slave_IO_Running", "Slave_SQL_Running", "Master_Host", "Master_Port", "Last_IO_Error", "Last_SQL_Error"}
			host, port = "MASTER_HOST", "MASTER_PORT"
		}
		if f.replica == nil {
			return resultSet(names, nil)
		}
		yes := "No"
		if f.replica.running {
			yes = "Yes"
		}
		return resultSet(names, [][]any{{yes, yes, f.replica.opts[host], f.replica.opts[port], "", f.replica.lastErr}})
	case uq == "SHOW PROCESSLIST":
		var rows [][]any
		for _, s := range f.sessions {
			rows = append(rows, []any{s.ID, s.User, s.Command, s.State, s.Info})
		}
		return resultSet([]string{"Id", "User", "Command", "State", "Info"}, rows)
	case killRe.MatchString(q):
		id, _ := strconv.ParseUint(killRe.FindStringSubmatch(q)[1], 10, 64)
		for i, s := range f.sessions {
			if s.ID == id {
				f.sessions = append(f.sessions[:i], f.sessions[i+1:]...)
				return nil
			}
		}
		return mysql.NewError(1094, fmt.Sprintf("Unknown thread id: %d", id))
	case uq == "SHOW BINARY LOGS":
		var rows [][]any
		for _, b := range f.binlogs {
			rows = append(rows, []any{b.name, int64(1000)})
		}
		return resultSet([]string{"Log_name", "File_size"}, rows)
	case eventsRe.MatchString(q):
		m := eventsRe.FindStringSubmatch(q)
		from, _ := strconv.ParseUint(m[2], 10, 64)
		limit, _ := strconv.Atoi(m[3])
		var rows [][]any
		for _, b := range f.binlogs {
			if b.name != m[1] {
				continue
			}
			// Each event is 100 bytes, the first at 4.
			for i, e := range b.events {
				pos := uint64(4 + 100*i)
				if pos < from || len(rows) == limit {
					continue
				}
				rows = append(rows, []any{b.name, pos, e.typ, int64(7), pos + 100, e.info})
			}
		}
		return resultSet([]string{"Log_name", "Pos", "Event_type", "Server_id", "End_log_pos", "Info"}, rows)
	}
	return syntax
}

// dialFake logs in to a fakeSQL with go-mysql's client, as the daemon's
// dial does.
func dialFake(ctx context.Context, addr, user, password string) (*client.Conn, error) {
	return client.ConnectWithContext(ctx, addr, user, password, "", 5*time.Second)
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
