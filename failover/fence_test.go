package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func TestBoundFences(t *testing.T) {
	pf := func(addr string, s int) PendingFence {
		return PendingFence{Addr: addr, Since: t0.Add(time.Duration(s) * time.Second)}
	}
	addrs := func(l []PendingFence) []string {
		var out []string
		for _, p := range l {
			out = append(out, p.Addr)
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		list       []PendingFence
		max        int
		keep, drop []string
	}{
		{"empty", nil, 2, nil, nil},
		{"under", []PendingFence{pf("b", 2), pf("a", 1)}, 2, []string{"a", "b"}, nil},
		{"over by one", []PendingFence{pf("c", 3), pf("a", 1), pf("b", 2)}, 2, []string{"b", "c"}, []string{"a"}},
		{"over by two", []PendingFence{pf("c", 3), pf("a", 1), pf("b", 2), pf("d", 4)}, 2, []string{"c", "d"}, []string{"a", "b"}},
		{"same time: by address", []PendingFence{pf("y", 1), pf("x", 1)}, 1, []string{"y"}, []string{"x"}},
	} {
		keep, drop := boundFences(tc.list, tc.max)
		if !reflect.DeepEqual(addrs(keep), tc.keep) || !reflect.DeepEqual(addrs(drop), tc.drop) {
			t.Errorf("%s: keep %v drop %v; want %v, %v", tc.name, addrs(keep), addrs(drop), tc.keep, tc.drop)
		}
	}
}

func TestNextFenceRetry(t *testing.T) {
	for _, tc := range []struct {
		first time.Duration
		want  []time.Duration
	}{
		{500 * time.Millisecond, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}},
		{250 * time.Millisecond, []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second}},
		{10 * time.Second, []time.Duration{3 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second}},
		{0, []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond, 16 * time.Millisecond}},
	} {
		var got []time.Duration
		d := time.Duration(0)
		for range tc.want {
			d = nextFenceRetry(d, tc.first)
			got = append(got, d)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("first %v: %v, want %v", tc.first, got, tc.want)
		}
	}
}

func TestNeedPersist(t *testing.T) {
	at := func(s int, e string) PendingFence {
		return PendingFence{Addr: "s:1", LastError: e, LastAttempt: t0.Add(time.Duration(s) * time.Second)}
	}
	timeout := "unreachable (read tcp 127.0.0.1:50112->127.0.0.1:3306: i/o timeout)"
	timeout2 := "unreachable (read tcp 127.0.0.1:50990->127.0.0.1:3306: i/o timeout)"
	for _, tc := range []struct {
		name         string
		stored, live PendingFence
		want         bool
	}{
		{"never recorded an attempt", PendingFence{Addr: "s:1"}, at(1, timeout), true},
		{"same error, soon after", at(0, timeout), at(5, timeout), false},
		{"same error but a port", at(0, timeout), at(5, timeout2), false},
		{"same error, 30 s later", at(0, timeout), at(30, timeout), true},
		{"another error", at(0, timeout), at(1, "answered, but read_only failed: Lock wait timeout exceeded"), true},
	} {
		if got := needPersist(tc.stored, tc.live); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPlanFence(t *testing.T) {
	st := func(src string) logger.State { return logger.State{Epoch: 5, Source: logger.Source{Addr: src}} }
	fenced := func(src string) logger.State {
		return logger.State{Epoch: 5, Source: logger.Source{Addr: src, Fenced: true}}
	}
	op := func(step, target string) *Operation {
		return &Operation{ID: "failover-4-1", Step: step, Target: target}
	}
	for _, tc := range []struct {
		name string
		st   logger.State
		op   *Operation
		due  bool
		want fencePlan
	}{
		{"due", st("r:1"), nil, true, planTry},
		{"not due", st("r:1"), nil, false, planWait},
		{"the source again", st("s:1"), nil, true, planIsSource},
		{"the source again, not due", st("s:1"), nil, false, planIsSource},
		{"fenced in the log: still fenced", fenced("s:1"), nil, true, planTry},
		{"an operation promotes it", fenced("r:1"), op(StepChosen, "s:1"), true, planDefer},
		{"a finished operation promoted it elsewhere", st("r:1"), op(StepDone, "s:1"), true, planTry},
		{"an operation promotes another", fenced("r:1"), op(StepChosen, "r:2"), true, planTry},
	} {
		if got := planFence("s:1", tc.st, tc.op, tc.due); got != tc.want {
			t.Errorf("%s: plan %d, want %d", tc.name, got, tc.want)
		}
	}
}

// fenceRig is a Manager over a readmitLog whose source is s:1, with a fake
// clock and servers that can be down; it counts logins.
type fenceRig struct {
	m       *Manager
	l       *readmitLog
	now     *time.Time
	mu      sync.Mutex
	servers map[string]*fakeServer
	logins  map[string]int
}

func newFenceRig(t *testing.T, l *readmitLog) *fenceRig {
	t.Helper()
	if l == nil {
		l = &readmitLog{memLog: newMemLog("s:1"), has: map[string]bool{}}
	}
	now := t0
	r := &fenceRig{l: l, now: &now, servers: map[string]*fakeServer{}, logins: map[string]int{}}
	for _, a := range []string{"s:1", "r:1"} {
		r.servers[a] = &fakeServer{info: ServerInfo{Flavor: "mariadb", ServerID: 1}}
	}
	cfg := DefaultConfig()
	cfg.AdminPassword = "admin-pw"
	m, err := New(cfg, Deps{Log: l, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { now = now.Add(time.Millisecond); return now }, // NB: audit keys are times
		Connect: func(_ context.Context, addr string, _ Credentials) (Server, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.logins[addr]++
			s := r.servers[addr]
			if s == nil || s.down {
				return nil, fmt.Errorf("connecting to %s: i/o timeout", addr)
			}
			return s, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	return r
}

func (r *fenceRig) down(addr string, down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.servers[addr].down = down
}

func (r *fenceRig) loginsTo(addr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logins[addr]
}

func (r *fenceRig) pending(t *testing.T) []PendingFence {
	t.Helper()
	l, err := r.m.PendingFences()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fenceSteps returns the steps of the audit records of kind fence.
func fenceSteps(t *testing.T, m *Manager) []string {
	t.Helper()
	var out []string
	for _, r := range historyOf(t, m) {
		if r.Kind == KindFence {
			out = append(out, r.Step)
		}
	}
	return out
}

// failOver runs a failover's fence step against the log's source s:1.
func (r *fenceRig) failOver(t *testing.T) *Operation {
	t.Helper()
	st, _ := r.l.State()
	op := &Operation{ID: fmt.Sprintf("failover-%d-1", st.Epoch), Kind: KindFailover, Step: StepStarted, Started: *r.now, OldSource: st.Source, FromEpoch: st.Epoch}
	if err := r.m.stepFence(context.Background(), op); err != nil {
		t.Fatalf("fence step: %v", err)
	}
	if op.Step != StepFenced {
		t.Fatalf("fence step: op at %s", op.Step)
	}
	return op
}

// An old source that does not answer at the fence is recorded as a
// pending fence; the leader retries it with a growing interval, and fences
// it (read_only, sessions ended) as soon as it answers, then drops the
// record; the audit shows both.
func TestDeferredFence(t *testing.T) {
	r := newFenceRig(t, nil)
	ctx := context.Background()
	r.down("s:1", true)
	op := r.failOver(t)
	if !strings.Contains(op.Message, "retried until it answers") {
		t.Errorf("the fence step does not say the fence is retried: %s", op.Message)
	}
	l := r.pending(t)
	if len(l) != 1 || l[0].Addr != "s:1" || l[0].Attempts != 1 || l[0].OpID != op.ID || l[0].Epoch != op.FenceEpoch ||
		!strings.Contains(l[0].LastError, "unreachable") {
		t.Fatalf("pending fences after the failover: %+v", l)
	}

	// Retries: at once on the first round, then only once the interval
	// has passed, the interval doubling up to fenceMaxRetry.
	var gaps []time.Duration
	last := r.loginsTo("s:1")
	lastAt := *r.now
	for i := 0; i < 60 && len(gaps) < 6; i++ {
		r.m.fenceRound(ctx)
		if n := r.loginsTo("s:1"); n != last {
			gaps = append(gaps, r.now.Sub(lastAt).Round(100*time.Millisecond))
			last, lastAt = n, *r.now
		}
		*r.now = r.now.Add(250 * time.Millisecond)
	}
	want := []time.Duration{0, 500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}
	if !reflect.DeepEqual(gaps, want) {
		t.Errorf("attempts %v apart, want %v", gaps, want)
	}
	st := r.m.Status()
	if len(st.PendingFences) != 1 || st.PendingFences[0].Attempts != 7 || st.PendingFences[0].LastAttempt.IsZero() {
		t.Fatalf("status pending fences: %+v", st.PendingFences)
	}
	if l := r.pending(t); l[0].Attempts >= 7 {
		t.Errorf("every attempt was written to the log (%d): only a change of error, or every %v", l[0].Attempts, fencePersistEvery)
	}

	// It answers: fenced, the record dropped.
	r.down("s:1", false)
	*r.now = r.now.Add(fenceMaxRetry)
	r.m.fenceRound(ctx)
	if !r.servers["s:1"].readOnly {
		t.Error("the old source is not read-only after it answered")
	}
	if l := r.pending(t); len(l) != 0 {
		t.Errorf("pending fences after the fence: %+v", l)
	}
	if st := r.m.Status(); len(st.PendingFences) != 0 {
		t.Errorf("status pending fences after the fence: %+v", st.PendingFences)
	}
	if steps := fenceSteps(t, r.m); !reflect.DeepEqual(steps, []string{"pending", "fenced"}) {
		t.Errorf("fence records %v", steps)
	}
	n := r.loginsTo("s:1")
	*r.now = r.now.Add(time.Minute)
	r.m.fenceRound(ctx)
	if r.loginsTo("s:1") != n {
		t.Error("the fenced server is logged in to again")
	}
}

// A fence that completed at the failover leaves nothing pending.
func TestFenceCompletedNothingPending(t *testing.T) {
	r := newFenceRig(t, nil)
	r.failOver(t)
	if l := r.pending(t); len(l) != 0 || !r.servers["s:1"].readOnly {
		t.Fatalf("pending %+v, read_only %v", l, r.servers["s:1"].readOnly)
	}
	if steps := fenceSteps(t, r.m); len(steps) != 0 {
		t.Errorf("fence records %v for a fence that completed", steps)
	}
}

// The pending list is in the log: a new leader (another Manager over the
// same log) tries it at once, counting on from the recorded attempts.
func TestPendingFenceSurvivesLeaderChange(t *testing.T) {
	r := newFenceRig(t, nil)
	r.down("s:1", true)
	r.failOver(t)
	r2 := newFenceRig(t, r.l)
	r2.servers["s:1"] = r.servers["s:1"]
	r2.down("s:1", false)
	r2.m.fenceRound(context.Background())
	// NB: one attempt logs in twice: a session for read_only, one that
	// ends the others while it waits.
	if r2.loginsTo("s:1") != 2 || !r.servers["s:1"].readOnly {
		t.Fatalf("the new leader did not fence at once: %d logins, read_only %v", r2.loginsTo("s:1"), r.servers["s:1"].readOnly)
	}
	if l := r2.pending(t); len(l) != 0 {
		t.Errorf("pending after the new leader's fence: %+v", l)
	}
	var msg string
	for _, x := range historyOf(t, r2.m) {
		if x.Kind == KindFence && x.Step == "fenced" {
			msg = x.Message
		}
	}
	if !strings.Contains(msg, "attempt 2") {
		t.Errorf("the fenced record does not count the first leader's attempt: %q", msg)
	}
}

// A server that is the log's source again is never fenced: its pending
// fence is dropped (here by the fencer's own check; re-admission and
// promotion drop it before making it the source).
func TestPendingFenceNeverFencesTheSource(t *testing.T) {
	r := newFenceRig(t, nil)
	r.down("s:1", true)
	r.failOver(t)
	// Something made s:1 the source again.
	r.l.mu.Lock()
	r.l.st.Epoch++
	r.l.st.Source = logger.Source{Addr: "s:1", Flavor: "mariadb"}
	r.l.mu.Unlock()
	r.down("s:1", false)
	n := r.loginsTo("s:1")
	r.m.fenceRound(context.Background())
	if r.loginsTo("s:1") != n || r.servers["s:1"].readOnly {
		t.Fatalf("the source was fenced: %d logins, read_only %v", r.loginsTo("s:1")-n, r.servers["s:1"].readOnly)
	}
	if l := r.pending(t); len(l) != 0 {
		t.Errorf("pending fence of the source: %+v", l)
	}
	if steps := fenceSteps(t, r.m); !reflect.DeepEqual(steps, []string{"pending", "dropped"}) {
		t.Errorf("fence records %v", steps)
	}
}

// A re-admission (no candidate; the source came back) drops the pending
// fence before the source is the log's source again, and leaves it
// writable.
func TestReadmitDropsPendingFence(t *testing.T) {
	m, l, srv, now := readmitRig(t)
	ctx := context.Background()
	srv.down = true
	st, _ := l.State()
	op, err := m.failover(ctx, Request{Kind: KindFailover, Force: true, Reason: "test"}, st)
	*now = now.Add(time.Minute) // NB: past the settle of the failover's read_only (stepWritable)
	if !errors.Is(err, errWaiting) {
		t.Fatalf("failover: %v", err)
	}
	if p, _ := m.PendingFences(); len(p) != 1 || p[0].Addr != "s:1" {
		t.Fatalf("pending fences: %+v", p)
	}
	srv.down = false
	if err := m.execute(ctx, op); err != nil {
		t.Fatalf("re-admission: %v", err)
	}
	if p, _ := m.PendingFences(); len(p) != 0 {
		t.Errorf("pending fences after the re-admission: %+v", p)
	}
	m.fenceRound(ctx)
	if srv.readOnly {
		t.Error("the re-admitted source is read-only")
	}
	if steps := fenceSteps(t, m); !reflect.DeepEqual(steps, []string{"pending", "dropped"}) {
		t.Errorf("fence records %v", steps)
	}
}

// The operator forgets a pending fence (a server gone for good); an
// address with none is refused.
func TestForgetFence(t *testing.T) {
	r := newFenceRig(t, nil)
	ctx := context.Background()
	r.down("s:1", true)
	r.failOver(t)
	r.m.fenceRound(ctx)
	if len(r.m.Status().PendingFences) != 1 {
		t.Fatalf("status: %+v", r.m.Status().PendingFences)
	}
	if _, err := r.m.ForgetFence(ctx, "x:9"); !errors.Is(err, ErrNoPendingFence) {
		t.Errorf("forgetting an unknown address: %v", err)
	}
	p, err := r.m.ForgetFence(ctx, "s:1")
	if err != nil || p.Addr != "s:1" {
		t.Fatalf("forget: %+v, %v", p, err)
	}
	if l := r.pending(t); len(l) != 0 {
		t.Errorf("pending after forget: %+v", l)
	}
	if st := r.m.Status(); len(st.PendingFences) != 0 {
		t.Errorf("status after forget: %+v", st.PendingFences)
	}
	r.down("s:1", false)
	n := r.loginsTo("s:1")
	*r.now = r.now.Add(time.Minute)
	r.m.fenceRound(ctx)
	if r.loginsTo("s:1") != n {
		t.Error("a forgotten fence is tried again")
	}
	if steps := fenceSteps(t, r.m); !reflect.DeepEqual(steps, []string{"pending", "forgotten"}) {
		t.Errorf("fence records %v", steps)
	}
}

// At most maxPendingFences are kept: the oldest is dropped, audited.
func TestPendingFencesBounded(t *testing.T) {
	r := newFenceRig(t, nil)
	ctx := context.Background()
	for i := 0; i <= maxPendingFences; i++ {
		op := &Operation{ID: fmt.Sprintf("failover-%d-1", i), Kind: KindFailover, OldSource: logger.Source{Addr: fmt.Sprintf("old:%d", i)}}
		if err := r.m.addPendingFence(ctx, op, "unreachable"); err != nil {
			t.Fatal(err)
		}
	}
	l := r.pending(t)
	if len(l) != maxPendingFences || l[0].Addr != "old:1" || l[len(l)-1].Addr != fmt.Sprintf("old:%d", maxPendingFences) {
		t.Fatalf("%d pending, first %s last %s", len(l), l[0].Addr, l[len(l)-1].Addr)
	}
	var dropped []string
	for _, x := range historyOf(t, r.m) {
		if x.Kind == KindFence && x.Step == "dropped" {
			dropped = append(dropped, x.OldSource)
		}
	}
	if !reflect.DeepEqual(dropped, []string{"old:0"}) {
		t.Errorf("dropped records %v", dropped)
	}
}
