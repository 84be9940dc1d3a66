package dump

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gmysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlogsvr/binlogsvr/logger/mysqltls"
)

// upstreamTimeout bounds one passed-through statement.
const upstreamTimeout = 30 * time.Second

// upstream is a session's connection to the schema endpoint, opened on
// first use.
type upstream struct{ c *client.Conn }

func (ss *session) closeUpstream() {
	if ss.up != nil && ss.up.c != nil {
		ss.up.c.Close()
	}
	ss.up = nil
}

// passthrough runs q on the schema endpoint and returns its result. useDB
// records the database for later connections.
func (ss *session) passthrough(q, useDB string) (*gmysql.Result, error) {
	if ss.srv.cfg.SchemaEndpoint == "" {
		if useDB != "" {
			ss.db = useDB
			return nil, nil
		}
		return nil, myError(erNotSupportedYet, "binlogsvr passes schema SQL to a read-only endpoint, and none is configured (--dump-schema-endpoint): %q", clip(q))
	}
	if ss.up == nil {
		ep, err := parseEndpoint(ss.srv.cfg.SchemaEndpoint)
		if err != nil {
			return nil, myError(gmysql.ER_UNKNOWN_ERROR, "binlogsvr: schema endpoint: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), upstreamTimeout)
		db := ss.db
		if db == "" {
			db = ep.db
		}
		// NB: with --dump-schema-ssl-mode's TLS, and never the password in
		// cleartext over plaintext (mysqltls refuses mysql_clear_password).
		c, err := mysqltls.Connect(ctx, ss.srv.cfg.SchemaTLS, ep.addr, ep.user, ss.srv.cfg.SchemaPassword)
		cancel()
		if err != nil {
			return nil, myError(gmysql.ER_UNKNOWN_ERROR, "binlogsvr: connecting to the schema endpoint %s: %v", ep.addr, err)
		}
		if db != "" {
			c.SetDeadline(time.Now().Add(upstreamTimeout))
			if err := c.UseDB(db); err != nil {
				c.Close()
				var me *gmysql.MyError
				if errors.As(err, &me) {
					return nil, me
				}
				return nil, myError(gmysql.ER_UNKNOWN_ERROR, "binlogsvr: schema endpoint %s: USE %s: %v", ep.addr, db, err)
			}
		}
		ss.up = &upstream{c: c}
	}
	ss.up.c.SetDeadline(time.Now().Add(upstreamTimeout))
	r, err := ss.up.c.Execute(q)
	if err != nil {
		var me *gmysql.MyError
		if errors.As(err, &me) {
			return nil, me
		}
		ss.closeUpstream()
		return nil, myError(gmysql.ER_UNKNOWN_ERROR, "binlogsvr: schema endpoint: %v", err)
	}
	if useDB != "" {
		ss.db = useDB
	}
	return r, nil
}

// pstmt is an emulated prepared statement: the fleet answers the binary
// protocol itself and passes the statement, with its parameters inlined,
// to the schema endpoint as text (zongji reads table metadata this way).
type pstmt struct {
	query  string
	params int
	types  []byte // parameter types of the last execute (2 bytes each)
}

// placeholders counts the ? outside quotes and comments.
func placeholders(q string) int {
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '?':
			n++
		}
	}
	return n
}

// prepare answers COM_STMT_PREPARE: the OK packet, then one definition per
// parameter (columns are described by each execute's result).
func (ss *session) prepare(q string) error {
	if len(ss.stmts) >= ss.srv.cfg.MaxPreparedStmts {
		// NB: each statement is kept until COM_STMT_CLOSE; without a cap a
		// client could hold memory without limit.
		return &gmysql.MyError{Code: gmysql.ER_MAX_PREPARED_STMT_COUNT_REACHED, State: "42000",
			Message: fmt.Sprintf("Can't create more than max_prepared_stmt_count statements (current value: %d; binlogsvr --dump-max-prepared-stmts)", ss.srv.cfg.MaxPreparedStmts)}
	}
	ss.next++
	id := ss.next
	st := &pstmt{query: q, params: placeholders(q)}
	ss.stmts[id] = st
	b := make([]byte, 4, 16)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint32(b, id)
	b = binary.LittleEndian.AppendUint16(b, 0) // columns
	b = binary.LittleEndian.AppendUint16(b, uint16(st.params))
	b = append(b, 0, 0, 0)
	if err := ss.c.WritePacket(b); err != nil {
		return err
	}
	if st.params == 0 {
		return nil
	}
	for i := 0; i < st.params; i++ {
		f := &gmysql.Field{Name: []byte("?"), Type: gmysql.MYSQL_TYPE_VAR_STRING, Charset: 63}
		if err := ss.c.WritePacket(append(make([]byte, 4), f.Dump()...)); err != nil {
			return err
		}
	}
	return ss.c.WritePacket([]byte{0, 0, 0, 0, gmysql.EOF_HEADER, 0, 0, 2, 0})
}

func (ss *session) closeStmt(data []byte) {
	if len(data) >= 4 {
		delete(ss.stmts, binary.LittleEndian.Uint32(data))
	}
}

// execute answers COM_STMT_EXECUTE with a binary-protocol result.
func (ss *session) execute(data []byte) any {
	if len(data) < 9 {
		return myError(erMalformedPacket, "Malformed communication packet (COM_STMT_EXECUTE)")
	}
	st, ok := ss.stmts[binary.LittleEndian.Uint32(data)]
	if !ok {
		return myError(gmysql.ER_UNKNOWN_STMT_HANDLER, "Unknown prepared statement handler given to mysqld_stmt_execute")
	}
	args, err := st.bind(data[9:])
	if err != nil {
		return myError(erMalformedPacket, "binlogsvr: COM_STMT_EXECUTE: %v", err)
	}
	q, err := inline(st.query, args)
	if err != nil {
		return myError(erMalformedPacket, "binlogsvr: COM_STMT_EXECUTE: %v", err)
	}
	r := answer(q, ss.vars, &sessionEnv{ss: ss})
	var res *gmysql.Result
	switch {
	case r.err != nil:
		return r.err
	case r.passthrough:
		if res, err = ss.passthrough(q, r.useDB); err != nil {
			return err
		}
	default:
		res = r.res
	}
	if res == nil || res.Resultset == nil || len(res.Fields) == 0 {
		return res
	}
	return toBinary(res)
}

// bind decodes the parameters of an execute: null bitmap, new-params flag,
// types, values. Strings, integers and floats are supported.
func (st *pstmt) bind(b []byte) ([]any, error) {
	n := st.params
	if n == 0 {
		return nil, nil
	}
	nb := (n + 7) / 8
	if len(b) < nb+1 {
		return nil, fmt.Errorf("parameters truncated")
	}
	nulls := b[:nb]
	b = b[nb:]
	if b[0] == 1 {
		if len(b) < 1+2*n {
			return nil, fmt.Errorf("parameter types truncated")
		}
		st.types = append(st.types[:0], b[1:1+2*n]...)
		b = b[1+2*n:]
	} else {
		b = b[1:]
	}
	if len(st.types) != 2*n {
		return nil, fmt.Errorf("no parameter types bound")
	}
	args := make([]any, n)
	for i := 0; i < n; i++ {
		if nulls[i/8]&(1<<(i%8)) != 0 {
			continue
		}
		t, unsigned := st.types[2*i], st.types[2*i+1]&0x80 != 0
		fixed := map[byte]int{gmysql.MYSQL_TYPE_TINY: 1, gmysql.MYSQL_TYPE_SHORT: 2, gmysql.MYSQL_TYPE_YEAR: 2,
			gmysql.MYSQL_TYPE_LONG: 4, gmysql.MYSQL_TYPE_INT24: 4, gmysql.MYSQL_TYPE_LONGLONG: 8,
			gmysql.MYSQL_TYPE_FLOAT: 4, gmysql.MYSQL_TYPE_DOUBLE: 8}
		if size, ok := fixed[t]; ok {
			if len(b) < size {
				return nil, fmt.Errorf("parameter %d truncated", i)
			}
			var u uint64
			for j := size - 1; j >= 0; j-- {
				u = u<<8 | uint64(b[j])
			}
			b = b[size:]
			switch {
			case t == gmysql.MYSQL_TYPE_FLOAT:
				args[i] = float64(math.Float32frombits(uint32(u)))
			case t == gmysql.MYSQL_TYPE_DOUBLE:
				args[i] = math.Float64frombits(u)
			case unsigned:
				args[i] = u
			default:
				shift := 64 - 8*size
				args[i] = int64(u<<shift) >> shift
			}
			continue
		}
		// NB: not gmysql.LengthEncodedString, which indexes past the end
		// of a short input.
		l, hl, ok := lenencInt(b)
		if !ok || l > uint64(len(b)-hl) {
			return nil, fmt.Errorf("parameter %d (type %d) cannot be decoded", i, t)
		}
		args[i] = string(b[hl : hl+int(l)])
		b = b[hl+int(l):]
	}
	return args, nil
}

// inline replaces the ? placeholders of q by SQL literals.
func inline(q string, args []any) (string, error) {
	var out strings.Builder
	k := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(q) {
				out.WriteByte(c)
				i++
				c = q[i]
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '?':
			if k >= len(args) {
				return "", fmt.Errorf("more placeholders than parameters")
			}
			out.WriteString(literal(args[k]))
			k++
			continue
		}
		out.WriteByte(c)
	}
	return out.String(), nil
}

func literal(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`, "\n", `\n`, "\r", `\r`, "\x1a", `\Z`)
		return "'" + r.Replace(x) + "'"
	}
	return "NULL"
}

// toBinary re-encodes a text result in the binary protocol, every column
// as a string (the types a client sees from the prepared statement path).
func toBinary(r *gmysql.Result) *gmysql.Result {
	rs := gmysql.NewResultset(len(r.Fields))
	for i, f := range r.Fields {
		nf := *f
		nf.Data = nil
		nf.Type = gmysql.MYSQL_TYPE_VAR_STRING
		rs.Fields[i] = &nf
	}
	bitmap := (len(r.Fields) + 7 + 2) / 8
	values := r.Values
	if len(values) == 0 {
		for _, rd := range r.RowDatas {
			v, err := rd.Parse(r.Fields, false, nil)
			if err != nil {
				return gmysql.NewResult(rs)
			}
			values = append(values, v)
		}
	}
	for _, vals := range values {
		row := make([]byte, 1+bitmap)
		for j, v := range vals {
			if v.Value() == nil {
				row[1+(j+2)/8] |= 1 << ((j + 2) % 8)
				continue
			}
			s, err := gmysql.FormatTextValue(v.Value())
			if err != nil {
				s = nil
			}
			row = append(row, gmysql.PutLengthEncodedString(s)...)
		}
		rs.RowDatas = append(rs.RowDatas, row)
	}
	return gmysql.NewResult(rs)
}
