package logger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ProposerConfig binds a Proposer to the source it stores for.
type ProposerConfig struct {
	Epoch  uint64
	Source string
	FDE    []byte
	// MaxInFlight is how many Append proposals may await their result at
	// once (default 4). MaxBatchBytes caps one Append (default 8 MiB; a
	// single larger transaction still goes alone).
	MaxInFlight   int
	MaxBatchBytes int
	// Timeout bounds one proposal (default 10s).
	Timeout time.Duration
	// Linger is how long the proposer may hold a batch back while the
	// submitters its last proposals released are expected to come back
	// with their next transactions (0: never wait; DefaultLinger is what
	// the ingest uses). See Run.
	Linger time.Duration
}

// DefaultLinger is the ingest's default ProposerConfig.Linger.
const DefaultLinger = time.Millisecond

// Proposer turns transactions submitted by many goroutines into few Append
// entries: everything that arrives while earlier proposals are in flight
// goes into the next one (group commit). Each Append names the previous
// one's last transaction as its predecessor, so several may be in flight.
//
// Run owns the proposer's goroutines. When an outcome is unknown (a timeout,
// a leader change) Run returns an error wrapping ErrRetry and fails every
// waiting Submit: the owner starts a new Proposer from the log's state, and
// re-submits; duplicates are skipped by the log.
type Proposer struct {
	node *Node
	cfg  ProposerConfig
	in   chan *pending
	dead chan struct{}
	err  error
}

type pending struct {
	txn  Txn
	done chan error
	// times is written before the outcome is sent on done: whoever
	// received the outcome may read it.
	times StageTimes
}

// StageTimes are when one transaction passed the proposer's stages, for
// the ACK path's per-stage latencies.
type StageTimes struct {
	Enqueued  time.Time // Enqueue took it
	Proposed  time.Time // its batch went to raft
	Committed time.Time // its batch committed on a quorum (with NotifyCommit off: its result came; zero if not known)
	Stored    time.Time // its batch's result came back: committed on a quorum and applied here
}

type batch struct {
	ps        []*pending
	gen       int
	res       Result
	err       error
	proposed  time.Time
	committed time.Time
}

// NewProposer returns a proposer for one source and epoch.
func NewProposer(n *Node, cfg ProposerConfig) *Proposer {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 8 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &Proposer{node: n, cfg: cfg, in: make(chan *pending, 4096), dead: make(chan struct{})}
}

// ErrProposerStopped is returned by Submit after Run has returned.
var ErrProposerStopped = errors.New("logger: proposer stopped")

// Submit queues one transaction and waits until it is stored (nil), the log
// rejected it (*RejectedError), or its outcome is unknown (ErrRetry, a
// context error, ErrProposerStopped). Only nil means the transaction is
// committed on a majority and applied; only then may it be acknowledged.
func (p *Proposer) Submit(ctx context.Context, t Txn) error {
	tk, err := p.Enqueue(ctx, t)
	if err != nil {
		return err
	}
	return tk.Wait(ctx)
}

// Ticket is one enqueued transaction's outcome.
type Ticket struct {
	p    *Proposer
	pd   *pending
	done chan struct{}

	mu      sync.Mutex
	started bool // Done's goroutine owns the receive of the outcome
	got     bool
	err     error
}

func (t *Ticket) set(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.got {
		t.got, t.err = true, err
	}
}

// TryResult returns the outcome if it is known now, without waiting: the
// cheap check a caller makes before blocking (e.g. to ACK a whole batch at
// once).
func (t *Ticket) TryResult() (error, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.got {
		return t.err, true
	}
	select {
	case e := <-t.pd.done:
		t.got, t.err = true, e
		return e, true
	default:
		return nil, false
	}
}

// Done is closed when the outcome is known (then Err returns it). A caller
// uses either Done/Err or Wait on a ticket, not both.
func (t *Ticket) Done() <-chan struct{} {
	t.mu.Lock()
	if !t.started {
		t.started = true
		go t.await()
	}
	t.mu.Unlock()
	return t.done
}

func (t *Ticket) await() {
	defer close(t.done)
	if _, ok := t.TryResult(); ok {
		return
	}
	select {
	case e := <-t.pd.done:
		t.set(e)
	case <-t.p.dead:
		select {
		case e := <-t.pd.done:
			t.set(e)
		default:
			t.set(fmt.Errorf("%w: %v", ErrProposerStopped, t.p.err))
		}
	}
}

// Times returns when the transaction passed each stage; valid once its
// outcome is known (TryResult's ok, Done closed, or Wait returned it).
func (t *Ticket) Times() StageTimes { return t.pd.times }

// Err returns the outcome once Done is closed: nil means stored.
func (t *Ticket) Err() error {
	<-t.Done()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Wait waits for the outcome, or ctx.
func (t *Ticket) Wait(ctx context.Context) error {
	if err, ok := t.TryResult(); ok {
		return err
	}
	t.mu.Lock()
	started := t.started
	t.mu.Unlock()
	if started {
		select {
		case <-t.Done():
			return t.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case e := <-t.pd.done:
		t.set(e)
		return e
	case <-t.p.dead:
		if err, ok := t.TryResult(); ok {
			return err
		}
		return fmt.Errorf("%w: %v", ErrProposerStopped, t.p.err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Enqueue queues one transaction and returns its Ticket. Transactions are
// proposed in the order they were enqueued, so a caller that must keep an
// order (GTIDs of one domain) calls Enqueue from one goroutine, or under its
// own lock, and waits outside it.
func (p *Proposer) Enqueue(ctx context.Context, t Txn) (*Ticket, error) {
	pd := &pending{txn: t, done: make(chan error, 1), times: StageTimes{Enqueued: time.Now()}}
	select {
	case p.in <- pd:
	case <-p.dead:
		return nil, fmt.Errorf("%w: %v", ErrProposerStopped, p.err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &Ticket{p: p, pd: pd, done: make(chan struct{})}, nil
}

// Run proposes until ctx ends or an outcome is unknown.
func (p *Proposer) Run(ctx context.Context) (err error) {
	r := p.node.Reader()
	if r == nil {
		return fmt.Errorf("%w: the log is not open yet", ErrRetry)
	}
	tip := r.State().LastGTID
	gen := 0
	var queue []*pending
	inflight := 0
	done := make(chan *batch, p.cfg.MaxInFlight)
	failAll := func(e error) {
		for _, pd := range queue {
			pd.done <- e
		}
		queue = nil
	}
	defer func() {
		p.err = err
		// NB: wait for proposals in flight, so nothing outlives Run.
		for ; inflight > 0; inflight-- {
			<-done
			p.node.metrics.inFlight.Dec()
		}
		failAll(fmt.Errorf("%w: %v", ErrProposerStopped, err))
		close(p.dead)
		for {
			select {
			case pd := <-p.in:
				pd.done <- fmt.Errorf("%w: %v", ErrProposerStopped, err)
			default:
				return
			}
		}
	}()
	// NB: group commit with a closed loop of submitters (the source's
	// sessions each wait for their ACK before the next commit): a proposal
	// sent the moment a slot frees carries only the few transactions that
	// came back first, and the rest wait a whole round for the next one.
	// So the proposer expects back as many transactions as its finished
	// proposals released and holds the next batch until that many are
	// queued, or Linger has passed since the first was queued. One
	// submitter alone never waits: it is the one expected back.
	expect := 0
	var holdUntil time.Time // zero: not holding a batch back
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	for {
		if len(queue) == 0 {
			holdUntil = time.Time{}
		}
		// NB: below --disk-reserve-bytes nothing new is proposed (disk.go):
		// the submitters wait, and so do the source's commits.
		gate := p.node.appendGate()
		for gate == nil && inflight < p.cfg.MaxInFlight && len(queue) > 0 {
			if len(queue) < expect && p.cfg.Linger > 0 && queueBytes(queue) < p.cfg.MaxBatchBytes {
				if holdUntil.IsZero() {
					holdUntil = time.Now().Add(p.cfg.Linger)
					linger.Reset(p.cfg.Linger)
				}
				if time.Now().Before(holdUntil) {
					break
				}
				// NB: not everyone came back (a session ended, or the load
				// is open-loop): stop expecting them.
				expect = 0
			}
			holdUntil = time.Time{}
			n, size := 0, 0
			for n < len(queue) && (n == 0 || size+len(queue[n].txn.Events) <= p.cfg.MaxBatchBytes) {
				size += len(queue[n].txn.Events)
				n++
			}
			b := &batch{ps: queue[:n:n], gen: gen}
			queue = queue[n:]
			expect = max(0, expect-n)
			a := &Append{Epoch: p.cfg.Epoch, Source: p.cfg.Source, Predecessor: tip, FDE: p.cfg.FDE, Txns: make([]Txn, n)}
			for i, pd := range b.ps {
				a.Txns[i] = pd.txn
			}
			tip = a.Txns[n-1].GTID
			inflight++
			p.node.metrics.inFlight.Inc()
			p.node.metrics.batchTxns.Observe(float64(n))
			b.proposed = time.Now()
			wait, err := p.node.ProposeAsync(a, p.cfg.Timeout)
			go func() {
				if err != nil {
					b.err = err
				} else {
					b.res, b.committed, b.err = wait()
				}
				// NB: release the waiting submitters from here, one hop
				// sooner than through Run's loop; Run only keeps count.
				p.finish(b, b.err)
				done <- b
			}()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-linger.C:
		case <-gate:
		case pd := <-p.in:
			queue = append(queue, pd)
		drain:
			for len(queue) < 65536 {
				select {
				case pd := <-p.in:
					queue = append(queue, pd)
				default:
					break drain
				}
			}
		case b := <-done:
			inflight--
			p.node.metrics.inFlight.Dec()
			expect += len(b.ps)
			if b.err != nil {
				return b.err
			}
			if !b.res.Code.Stored() && b.gen == gen {
				// NB: every later batch in flight names a predecessor that is
				// not in the log and will be rejected too; resync once.
				gen++
				tip = b.res.LastGTID
			}
		}
	}
}

func queueBytes(q []*pending) (n int) {
	for _, pd := range q {
		n += len(pd.txn.Events)
	}
	return n
}

func (p *Proposer) finish(b *batch, err error) {
	if err == nil && !b.res.Code.Stored() {
		err = &RejectedError{Result: b.res}
	}
	if err == nil && b.err != nil {
		err = b.err
	}
	now := time.Now()
	for _, pd := range b.ps {
		pd.times.Proposed, pd.times.Committed, pd.times.Stored = b.proposed, b.committed, now
		pd.done <- err
	}
}
