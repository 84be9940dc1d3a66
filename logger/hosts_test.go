package logger_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/lni/dragonboat/v4/raftpb"
	dto "github.com/prometheus/client_model/go"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
)

// shardSame waits until shard's running replicas applied what its leader
// did and hold the same files, and returns their fingerprint.
func shardSame(t *testing.T, h *loggertest.Hosts, shard uint64, hosts ...uint64) string {
	t.Helper()
	applied := h.Leader(shard, wait).Reader().Applied()
	var want string
	for _, id := range hosts {
		n := h.Node(id, shard)
		if err := loggertest.Poll(t.Context(), wait, func() error {
			if r := n.Reader(); r == nil || r.Applied() < applied {
				return fmt.Errorf("host %d has not applied shard %d's index %d", id, shard, applied)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		got := fingerprint(t, n)
		if want == "" {
			want = got
		} else if got != want {
			t.Fatalf("shard %d: host %d holds %s, another %s", shard, id, got, want)
		}
	}
	return want
}

// counter reads a counter of reg with the given labels (0 if absent).
func counter(t *testing.T, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// Three hosts run three shards over one NodeHost and one tcp transport
// each: every shard elects a leader and commits; a stranger's frames for
// one shard are rejected on every host while the other shards commit; with
// one host closed, every shard still commits on the other two.
func TestHostsThreeShards(t *testing.T) {
	h := loggertest.NewHosts(t, 3)
	shards := []uint64{1, 2, 3}
	feeders, appendAll := startShards(t, h, shards)
	appendAll(20)
	for _, s := range shards {
		t.Logf("shard %d: %s", s, shardSame(t, h, s, 1, 2, 3))
	}
	// Each shard has its own state machine directory under the host's.
	for _, s := range shards {
		n := h.Node(1, s)
		if n.Host() != h.Host(1) || n.SM() == nil {
			t.Fatalf("shard %d is not on host 1", s)
		}
	}

	// A stranger (replica 9 of shard 1, at an address no member has)
	// votes in term 1000, and member 2 of shard 1 speaks from a wrong
	// address, to every host, over and over, while every shard appends.
	_, term1, _, err := h.Node(1, 1).NodeHost().GetLeaderID(1)
	if err != nil {
		t.Fatal(err)
	}
	leader1 := h.Leader(1, wait).Config().ReplicaID
	addrs := map[uint64]string{1: h.Addr(1), 2: h.Addr(2), 3: h.Addr(3)}
	rounds, stop := strangerFrames(t, addrs, term1)
	// NB: appends go on until every host has had 5 rounds of frames.
	for n := 0; n == 0 || rounds[1].Load() < 5 || rounds[2].Load() < 5 || rounds[3].Load() < 5; n++ {
		appendAll(5)
	}
	stop()
	for id := uint64(1); id <= 3; id++ {
		got := counter(t, h.Registry(id), "binlogsvr_logger_raft_frames_rejected_total", map[string]string{"reason": "sender"})
		if got == 0 {
			t.Fatalf("host %d rejected no frame of the stranger", id)
		}
		lid, term, ok, err := h.Node(id, 1).NodeHost().GetLeaderID(1)
		if err != nil || !ok || term >= term1+1000 || lid != leader1 {
			t.Fatalf("host %d: shard 1's leader %d in term %d after the stranger's frames (was %d in term %d): %v", id, lid, term, leader1, term1, err)
		}
		t.Logf("host %d rejected %v frames for their sender", id, got)
	}
	for _, s := range shards {
		shardSame(t, h, s, 1, 2, 3)
		// The shard's own metrics are labelled with it on the host's
		// registry.
		if got := counter(t, h.Registry(h.Leader(s, wait).Config().ReplicaID), "binlogsvr_logger_proposals_total",
			map[string]string{"shard": fmt.Sprint(s), "kind": "append", "result": "ok"}); got == 0 {
			t.Fatalf("shard %d: no proposals_total{shard=%q} on its leader's host", s, fmt.Sprint(s))
		}
	}

	// The host that leads shard 1 closes: every shard commits on the
	// other two.
	victim := h.Leader(1, wait).Config().ReplicaID
	start := time.Now()
	h.StopHost(victim)
	var rest []uint64
	for id := uint64(1); id <= 3; id++ {
		if id != victim {
			rest = append(rest, id)
		}
	}
	appendAll(20)
	t.Logf("host %d closed: every shard committed 20 more in %v", victim, time.Since(start).Round(time.Millisecond))
	for _, s := range shards {
		if l := h.Leader(s, wait).Config().ReplicaID; l == victim {
			t.Fatalf("shard %d still led by the closed host %d", s, victim)
		}
		fp := shardSame(t, h, s, rest...)
		if st, want := h.Leader(s, wait).Reader().State(), uint64(feeders[s].next-1); st.Txns != want {
			t.Fatalf("shard %d holds %d transactions, want %d (%s)", s, st.Txns, want, fp)
		}
	}

	// It comes back with its shards, and catches up on each.
	h.StartHost(victim)
	appendAll(5)
	for _, s := range shards {
		shardSame(t, h, s, 1, 2, 3)
	}
}

// Stopping one shard's replica leaves the host's other shards running, and
// the shard can start again on the same host.
func TestHostStopOneShard(t *testing.T) {
	h := loggertest.NewHosts(t, 3)
	for _, s := range []uint64{1, 2} {
		h.StartShard(s, 1, 2, 3)
		setSourceOn(t, h.Leader(s, wait))
	}
	f1, f2 := &feeder{next: 1, pos: 4}, &feeder{next: 1, pos: 4}
	h.Node(3, 1).Close()
	if got := h.Host(3).Shards(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("host 3 runs shards %v after closing shard 1, want [2]", got)
	}
	appendVia(t, func() *logger.Node { return h.Leader(1, wait) }, f1, 10, 200)
	appendVia(t, func() *logger.Node { return h.Leader(2, wait) }, f2, 10, 200)
	shardSame(t, h, 2, 1, 2, 3)
	cfg := logger.DefaultConfig()
	cfg.ShardID, cfg.ReplicaID, cfg.ElectionRTT, cfg.HeartbeatRTT = 1, 3, 50, 2
	if _, err := h.Host(3).StartShard(cfg); err != nil {
		t.Fatalf("restarting shard 1 on host 3: %v", err)
	}
	shardSame(t, h, 1, 1, 2, 3)
}

// startShards starts shards on hosts 1-3 of h, each with a source set,
// and returns their feeders and a function that appends n transactions
// to every shard at once, through its leader.
func startShards(t *testing.T, h *loggertest.Hosts, shards []uint64) (map[uint64]*feeder, func(n int)) {
	t.Helper()
	for _, s := range shards {
		h.StartShard(s, 1, 2, 3)
	}
	feeders := map[uint64]*feeder{}
	for _, s := range shards {
		feeders[s] = &feeder{next: 1, pos: 4}
		setSourceOn(t, h.Leader(s, wait))
	}
	return feeders, func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		for _, s := range shards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				appendVia(t, func() *logger.Node { return h.Leader(s, wait) }, feeders[s], n, 200)
			}()
		}
		wg.Wait()
	}
}

// strangerFrames sends to every host at addrs, over and over until the
// returned stop is called, a stranger's vote (replica 9, at an address no
// member has) and a member's heartbeat from a wrong address, both in
// term+1000 of shard 1; rounds counts each host's sends.
func strangerFrames(t *testing.T, addrs map[uint64]string, term uint64) (rounds *[4]atomic.Int64, stop func()) {
	rounds = new([4]atomic.Int64)
	done := make(chan struct{})
	var sent sync.WaitGroup
	for id := uint64(1); id <= 3; id++ {
		sent.Add(1)
		go func() {
			defer sent.Done()
			other := id%3 + 1
			for {
				select {
				case <-done:
					return
				default:
				}
				sendRaw(t, addrs[id], batchFrame(t, "127.0.0.9:9999", 9, id, pb.RequestVote, term+1000), nil)
				sendRaw(t, addrs[id], batchFrame(t, "127.0.0.1:1", other, id, pb.Heartbeat, term+1000), nil)
				rounds[id].Add(1)
			}
		}()
	}
	return rounds, func() { close(done); sent.Wait() }
}
