package dumptest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// feederServerID is the server id the feeder registers with on the source.
const feederServerID = 3999000001

// Feeder copies a source's binlog into a log. Stop it with Close (also
// registered with t.Cleanup).
type Feeder struct {
	src    *sandbox.Server
	node   *logger.Node
	flav   binlog.Flavor
	source logger.Source
	epoch  uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	txns   int
}

// Feed starts copying src's binlog, from its first file, into the log of
// node (the group's leader). The log must be empty or hold this source's
// history already.
func Feed(t testing.TB, src *sandbox.Server, node *logger.Node) *Feeder {
	t.Helper()
	f, err := StartFeeder(context.Background(), src, node)
	if err != nil {
		t.Fatalf("dumptest: feeder: %v", err)
	}
	t.Cleanup(func() {
		f.Close()
		if err := f.Err(); err != nil && !t.Failed() {
			t.Errorf("dumptest: feeder: %v", err)
		}
	})
	return f
}

// StartFeeder is Feed without a testing.TB (for benchmarks); the caller
// must Close it.
func StartFeeder(ctx context.Context, src *sandbox.Server, node *logger.Node) (*Feeder, error) {
	flav, err := binlog.FlavorByName(string(src.Flavor()))
	if err != nil {
		return nil, err
	}
	f := &Feeder{src: src, node: node, flav: flav}
	f.source = logger.Source{Addr: src.Addr(), ServerID: src.ServerID(), Flavor: flav.Name()}
	if q := flav.ServerUUIDQuery(); q != "" {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		r, err := src.Exec(cctx, q)
		cancel()
		if err != nil {
			return nil, err
		}
		f.source.UUID, _ = r.GetString(0, 0)
	}
	r := node.Reader()
	if r == nil {
		return nil, errors.New("the log is not open")
	}
	st := r.State()
	f.epoch = st.Epoch
	if st.Source.Addr != f.source.Addr {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := node.Propose(pctx, &logger.SetSource{ExpectedEpoch: st.Epoch, NewEpoch: st.Epoch + 1, Source: f.source})
		cancel()
		if err != nil {
			return nil, err
		}
		if !res.Code.Stored() {
			return nil, fmt.Errorf("set-source: %s: %s", res.Code, res.Message)
		}
		f.epoch = st.Epoch + 1
	}
	host, port, err := splitHostPort(src.Addr())
	if err != nil {
		return nil, err
	}
	user, pw := src.ReplUser()
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: feederServerID, Flavor: flav.Name(), Host: host, Port: port, User: user, Password: pw,
		RawModeEnabled: true, HeartbeatPeriod: time.Second, ReadTimeout: 30 * time.Second,
		MaxReconnectAttempts: 10, Logger: slog.New(slog.DiscardHandler),
	})
	streamer, err := syncer.StartSync(mysql.Position{Name: "", Pos: 4})
	if err != nil {
		syncer.Close()
		return nil, fmt.Errorf("start sync from %s: %w", src.Addr(), err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer syncer.Close()
		if err := f.run(rctx, streamer); err != nil && rctx.Err() == nil {
			f.setErr(err)
		}
	}()
	return f, nil
}

func splitHostPort(addr string) (string, uint16, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("no port in %q", addr)
	}
	p, err := strconv.ParseUint(addr[i+1:], 10, 16)
	return addr[:i], uint16(p), err
}

func (f *Feeder) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// Err returns the first error the feeder hit, if any.
func (f *Feeder) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Txns returns how many transactions the feeder has had stored.
func (f *Feeder) Txns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.txns
}

// Close stops the feeder and waits for it.
func (f *Feeder) Close() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
}

// run reads events, cuts transactions and proposes them in order.
func (f *Feeder) run(ctx context.Context, s *replication.BinlogStreamer) error {
	var (
		fde      []byte
		alg      binlog.ChecksumAlg
		prop     *logger.Proposer
		propDone chan error
		propStop context.CancelFunc
		cut      cutter
		file     string
		first    = true
		waits    = make(chan func(context.Context) error, 1<<14)
		waitErr  = make(chan error, 1)
	)
	// The waiter reports stored transactions, in order.
	go func() {
		for w := range waits {
			wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := w(wctx)
			cancel()
			if err != nil {
				waitErr <- err
				for range waits {
				}
				return
			}
			f.mu.Lock()
			f.txns++
			f.mu.Unlock()
		}
		close(waitErr)
	}()
	stopProposer := func() {
		if prop != nil {
			propStop()
			<-propDone
			prop = nil
		}
	}
	defer func() {
		close(waits)
		<-waitErr
		stopProposer()
	}()
	for {
		ev, err := s.GetEvent(ctx)
		if err != nil {
			return err
		}
		select {
		case err := <-waitErr:
			if err != nil {
				return fmt.Errorf("storing a transaction: %w", err)
			}
		default:
		}
		raw := ev.RawData
		if len(raw) < binlog.HeaderLen {
			continue
		}
		typ := raw[4]
		switch typ {
		case binlog.TypeFDE:
			a, err := binlog.FDEChecksumAlg(raw)
			if err != nil {
				return err
			}
			if fde == nil || !sameFDEBody(fde, raw) {
				stopProposer()
				fde, alg = append([]byte(nil), raw...), a
				pctx, cancel := context.WithCancel(context.Background())
				prop = logger.NewProposer(f.node, logger.ProposerConfig{Epoch: f.epoch, Source: f.source.Addr, FDE: fde})
				propDone, propStop = make(chan error, 1), cancel
				go func(p *logger.Proposer) { propDone <- p.Run(pctx) }(prop)
			}
			first = false
			continue
		case binlog.TypeRotate:
			body := raw[binlog.HeaderLen:]
			if !(first && binary.LittleEndian.Uint32(raw) == 0) && alg == binlog.ChecksumCRC32 && len(body) >= 12 {
				body = body[:len(body)-4]
			}
			if len(body) > 8 {
				file = string(body[8:])
			}
			continue
		case binlog.TypeHeartbeat, binlog.TypeHeartbeatV2, binlog.TypePreviousGTIDs, binlog.TypeMariaDBGTIDList,
			binlog.TypeCheckpoint, binlog.TypeStop, binlog.TypeAnonymousGTID:
			continue
		}
		if prop == nil {
			return fmt.Errorf("a type %d event before any format description event", typ)
		}
		txn, done, err := cut.add(f.flav, raw, alg)
		if err != nil {
			return err
		}
		if !done {
			continue
		}
		txn.SourceFile = file
		txn.SourceEnd = uint64(binary.LittleEndian.Uint32(raw[13:]))
		w, err := prop.Enqueue(ctx, txn)
		if err != nil {
			return err
		}
		select {
		case waits <- w.Wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sameFDEBody compares two FDEs without header timestamp, log_pos, flags
// and checksum.
func sameFDEBody(a, b []byte) bool {
	if len(a) != len(b) || len(a) < binlog.HeaderLen+4 {
		return false
	}
	return string(a[binlog.HeaderLen:len(a)-4]) == string(b[binlog.HeaderLen:len(b)-4])
}

// cutter assembles events into whole transactions: a GTID event, then up
// to the XID or the COMMIT/ROLLBACK query; a DDL (MySQL: no BEGIN after
// the GTID; MariaDB: the GTID's standalone flag) ends with its query.
type cutter struct {
	events    []byte
	gtid      string
	inTrx     bool // BEGIN seen (MySQL) or a non-standalone MariaDB GTID
	afterGTID int  // events since the GTID event
}

func (c *cutter) add(flav binlog.Flavor, ev []byte, alg binlog.ChecksumAlg) (logger.Txn, bool, error) {
	typ := ev[4]
	if g, ok, err := flav.GTIDOfEvent(ev, alg); err != nil {
		return logger.Txn{}, false, err
	} else if ok {
		if c.gtid != "" {
			return logger.Txn{}, false, fmt.Errorf("GTID %s starts before transaction %s ended", g, c.gtid)
		}
		c.gtid, c.events, c.afterGTID = g, append(c.events[:0:0], ev...), 0
		c.inTrx = false
		if typ == binlog.TypeMariaDBGTID && len(ev) > binlog.HeaderLen+12 {
			c.inTrx = ev[binlog.HeaderLen+12]&1 == 0 // FL_STANDALONE unset
		}
		return logger.Txn{}, false, nil
	}
	if c.gtid == "" {
		return logger.Txn{}, false, fmt.Errorf("a type %d event outside a transaction", typ)
	}
	c.events = append(c.events, ev...)
	c.afterGTID++
	end := false
	switch typ {
	case binlog.TypeXID:
		end = true
	case binlog.TypeQuery:
		q := strings.ToUpper(strings.TrimSpace(queryText(ev, alg)))
		switch {
		case q == "BEGIN" || strings.HasPrefix(q, "XA START"):
			c.inTrx = true
		case q == "COMMIT" || q == "ROLLBACK" || strings.HasPrefix(q, "XA END") || strings.HasPrefix(q, "XA COMMIT"):
			end = true
		case !c.inTrx:
			end = true
		}
	}
	if !end {
		return logger.Txn{}, false, nil
	}
	t := logger.Txn{GTID: c.gtid, Events: c.events}
	c.gtid, c.events = "", nil
	return t, true, nil
}

// queryText extracts the statement of a QUERY_EVENT.
func queryText(ev []byte, alg binlog.ChecksumAlg) string {
	end := len(ev)
	if alg == binlog.ChecksumCRC32 {
		end -= 4
	}
	b := binlog.HeaderLen
	if end < b+13 {
		return ""
	}
	dbLen := int(ev[b+8])
	statusLen := int(binary.LittleEndian.Uint16(ev[b+11:]))
	q := b + 13 + statusLen + dbLen + 1
	if q > end {
		return ""
	}
	return string(ev[q:end])
}

// WaitCaughtUp waits (bounded by d) until the log holds every transaction
// the source has executed.
func (f *Feeder) WaitCaughtUp(t testing.TB, d time.Duration) {
	t.Helper()
	if err := f.CaughtUp(context.Background(), d); err != nil {
		t.Fatalf("dumptest: %v", err)
	}
}

// CaughtUp is WaitCaughtUp returning an error.
func (f *Feeder) CaughtUp(ctx context.Context, d time.Duration) error {
	q := f.flav.BinlogGTIDsQuery()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	r, err := f.src.Exec(cctx, q)
	cancel()
	if err != nil {
		return err
	}
	txt, _ := r.GetString(0, 0)
	want, err := f.flav.ParseSet(txt)
	if err != nil {
		return fmt.Errorf("source GTID state %q: %v", txt, err)
	}
	deadline := time.Now().Add(d)
	for {
		if err := f.Err(); err != nil {
			return fmt.Errorf("feeder failed: %w", err)
		}
		st := f.node.Reader().State()
		have, err := f.flav.ParseSet(st.GTIDs)
		if err == nil && have.ContainsSet(want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the log has %q, the source has executed %q (after %v)", st.GTIDs, txt, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
