package failover

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
)

func TestSplitTail(t *testing.T) {
	for _, tc := range []struct {
		name, flavor, log, uuid string
		extra                   []string
		tail, errant            []string
	}{
		{"mariadb tail", "mariadb", "0-1-10", "", []string{"0-1-11", "0-1-12"}, []string{"0-1-11", "0-1-12"}, nil},
		{"mariadb diverged", "mariadb", "0-1-10", "", []string{"0-2-9"}, nil, []string{"0-2-9"}},
		{"mariadb unknown domain", "mariadb", "0-1-10", "", []string{"3-1-1"}, nil, []string{"3-1-1"}},
		{"mariadb mixed", "mariadb", "0-1-10,1-1-4", "", []string{"1-1-5", "0-1-10"}, []string{"1-1-5"}, []string{"0-1-10"}},
		{"mysql own tail", "mysql", u1 + ":1-10", u1, []string{u1 + ":11-14"}, []string{u1 + ":11-14"}, nil},
		{"mysql another server", "mysql", u1 + ":1-10", u1, []string{u2 + ":1-2"}, nil, []string{u2 + ":1-2"}},
		{"nothing", "mysql", u1 + ":1-10", u1, nil, nil, nil},
	} {
		tail, errant, err := splitTail(tc.flavor, tc.log, tc.uuid, tc.extra)
		if err != nil || !reflect.DeepEqual(tail, tc.tail) || !reflect.DeepEqual(errant, tc.errant) {
			t.Errorf("%s: tail %v errant %v (%v); want %v, %v", tc.name, tail, errant, err, tc.tail, tc.errant)
		}
	}
	if _, _, err := splitTail("mariadb", "0-1-10", "", []string{"junk"}); err == nil {
		t.Error("splitTail accepted a bad GTID")
	}
}

func TestNextRetry(t *testing.T) {
	var got []time.Duration
	d := time.Duration(0)
	for i := 0; i < 9; i++ {
		d = nextRetry(d, 500*time.Millisecond)
		got = append(got, d)
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("backoff %v, want %v", got, want)
	}
}

// readmitLog is a memLog that applies SetSource as a compare-and-set on
// the epoch and answers HasGTID from the set of GTIDs it holds.
type readmitLog struct {
	*memLog
	has map[string]bool
}

func (l *readmitLog) State() (logger.State, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st, nil
}

func (l *readmitLog) Propose(ctx context.Context, c logger.Command) (logger.Result, error) {
	s, ok := c.(*logger.SetSource)
	if !ok {
		return l.memLog.Propose(ctx, c)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.ExpectedEpoch != l.st.Epoch {
		return logger.Result{Code: logger.ResultStaleEpoch}, nil
	}
	l.st.Epoch, l.st.Source = s.NewEpoch, s.Source
	return logger.Result{Code: logger.ResultOK}, nil
}

func (l *readmitLog) HasGTID(g string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.has[g], nil
}

// take stores gs (the ingest at work) and moves the log's GTID state.
func (l *readmitLog) take(gs ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, g := range gs {
		l.has[g] = true
		l.st.GTIDs = g
	}
}

// fakeServer is a MariaDB server in memory.
type fakeServer struct {
	mu       sync.Mutex
	down     bool
	info     ServerInfo
	binlog   []string
	readOnly bool
	semiSync bool
}

func (s *fakeServer) Ping(context.Context) error { return nil }
func (s *fakeServer) Info(context.Context) (ServerInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.info
	i.ReadOnly = s.readOnly
	return i, nil
}
func (s *fakeServer) SetReadOnly(_ context.Context, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readOnly = on
	return nil
}
func (s *fakeServer) ConnID() uint64                              { return 0 }
func (s *fakeServer) Sessions(context.Context) ([]Session, error) { return nil, nil }
func (s *fakeServer) Kill(context.Context, []uint64) (int, error) { return 0, nil }
func (s *fakeServer) HoldSemiSync(context.Context) error          { return nil }
func (s *fakeServer) ReleaseAckWaits(context.Context) error       { return nil }
func (s *fakeServer) RestoreAckWaits(context.Context) error       { return nil }
func (s *fakeServer) StartReplication(context.Context) error      { return nil }
func (s *fakeServer) StopReplication(context.Context) error       { return nil }
func (s *fakeServer) EnableSemiSyncSource(context.Context, time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.semiSync = true
	return nil
}
func (s *fakeServer) DisableSemiSyncSource(context.Context) error { return nil }
func (s *fakeServer) ReplicateFrom(context.Context, string, Credentials, bool) error {
	return errors.New("fakeServer: not a replica")
}
func (s *fakeServer) BinlogGTIDs(context.Context, func(string) bool) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.binlog...), nil
}
func (s *fakeServer) Close() error { return nil }

// readmitRig is a Manager over a readmitLog whose only server is the
// source s:1 (MariaDB, server_id 1): the log holds 0-1-1..10; the source
// also binlogged 0-1-11 and 0-1-12, never acknowledged. The ingest takes
// the source's binlog into the log whenever the log names it unfenced.
func readmitRig(t *testing.T) (*Manager, *readmitLog, *fakeServer, *time.Time) {
	t.Helper()
	l := &readmitLog{memLog: newMemLog("s:1"), has: map[string]bool{}}
	l.st.GTIDs = "0-1-10"
	for i := 1; i <= 10; i++ {
		l.has["0-1-"+strconv.Itoa(i)] = true
	}
	srv := &fakeServer{info: ServerInfo{Flavor: "mariadb", ServerID: 1, GTIDs: "0-1-12", Held: "0-1-12"},
		binlog: []string{"0-1-9", "0-1-10", "0-1-11", "0-1-12"}}
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	cfg := DefaultConfig()
	cfg.AdminPassword = "admin-pw"
	m, err := New(cfg, Deps{Log: l, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { now = now.Add(time.Millisecond); return now }, // NB: audit keys are times
		Connect: func(_ context.Context, addr string, _ Credentials) (Server, error) {
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if addr != "s:1" || srv.down {
				return nil, errors.New("connection refused")
			}
			return srv, nil
		},
		Ingest: func() IngestView {
			st, _ := l.State()
			if st.Source.Fenced {
				return IngestView{}
			}
			g, _ := srv.BinlogGTIDs(context.Background(), nil)
			l.take(g...)
			return IngestView{Streaming: true, Source: st.Source.Addr}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return m, l, srv, &now
}

// A failover with no candidate whose source is down waits: one advice,
// a growing retry interval; once the source answers it is re-admitted
// under a new epoch, its unacknowledged tail taken into the log before it
// is writable again.
func TestNoCandidateWaitsThenReadmits(t *testing.T) {
	m, l, srv, now := readmitRig(t)
	ctx := context.Background()
	srv.down = true
	st, _ := l.State()
	op, err := m.failover(ctx, Request{Kind: KindFailover, Force: true, Reason: "test"}, st)
	if !errors.Is(err, errWaiting) || op == nil || op.Step != StepFenced {
		t.Fatalf("failover with the source down: op %+v, %v; want errWaiting at step fenced", op, err)
	}
	adv := m.Status().Advice
	if !strings.Contains(adv, "the source s:1 is fenced and unreachable and no candidate can be promoted") ||
		!strings.Contains(adv, "binlogctl candidates add HOST:PORT --credential NAME") || !strings.Contains(adv, "re-admitted once it answers") {
		t.Fatalf("advice: %q", adv)
	}
	// The retries back off: due only once the interval has passed, and
	// the interval doubles.
	var intervals []string
	for i := 0; i < 5; i++ {
		if m.retryDue(op) {
			t.Fatalf("retry %d due before its interval (%s)", i, m.Status().RetryInterval)
		}
		iv, _ := time.ParseDuration(m.Status().RetryInterval)
		*now = now.Add(iv)
		if !m.retryDue(op) {
			t.Fatalf("retry %d not due after its interval %v", i, iv)
		}
		if err := m.execute(ctx, op); !errors.Is(err, errWaiting) {
			t.Fatalf("retry %d: %v", i, err)
		}
		intervals = append(intervals, m.Status().RetryInterval)
	}
	if want := []string{"1s", "2s", "4s", "8s", "16s"}; !reflect.DeepEqual(intervals, want) {
		t.Errorf("retry intervals %v, want %v", intervals, want)
	}
	waiting := 0
	for _, r := range historyOf(t, m) {
		if r.Outcome == "waiting" {
			waiting++
			if !strings.Contains(r.Message, "no eligible candidate") || !strings.Contains(r.Message, "stays fenced") {
				t.Errorf("the waiting record does not say why: %s", r.Message)
			}
		}
	}
	if waiting != 1 {
		t.Errorf("%d waiting records for one situation, want 1", waiting)
	}
	// A new candidate ends the wait at once.
	if err := m.PutCandidate(ctx, Candidate{Addr: "r:1"}); err != nil {
		t.Fatal(err)
	}
	if !m.retryDue(op) {
		t.Error("a new candidate did not end the backoff")
	}
	_ = m.RemoveCandidate(ctx, "r:1")

	// The source comes back.
	srv.down = false
	if err := m.execute(ctx, op); err != nil {
		t.Fatalf("re-admission: %v", err)
	}
	st, _ = l.State()
	if op.Step != StepDone || op.Target != "s:1" || st.Source.Addr != "s:1" || st.Epoch != 5 || op.NewEpoch != 5 {
		t.Fatalf("after the re-admission: op at %s target %q; log source %q epoch %d (want s:1, done, at epoch 5)", op.Step, op.Target, st.Source.Addr, st.Epoch)
	}
	if srv.readOnly || !srv.semiSync {
		t.Errorf("the re-admitted source: read_only %v, semi-sync %v; want writable with semi-sync", srv.readOnly, srv.semiSync)
	}
	if ok, _ := l.HasGTID("0-1-12"); !ok {
		t.Error("the log does not hold the source's tail")
	}
	if s := m.Status(); s.Advice != "" || s.RetryInterval != "" {
		t.Errorf("the advice stays after the re-admission: %+v", s)
	}
	var steps []string
	for _, r := range historyOf(t, m) {
		if r.Kind == KindReadmit {
			steps = append(steps, r.Step)
		}
	}
	if !reflect.DeepEqual(steps, []string{StepReadmitted, StepResumed}) {
		t.Errorf("readmit records %v", steps)
	}
}

// A fenced source that holds a transaction the log lacks and cannot take
// (another history in the domain) is not re-admitted, and the advice says
// so.
func TestNoCandidateErrantSourceStaysFenced(t *testing.T) {
	m, l, srv, _ := readmitRig(t)
	ctx := context.Background()
	srv.info.Held = "0-1-10,0-7-9"
	srv.binlog = []string{"0-1-9", "0-7-9", "0-1-10"}
	srv.info.GTIDs = "0-1-10"
	st, _ := l.State()
	op, err := m.failover(ctx, Request{Kind: KindFailover, Force: true}, st)
	if !errors.Is(err, errWaiting) {
		t.Fatalf("failover: %v", err)
	}
	adv := m.Status().Advice
	if !strings.Contains(adv, "holds 1 transactions the log lacks") || !strings.Contains(adv, "0-7-9") || !strings.Contains(adv, "not re-admitted") {
		t.Errorf("advice %q", adv)
	}
	st, _ = l.State()
	if !st.Source.Fenced || op.Step != StepFenced || !srv.readOnly {
		t.Errorf("source %q, step %s, read_only %v: want it fenced and read-only", st.Source.Addr, op.Step, srv.readOnly)
	}
}

func historyOf(t *testing.T, m *Manager) []Record {
	t.Helper()
	rs, err := m.History()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}
