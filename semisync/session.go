package semisync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// ErrWrongSource: the server at the log's source address is not the log's
// source (another server_uuid / server_id). Nothing from it is stored.
var ErrWrongSource = errors.New("semisync: the server at the source address is not the log's source")

// proposalTimeout bounds one Append proposal (a 64 MiB transaction
// included). NB: a session that loses leadership with a proposal in
// flight ends only when that proposal has its outcome (dragonboat cannot
// cancel one), at the latest after this long; Ingester.proposalTimeout
// holds it so that tests can shorten it.
const proposalTimeout = 30 * time.Second

// errSessionEnded cancels a session's goroutines when it returns.
var errSessionEnded = errors.New("semisync: session ended")

// errLostLeadership ends a session when this member stops leading.
var errLostLeadership = errors.New("semisync: this member no longer leads the group")

// session is one connection to the source: it lives until an error, a
// leadership change or ctx's end. Its caller reconnects.
type session struct {
	in    *Ingester
	st    logger.State
	flav  binlog.Flavor
	start time.Time

	conn *client.Conn
	raw  net.Conn

	wmu sync.Mutex // guards writes to raw after the dump started (ACKs)
}

// ackItem is one transaction on its way to the log, in stream order.
type ackItem struct {
	tk       *logger.Ticket
	cut      *cut
	received time.Time
	seen     time.Time // when the acker learnt it was stored
}

func (s *session) run(ctx context.Context) error {
	in := s.in
	flav, err := binlog.FlavorByName(s.st.Flavor)
	if err != nil {
		return fmt.Errorf("semisync: %w", err)
	}
	s.flav = flav
	addr := s.st.Source.Addr
	info, err := Probe(ctx, addr, in.cfg.User, in.cfg.Password, in.cfg.TLS)
	if err != nil {
		return err
	}
	in.setSourceInfo(info)
	if err := checkIdentity(s.st.Source, info.Source); err != nil {
		return err
	}
	if behind(flav, s.st.GTIDs, info.GTIDs) {
		// NB: the log lacks some of what the source executed: the dump
		// starts in the source's older files (the history after a seed
		// with --source-start, or a catch-up after a pause).
		in.beginBackfill()
	}
	defer in.endBackfill()
	in.recordSourceVars(ctx, info.Vars)
	conn, err := DialTLS(ctx, addr, in.cfg.User, in.cfg.Password, in.cfg.TLS)
	if err != nil {
		return fmt.Errorf("semisync: connecting to source %s: %w", addr, err)
	}
	s.conn, s.raw = conn, conn.Conn.Conn
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.raw.SetDeadline(time.Now()) })
	defer stop()

	for _, q := range s.flav.ReplicaSetup(s.st.GTIDs, in.cfg.Heartbeat, in.cfg.ReplicaUUID) {
		if _, err := execute(conn, q); err != nil {
			return fmt.Errorf("semisync: source %s: %s: %w", addr, q, err)
		}
	}
	if err := s.command(registerPacket(in.cfg.ServerID, in.cfg.ReportHost, in.cfg.ReportPort)); err != nil {
		return fmt.Errorf("semisync: registering as replica %d with source %s: %w%s", in.cfg.ServerID, addr, err, grantHint(err))
	}
	semi, err := s.enableSemiSync()
	if err != nil {
		return err
	}
	dumpCmd, err := s.flav.DumpCommand(in.cfg.ServerID, s.st.GTIDs)
	if err != nil {
		return err
	}
	conn.ResetSequence()
	if err := conn.WritePacket(append(make([]byte, 4), dumpCmd...)); err != nil {
		return fmt.Errorf("semisync: asking source %s for its binlog: %w", addr, err)
	}
	in.log.Info("streaming from the source", "source", addr, "flavor", s.st.Flavor, "from_gtids", s.st.GTIDs,
		"semi_sync", semi, "epoch", s.st.Epoch, "server_id", in.cfg.ServerID)
	in.setState(StateStreaming, "")
	return s.stream(ctx, semi, info)
}

// behind reports whether the log's GTID state lacks some of the source's
// executed set (an unreadable set counts as not behind: it only shows).
func behind(flav binlog.Flavor, logGTIDs, sourceGTIDs string) bool {
	l, err1 := flav.ParseSet(logGTIDs)
	src, err2 := flav.ParseSet(sourceGTIDs)
	return err1 == nil && err2 == nil && !l.ContainsSet(src)
}

// hasServerUUID reports whether servers of the named flavor have a
// server_uuid that identifies them.
func hasServerUUID(flavor string) bool {
	f, err := binlog.FlavorByName(flavor)
	return err == nil && f.HasServerUUID()
}

// checkIdentity refuses a server that is not the log's recorded source.
func checkIdentity(want, got logger.Source) error {
	if hasServerUUID(want.Flavor) && want.UUID != "" && got.UUID != want.UUID {
		return fmt.Errorf("%w: %s has server_uuid %s, the log's source is %s (a failover outside the fleet? use the fleet's promote)", ErrWrongSource, want.Addr, got.UUID, want.UUID)
	}
	if want.ServerID != 0 && got.ServerID != want.ServerID {
		return fmt.Errorf("%w: %s has server_id %d, the log's source has %d (a failover outside the fleet? use the fleet's promote)", ErrWrongSource, want.Addr, got.ServerID, want.ServerID)
	}
	return nil
}

// command sends one command packet and reads its OK.
func (s *session) command(payload []byte) error {
	s.conn.ResetSequence()
	if err := s.conn.WritePacket(append(make([]byte, 4), payload...)); err != nil {
		return err
	}
	p, err := s.conn.ReadPacket()
	if err != nil {
		return err
	}
	if len(p) > 0 && p[0] == 0xFF {
		return parseErr(p)
	}
	return nil
}

// enableSemiSync turns semi-sync on for this session if the source has it
// on. Without it the fleet still stores everything, but commits on the
// source are not protected: that is reported loudly.
func (s *session) enableSemiSync() (bool, error) {
	r, err := execute(s.conn, s.flav.SemiSyncEnabledQuery())
	if err != nil {
		s.in.log.Error("the source has no semi-sync plugin: its commits are NOT protected by the fleet; load and enable it (see docs/SOURCE.md)",
			"source", s.st.Source.Addr, "err", err)
		s.in.setSemiSync(SemiSyncStatus{Enabled: false, Error: err.Error()})
		return false, nil
	}
	v, _ := r.GetString(0, 0)
	r.Close()
	if !isOn(v) {
		s.in.log.Error("semi-sync is off on the source: its commits are NOT protected by the fleet; set rpl_semi_sync_*_enabled=ON (see docs/SOURCE.md)",
			"source", s.st.Source.Addr)
		s.in.setSemiSync(SemiSyncStatus{Enabled: false})
		return false, nil
	}
	if _, err := execute(s.conn, s.flav.ReplicaSemiSyncOn()); err != nil {
		return false, fmt.Errorf("semisync: turning semi-sync on for the session: %w", err)
	}
	return true, nil
}

func isOn(v string) bool { return strings.EqualFold(v, "ON") || v == "1" }

// stream reads events, cuts transactions, proposes them and ACKs.
func (s *session) stream(ctx context.Context, semi bool, info SourceInfo) error {
	in := s.in
	alg := binlog.ChecksumNone
	if strings.EqualFold(info.Checksum, "CRC32") {
		alg = binlog.ChecksumCRC32
	}
	c := &cutter{flav: s.flav, alg: alg}
	ctx, cancel := context.WithCancelCause(ctx)
	var prop *logger.Proposer
	var lastTk *logger.Ticket // the last transaction enqueued
	var wg sync.WaitGroup
	acks := make(chan ackItem, 65536)
	defer func() {
		cancel(errSessionEnded)
		close(acks)
		wg.Wait()
	}()
	wg.Add(1)
	go func() { defer wg.Done(); s.acker(ctx, cancel, acks) }()
	wg.Add(1)
	go func() { defer wg.Done(); in.watchSource(ctx, s.flav, s.st.Source.Addr, semi, cancel) }()
	wg.Add(1)
	go func() { defer wg.Done(); in.watchHistory(ctx, s.flav, s.st.Source.Addr) }()

	pr := newPacketReader(s.raw)
	readTimeout := 3*in.cfg.Heartbeat + 5*time.Second
	// NB: a previous leader may have stored transactions and died before
	// ACKing them; the source will not send them again (the dump starts
	// after them), so their commits would wait for the source's timeout.
	// They are committed in the log: ACK the last one now, once the dump
	// thread runs (after the first event).
	catchUpAck := s.storedAck(semi)
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		_ = s.raw.SetReadDeadline(time.Now().Add(readTimeout))
		p, err := pr.next()
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				return cause
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("semisync: no event or heartbeat from source %s for %v: %w", s.st.Source.Addr, readTimeout, err)
			}
			return fmt.Errorf("semisync: reading from source %s: %w", s.st.Source.Addr, err)
		}
		received := time.Now()
		if catchUpAck != nil {
			s.wmu.Lock()
			_ = s.raw.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_, err := s.raw.Write(ackPacket(catchUpAck.SourceFile, catchUpAck.SourceEnd))
			s.wmu.Unlock()
			if err != nil {
				return fmt.Errorf("semisync: sending the ACK of stored %s to source %s: %w", catchUpAck.GTID, s.st.Source.Addr, err)
			}
			in.log.Info("acknowledged what the log already holds", "gtid", catchUpAck.GTID, "source_file", catchUpAck.SourceFile, "source_pos", catchUpAck.SourceEnd)
			in.setLastAck(catchUpAck.SourceFile, catchUpAck.SourceEnd, catchUpAck.GTID)
			catchUpAck = nil
		}
		ev, needAck, err := eventOf(p, semi)
		if err != nil {
			var se *SourceError
			if errors.As(err, &se) && (se.Code == 1227 || se.Code == 1045) {
				return fmt.Errorf("%w%s", err, grantHint(err))
			}
			if errors.As(err, &se) && se.Code == 1236 {
				in.log.Error("the source cannot continue the log's GTID state: it lacks transactions the log holds, or has purged what the log needs",
					"source", s.st.Source.Addr, "log_gtids", s.st.GTIDs, "err", err)
			}
			return err
		}
		in.observeEvent(ev, c.file)
		t, err := c.feed(ev, needAck)
		if err != nil {
			return err
		}
		if t == nil {
			// NB: only once this session has cut a transaction: the real
			// rotates a dump replays before the first transaction the log
			// lacks end files whose transactions the log already holds.
			if lastTk != nil && in.cfg.FollowSourceRotate && isSourceRotate(ev) {
				if err := s.followRotate(ctx, lastTk, c.file); err != nil {
					return err
				}
			}
			continue
		}
		if prop == nil {
			// NB: the proposer needs the source's FDE, which the stream sends
			// after the fake rotate; it starts with the first transaction.
			prop = logger.NewProposer(in.node, logger.ProposerConfig{Epoch: s.st.Epoch, Source: s.st.Source.Addr, FDE: c.fde,
				MaxInFlight: in.cfg.MaxInFlight, Linger: in.cfg.Linger, Timeout: in.proposalTimeout})
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := prop.Run(ctx); err != nil && context.Cause(ctx) == nil {
					cancel(err)
				}
			}()
		}
		if in.cfg.DebugCommitDelay > 0 {
			time.Sleep(in.cfg.DebugCommitDelay)
		}
		tk, err := prop.Enqueue(ctx, t.txn)
		if err != nil {
			return err
		}
		in.metrics.received.Inc()
		in.noteStatements(t.txn.GTID, t.statements)
		if h, err := binlog.ParseHeader(ev); err == nil {
			in.noteReceived(t.txn.GTID, h.Timestamp)
		}
		lastTk = tk
		select {
		case acks <- ackItem{tk: tk, cut: t, received: received}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// isSourceRotate reports whether ev is the real ROTATE_EVENT that ends one
// of the source's files (FLUSH BINARY LOGS, max_binlog_size): not
// artificial and at a position in the file. The fake rotate a dump sends
// at its start and after each file switch is artificial with position 0.
func isSourceRotate(ev []byte) bool {
	h, err := binlog.ParseHeader(ev)
	return err == nil && h.Type == binlog.TypeRotate && h.Flags&binlog.FlagArtificial == 0 && h.LogPos > 0
}

// followRotate closes the log's open file when the source closed one of its
// own, so that FLUSH BINARY LOGS on the source starts a new file in the
// fleet too. It waits for every transaction enqueued before the rotate to
// be stored first: the Rotate entry must follow them in the log. The
// source's commits are not held up: the acker ACKs them meanwhile.
func (s *session) followRotate(ctx context.Context, last *logger.Ticket, next string) error {
	select {
	case <-last.Done():
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if err := last.Err(); err != nil {
		return nil // NB: the acker ends the session with this error
	}
	pctx, cancel := context.WithTimeout(ctx, s.in.proposalTimeout)
	defer cancel()
	res, err := s.in.node.Propose(pctx, &logger.Rotate{})
	switch {
	case errors.Is(err, logger.ErrEncodingNotReady):
		// NB: a member runs an older version: the fleet's file goes on until
		// it is full or rotated by hand after the upgrade.
		s.in.log.Info("the source rotated its binlog; the fleet's file does not follow until every member is upgraded", "source_file", next, "err", err)
		return nil
	case err != nil:
		return fmt.Errorf("semisync: following the source's rotation to %s: %w", next, err)
	case !res.Code.Stored():
		s.in.log.Warn("the log refused to follow the source's rotation", "source_file", next, "code", res.Code.String(), "message", res.Message)
		return nil
	}
	if closed, ok := strings.CutPrefix(res.Message, logger.RotatedPrefix); ok {
		s.in.log.Info("the source rotated its binlog: rotated the log's file", "source_file", next, "closed", closed, "open", logger.FileName(res.File))
		s.in.metrics.rotations.Inc()
	}
	return nil
}

// storedAck returns the log's last transaction if it came from the current
// source (its epoch): the position to ACK at the start of a session.
func (s *session) storedAck(semi bool) *logger.TxnRecord {
	r := s.in.node.Reader()
	if !semi || r == nil || s.st.LastGTID == "" {
		return nil
	}
	rec, err := r.FindGTID(s.st.LastGTID)
	if err != nil || rec.Epoch != s.st.Epoch || rec.SourceFile == "" {
		return nil
	}
	return &rec
}

// acker waits for each transaction's outcome in stream order and ACKs the
// latest stored one that asked for it. Rule 1 of DESIGN.md: a transaction
// is ACKed only after its Ticket reports it committed and applied.
func (s *session) acker(ctx context.Context, cancel context.CancelCauseFunc, items <-chan ackItem) {
	in := s.in
	var core ackCore // ackcore.go: which position to ACK, and when
	send := func(a *ackItem) {
		if a == nil {
			return
		}
		s.wmu.Lock()
		_ = s.raw.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := s.raw.Write(ackPacket(a.cut.txn.SourceFile, a.cut.txn.SourceEnd))
		s.wmu.Unlock()
		if err != nil {
			cancel(fmt.Errorf("semisync: sending the ACK to source %s: %w", s.st.Source.Addr, err))
			return
		}
		in.metrics.ackLatency.Observe(time.Since(a.received).Seconds())
		in.metrics.observeStages(a.received, a.tk.Times(), a.seen, time.Now())
		in.metrics.acks.Inc()
		in.setLastAck(a.cut.txn.SourceFile, a.cut.txn.SourceEnd, a.cut.txn.GTID)
	}
	for {
		var it ackItem
		var ok bool
		select {
		case it, ok = <-items:
		default:
			send(core.take()) // NB: nothing more is ready: ACK what is stored now
			select {
			case it, ok = <-items:
			case <-ctx.Done():
				return
			}
		}
		if !ok {
			return
		}
		if _, ok := it.tk.TryResult(); !ok {
			send(core.take())
			select {
			case <-it.tk.Done():
			case <-ctx.Done():
				return
			case <-time.After(3 * in.proposalTimeout):
				// NB: a safety net: the proposer reports every outcome within
				// its timeout; if it does not, restart from the log's state
				// rather than hold the source's commits forever.
				cancel(fmt.Errorf("semisync: no outcome for transaction %s after %v; restarting the session", it.cut.txn.GTID, 3*in.proposalTimeout))
				return
			}
		}
		it.seen = time.Now()
		if err := core.outcome(it, it.tk.Err()); err != nil {
			cancel(fmt.Errorf("semisync: transaction %s not stored: %w", it.cut.txn.GTID, err))
			return
		}
		in.metrics.stored.Inc()
		in.noteStored(it.cut.txn.GTID)
	}
}

// grantHint names the fix for a privilege error.
func grantHint(err error) string {
	var se *SourceError
	if errors.As(err, &se) && (se.Code == 1227 || se.Code == 1045) {
		return " (the fleet's source account needs: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO it)"
	}
	return ""
}

// recordSourceVars stores the source's data-describing variables that the
// log does not hold yet or holds with another value (a new source, or one
// reconfigured). A failure is logged and retried at the next session: the
// dump servers answer the last recorded values meanwhile.
func (in *Ingester) recordSourceVars(ctx context.Context, vars map[string]string) {
	r := in.node.Reader()
	if r == nil {
		return
	}
	have, err := r.MetaPrefix(logger.MetaSourceVarPrefix)
	if err != nil {
		in.log.Warn("cannot read the source's recorded variables", "err", err)
		return
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	var changed []string
	defer func() {
		if len(changed) > 0 {
			in.log.Info("recorded the source's variables that describe its data", "changed", strings.Join(changed, ", "))
		}
	}()
	for _, k := range names {
		v := vars[k]
		if old, ok := have[logger.MetaSourceVarPrefix+k]; ok && string(old) == v {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := in.node.Propose(pctx, &logger.Meta{Key: logger.MetaSourceVarPrefix + k, Value: []byte(v)})
		cancel()
		if err != nil || !res.Code.Stored() {
			in.log.Warn("cannot record the source's variable", "name", k, "value", v, "err", err, "result", res.Code)
			return
		}
		changed = append(changed, k+"="+v)
	}
}
