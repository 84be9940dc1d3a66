package e2e

import (
	"context"
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

	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// killRuns is how many times in a row the kill test runs per flavor: one
// lucky run proves little about a race between the kill and the commits.
const killRuns = 3

// waitNewSource waits until the fleet's log names a source other than old,
// not fenced, and the ingest streams from it.
func (r *rig) waitNewSource(old string, d time.Duration) string {
	r.t.Helper()
	var src string
	err := fleet.Poll(context.Background(), d, func() error {
		st, err := r.status()
		if err != nil {
			return err
		}
		if st.Source == old || st.SourceFenced || st.Source == "" {
			return fmt.Errorf("source %s", st.Source)
		}
		src = st.Source
		if st.Ingest == nil || st.Ingest.State != "streaming" || st.Ingest.Source != src {
			return fmt.Errorf("ingest %+v", st.Ingest)
		}
		return nil
	})
	if err != nil {
		fs, _ := r.failoverStatus()
		r.t.Fatalf("no new source after %v: %v (failover status %+v)", d, err, fs)
	}
	return src
}

// TestKillSource: kill -9 the source under 16 writing
// clients; the most caught-up replica is promoted, every acknowledged
// commit is on it, the other replica is checksum-equal to it, and a
// go-mysql subscriber attached to a fleet member across the kill saw each
// row change exactly once at positions that only grew. Three times in a
// row per flavor.
func TestKillSource(t *testing.T) {
	for _, flavor := range []sandbox.Flavor{sandbox.MariaDB, sandbox.MySQL} {
		t.Run(string(flavor), func(t *testing.T) {
			var rtos []time.Duration
			for i := 0; i < killRuns; i++ {
				// NB: the subscriber alternates between a GTID and a
				// file/position start, so both are crossed with both flavors.
				byGTID := i%2 == 0
				ok := t.Run(fmt.Sprint("run", i+1), func(t *testing.T) {
					rto := killOnce(t, flavor, byGTID)
					rtos = append(rtos, rto)
					t.Logf("RTO (kill -9 -> first commit acknowledged by the new source): %v", rto)
				})
				if !ok {
					break
				}
			}
			t.Logf("%s: RTOs of %d runs: %v", flavor, len(rtos), rtos)
		})
	}
}

func killOnce(t *testing.T, flavor sandbox.Flavor, byGTID bool) time.Duration {
	r := newRig(t, flavor, rigOptions{replicas: 2})
	sub := r.subscribe(r.feeder, byGTID)
	l := r.startLoad(16)
	defer l.stop()
	l.waitCount(t, 300)
	old := r.src.Addr()
	killed := time.Now()
	if err := r.src.Kill(); err != nil {
		t.Fatal(err)
	}
	fileAtKill := sub.file()
	t.Logf("killed the source %s after %d acknowledged commits; the subscriber is in %s", old, l.count(), fileAtKill)
	newSrc := r.waitNewSource(old, wait)
	if err := fleet.Poll(context.Background(), wait, func() error {
		if n := l.countOn(newSrc); n < 200 {
			return fmt.Errorf("%d commits on the new source", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rto := l.firstOn(newSrc).Sub(killed)
	l.stop()
	ns := r.byAddr(newSrc)
	l.verifyAcked(t, ns)
	for _, rep := range r.replicas {
		if rep != ns {
			dumptest.WaitReplicated(t, ns, rep, wait)
			dumptest.SameData(t, ns, rep, []string{"test.acked"})
		}
	}
	sub.verify(t, ns, l)
	if f := sub.file(); f == fileAtKill {
		t.Errorf("the subscriber is still in %s: the new source's events should be in a new fleet file", f)
	}
	out, err := r.ctl("history")
	if err != nil || !strings.Contains(out, "done") || !strings.Contains(out, "fenced") {
		t.Errorf("binlogctl history: %v\n%s", err, out)
	}
	t.Logf("binlogctl history:\n%s", out)
	return rto
}

// subscriber is a CDC client (go-mysql's BinlogSyncer) attached to one
// fleet member's dump port. It counts the row changes of test.acked and
// checks that the (fleet file, position) of the events only grows.
type subscriber struct {
	syncer *replication.BinlogSyncer
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	seen    map[[2]int]int // (c, n) -> times a change of that row was seen
	changes int
	events  int
	rotates []string // the fleet files the stream entered
	cur     string   // the current fleet file
	lastPos [2]uint64
	lastAt  string // "file:pos" of the last event checked
	err     error  // the first broken rule or stream error
}

// subscribe attaches a subscriber to member id's dump port, from the
// beginning of the fleet's log: by an empty GTID set, or by the first
// file at position 4.
func (r *rig) subscribe(id uint64, byGTID bool) *subscriber {
	r.t.Helper()
	addr := r.dumpAddr(id)
	host, p, _ := strings.Cut(addr, ":")
	port, _ := strconv.Atoi(p)
	flav := string(r.flavor)
	s := &subscriber{seen: map[[2]int]int{}, done: make(chan struct{})}
	s.syncer = replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: 4242, Flavor: flav, Host: host, Port: uint16(port),
		User: dumptest.DumpUser, Password: dumptest.DumpPassword,
		HeartbeatPeriod: time.Second, ReadTimeout: 30 * time.Second, VerifyChecksum: true,
		// NB: no reconnection: the stream must stay one across the
		// failover, as the fleet member it reads from does not go away.
		DisableRetrySync: true,
		Logger:           slog.New(slog.DiscardHandler),
	})
	var st *replication.BinlogStreamer
	var err error
	if byGTID {
		var set mysql.GTIDSet
		if set, err = mysql.ParseGTIDSet(flav, ""); err == nil {
			st, err = s.syncer.StartSyncGTID(set)
		}
	} else {
		fs, ferr := r.f.Files(context.Background(), id)
		if err = ferr; err == nil {
			if len(fs) == 0 {
				err = errors.New("the member has no file")
			} else {
				st, err = s.syncer.StartSync(mysql.Position{Name: fs[0].Name, Pos: 4})
			}
		}
	}
	if err != nil {
		s.syncer.Close()
		r.t.Fatalf("subscriber on member %d (%s): %v", id, addr, err)
	}
	mode := "file/position"
	if byGTID {
		mode = "GTID"
	}
	r.t.Logf("a go-mysql subscriber reads member %d's dump port %s by %s", id, addr, mode)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		for {
			ev, err := st.GetEvent(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.fail(fmt.Errorf("the stream broke: %w", err))
				}
				return
			}
			s.event(ev)
		}
	}()
	r.t.Cleanup(s.close)
	return s
}

func (s *subscriber) close() {
	s.cancel()
	<-s.done
	s.syncer.Close()
}

func (s *subscriber) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// fileSeq is the number of a fleet file name (binlog.000007 -> 7).
func fileSeq(name string) uint64 {
	i := strings.LastIndexByte(name, '.')
	n, _ := strconv.ParseUint(name[i+1:], 10, 64)
	return n
}

func (s *subscriber) event(ev *replication.BinlogEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events++
	h := ev.Header
	switch h.EventType {
	case replication.HEARTBEAT_EVENT, replication.HEARTBEAT_LOG_EVENT_V2:
	case replication.FORMAT_DESCRIPTION_EVENT:
		// NB: sent again at the start of each dump, at its own offset.
	default:
		if h.LogPos != 0 { // NB: 0: an artificial event (the first rotate)
			at := [2]uint64{fileSeq(s.cur), uint64(h.LogPos)}
			if at[0] < s.lastPos[0] || (at[0] == s.lastPos[0] && at[1] <= s.lastPos[1]) {
				if s.err == nil {
					s.err = fmt.Errorf("event %s at %s:%d after %s: the position went back", h.EventType, s.cur, h.LogPos, s.lastAt)
				}
			}
			s.lastPos, s.lastAt = at, fmt.Sprintf("%s:%d", s.cur, h.LogPos)
		}
	}
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		if name := string(e.NextLogName); name != s.cur {
			s.cur = name
			s.rotates = append(s.rotates, name)
		}
	case *replication.RowsEvent:
		if string(e.Table.Schema) != "test" || string(e.Table.Table) != "acked" {
			return
		}
		step := 1
		switch h.EventType {
		case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
			replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1:
			step = 2 // NB: before and after images
		}
		for i := 0; i < len(e.Rows); i += step {
			row := e.Rows[i]
			if len(row) < 2 {
				continue
			}
			s.seen[[2]int{subInt(row[0]), subInt(row[1])}]++
			s.changes++
		}
	}
}

func subInt(v any) int {
	n, _ := strconv.Atoi(fmt.Sprint(v))
	return n
}

func (s *subscriber) file() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// verify waits until the subscriber has seen a marker row written on src
// after the load, then checks that it saw every row of test.acked on src
// (so every acknowledged commit) exactly once and nothing else.
func (s *subscriber) verify(t *testing.T, src *sandbox.Server, l *load) {
	t.Helper()
	marker := [2]int{-1, 0}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := src.Exec(ctx, "INSERT INTO test.acked (c, n, v) VALUES (-1, 0, 'marker')"); err != nil {
		t.Fatal(err)
	}
	err := fleet.Poll(context.Background(), wait, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.err != nil {
			return nil
		}
		if s.seen[marker] == 0 {
			return fmt.Errorf("not yet at the marker; %d changes in %d events, at %s", s.changes, s.events, s.lastAt)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	res, err := src.Exec(ctx, "SELECT c, n FROM test.acked")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[[2]int]bool{}
	for i := 0; i < res.RowNumber(); i++ {
		c, _ := res.GetInt(i, 0)
		n, _ := res.GetInt(i, 1)
		rows[[2]int{int(c), int(n)}] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Fatalf("subscriber: %v", s.err)
	}
	bad := 0
	report := func(format string, args ...any) {
		if bad < 10 {
			t.Errorf("subscriber: "+format, args...)
		}
		bad++
	}
	for k := range rows {
		if n := s.seen[k]; n != 1 {
			report("row (%d, %d) of the new source seen %d times", k[0], k[1], n)
		}
	}
	for k, n := range s.seen {
		if !rows[k] {
			report("row (%d, %d) seen %d times, but it is not on the new source", k[0], k[1], n)
		}
	}
	l.mu.Lock()
	for k := range l.acked {
		if s.seen[k] == 0 {
			report("acknowledged commit (client %d, n %d) not seen", k[0], k[1])
		}
	}
	acked := len(l.acked)
	l.mu.Unlock()
	if bad > 0 {
		t.Fatalf("subscriber: %d problems", bad)
	}
	t.Logf("subscriber: %d row changes in %d events, each row once (%d acknowledged commits among them); positions only grew through files %v",
		s.changes, s.events, acked, s.rotates)
}
