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
	"github.com/go-mysql-org/go-mysql/packet"
	"github.com/go-mysql-org/go-mysql/server"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// idleTimeout bounds the wait for a client's next command (MySQL's
// wait_timeout default).
const idleTimeout = 8 * time.Hour

// session is one client connection. Its goroutine runs the command loop
// and the dumps; a reader goroutine exists only while a dump runs.
type session struct {
	srv  *Server
	id   uint32
	nc   net.Conn // the connection (TLS if the client switched)
	user string
	c    *server.Conn // go-mysql's encoder of answers
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
	remote := nc.RemoteAddr().String()
	defer func() {
		// NB: bad input from a client must never crash the member (rule 6).
		if p := recover(); p != nil {
			s.m.errors.WithLabelValues("panic").Inc()
			s.log.Error("a client connection panicked; dropped", "remote", remote, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	key := throttleKey(nc.RemoteAddr())
	if d, first := s.throttle.blocked(key, time.Now()); d > 0 {
		s.m.authFail.Inc()
		s.m.refused.WithLabelValues(refusedThrottle).Inc()
		if first {
			s.log.Warn("login refused", "user", "", "remote", remote, "reason", refusedThrottle, "blocked_for", d.Round(time.Second).String())
		}
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		writePacket(nc, 0, errPacket(myError(gmysql.ER_HOST_IS_BLOCKED, "Host '%s' is blocked for %s after %d failed logins (binlogsvr --dump-login-failures)",
			hostOf(nc.RemoteAddr()), d.Round(time.Second), s.cfg.LoginFailures)))
		return
	}
	flav, ver := s.identity()
	greeting, method := authFor(flav, ver)
	id := s.nextID.Add(1)
	nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) }) // NB: shutdown ends a login at once
	lg, err := handshake(nc, loginParams{connID: id, greeting: greeting, method: method, user: s.cfg.User,
		password: s.cfg.Password, tls: s.tls, requireTLS: s.cfg.RequireTLS})
	if err != nil {
		stop()
		s.refuseLogin(nc, key, lg, err)
		return
	}
	if !stop() {
		return
	}
	s.throttle.ok(key)
	nc.SetDeadline(time.Time{})
	ss := &session{srv: s, id: id, nc: lg.nc, user: lg.user, db: lg.db, flav: flav, ver: ver,
		vars: map[string]string{}, stmts: map[uint32]*pstmt{}, done: make(chan struct{})}
	defer close(ss.done)
	ss.c = &server.Conn{Conn: packet.NewTLSConn(lg.nc)} // NB: go-mysql encodes answers; it never reads
	ss.c.SetCapability(lg.caps)
	ss.rd = newPacketReader(lg.r, s.cfg.MaxPacket)
	ss.rd.budget = s.budget
	defer ss.rd.release()
	ss.log = s.log.With("conn", ss.id, "remote", remote)
	ss.info.st = ClientStatus{ID: ss.id, Remote: remote, User: lg.user, Since: time.Now()}
	if !s.register(ss) {
		return
	}
	defer s.unregister(ss)
	defer ss.closeUpstream()
	ss.c.Sequence = lg.seq
	nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if err := ss.c.WriteValue(nil); err != nil { // the login's OK
		return
	}
	ss.log.Debug("client logged in", "user", lg.user, "tls", lg.tls)
	ss.loop(ctx)
}

// refuseLogin answers and logs a failed login in one line (never the
// password, which the server never sees anyway) and counts it; a wrong
// password counts toward the address's throttling.
func (s *Server) refuseLogin(nc net.Conn, key string, lg *login, err error) {
	var r *loginRefused
	if !errors.As(err, &r) {
		r = &loginRefused{reason: refusedBad, err: err}
	}
	s.m.authFail.Inc()
	s.m.refused.WithLabelValues(r.reason).Inc()
	attrs := []any{"user", "", "remote", nc.RemoteAddr().String(), "reason", r.reason, "err", r.err.Error()}
	if lg != nil {
		attrs[1] = clipName(lg.user)
	}
	if r.reason == refusedPassword {
		if d := s.throttle.fail(key, time.Now()); d > 0 {
			attrs = append(attrs, "blocked_for", d.String())
		}
	}
	if r.reason == refusedIO {
		s.log.Debug("login refused", attrs...) // a port scan or a client gone: not worth a line each
	} else {
		s.log.Warn("login refused", attrs...)
	}
	if r.reply != nil && lg != nil {
		nc := lg.nc
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		writePacket(nc, lg.seq, errPacket(r.reply))
	}
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
				ss.readFailed(err)
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

// readFailed answers a command that was refused from its header (too
// large, or no memory for it) before the connection closes.
func (ss *session) readFailed(err error) {
	var e *gmysql.MyError
	switch {
	case errors.Is(err, errPacketTooLarge):
		e = &gmysql.MyError{Code: gmysql.ER_NET_PACKET_TOO_LARGE, State: "08S01",
			Message: fmt.Sprintf("Got a packet bigger than 'max_allowed_packet' bytes (binlogsvr --dump-max-packet %d)", ss.srv.cfg.MaxPacket)}
	case errors.Is(err, errNoMemory):
		e = &gmysql.MyError{Code: gmysql.ER_OUT_OF_RESOURCES, State: "HY000", Message: "Out of memory: other clients' large commands use the dump server's budget (4 × --dump-max-packet); retry later"}
	default:
		return
	}
	ss.srv.m.errors.WithLabelValues("too_large").Inc()
	ss.log.Info("command refused", "err", err)
	ss.nc.SetWriteDeadline(time.Now().Add(time.Second))
	writePacket(ss.nc, ss.rd.seq+1, errPacket(e))
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
		if !ss.flav.TakesDumpGTID() {
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
	semi := ss.srv.cfg.SemiSync && semiWanted(ss.vars)
	go func() {
		for {
			p, seq, err := ss.rd.read()
			if err == nil && len(p) > 0 && p[0] == semiMagic {
				if !semi {
					continue // an ACK the fleet did not ask for
				}
				a, aerr := parseAck(p)
				if aerr != nil {
					cancel(aerr)
					incoming <- readResult{nil, 0, aerr}
					return
				}
				ss.acked(a, time.Now())
				continue
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
	resolve := func() (sp startPoint, err error) {
		switch {
		case req.GTID:
			mode = "gtid"
			sp, err = mysqlStart(lg, req.GTIDSet)
			if err == nil {
				if set, derr := binlog.DecodeMySQLSet(req.GTIDSet); derr == nil {
					start = set.String()
				}
			}
		case gtidState && ss.flav.DumpsFromConnectState():
			mode, start = "mariadb-gtid", state
			strict := ss.vars["slave_gtid_strict_mode"] == "1" || strings.EqualFold(ss.vars["slave_gtid_strict_mode"], "ON")
			sp, err = mariadbStart(lg, state, strict)
		default:
			sp, err = filePosStart(lg, req.File, req.Pos)
		}
		return sp, err
	}
	sp, err = resolve()
	if errors.Is(err, errAhead) && ss.srv.cfg.AheadWait > 0 {
		// NB: this member lags the client (it restarted, or follows behind):
		// wait for its log rather than stop the replica with error 1236.
		t0 := time.Now()
		ss.log.Info("the replica is ahead of this member's log: waiting for the log to catch up", "server_id", req.ServerID, "start", start, "log", lg.State().GTIDs, "wait", ss.srv.cfg.AheadWait)
		deadline := time.NewTimer(ss.srv.cfg.AheadWait)
	wait:
		for errors.Is(err, errAhead) {
			changed := lg.Changed()
			if sp, err = resolve(); !errors.Is(err, errAhead) {
				break
			}
			select {
			case <-dctx.Done():
				return closeDump()
			case <-deadline.C:
				break wait
			case <-changed:
			case <-time.After(time.Second):
			}
		}
		deadline.Stop()
		if err == nil {
			ss.log.Info("the log caught up with the replica", "server_id", req.ServerID, "waited", time.Since(t0).Round(time.Millisecond))
		}
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
		st.SemiSync, st.Acks, st.AckFile, st.AckPos, st.AckTime, st.AckLatencySeconds = semi, 0, "", 0, time.Time{}, 0
		if req.ServerID != 0 {
			st.ServerID = req.ServerID
		}
		st.UUID = ss.vars["replica_uuid"]
		if st.UUID == "" {
			st.UUID = ss.vars["slave_uuid"]
		}
	})
	defer ss.info.update(func(st *ClientStatus) { st.Dumping, st.SemiSync = false, false })
	ss.log.Info("dump started", "mode", mode, "start", start, "server_id", req.ServerID, "flags", req.Flags,
		"file", sp.File, "pos", sp.Pos, "heartbeat", heartbeatPeriod(ss.vars), "semi_sync", semi)
	st := &streamer{lg: lg, sp: sp, pw: pw, stats: &ss.stats, cache: ss.srv.cache, o: streamOpts{
		flavor: ss.flav, serverID: ss.srv.cfg.ServerID, clientCRC: clientCRC(ss.vars),
		heartbeat: heartbeatPeriod(ss.vars), hbV2: ss.flav.HeartbeatV2(req.Flags),
		annotate: ss.flav.AnnotateRows(req.Flags), nonBlock: req.NonBlocking(),
		gtid: mode != "file", readSize: ss.srv.cfg.ReadBufferBytes, semi: semi,
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
	case errors.Is(cause, ErrBadAck):
		// NB: bad input from one replica ends its dump alone (rule 6); the
		// replica reports it as error 1236.
		ss.srv.m.errors.WithLabelValues("bad_ack").Inc()
		ss.log.Warn("dump ended: the replica sent a malformed semi-sync ACK", "err", cause, "server_id", req.ServerID)
		pw.arm()
		ss.writeErrPacket(pw, myError(erMasterFatalReadingBinlog, "binlogsvr: %v; the dump ends", cause))
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

// acked records a semi-sync ACK from the client (the reader goroutine's).
func (ss *session) acked(a ack, now time.Time) {
	lat, ok := ss.stats.ackLatency(a, now)
	ss.info.update(func(st *ClientStatus) {
		recordAck(st, a, now)
		if ok {
			st.AckLatencySeconds = lat.Seconds()
		}
	})
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
