package logger_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
)

// closedLoop runs n submitters, each submitting its next transaction only
// once the previous one is stored (as a source's sessions wait for their
// ACK), for rounds transactions each, pausing think after each commit. It
// returns the raft entries the leader applied meanwhile and how long it
// took.
func closedLoop(t *testing.T, l *logger.Node, p *logger.Proposer, f *feeder, n, rounds int, think time.Duration) (entries uint64, took time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	before := l.Reader().Applied()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				// NB: the feeder's lock keeps GTIDs in the order they are
				// enqueued.
				f.mu.Lock()
				tk, err := p.Enqueue(ctx, f.txn(100))
				f.mu.Unlock()
				if err == nil {
					err = tk.Wait(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
				if ts := tk.Times(); ts.Enqueued.IsZero() || ts.Proposed.Before(ts.Enqueued) || ts.Committed.Before(ts.Proposed) || ts.Stored.Before(ts.Committed) || ts.Stored.After(time.Now()) {
					errs <- fmt.Errorf("stage times out of order: %+v", ts)
					return
				}
				time.Sleep(think)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("submit: %v", err)
	}
	return l.Reader().Applied() - before, time.Since(start)
}

func newProposer(t *testing.T, l *logger.Node, linger time.Duration) *logger.Proposer {
	t.Helper()
	st := l.Reader().State()
	p := logger.NewProposer(l, logger.ProposerConfig{Epoch: st.Epoch, Source: st.Source.Addr, FDE: binlogtest.FDE(binlog.MariaDB(), 1),
		MaxInFlight: 1, Linger: linger})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// TestProposerLinger: the proposer holds a batch back until the
// submitters its last proposal released are back, so a closed loop of
// submitters shares few raft entries; one submitter alone never waits;
// and once a submitter is gone the proposer stops waiting for it.
func TestProposerLinger(t *testing.T) {
	c := loggertest.New(t, 3, loggertest.Options{})
	setSource(t, c)
	c.WaitEncodingReports(wait) // NB: their entries must not fall in the counts below
	l := c.Leader(wait)
	f := &feeder{next: 1, pos: 4}

	// One submitter with a linger far longer than the test: it is the one
	// expected back, so it never waits for anyone.
	p := newProposer(t, l, 5*time.Second)
	if _, took := closedLoop(t, l, p, f, 1, 20, 0); took > 4*time.Second {
		t.Fatalf("one submitter: 20 commits took %v; the proposer lingered for nobody", took)
	}

	// Eight submitters, 30 commits each, first with no linger (each
	// proposal carries those that came back first: measured 4.0 per entry
	// here), then with one, in the same run: a loaded machine lowers both
	// (measured 4.6-5.9 with the linger under parallel test load, 7-7.7
	// idle), the linger must still gather a quarter more.
	// NB: up to three pairs: on a machine loaded by other tests a pair can
	// come out even (measured once: 4.0 against 3.8 per entry in a CI run
	// beside benchmarks); a linger that gathers nothing never wins one.
	var entries, bare uint64
	var took time.Duration
	var pairs []string
	for try := 0; try < 3; try++ {
		p = newProposer(t, l, 0)
		bare, _ = closedLoop(t, l, p, f, 8, 30, 0)
		p = newProposer(t, l, 300*time.Millisecond)
		entries, took = closedLoop(t, l, p, f, 8, 30, 0)
		mean, meanBare := float64(8*30)/float64(entries), float64(8*30)/float64(bare)
		pairs = append(pairs, fmt.Sprintf("%.1f with the linger, %.1f without (%d and %d entries, %v)", mean, meanBare, entries, bare, took))
		// NB: each wait that runs out costs 300ms; a proposer that keeps
		// expecting submitters that already came back waits on most rounds.
		if mean >= 1.25*meanBare && took <= 1500*time.Millisecond {
			break
		}
		if try == 2 {
			t.Fatalf("8 submitters, three pairs: transactions per raft entry %s; want a quarter more with the linger, 30 rounds within 1.5s", strings.Join(pairs, "; "))
		}
	}
	t.Logf("8 closed-loop submitters: %d transactions in %d raft entries (%d without the linger), %v", 8*30, entries, bare, took)

	// Four submitters, then three: the proposer waits for the missing one
	// at most once (Linger), not on every round.
	p = newProposer(t, l, 300*time.Millisecond)
	// NB: the submitters pause 2ms after each commit, so that the proposer
	// has counted the finished batch before they come back, every round.
	closedLoop(t, l, p, f, 4, 5, 2*time.Millisecond)
	entries, took = closedLoop(t, l, p, f, 3, 20, 2*time.Millisecond)
	if took > 3*time.Second {
		t.Fatalf("3 of 4 submitters: 20 rounds took %v (%d entries); the proposer kept waiting for the one that left", took, entries)
	}
	t.Logf("after one of 4 submitters left: 20 rounds of 3 in %v, %d raft entries", took, entries)

	if st := l.Reader().State(); st.Txns != uint64(20+2*8*30*len(pairs)+4*5+3*20) {
		t.Fatalf("the log holds %d transactions", st.Txns)
	}
}

// TestProposeWithoutNotifyCommit: with dragonboat's NotifyCommit off, a
// proposal's result is its only value on ResultC, and ProposeAsync's wait
// returns it (it once took a completed result for the commit notice and
// waited forever for a second value); the stage times stay in order, the
// commit taken with the result.
func TestProposeWithoutNotifyCommit(t *testing.T) {
	c := loggertest.New(t, 3, loggertest.Options{NoNotifyCommit: true})
	setSource(t, c)
	l := c.Leader(wait)
	f := &feeder{next: 1, pos: 4}
	st := l.Reader().State()
	w, err := l.ProposeAsync(&logger.Append{Epoch: st.Epoch, Source: st.Source.Addr, FDE: binlogtest.FDE(binlog.MariaDB(), 1), Txns: []logger.Txn{f.txn(100)}}, 10*time.Second)
	if err != nil {
		t.Fatalf("propose: %v", err)
	}
	type out struct {
		res       logger.Result
		committed time.Time
		err       error
	}
	got := make(chan out, 1)
	go func() { r, cm, err := w(); got <- out{r, cm, err} }()
	select {
	case o := <-got:
		if o.err != nil || o.res.Code != logger.ResultOK || o.committed.IsZero() {
			t.Fatalf("append: %v %+v, committed at %v", o.err, o.res, o.committed)
		}
	case <-time.After(wait):
		t.Fatalf("the proposal's result never came back (the proposal timeout is 10 s)")
	}
	p := newProposer(t, l, 0)
	closedLoop(t, l, p, f, 4, 10, 0)
	if st := l.Reader().State(); st.Txns != 1+4*10 {
		t.Fatalf("the log holds %d transactions", st.Txns)
	}
}
