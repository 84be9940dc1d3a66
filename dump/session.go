package dump

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// idleTimeout bounds the wait for a client's next command (MySQL's
// wait_timeout default).
const idleTimeout = 8 * time.Hour

// maxCommand bounds one command packet from a client.
const maxCommand = 64 << 20

// session is one client connection. Its goroutine runs the command loop
// and the dumps; a reader goroutine exists only while a dump runs.
type session struct {
	srv  *Server
	id   uint32
	nc   net.Conn // the raw connection (TLS once negotiated)
	c    *server.Conn
	rd   *packetReader
	log  *slog.Logger
	flav binlog.Flavor
	ver  string

	vars  map[string]string // user variables, lower-case names
	db    string
	stats clientStats
	info  info
	up    *upstream
	stmts map[uint32]*pstmt
	next  uint32 // statement ids

	mu         sync.Mutex
	killed     error
	dumpCancel context.CancelCauseFunc
	done       chan struct{} // closed when the session ends
}

// serveConn runs one connection from handshake to close.
func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	defer func() {
		// NB: bad input from a client must never crash the member (rule 6).
		if p := recover(); p != nil {
			s.m.errors.WithLabelValues("panic").Inc()
			s.log.Error("a client connection panicked; dropped", "remote", nc.RemoteAddr().String(), "panic", p, "stack", string(debug.Stack()))
		}
	}()
	flav, ver := s.identity()
	conf, method := s.conf(flav, ver)
	ss := &session{srv: s, nc: nc, flav: flav, ver: ver, vars: map[string]string{}, stmts: map[uint32]*pstmt{}, done: make(chan struct{})}
	defer close(ss.done)
	nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	c, err := conf.NewCustomizedConn(nc, &authHandler{user: s.cfg.User, password: s.cfg.Password, method: method, decoy: s.decoy}, &loginHandler{ss: ss})
	if err != nil {
		s.m.authFail.Inc()
		s.log.Info("login refused", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	nc.SetDeadline(time.Time{})
	ss.c, ss.id = c, c.ConnectionID()
	ss.nc = c.Conn.Conn // NB: the TLS connection if the client asked for TLS
	ss.rd = newPacketReader(ss.nc, maxCommand)
	ss.log = s.log.With("conn", ss.id, "remote", nc.RemoteAddr().String())
	ss.info.st = ClientStatus{ID: ss.id, Remote: nc.RemoteAddr().String(), User: c.GetUser(), Since: time.Now()}
	ok, full := s.register(ss)
	if !ok {
		if full {
			ss.c.Sequence = 2
			ss.c.WriteValue(myError(gmysql.ER_CON_COUNT_ERROR, "Too many connections"))
		}
		return
	}
	defer s.unregister(ss)
	defer ss.closeUpstream()
	ss.log.Debug("client logged in", "user", c.GetUser())
	ss.loop(ctx)
}

// kill ends the session: its connection closes, which ends any read,
// write or dump in progress.
func (ss *session) kill(cause error) {
	ss.mu.Lock()
	if ss.killed == nil {
		ss.killed = cause
	}
	if ss.dumpCancel != nil {
		ss.dumpCancel(cause)
	}
	ss.mu.Unlock()
	ss.nc.Close()
}

// stopDump ends the session's dump (if one runs) with cause.
func (ss *session) stopDump(cause error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.dumpCancel != nil {
		ss.dumpCancel(cause)
	}
}

// loop reads and answers commands until the client quits or goes.
func (ss *session) loop(ctx context.Context) {
	var pending []byte
	var pendingSeq uint8
	for {
		pkt, seq := pending, pendingSeq
		pending = nil
		if pkt == nil {
			ss.nc.SetReadDeadline(time.Now().Add(idleTimeout))
			var err error
			if pkt, seq, err = ss.rd.read(); err != nil {
				return
			}
		}
		if len(pkt) == 0 {
			return
		}
		ss.c.Sequence = seq + 1
		ss.nc.SetWriteDeadline(time.Now().Add(ss.srv.cfg.WriteTimeout))
		var v any
		switch cmd, data := pkt[0], pkt[1:]; cmd {
		case gmysql.COM_QUIT:
			return
		case gmysql.COM_PING:
			v = nil
		case gmysql.COM_QUERY:
			v = ss.query(string(data))
		case gmysql.COM_INIT_DB:
			v = ss.useDB(string(data))
		case gmysql.COM_REGISTER_SLAVE:
			v = ss.registerReplica(data)
		case gmysql.COM_BINLOG_DUMP, gmysql.COM_BINLOG_DUMP_GTID:
			next, nseq, keep := ss.dump(ctx, cmd, data)
			if !keep {
				return
			}
			pending, pendingSeq = next, nseq
			continue
		case gmysql.COM_STMT_PREPARE:
			if err := ss.prepare(string(data)); err != nil {
				v = err
			} else {
				continue
			}
		case gmysql.COM_STMT_EXECUTE:
			v = ss.execute(data)
		case gmysql.COM_STMT_CLOSE:
			ss.closeStmt(data)
			continue
		case gmysql.COM_STMT_RESET:
			v = nil
		case gmysql.COM_SET_OPTION:
			v = eofValue{}
		default:
			v = myError(erUnknownCom, "Unknown command %d: binlogsvr does not support it", cmd)
		}
		if err := ss.write(v); err != nil {
			return
		}
		if ss.isKilled() {
			return
		}
	}
}

// eofValue is answered with an EOF packet (COM_SET_OPTION).
type eofValue struct{}

// write sends one answer through go-mysql's encoder.
func (ss *session) write(v any) error {
	if _, ok := v.(eofValue); ok {
		return ss.c.WritePacket([]byte{0, 0, 0, 0, gmysql.EOF_HEADER, 0, 0, 2, 0})
	}
	if r, ok := v.(*gmysql.Result); ok && r == nil {
		v = nil
	}
	return ss.c.WriteValue(v)
}

func (ss *session) isKilled() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.killed != nil
}

// query answers one COM_QUERY.
func (ss *session) query(q string) any {
	r := answer(q, ss.vars, &sessionEnv{ss: ss})
	switch {
	case r.err != nil:
		if me, ok := r.err.(*gmysql.MyError); ok && me.Code == erNotSupportedYet {
			ss.log.Info("unsupported statement", "query", clip(q))
		}
		return r.err
	case r.kill != 0:
		return ss.killConn(r.kill, r.killQuery)
	case r.passthrough:
		res, err := ss.passthrough(q, r.useDB)
		if err != nil {
			return err
		}
		return res
	case r.res != nil:
		return r.res
	}
	return nil
}

// killConn answers KILL n.
func (ss *session) killConn(id uint32, queryOnly bool) any {
	t := ss.srv.find(id)
	if t == nil {
		return myError(erUnknownThread, "Unknown thread id: %d", id)
	}
	ss.log.Info("KILL", "target", id, "query_only", queryOnly)
	if queryOnly {
		t.stopDump(ErrKilled)
		return nil
	}
	if t == ss {
		ss.mu.Lock()
		ss.killed = ErrKilled
		ss.mu.Unlock()
		return nil
	}
	t.kill(ErrKilled)
	return nil
}

// useDB answers COM_INIT_DB.
func (ss *session) useDB(db string) any {
	if _, err := ss.passthrough("USE `"+strings.ReplaceAll(db, "`", "``")+"`", db); err != nil {
		return err
	}
	return nil
}

// registerReplica answers COM_REGISTER_SLAVE.
func (ss *session) registerReplica(data []byte) any {
	r, err := parseRegister(data)
	if err != nil {
		return myError(erMalformedPacket, "%v", err)
	}
	ss.info.update(func(st *ClientStatus) {
		st.Registered, st.ServerID, st.ReportHost, st.ReportPort = true, r.ServerID, r.Host, r.Port
	})
	ss.log.Debug("replica registered", "server_id", r.ServerID, "host", r.Host, "port", r.Port)
	return nil
}

// authHandler is the dump server's one account.
type authHandler struct{ user, password, method, decoy string }

// GetCredential returns the account's credential. NB: an unknown user gets
// an unguessable decoy password, so it fails with "Access denied" (1045)
// as on MySQL, and the answer does not tell which user names exist.
func (a *authHandler) GetCredential(user string) (server.Credential, bool, error) {
	pw := a.password
	if user != a.user {
		pw = a.decoy
	}
	return server.Credential{Passwords: []string{pw}, AuthPluginName: a.method}, true, nil
}
func (a *authHandler) OnAuthSuccess(*server.Conn) error  { return nil }
func (a *authHandler) OnAuthFailure(*server.Conn, error) {}

// loginHandler receives what go-mysql's handshake hands to a Handler: the
// database named at login. Commands never reach it; the session's own
// loop reads them.
type loginHandler struct {
	server.EmptyHandler
	ss *session
}

func (h *loginHandler) UseDB(db string) error {
	h.ss.db = db
	return nil
}

// heartbeatPeriod reads @master_heartbeat_period / @source_heartbeat_period
// (nanoseconds, maybe with float noise).
func heartbeatPeriod(vars map[string]string) time.Duration {
	for _, k := range []string{"source_heartbeat_period", "master_heartbeat_period"} {
		if v, ok := vars[k]; ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil && f > 0 {
				return time.Duration(f)
			}
		}
	}
	return 0
}

// clientCRC reports whether the client declared CRC32 checksums.
func clientCRC(vars map[string]string) bool {
	for _, k := range []string{"source_binlog_checksum", "master_binlog_checksum"} {
		if strings.EqualFold(strings.TrimSpace(vars[k]), "CRC32") {
			return true
		}
	}
	return false
}

// dump runs COM_BINLOG_DUMP or COM_BINLOG_DUMP_GTID. keep is false when
// the connection must close; next is the command a client sent after a
// non-blocking dump's EOF.
func (ss *session) dump(ctx context.Context, cmd byte, data []byte) (next []byte, nextSeq uint8, keep bool) {
	fail := func(err error) ([]byte, uint8, bool) {
		ss.write(err)
		return nil, 0, true
	}
	var req Request
	var err error
	if cmd == gmysql.COM_BINLOG_DUMP_GTID {
		if ss.flav.Name() == "mariadb" {
			return fail(myError(erUnknownCom, "Unknown command: a MariaDB source takes GTID dumps as COM_BINLOG_DUMP after SET @slave_connect_state"))
		}
		req, err = parseDumpGTID(data)
	} else {
		req, err = parseDump(data)
	}
	if err != nil {
		ss.srv.m.errors.WithLabelValues("malformed").Inc()
		ss.log.Info("malformed dump command", "err", err)
		return fail(myError(erMasterFatalReadingBinlog, "%v", err))
	}
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ss.mu.Lock()
	if ss.killed != nil {
		ss.mu.Unlock()
		return nil, 0, false
	}
	ss.dumpCancel = cancel
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		ss.dumpCancel = nil
		ss.mu.Unlock()
	}()

	// NB: from here the dump owns the connection: its own packet sequence,
	// and a reader goroutine that notices a client that goes away.
	type readResult struct {
		pkt []byte
		seq uint8
		err error
	}
	incoming := make(chan readResult, 1)
	ss.nc.SetReadDeadline(time.Now().Add(idleTimeout))
	go func() {
		for {
			p, seq, err := ss.rd.read()
			if err == nil && len(p) > 0 && p[0] == 0xEF {
				continue // a semi-sync ACK; the fleet never asks for one
			}
			if err != nil || len(p) == 0 || p[0] == gmysql.COM_QUIT {
				cancel(ErrClientGone)
			}
			incoming <- readResult{p, seq, err}
			return
		}
	}()
	pw := newPacketWriter(ss.nc, ss.srv.cfg.WriteTimeout, 64<<10)
	pw.seq = ss.c.Sequence
	closeDump := func() ([]byte, uint8, bool) {
		ss.nc.Close()
		<-incoming
		return nil, 0, false
	}
	lg, err := ss.waitForLog(dctx, req)
	if err != nil {
		if errors.Is(err, errEOFSent) {
			pw.arm()
			if pw.write([]byte{gmysql.EOF_HEADER, 0, 0, 2, 0}) == nil && pw.flush() == nil {
				if r := <-incoming; r.err == nil && len(r.pkt) > 0 && r.pkt[0] != gmysql.COM_QUIT {
					return r.pkt, r.seq, true
				}
				return nil, 0, false
			}
		} else if context.Cause(dctx) == nil {
			pw.arm()
			ss.writeErrPacket(pw, myError(erMasterFatalReadingBinlog, "%v", err))
		}
		return closeDump()
	}
	if f, ferr := binlog.FlavorByName(lg.State().Flavor); ferr == nil {
		ss.flav = f
	}
	var sp startPoint
	mode, start := "file", fmt.Sprintf("%s:%d", req.File, req.Pos)
	state, gtidState := ss.vars["slave_connect_state"]
	switch {
	case req.GTID:
		mode = "gtid"
		sp, err = mysqlStart(lg, req.GTIDSet)
		if err == nil {
			if set, derr := binlog.DecodeMySQLSet(req.GTIDSet); derr == nil {
				start = set.String()
			}
		}
	case gtidState && ss.flav.Name() == "mariadb":
		mode, start = "mariadb-gtid", state
		strict := ss.vars["slave_gtid_strict_mode"] == "1" || strings.EqualFold(ss.vars["slave_gtid_strict_mode"], "ON")
		sp, err = mariadbStart(lg, state, strict)
	default:
		sp, err = filePosStart(lg, req.File, req.Pos)
	}
	if err != nil {
		ss.srv.m.errors.WithLabelValues("start").Inc()
		ss.log.Info("dump refused", "mode", mode, "start", start, "server_id", req.ServerID, "err", err)
		pw.arm()
		ss.writeErrPacket(pw, myError(erMasterFatalReadingBinlog, "%s", strings.TrimPrefix(err.Error(), ErrStart.Error()+": ")))
		return closeDump()
	}
	ss.srv.claimServerID(ss, req.ServerID)
	ss.srv.m.dumps.WithLabelValues(mode).Inc()
	ss.info.update(func(st *ClientStatus) {
		st.Dumping, st.Mode, st.Start = true, mode, start
		if req.ServerID != 0 {
			st.ServerID = req.ServerID
		}
		st.UUID = ss.vars["replica_uuid"]
		if st.UUID == "" {
			st.UUID = ss.vars["slave_uuid"]
		}
	})
	defer ss.info.update(func(st *ClientStatus) { st.Dumping = false })
	ss.log.Info("dump started", "mode", mode, "start", start, "server_id", req.ServerID, "flags", req.Flags,
		"file", sp.File, "pos", sp.Pos, "heartbeat", heartbeatPeriod(ss.vars))
	st := &streamer{lg: lg, sp: sp, pw: pw, stats: &ss.stats, cache: ss.srv.cache, o: streamOpts{
		flavor: ss.flav, serverID: ss.srv.cfg.ServerID, clientCRC: clientCRC(ss.vars),
		heartbeat: heartbeatPeriod(ss.vars), hbV2: ss.flav.Name() == "mysql" && req.Flags&flag0x02 != 0,
		annotate: ss.flav.Name() == "mariadb" && req.Flags&flag0x02 != 0, nonBlock: req.NonBlocking(),
		gtid: mode != "file", readSize: ss.srv.cfg.ReadBufferBytes,
	}}
	err = st.run(dctx)
	if errors.Is(err, errEOFSent) {
		pw.arm()
		werr := pw.write([]byte{gmysql.EOF_HEADER, 0, 0, 2, 0})
		if werr == nil {
			werr = pw.flush()
		}
		ss.log.Info("dump reached the end of the log (non-blocking)", "events", ss.stats.events.Load())
		if werr != nil {
			return closeDump()
		}
		r := <-incoming
		if r.err != nil || len(r.pkt) == 0 || r.pkt[0] == gmysql.COM_QUIT {
			return nil, 0, false
		}
		return r.pkt, r.seq, true
	}
	cause := context.Cause(dctx)
	switch {
	case errors.Is(err, ErrStart) || (err != nil && !errors.Is(err, ErrClientGone) && !errors.Is(err, context.Canceled) && cause == nil):
		ss.srv.m.errors.WithLabelValues("read").Inc()
		ss.log.Warn("dump failed", "err", err)
		pw.arm()
		ss.writeErrPacket(pw, myError(erMasterFatalReadingBinlog, "%s", strings.TrimPrefix(err.Error(), ErrStart.Error()+": ")))
	case errors.Is(cause, ErrReplaced):
		ss.srv.m.errors.WithLabelValues("replaced").Inc()
		pw.arm()
		ss.writeErrPacket(pw, myError(erSlaveSameID, "A slave with the same server_uuid/server_id as this slave has connected to the master; the first event '%s', the last event read from '%s' at %d",
			start, ss.status(time.Now()).File, ss.stats.pos.Load()))
		ss.log.Info("dump replaced by a newer one with the same server id")
	default:
		ss.srv.m.errors.WithLabelValues("client").Inc()
		ss.log.Info("dump ended", "err", err, "cause", cause, "events", ss.stats.events.Load())
	}
	return closeDump()
}

// waitForLog returns the log once it is open and holds a file: a dump
// that arrives before the first transaction waits for it (a non-blocking
// dump gets errEOFSent at once).
func (ss *session) waitForLog(ctx context.Context, req Request) (Log, error) {
	for {
		lg := ss.srv.reader()
		if lg != nil && lg.State().File != 0 {
			return lg, nil
		}
		if req.NonBlocking() {
			return nil, errEOFSent
		}
		var changed <-chan struct{}
		if lg != nil {
			changed = lg.Changed()
			if lg.State().File != 0 {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}

// writeErrPacket writes an ERR packet through the dump's writer.
func (ss *session) writeErrPacket(pw *packetWriter, e *gmysql.MyError) {
	b := []byte{gmysql.ERR_HEADER, byte(e.Code), byte(e.Code >> 8), '#'}
	b = append(b, e.State...)
	b = append(b, e.Message...)
	if pw.write(b) == nil {
		pw.flush()
	}
}
