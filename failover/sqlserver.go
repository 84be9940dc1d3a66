package failover

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// DialFunc opens a go-mysql connection (the daemon passes semisync.Dial,
// which handles MySQL 9's caching_sha2_password over plain TCP).
type DialFunc func(ctx context.Context, addr, user, password string) (*client.Conn, error)

// SQLConnector returns a Connector speaking SQL over dial.
func SQLConnector(dial DialFunc) Connector {
	return func(ctx context.Context, addr string, cred Credentials) (Server, error) {
		c, err := dial(ctx, addr, cred.User, cred.Password)
		if err != nil {
			return nil, fmt.Errorf("failover: connecting to %s as %q: %w", addr, cred.User, err)
		}
		s := &sqlServer{addr: addr, c: c}
		r, err := s.query(ctx, "SELECT VERSION()")
		if err != nil {
			c.Close()
			return nil, err
		}
		v, _ := r.GetString(0, 0)
		s.flav = binlog.FlavorOfVersion(v)
		s.version = strings.Clone(v)
		return s, nil
	}
}

// holdTimeout is the semi-sync timeout a fence sets at least: a commit
// that reaches the wait after the fence began waits until it is ended,
// instead of returning once the timeout ran out.
const holdTimeout = time.Hour

type sqlServer struct {
	addr    string
	c       *client.Conn
	flav    binlog.Flavor
	version string
	// released: ReleaseAckWaits turned the semi-sync source side off.
	released bool
}

// query runs one statement with ctx's deadline (or 30 s) on the connection.
func (s *sqlServer) query(ctx context.Context, q string) (*gomysql.Result, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	_ = s.c.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = s.c.SetDeadline(time.Now()) })
	defer stop()
	r, err := s.c.Execute(q)
	if err != nil {
		return nil, fmt.Errorf("failover: %s: %s: %w", s.addr, redactQuery(q), err)
	}
	return r, nil
}

func redactQuery(q string) string {
	if i := strings.Index(q, "PASSWORD="); i >= 0 {
		return q[:i] + "PASSWORD=***"
	}
	return q
}

func (s *sqlServer) exec(ctx context.Context, qs ...string) error {
	for _, q := range qs {
		r, err := s.query(ctx, q)
		if err != nil {
			return err
		}
		r.Close()
	}
	return nil
}

// semiSyncProbe reads whether the semi-sync source side is on; an error
// means the server has no semi-sync source plugin.
func (s *sqlServer) semiSyncProbe() string {
	return "SELECT @@GLOBAL." + s.flav.SemiSyncSourceVar()
}

// setSemiSync turns the semi-sync source side on or off.
func (s *sqlServer) setSemiSync(on bool) string {
	v := "OFF"
	if on {
		v = "ON"
	}
	return "SET GLOBAL " + s.flav.SemiSyncSourceVar() + " = " + v
}

func (s *sqlServer) Close() error { return s.c.Close() }

func (s *sqlServer) Ping(ctx context.Context) error {
	return s.exec(ctx, "SELECT 1")
}

func (s *sqlServer) Info(ctx context.Context) (ServerInfo, error) {
	info := ServerInfo{Flavor: s.flav.Name(), Version: s.version}
	r, err := s.query(ctx, s.flav.InfoQuery())
	if err != nil {
		return info, err
	}
	str := func(i int) string { v, _ := r.GetString(0, i); return strings.ReplaceAll(strings.Clone(v), "\n", "") }
	id, _ := strconv.ParseUint(str(0), 10, 32)
	info.ServerID, info.UUID, info.GTIDs, info.Held = uint32(id), str(1), str(2), str(3)
	info.ReadOnly = str(4) == "1" || strings.EqualFold(str(4), "ON")
	r.Close()
	rs, err := s.query(ctx, s.flav.ReplicaStatusQuery())
	if err != nil {
		return info, err
	}
	defer rs.Close()
	if rs.RowNumber() > 0 {
		get := func(names ...string) string {
			for _, n := range names {
				if v, err := rs.GetStringByName(0, n); err == nil {
					return strings.Clone(v)
				}
			}
			return ""
		}
		ri := &info.Replica
		ri.Configured = true
		ri.IORunning = strings.EqualFold(get("Slave_IO_Running", "Replica_IO_Running"), "Yes")
		ri.SQLRunning = strings.EqualFold(get("Slave_SQL_Running", "Replica_SQL_Running"), "Yes")
		ri.SourceHost = get("Master_Host", "Source_Host")
		ri.SourcePort, _ = strconv.Atoi(get("Master_Port", "Source_Port"))
		if e := get("Last_SQL_Error"); e != "" {
			ri.LastError = e
		} else if e := get("Last_IO_Error"); e != "" {
			ri.LastError = e
		}
	}
	return info, nil
}

func (s *sqlServer) SetReadOnly(ctx context.Context, on bool) error {
	// NB: setting read_only waits for the commit lock; a commit stuck
	// waiting for a semi-sync ACK would hold it until its timeout.
	if err := s.exec(ctx, "SET SESSION lock_wait_timeout = 5"); err != nil {
		return err
	}
	return s.exec(ctx, s.flav.ReadOnlySQL(on)...)
}

func (s *sqlServer) ConnID() uint64 { return uint64(s.c.GetConnectionID()) }

func (s *sqlServer) Sessions(ctx context.Context) ([]Session, error) {
	r, err := s.query(ctx, "SHOW PROCESSLIST")
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := make([]Session, 0, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		id, _ := r.GetUintByName(i, "Id")
		str := func(col string) string { v, _ := r.GetStringByName(i, col); return strings.Clone(v) }
		out = append(out, Session{ID: id, User: str("User"), Command: str("Command"), State: str("State"), Info: str("Info")})
	}
	return out, nil
}

func (s *sqlServer) Kill(ctx context.Context, ids []uint64) (int, error) {
	n := 0
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		// NB: a session that ended meanwhile answers "unknown thread id".
		if err := s.exec(ctx, "KILL CONNECTION "+strconv.FormatUint(id, 10)); err == nil {
			n++
		}
	}
	return n, nil
}

func (s *sqlServer) HoldSemiSync(ctx context.Context) error {
	// NB: on MySQL, turning wait_no_replica on also switches a source
	// whose semi-sync had timed out back on.
	wait, v := s.flav.SemiSyncHoldSQL()
	if err := s.exec(ctx, wait); err != nil {
		return err
	}
	r, err := s.query(ctx, "SELECT @@GLOBAL."+v)
	if err != nil {
		return err
	}
	ms, _ := r.GetUint(0, 0)
	r.Close()
	if ms >= uint64(holdTimeout.Milliseconds()) {
		return nil
	}
	// NB: a literal: MySQL refuses an expression for a plugin variable.
	return s.exec(ctx, fmt.Sprintf("SET GLOBAL %s = %d", v, holdTimeout.Milliseconds()))
}

func (s *sqlServer) ReleaseAckWaits(ctx context.Context) error {
	if s.flav.KillEndsAckWait() {
		return nil
	}
	r, err := s.query(ctx, s.semiSyncProbe())
	if err != nil {
		return nil // NB: no plugin: nothing waits
	}
	on, _ := r.GetInt(0, 0)
	r.Close()
	if on == 0 {
		return nil
	}
	if err := s.exec(ctx, s.setSemiSync(false)); err != nil {
		return err
	}
	s.released = true
	return nil
}

func (s *sqlServer) RestoreAckWaits(ctx context.Context) error {
	if !s.released {
		return nil
	}
	if err := s.exec(ctx, s.setSemiSync(true)); err != nil {
		return err
	}
	s.released = false
	return nil
}

func (s *sqlServer) StartReplication(ctx context.Context) error {
	return s.exec(ctx, s.flav.StartReplicaSQL())
}

func (s *sqlServer) StopReplication(ctx context.Context) error {
	return s.exec(ctx, s.flav.StopReplicaSQL()...)
}

func (s *sqlServer) EnableSemiSyncSource(ctx context.Context, timeout time.Duration) error {
	if r, err := s.query(ctx, s.semiSyncProbe()); err != nil {
		if s.flav.SemiSyncSourcePlugin() == "" {
			return err
		}
		if err := s.exec(ctx, s.flav.SemiSyncSourcePlugin()); err != nil {
			return fmt.Errorf("failover: %s has no semi-sync source plugin and loading it failed: %w", s.addr, err)
		}
	} else {
		r.Close()
	}
	return s.exec(ctx, s.flav.SemiSyncSourceOnSQL(timeout)...)
}

func (s *sqlServer) DisableSemiSyncSource(ctx context.Context) error {
	r, err := s.query(ctx, s.semiSyncProbe())
	if err != nil {
		return nil // NB: no plugin: nothing to turn off
	}
	r.Close()
	return s.exec(ctx, s.setSemiSync(false))
}

func (s *sqlServer) ReplicateFrom(ctx context.Context, addr string, cred Credentials, ownBinlog bool) error {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("failover: fleet dump address %q: %v", addr, err)
	}
	port, _ := strconv.Atoi(p)
	_ = s.exec(ctx, s.flav.StopReplicaSQL()[0])
	if ownBinlog {
		if err := s.exec(ctx, s.flav.OwnBinlogStartSQL()...); err != nil {
			return err
		}
	}
	return s.exec(ctx, s.flav.ChangeSourceSQL(host, port, cred.User, cred.Password), s.flav.StartReplicaSQL())
}

// binlogEventsPage is how many events BinlogGTIDs reads per query.
var binlogEventsPage = 5000 // NB: a var for the paging test

var gtidInInfo = regexp.MustCompile(`GTID[^0-9a-f]*([0-9]+-[0-9]+-[0-9]+|[0-9a-f-]{36}(?::[a-z_][a-z0-9_]*)?:[0-9]+)`)

func (s *sqlServer) BinlogGTIDs(ctx context.Context, stop func(string) bool) ([]string, error) {
	r, err := s.query(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	var files []string
	for i := 0; i < r.RowNumber(); i++ {
		v, _ := r.GetString(i, 0)
		files = append(files, strings.Clone(v))
	}
	r.Close()
	var out []string
	for i := len(files) - 1; i >= 0; i-- {
		// NB: paged, so that a large binlog file is never one result set
		// in memory.
		var in []string
		for from := uint64(4); ; {
			ev, err := s.query(ctx, fmt.Sprintf("SHOW BINLOG EVENTS IN %s FROM %d LIMIT %d", binlog.QuoteSQL(files[i]), from, binlogEventsPage))
			if err != nil {
				return nil, err
			}
			n := ev.RowNumber()
			for j := 0; j < n; j++ {
				typ, _ := ev.GetStringByName(j, "Event_type")
				if !strings.HasPrefix(typ, "Gtid") || typ == "Gtid_list" {
					continue
				}
				info, _ := ev.GetStringByName(j, "Info")
				if m := gtidInInfo.FindStringSubmatch(info); m != nil {
					in = append(in, strings.Clone(m[1]))
				}
			}
			var next uint64
			if n > 0 {
				next, _ = ev.GetUintByName(n-1, "End_log_pos")
			}
			ev.Close()
			if n < binlogEventsPage || next <= from {
				break
			}
			from = next
		}
		out = append(in, out...)
		if len(in) > 0 && stop != nil && stop(in[0]) {
			break
		}
	}
	return out, nil
}
