package learner_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
)

// wait bounds each wait for the in-process group.
const wait = 90 * time.Second

// inproc is an in-process group of 3 loggers, each with a Manager, whose
// Fetch asks the other Managers directly (a member marked down does not
// answer).
type inproc struct {
	t    *testing.T
	c    *loggertest.Cluster
	mgs  map[uint64]*learner.Manager
	mu   sync.Mutex
	down map[uint64]bool
}

func newInproc(t *testing.T) *inproc {
	t.Helper()
	g := &inproc{t: t, c: loggertest.New(t, 3, loggertest.Options{}), mgs: map[uint64]*learner.Manager{}, down: map[uint64]bool{}}
	cfg := learner.DefaultConfig()
	cfg.Timeout = 30 * time.Second
	for _, id := range g.c.Running() {
		mg, err := learner.New(cfg, learner.Deps{Node: g.c.Node(id), Fetch: g.fetch, Log: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(mg.Close)
		g.mgs[id] = mg
	}
	l := g.c.Leader(wait)
	for id := range g.mgs {
		g.propose(l, &logger.Meta{Key: fmt.Sprintf(learner.MetaAdminAddr, id), Value: []byte(adminAddr(id))})
	}
	return g
}

func adminAddr(id uint64) string { return fmt.Sprintf("member-%d:1", id) }

func (g *inproc) fetch(_ context.Context, addr string, files bool) (learner.Report, error) {
	for id, mg := range g.mgs {
		if adminAddr(id) != addr {
			continue
		}
		g.mu.Lock()
		down := g.down[id]
		g.mu.Unlock()
		if down {
			return learner.Report{}, errors.New("unreachable: member is down")
		}
		return mg.SelfReport(files), nil
	}
	return learner.Report{}, fmt.Errorf("unreachable: no member at %s", addr)
}

func (g *inproc) setDown(id uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.down[id] = true
}

func (g *inproc) propose(n *logger.Node, c logger.Command) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := n.Propose(ctx, c)
	if err != nil || !res.Code.Stored() {
		g.t.Fatalf("proposing %T: %v %s", c, err, res.Code)
	}
}

// follower returns a running logger other than not.
func (g *inproc) follower(not ...uint64) uint64 {
	g.t.Helper()
next:
	for _, id := range g.c.Running() {
		for _, n := range not {
			if id == n {
				continue next
			}
		}
		return id
	}
	g.t.Fatal("no other member runs")
	return 0
}

// refresh asks member id for a fresh view, as an operator's request does.
func (g *inproc) refresh(id uint64) (learner.View, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Now()
	v, err := g.mgs[id].Refresh(ctx)
	return v, time.Since(t0), err
}

// TestMembershipReadThroughElections: the membership read that every
// operator's request starts with (purge, membership changes, the members
// view) answers while a learner is unreachable, waits out a member's cut
// from the group and the loss of the leader instead of failing at the
// first lost read (a purge failed with "reading the membership: timeout"
// under the race detector), and says so clearly when there is no quorum.
func TestMembershipReadThroughElections(t *testing.T) {
	g := newInproc(t)
	l := g.c.Leader(wait).Config().ReplicaID
	f := g.follower(l)
	ch := &learner.Changer{NH: g.c.Node(f).NodeHost(), Shard: g.c.Node(f).Config().ShardID, Timeout: 30 * time.Second}

	// A learner that was added but never started.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ccid, err := ch.ConfigChangeID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const ghost = 4
	if err := ch.AddLearner(ctx, ccid, ghost, "nowhere:1"); err != nil {
		t.Fatal(err)
	}
	// The admin addresses are in every member's log before views are asked.
	if err := loggertest.Poll(ctx, wait, func() error {
		for id, mg := range g.mgs {
			v, err := mg.Refresh(ctx)
			if err != nil {
				return err
			}
			if !v.Complete || len(v.Members) != 4 {
				return fmt.Errorf("member %d's view: complete %v, %d members", id, v.Complete, len(v.Members))
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	v, took, err := g.refresh(f)
	if err != nil {
		t.Fatalf("view with an unreachable learner: %v", err)
	}
	if m, ok := v.Get(ghost); !ok || m.Role != learner.RoleLearner || m.Reachable || m.Error == "" {
		t.Fatalf("the unreachable learner in the view: %+v (%v)", m, ok)
	}
	t.Logf("view with an unreachable learner in %v", took)

	// The member asked is cut from the group for longer than one read
	// attempt: the read waits for the group (a single read gave up).
	g.c.Partition(f)
	type result struct {
		v    learner.View
		took time.Duration
		err  error
	}
	done := make(chan result, 1)
	go func() {
		v, took, err := g.refresh(f)
		done <- result{v, took, err}
	}()
	time.Sleep(2500 * time.Millisecond) // NB: not an assertion: how long the cut lasts
	g.c.Heal()
	r := <-done
	if r.err != nil {
		t.Fatalf("view from a member cut off for 2.5s: %v", r.err)
	}
	if !r.v.Complete {
		t.Fatalf("view from a member cut off for 2.5s: incomplete: %+v", r.v)
	}
	t.Logf("view from a member cut off for 2.5s in %v", r.took)

	// The leader is lost: the read (and the purge or change behind it)
	// answers once the others elect a new one.
	l = g.c.Leader(wait).Config().ReplicaID
	f = g.follower(l)
	g.c.Partition(l)
	g.setDown(l)
	r.v, r.took, r.err = g.refresh(f)
	if r.err != nil {
		t.Fatalf("view after the leader was lost: %v", r.err)
	}
	if r.v.Leader == 0 || r.v.Leader == l || !r.v.Complete {
		t.Fatalf("view after leader %d was lost: leader %d, complete %v", l, r.v.Leader, r.v.Complete)
	}
	t.Logf("view after the leader was lost in %v: leader %d", r.took, r.v.Leader)

	// No quorum: a clear error, within the time given.
	g.c.Partition(f)
	ch = &learner.Changer{NH: g.c.Node(f).NodeHost(), Shard: g.c.Node(f).Config().ShardID, Timeout: 30 * time.Second}
	t0 := time.Now()
	_, err = ch.Membership(context.Background(), 2*time.Second)
	took = time.Since(t0)
	if !errors.Is(err, learner.ErrRetry) || !strings.Contains(err.Error(), "no answer from the group") {
		t.Fatalf("read without a quorum: %v", err)
	}
	if took > 10*time.Second {
		t.Fatalf("read without a quorum given 2s took %v", took)
	}
	t.Logf("read without a quorum: %v after %v", err, took)
}
