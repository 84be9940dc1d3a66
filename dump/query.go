package dump

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlogsvr/binlogsvr/logger"
)

// queryEnv is what answering a statement may consult besides the session's
// user variables. The session implements it over the log; tests over data.
type queryEnv interface {
	facts() *facts
	files() ([]logger.FileMeta, error)
	// gtidPos is binlog_gtid_pos(file, pos); ok=false gives NULL.
	gtidPos(file string, pos uint64) (string, bool, error)
	// binlogEvents are the rows of SHOW BINLOG EVENTS.
	binlogEvents(file string, from uint64, offset, limit int) ([][]any, error)
	// replicaHosts are the rows of SHOW SLAVE HOSTS / SHOW REPLICAS.
	replicaHosts(mysqlStyle, replicasCmd bool) ([]string, [][]any)
	connID() uint32
	userName() string
	database() string
	now() time.Time
}

// reply is the outcome of one statement.
type reply struct {
	res         *mysql.Result // nil with err == nil: OK
	err         error
	passthrough bool   // send the statement to the schema endpoint
	useDB       string // the statement selects this database (USE)
	kill        uint32 // KILL this connection id
	killQuery   bool
}

// answer decides what to do with one COM_QUERY. vars holds the session's
// user variables (lower-case names; absent = NULL) and is updated by SET.
func answer(q string, vars map[string]string, env queryEnv) reply {
	// NB: a client with CLIENT_QUERY_ATTRIBUTES (MySQL 8+) prefixes every
	// query with a parameter count and set count; statements never start
	// with a NUL, so a leading "\x00\x01" is that prefix.
	if len(q) >= 2 && q[0] == 0 && q[1] == 1 {
		q = q[2:]
	}
	toks, err := lex(q)
	if err != nil {
		return reply{err: myError(mysql.ER_PARSE_ERROR, "binlogsvr cannot parse the statement %q: %v", clip(q), err)}
	}
	if len(toks) == 0 {
		return reply{err: myError(mysql.ER_EMPTY_QUERY, "Query was empty")}
	}
	unknown := func() reply {
		return reply{err: myError(erNotSupportedYet, "binlogsvr does not support the statement %q: it serves binlog dumps and the probe SQL replicas send; schema SQL needs --dump-schema-endpoint", clip(q))}
	}
	switch first := toks[0]; {
	case first.is("SET"):
		return doSet(toks[1:], vars, env)
	case first.is("SELECT"):
		if r, ok := doSelect(toks[1:], vars, env); ok {
			return r
		}
		return reply{passthrough: true}
	case first.is("SHOW"):
		return doShow(toks[1:], q, env)
	case first.is("KILL"):
		rest := toks[1:]
		kq := false
		if len(rest) > 0 && (rest[0].is("CONNECTION") || rest[0].is("QUERY")) {
			kq = rest[0].is("QUERY")
			rest = rest[1:]
		}
		if len(rest) != 1 || rest[0].Kind != tokNumber {
			return reply{err: myError(mysql.ER_PARSE_ERROR, "KILL needs a connection id: %q", clip(q))}
		}
		id, err := strconv.ParseUint(rest[0].Val, 10, 32)
		if err != nil {
			return reply{err: myError(erUnknownThread, "Unknown thread id: %s", rest[0].Val)}
		}
		return reply{kill: uint32(id), killQuery: kq}
	case first.is("USE") && len(toks) == 2:
		return reply{passthrough: true, useDB: toks[1].Val}
	case first.is("DESCRIBE") || first.is("DESC") || first.is("EXPLAIN"),
		first.is("START") || first.is("BEGIN") || first.is("COMMIT") || first.is("ROLLBACK"),
		first.is("SAVEPOINT") || first.is("RELEASE"):
		return reply{passthrough: true}
	case first.is("FLUSH") || first.is("UNLOCK") || first.is("DO"):
		return reply{} // harmless no-ops for dump tools
	}
	return unknown()
}

// clip shortens a statement for an error message.
func clip(q string) string {
	q = strings.TrimSpace(q)
	if len(q) > 200 {
		return q[:200] + "..."
	}
	return q
}

// doSet stores user variables; session system variables are accepted and
// ignored (the fleet has no session state that they change).
func doSet(toks []token, vars map[string]string, env queryEnv) reply {
	if len(toks) > 0 && (toks[0].is("SESSION") || toks[0].is("LOCAL")) {
		toks = toks[1:]
	}
	if len(toks) > 0 && toks[0].is("GLOBAL") {
		return reply{err: myError(mysql.ER_SPECIFIC_ACCESS_DENIED_ERROR, "binlogsvr does not accept SET GLOBAL")}
	}
	for _, a := range splitTop(toks) {
		if len(a) == 0 {
			continue
		}
		if a[0].Kind != tokUserVar {
			continue // SET NAMES, SET wait_timeout=..., SET @@session.x=...
		}
		if len(a) < 3 || a[1].Kind != tokPunct || a[1].Val != "=" {
			return reply{err: myError(mysql.ER_PARSE_ERROR, "cannot parse the assignment to @%s", a[0].Val)}
		}
		name := strings.ToLower(a[0].Val)
		val, null, err := evalScalar(a[2:], vars, env)
		if err != nil {
			return reply{err: err}
		}
		if null {
			delete(vars, name)
		} else {
			vars[name] = val
		}
	}
	return reply{}
}

// splitTop splits tokens at top-level commas.
func splitTop(toks []token) [][]token {
	var out [][]token
	depth, start := 0, 0
	for i, t := range toks {
		if t.Kind != tokPunct {
			continue
		}
		switch t.Val {
		case "(":
			depth++
		case ")":
			depth--
		case ",":
			if depth == 0 {
				out = append(out, toks[start:i])
				start = i + 1
			}
		}
	}
	return append(out, toks[start:])
}

// errUnanswerable marks an expression the fleet cannot evaluate itself.
var errUnanswerable = fmt.Errorf("dump: expression not answerable")

// evalScalar evaluates a literal, variable or known function call.
func evalScalar(e []token, vars map[string]string, env queryEnv) (val string, null bool, err error) {
	if len(e) == 2 && e[0].Kind == tokPunct && e[0].Val == "-" && e[1].Kind == tokNumber {
		return "-" + e[1].Val, false, nil
	}
	if len(e) == 1 {
		t := e[0]
		switch t.Kind {
		case tokString, tokNumber:
			return t.Val, false, nil
		case tokUserVar:
			v, ok := vars[strings.ToLower(t.Val)]
			return v, !ok, nil
		case tokSysVar:
			if isSemiSyncVar(t.Val) {
				if v, ok := env.facts().semiSyncVar(t.Val); ok {
					return v, false, nil
				}
				return "", false, myError(erUnknownSystemVariable, "Unknown system variable '%s'", t.Val)
			}
			v, ok := env.facts().sysVar(t.Val)
			if !ok {
				return "", false, myError(erUnknownSystemVariable, "Unknown system variable '%s'", t.Val)
			}
			return v, false, nil
		case tokWord:
			switch strings.ToUpper(t.Val) {
			case "NULL":
				return "", true, nil
			case "ON", "OFF", "TRUE", "FALSE", "DEFAULT":
				return t.Val, false, nil
			}
		}
		return "", false, errUnanswerable
	}
	if len(e) >= 3 && e[0].Kind == tokWord && e[1].Kind == tokPunct && e[1].Val == "(" &&
		e[len(e)-1].Kind == tokPunct && e[len(e)-1].Val == ")" {
		args := splitTop(e[2 : len(e)-1])
		if len(args) == 1 && len(args[0]) == 0 {
			args = nil
		}
		switch fn := strings.ToUpper(e[0].Val); {
		case fn == "UNIX_TIMESTAMP" && len(args) == 0:
			return strconv.FormatInt(env.now().Unix(), 10), false, nil
		case fn == "VERSION" && len(args) == 0:
			return env.facts().Version, false, nil
		case fn == "CONNECTION_ID" && len(args) == 0:
			return strconv.FormatUint(uint64(env.connID()), 10), false, nil
		case fn == "DATABASE" || fn == "SCHEMA":
			if env.database() == "" {
				return "", true, nil
			}
			return env.database(), false, nil
		case (fn == "USER" || fn == "CURRENT_USER" || fn == "SESSION_USER" || fn == "SYSTEM_USER") && len(args) == 0:
			return env.userName() + "@%", false, nil
		case (fn == "NOW" || fn == "CURRENT_TIMESTAMP" || fn == "SYSDATE") && len(args) <= 1:
			return env.now().UTC().Format("2006-01-02 15:04:05"), false, nil
		case fn == "BINLOG_GTID_POS" && len(args) == 2:
			f, fnull, err := evalScalar(args[0], vars, env)
			if err != nil {
				return "", false, err
			}
			p, pnull, err := evalScalar(args[1], vars, env)
			if err != nil {
				return "", false, err
			}
			pos, perr := strconv.ParseUint(p, 10, 64)
			if fnull || pnull || perr != nil {
				return "", true, nil
			}
			g, ok, err := env.gtidPos(f, pos)
			if err != nil {
				return "", false, myError(mysql.ER_UNKNOWN_ERROR, "binlog_gtid_pos: %v", err)
			}
			return g, !ok, nil
		}
	}
	return "", false, errUnanswerable
}

// doSelect answers a SELECT without FROM whose items are all literals,
// variables or known functions. ok=false: pass it through.
func doSelect(toks []token, vars map[string]string, env queryEnv) (reply, bool) {
	if n := len(toks); n >= 2 && toks[n-2].is("LIMIT") && toks[n-1].Kind == tokNumber {
		toks = toks[:n-2] // the mysql client's "select @@version_comment limit 1"
	}
	for _, t := range toks {
		if t.is("FROM") {
			return reply{}, false
		}
	}
	items := splitTop(toks)
	names := make([]string, 0, len(items))
	row := make([]any, 0, len(items))
	for _, it := range items {
		if len(it) == 0 {
			return reply{}, false
		}
		name := joinText(it)
		if n := len(it); n >= 3 && it[n-2].is("AS") {
			name, it = it[n-1].Val, it[:n-2]
		} else if n >= 2 && (it[n-1].Kind == tokWord || it[n-1].Kind == tokString) && it[n-2].Kind != tokPunct {
			name, it = it[n-1].Val, it[:n-1]
		}
		val, null, err := evalScalar(it, vars, env)
		if err == errUnanswerable {
			return reply{}, false
		}
		if err != nil {
			return reply{err: err}, true
		}
		names = append(names, name)
		if null {
			row = append(row, nil)
		} else {
			row = append(row, val)
		}
	}
	return resultOf(names, [][]any{row}), true
}

// joinText rebuilds an expression's text the way MySQL names a column.
func joinText(toks []token) string {
	var b strings.Builder
	for i, t := range toks {
		if i > 0 && t.Kind != tokPunct && toks[i-1].Kind != tokPunct {
			b.WriteByte(' ')
		}
		if i > 0 && t.Kind == tokPunct && t.Val == "," {
			b.WriteString(",")
			continue
		}
		b.WriteString(t.Text)
	}
	return b.String()
}

// resultOf builds a text result set; a build error becomes an error reply.
// A column whose rows mix value types (SHOW VARIABLES over numeric and text
// variables) is sent as text: go-mysql refuses mixed types.
func resultOf(names []string, rows [][]any) reply {
	for c := range names {
		var kind string
		mixed := false
		for _, r := range rows {
			if c >= len(r) || r[c] == nil {
				continue
			}
			k := fmt.Sprintf("%T", r[c])
			if kind != "" && k != kind {
				mixed = true
			}
			kind = k
		}
		if !mixed {
			continue
		}
		for _, r := range rows {
			if c < len(r) && r[c] != nil {
				switch v := r[c].(type) {
				case string:
				case []byte:
					r[c] = string(v)
				default:
					r[c] = fmt.Sprint(v)
				}
			}
		}
	}
	rs, err := textResultset(names, rows)
	if err != nil {
		return reply{err: myError(mysql.ER_UNKNOWN_ERROR, "binlogsvr: building a result: %v", err)}
	}
	return reply{res: mysql.NewResult(rs)}
}

// textResultset builds a text-protocol result set. NB: not go-mysql's
// BuildSimpleTextResultset: it takes a pooled Resultset whose Reset keeps
// the previous query's *Field pointers, so a result could carry another
// query's column names and types, or fail with "row types aren't
// consistent" (seen with real replicas asking SHOW VARIABLES).
func textResultset(names []string, rows [][]any) (*mysql.Resultset, error) {
	r := &mysql.Resultset{Fields: make([]*mysql.Field, len(names)), FieldNames: make(map[string]int, len(names))}
	for i, n := range names {
		r.Fields[i] = &mysql.Field{Name: []byte(n), Charset: 33, Type: mysql.MYSQL_TYPE_NULL}
		r.FieldNames[n] = i
	}
	for i, row := range rows {
		if len(row) != len(names) {
			return nil, fmt.Errorf("row %d has %d columns, not %d", i, len(row), len(names))
		}
		var data []byte
		for j, v := range row {
			f := r.Fields[j]
			var text string
			typ := uint8(mysql.MYSQL_TYPE_VAR_STRING)
			switch v := v.(type) {
			case nil:
				data = append(data, 0xfb)
				continue
			case string:
				text = v
			case []byte:
				text = string(v)
			case int, int8, int16, int32, int64:
				typ, text = mysql.MYSQL_TYPE_LONGLONG, fmt.Sprint(v)
			case uint, uint8, uint16, uint32, uint64:
				typ, text = mysql.MYSQL_TYPE_LONGLONG, fmt.Sprint(v)
			case float32, float64:
				typ, text = mysql.MYSQL_TYPE_DOUBLE, fmt.Sprint(v)
			default:
				return nil, fmt.Errorf("unsupported value type %T", v)
			}
			if f.Type == mysql.MYSQL_TYPE_NULL {
				f.Type = typ
				if typ != mysql.MYSQL_TYPE_VAR_STRING {
					f.Charset, f.Flag = 63, mysql.BINARY_FLAG|mysql.NOT_NULL_FLAG
				}
			} else if f.Type != typ {
				return nil, fmt.Errorf("column %s mixes value types", names[j])
			}
			data = append(data, mysql.PutLengthEncodedString([]byte(text))...)
		}
		r.RowDatas = append(r.RowDatas, data)
	}
	return r, nil
}

// words returns the upper-cased words of toks up to the first non-word.
func words(toks []token) []string {
	var w []string
	for _, t := range toks {
		if t.Kind != tokWord {
			break
		}
		w = append(w, strings.ToUpper(t.Val))
	}
	return w
}

func hasPrefixWords(w []string, p ...string) bool {
	if len(w) < len(p) {
		return false
	}
	for i := range p {
		if w[i] != p[i] {
			return false
		}
	}
	return true
}

// doShow answers the SHOW statements replicas and CDC clients send.
func doShow(toks []token, q string, env queryEnv) reply {
	w := words(toks)
	f := env.facts()
	switch {
	case hasPrefixWords(w, "MASTER", "STATUS"), hasPrefixWords(w, "BINARY", "LOG", "STATUS"), hasPrefixWords(w, "BINLOG", "STATUS"):
		names := []string{"File", "Position", "Binlog_Do_DB", "Binlog_Ignore_DB"}
		row := []any{f.File, f.Pos, "", ""}
		if f.mysqlColumns() {
			names = append(names, "Executed_Gtid_Set")
			row = append(row, f.GTIDs)
		}
		if f.File == "" {
			return resultOf(names, nil)
		}
		return resultOf(names, [][]any{row})
	case hasPrefixWords(w, "BINARY", "LOGS"), hasPrefixWords(w, "MASTER", "LOGS"):
		files, err := env.files()
		if err != nil {
			return reply{err: myError(mysql.ER_UNKNOWN_ERROR, "binlogsvr: listing binlog files: %v", err)}
		}
		names := []string{"Log_name", "File_size"}
		if f.mysqlColumns() {
			names = append(names, "Encrypted")
		}
		var rows [][]any
		for _, m := range files {
			r := []any{m.Name(), m.Size}
			if f.mysqlColumns() {
				r = append(r, "No")
			}
			rows = append(rows, r)
		}
		return resultOf(names, rows)
	case hasPrefixWords(w, "BINLOG", "EVENTS"):
		return showBinlogEvents(toks[2:], env)
	case hasPrefixWords(w, "SLAVE", "HOSTS"), hasPrefixWords(w, "REPLICAS"):
		names, rows := env.replicaHosts(f.mysqlColumns(), w[0] == "REPLICAS")
		return resultOf(names, rows)
	case len(w) >= 1 && (w[0] == "VARIABLES" || (len(w) >= 2 && (w[0] == "GLOBAL" || w[0] == "SESSION" || w[0] == "LOCAL") && w[1] == "VARIABLES")):
		rest := toks[1:]
		if w[0] != "VARIABLES" {
			rest = toks[2:]
		}
		like, in, filter, ok := parseShowFilter(rest)
		if !ok {
			return reply{err: myError(mysql.ER_PARSE_ERROR, "binlogsvr cannot parse the filter of %q", clip(q))}
		}
		return resultOf([]string{"Variable_name", "Value"}, f.showVariables(like, in, filter))
	case len(w) >= 1 && (w[0] == "STATUS" || (len(w) >= 2 && (w[0] == "GLOBAL" || w[0] == "SESSION") && w[1] == "STATUS")):
		return resultOf([]string{"Variable_name", "Value"}, nil)
	case hasPrefixWords(w, "WARNINGS"), hasPrefixWords(w, "ERRORS"):
		return resultOf([]string{"Level", "Code", "Message"}, nil)
	case hasPrefixWords(w, "GRANTS"):
		return resultOf([]string{"Grants for " + env.userName() + "@%"},
			[][]any{{"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `" + env.userName() + "`@`%`"}})
	case hasPrefixWords(w, "CREATE"), hasPrefixWords(w, "FULL"), hasPrefixWords(w, "COLUMNS"), hasPrefixWords(w, "FIELDS"),
		hasPrefixWords(w, "INDEX"), hasPrefixWords(w, "INDEXES"), hasPrefixWords(w, "KEYS"), hasPrefixWords(w, "TABLES"),
		hasPrefixWords(w, "DATABASES"), hasPrefixWords(w, "SCHEMAS"), hasPrefixWords(w, "TABLE", "STATUS"),
		hasPrefixWords(w, "CHARACTER"), hasPrefixWords(w, "CHARSET"), hasPrefixWords(w, "COLLATION"),
		hasPrefixWords(w, "TRIGGERS"), hasPrefixWords(w, "EXTENDED"), hasPrefixWords(w, "ENGINES"),
		hasPrefixWords(w, "PROCEDURE"), hasPrefixWords(w, "FUNCTION"), hasPrefixWords(w, "EVENTS"):
		return reply{passthrough: true}
	}
	return reply{err: myError(erNotSupportedYet, "binlogsvr does not support the statement %q", clip(q))}
}

// parseShowFilter parses LIKE 'p' | WHERE Variable_name IN ('a', ...) |
// WHERE Variable_name = 'a'.
func parseShowFilter(t []token) (like string, in []string, filter, ok bool) {
	switch {
	case len(t) == 0:
		return "", nil, false, true
	case len(t) == 2 && t[0].is("LIKE") && t[1].Kind == tokString:
		return t[1].Val, nil, true, true
	case len(t) >= 4 && t[0].is("WHERE") && t[1].Kind == tokWord:
		if t[2].Kind == tokPunct && t[2].Val == "=" && len(t) == 4 && t[3].Kind == tokString {
			return "", []string{t[3].Val}, true, true
		}
		if t[2].is("LIKE") && len(t) == 4 && t[3].Kind == tokString {
			return t[3].Val, nil, true, true
		}
		if t[2].is("IN") && len(t) >= 5 && t[3].Val == "(" && t[len(t)-1].Val == ")" {
			in = []string{}
			for _, e := range splitTop(t[4 : len(t)-1]) {
				if len(e) != 1 || e[0].Kind != tokString {
					return "", nil, false, false
				}
				in = append(in, e[0].Val)
			}
			return "", in, true, true
		}
	}
	return "", nil, false, false
}

// showBinlogEvents parses [IN 'file'] [FROM pos] [LIMIT [offset,] count].
func showBinlogEvents(t []token, env queryEnv) reply {
	file, from, offset, limit := "", uint64(4), 0, -1
	bad := reply{err: myError(mysql.ER_PARSE_ERROR, "SHOW BINLOG EVENTS [IN 'file'] [FROM pos] [LIMIT [offset,] count]")}
	for len(t) > 0 {
		switch {
		case t[0].is("IN") && len(t) >= 2 && t[1].Kind == tokString:
			file, t = t[1].Val, t[2:]
		case t[0].is("FROM") && len(t) >= 2 && t[1].Kind == tokNumber:
			n, err := strconv.ParseUint(t[1].Val, 10, 64)
			if err != nil {
				return bad
			}
			from, t = n, t[2:]
		case t[0].is("LIMIT") && len(t) >= 2 && t[1].Kind == tokNumber:
			a, err := strconv.Atoi(t[1].Val)
			if err != nil {
				return bad
			}
			limit, t = a, t[2:]
			if len(t) >= 2 && t[0].Val == "," && t[1].Kind == tokNumber {
				b, err := strconv.Atoi(t[1].Val)
				if err != nil {
					return bad
				}
				offset, limit, t = a, b, t[2:]
			}
		default:
			return bad
		}
	}
	rows, err := env.binlogEvents(file, from, offset, limit)
	if err != nil {
		return reply{err: err}
	}
	return resultOf([]string{"Log_name", "Pos", "Event_type", "Server_id", "End_log_pos", "Info"}, rows)
}
