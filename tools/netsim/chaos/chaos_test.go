package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/netsim"
)

// Fault kinds. sourceDown faults make the source unreachable from every
// member: only they may cause a failover.
var kinds = map[string]struct {
	sourceDown bool
	inject     func(r *rig, rnd *rand.Rand) (heal func(), err error)
}{
	"cut-leader":        {false, cutLeader},
	"oneway-leader":     {false, onewayLeader},
	"cut-source-leader": {false, cutSourceLeader},
	"cut-source-all":    {true, cutSourceAll},
	"loss":              {false, loss},
	"member-delay":      {false, memberDelay},
	"kill-member":       {false, killMember},
	"stop-follower":     {false, stopFollower},
	"stop-leader":       {false, stopLeader},
	"kill-source":       {true, killSource},
	"stop-source":       {true, stopSource},
	"kill-replica":      {false, killReplica},
	"disk-full":         {false, diskFull},
}

// passing are the kinds make test's soak draws from: those that pass
// today (every kind; docs/RELIABILITY.md lists any that fail).
const passing = "cut-leader,oneway-leader,cut-source-leader,cut-source-all,loss,member-delay,kill-member,stop-follower,stop-leader,kill-source,stop-source,kill-replica,disk-full"

// hold is how long a partition or pause lasts: over twice the lease.
const hold = 2*lease + 2*time.Second

func cutLeader(r *rig, _ *rand.Rand) (func(), error) {
	l, err := r.leader()
	if err != nil {
		return nil, err
	}
	var others []*netsim.Host
	for i, h := range r.members {
		if uint64(i+1) != l {
			others = append(others, h)
		}
	}
	if err := r.n.Cut([]*netsim.Host{r.members[l-1]}, others); err != nil {
		return nil, err
	}
	time.Sleep(hold)
	return func() { _ = r.n.Heal() }, nil
}

func onewayLeader(r *rig, _ *rand.Rand) (func(), error) {
	l, err := r.leader()
	if err != nil {
		return nil, err
	}
	for i, h := range r.members {
		if uint64(i+1) != l {
			if err := r.n.Block(r.members[l-1], h); err != nil {
				return nil, err
			}
		}
	}
	time.Sleep(hold)
	return func() { _ = r.n.Heal() }, nil
}

func cutSourceLeader(r *rig, _ *rand.Rand) (func(), error) {
	l, err := r.leader()
	if err != nil {
		return nil, err
	}
	if err := r.n.Cut([]*netsim.Host{r.source().host}, []*netsim.Host{r.members[l-1]}); err != nil {
		return nil, err
	}
	time.Sleep(hold)
	return func() { _ = r.n.Heal() }, nil
}

func cutSourceAll(r *rig, _ *rand.Rand) (func(), error) {
	if err := r.n.Cut([]*netsim.Host{r.source().host}, r.members); err != nil {
		return nil, err
	}
	time.Sleep(hold)
	return func() { _ = r.n.Heal() }, nil
}

// loss loses 2 % on every link: to the MariaDB servers and between
// members.
func loss(r *rig, _ *rand.Rand) (func(), error) {
	r.setLinks(netsim.Link{Delay: delay, Jitter: jitter, Loss: 0.02})
	r.setRaftLinks(netsim.Link{Loss: 0.02})
	time.Sleep(20 * time.Second)
	return func() {
		r.setLinks(netsim.Link{Delay: delay, Jitter: jitter})
		r.setRaftLinks(netsim.Link{})
	}, nil
}

// memberDelay puts 20 ms RTT (cross-zone) between every two members for
// 20 s: commits go on, each ACK now waits for a round trip to a follower
// (the leader's mean ACK latency over the fault must be at least the RTT,
// which shows the delay is real), and nothing fails over.
func memberDelay(r *rig, _ *rand.Rand) (func(), error) {
	l, err := r.leader()
	if err != nil {
		return nil, err
	}
	n0, s0, err := r.ackLatency(l)
	if err != nil {
		return nil, err
	}
	r.setRaftLinks(netsim.Link{Delay: delay, Jitter: jitter})
	time.Sleep(20 * time.Second)
	heal := func() { r.setRaftLinks(netsim.Link{}) }
	if l2, err := r.leader(); err != nil || l2 != l {
		heal()
		return nil, fmt.Errorf("the leader changed (%d -> %d, %v) under 20 ms RTT between members", l, l2, err)
	}
	n1, s1, err := r.ackLatency(l)
	if err != nil {
		heal()
		return nil, err
	}
	if n1 <= n0 {
		heal()
		return nil, fmt.Errorf("no ACK in 20 s under 20 ms RTT between members")
	}
	mean := time.Duration((s1 - s0) / (n1 - n0) * float64(time.Second))
	before := time.Duration(s0 / max(n0, 1) * float64(time.Second))
	r.t.Logf("20 ms RTT between members: %.0f ACKs in 20 s, mean ACK latency %v (%v before it, over %.0f ACKs)", n1-n0, mean.Round(100*time.Microsecond), before.Round(100*time.Microsecond), n0)
	if mean < 2*delay {
		heal()
		return nil, fmt.Errorf("mean ACK latency %v under %v RTT between members: the delay is not on the raft links", mean, 2*delay)
	}
	return heal, nil
}

func killMember(r *rig, rnd *rand.Rand) (func(), error) {
	id := uint64(1 + rnd.IntN(3))
	if err := r.f.Kill(id); err != nil {
		return nil, err
	}
	time.Sleep(3 * time.Second)
	return func() {
		if err := r.f.Restart(id); err != nil {
			r.t.Errorf("restart member %d: %v", id, err)
		}
	}, nil
}

func (r *rig) pause(pid int) func() {
	r.mu.Lock()
	r.stopped[pid] = true
	r.mu.Unlock()
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	time.Sleep(hold)
	return func() {
		_ = syscall.Kill(pid, syscall.SIGCONT)
		r.mu.Lock()
		delete(r.stopped, pid)
		r.mu.Unlock()
	}
}

func stopFollower(r *rig, rnd *rand.Rand) (func(), error) {
	l, err := r.leader()
	if err != nil {
		return nil, err
	}
	id := l%3 + 1 + uint64(rnd.IntN(2))
	if id > 3 {
		id -= 3
	}
	if id == l {
		id = l%3 + 1
	}
	return r.pause(r.f.Member(id).PID()), nil
}

func stopLeader(r *rig, _ *rand.Rand) (func(), error) {
	l, err := r.leader()
	if err != nil {
		return nil, err
	}
	return r.pause(r.f.Member(l).PID()), nil
}

func killSource(r *rig, _ *rand.Rand) (func(), error) {
	s := r.source()
	if err := s.Kill(); err != nil {
		return nil, err
	}
	time.Sleep(hold)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := s.Restart(ctx); err != nil {
			r.t.Errorf("restart %s: %v", s.name, err)
		}
	}, nil
}

func stopSource(r *rig, _ *rand.Rand) (func(), error) {
	return r.pause(r.source().PID()), nil
}

func killReplica(r *rig, _ *rand.Rand) (func(), error) {
	s := r.replica
	if err := s.Kill(); err != nil {
		return nil, err
	}
	time.Sleep(3 * time.Second)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := s.Restart(ctx); err != nil {
			r.t.Errorf("restart %s: %v", s.name, err)
		}
	}, nil
}

// diskFull fills member 3's tmpfs until it exits on a full disk, then
// frees the space and restarts it.
func diskFull(r *rig, _ *rand.Rand) (func(), error) {
	ballast := filepath.Join(r.full, "ballast")
	var st syscall.Statfs_t
	if err := syscall.Statfs(r.full, &st); err != nil {
		return nil, err
	}
	f, err := os.Create(ballast)
	if err != nil {
		return nil, err
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			break // NB: ENOSPC: the disk is full
		}
	}
	f.Close()
	m := r.f.Member(3)
	_ = fleet.Poll(context.Background(), 30*time.Second, func() error {
		if m.Running() {
			return fmt.Errorf("member 3 still runs on a full disk")
		}
		return nil
	})
	return func() {
		_ = os.Remove(ballast)
		if !m.Running() {
			if err := r.f.Restart(3); err != nil {
				r.t.Errorf("restart member 3: %v", err)
			}
		}
	}, nil
}

// event is a fault injected, in the soak's timeline.
type event struct {
	kind       string
	start, end time.Time // injection, heal
	failovers  int
	err        string
}

// failoverSeen is a change of epoch and source the monitor saw.
type failoverSeen struct {
	at        time.Time
	epoch     uint64
	from, to  string
	rto       time.Duration // from the fault's injection to the first commit acknowledged by the new source
	fault     string
	justified bool
}

// soak is one run: the schedule, the monitor's findings, the table.
type soak struct {
	r    *rig
	load *ledger
	rnd  *rand.Rand

	mu         sync.Mutex
	events     []*event
	current    *event
	epochs     map[uint64]string
	lastEpoch  uint64
	failovers  []*failoverSeen
	violations []string
	// fencedIn is the fault during which the monitor saw the fence of a
	// failover whose new source it has not seen yet.
	fencedIn *event
}

func (s *soak) violate(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := fmt.Sprintf(format, args...)
	s.violations = append(s.violations, time.Now().Format("15:04:05.000 ")+v)
	s.r.t.Errorf("violation: %s", v)
}

// faultNow is the fault in progress, or the last one if it healed less
// than 30 s ago (a failover decided during it, seen after the heal), or
// nil. The caller holds s.mu.
func (s *soak) faultNow() *event {
	if s.current != nil {
		return s.current
	}
	if n := len(s.events); n > 0 && time.Since(s.events[n-1].end) < 30*time.Second {
		return s.events[n-1]
	}
	return nil
}

// monitor polls the fleet: an epoch names one source; a new epoch with a
// new source is a failover, justified only while a fault made the source
// unreachable from every member.
func (s *soak) monitor(ctx context.Context) {
	for ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		st, err := s.r.f.LeaderStatus(ctx)
		if err != nil || st.Epoch == 0 || st.Source == "" {
			continue
		}
		src := st.Source
		s.mu.Lock()
		if prev, ok := s.epochs[st.Epoch]; ok && prev != src && !fencedText(src) && !fencedText(prev) {
			s.mu.Unlock()
			s.violate("epoch %d names two sources: %s and %s", st.Epoch, prev, src)
			continue
		}
		if _, ok := s.epochs[st.Epoch]; !ok {
			s.epochs[st.Epoch] = src
		}
		if st.Epoch > s.lastEpoch && s.lastEpoch != 0 && fencedText(src) && s.fencedIn == nil {
			// NB: the fence is the failover's decision: the fault it falls
			// in is the failover's cause, however long the promotion
			// takes after it (a candidate catching up).
			s.fencedIn = s.faultNow()
		}
		if st.Epoch > s.lastEpoch && s.lastEpoch != 0 {
			// NB: a fence is an epoch of its own, naming "fenced:" and the old source.
			from := strings.TrimPrefix(s.epochs[s.lastEpoch], api.FencedPrefix)
			fenced := s.fencedIn
			if !fencedText(src) {
				s.fencedIn = nil // NB: promoted, or the fenced source re-admitted
			}
			if from != src && !fencedText(src) {
				fo := &failoverSeen{at: time.Now(), epoch: st.Epoch, from: from, to: src}
				e := fenced
				if e == nil {
					e = s.faultNow()
				}
				if e != nil {
					fo.fault = e.kind
					fo.justified = kinds[e.kind].sourceDown
					e.failovers++
				}
				s.failovers = append(s.failovers, fo)
				s.r.mu.Lock()
				if srv := s.r.byAddr[src]; srv != nil {
					s.r.retired = append(s.r.retired, s.r.src)
					s.r.src = srv
				}
				s.r.mu.Unlock()
				s.mu.Unlock()
				if !fo.justified {
					s.violate("failover from %s to %s (epoch %d) while the source was reachable from a majority (fault %q)", fo.from, fo.to, fo.epoch, fo.fault)
				}
				s.mu.Lock()
			}
		}
		if st.Epoch > s.lastEpoch {
			s.lastEpoch = st.Epoch
		}
		s.mu.Unlock()
	}
}

// recover waits until the fleet streams from the source it names and the
// clients' commits are acknowledged again; after a failover it retires the
// old source and provisions a new candidate.
func (s *soak) recover(before int) error {
	r := s.r
	if _, err := r.f.WaitStreaming(context.Background(), wait); err != nil {
		return fmt.Errorf("the fleet does not stream again: %w", err)
	}
	if err := fleet.Poll(context.Background(), wait, func() error {
		if n := s.load.count(); n <= before {
			return fmt.Errorf("no commit acknowledged since the fault (%d in all)", n)
		}
		return nil
	}); err != nil {
		return err
	}
	r.mu.Lock()
	retired := r.retired
	r.retired = nil
	var left []*server
	for _, c := range r.candidates {
		if c != r.src {
			left = append(left, c)
		}
	}
	r.candidates = left
	r.mu.Unlock()
	for _, old := range retired {
		old.Close() // NB: fenced; rebuilding it as a replica is rejoin's job
	}
	if len(left) == 0 {
		c := r.newServer("candidate", false)
		r.feed(c)
		if err := r.addCandidate(c); err != nil {
			return fmt.Errorf("adding candidate %s: %w", c.addr, err)
		}
		r.mu.Lock()
		r.candidates = append(r.candidates, c)
		r.mu.Unlock()
	}
	return nil
}

// run injects faults of the given kinds, one at a time in random order,
// until d has passed (or, with schedule, each kind of schedule once).
func (s *soak) run(allowed []string, d time.Duration, schedule bool) {
	r := s.r
	end := time.Now().Add(d)
	for i := 0; ; i++ {
		var kind string
		if schedule {
			if i >= len(allowed) {
				break
			}
			kind = allowed[i]
		} else {
			if time.Now().After(end) {
				break
			}
			kind = allowed[s.rnd.IntN(len(allowed))]
		}
		// A quiet gap: commits flow between faults.
		time.Sleep(time.Duration(1000+s.rnd.IntN(3000)) * time.Millisecond)
		before := s.load.count()
		e := &event{kind: kind, start: time.Now()}
		s.mu.Lock()
		s.current = e
		s.events = append(s.events, e)
		s.mu.Unlock()
		r.t.Logf("fault %d: %s", i+1, kind)
		heal, err := kinds[kind].inject(r, s.rnd)
		if heal != nil {
			heal()
		}
		s.mu.Lock()
		e.end = time.Now()
		s.current = nil
		s.mu.Unlock()
		if err != nil {
			e.err = err.Error()
			r.t.Errorf("fault %s: %v", kind, err)
			return
		}
		if err := s.recover(before); err != nil {
			r.t.Errorf("after fault %s: %v", kind, err)
			return
		}
		// Continuously: everything acknowledged up to the fault is on the
		// source the fleet names now.
		if missing, checked, err := s.load.missing(r.source().Server, e.start); err == nil && len(missing) > 0 {
			s.violate("after %s: %d of %d acknowledged commits missing on %s: %v", kind, len(missing), checked, r.source().addr, head(missing, 5))
		}
		s.mu.Lock()
		for _, fo := range s.failovers {
			if fo.rto == 0 && fo.justified {
				if t := s.load.firstAfter(fo.to, e.start); !t.IsZero() {
					fo.rto = t.Sub(e.start)
				}
			}
		}
		s.mu.Unlock()
	}
}

func head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// finish stops the load and checks the end state: every acknowledged
// commit on the final source, the replicas checksum-equal to it.
func (s *soak) finish() (lost int) {
	r := s.r
	s.load.stop()
	src := r.source()
	missing, checked, err := s.load.missing(src.Server, time.Now())
	if err != nil {
		r.t.Errorf("reading the final source %s: %v", src.addr, err)
		return -1
	}
	if len(missing) > 0 {
		s.violate("%d of %d acknowledged commits missing on the final source %s: %v", len(missing), checked, src.addr, head(missing, 10))
	}
	// NB: a commit cut off at the stop may still commit on the source;
	// wait until the source is quiet, then compare.
	time.Sleep(2 * time.Second)
	want := checksum(r, src)
	for _, rep := range append([]*server{r.replica}, r.candidates...) {
		if rep == src {
			continue
		}
		err := fleet.Poll(context.Background(), wait, func() error {
			if got := checksum(r, rep); got != want {
				return fmt.Errorf("%s CHECKSUM TABLE %s, source %s: %s", rep.name, got, src.name, want)
			}
			return nil
		})
		if err != nil {
			s.violate("replica not checksum-equal: %v", err)
		}
	}
	return len(missing)
}

func checksum(r *rig, s *server) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.Exec(ctx, "CHECKSUM TABLE test.acked")
	if err != nil {
		return "error: " + err.Error()
	}
	v, _ := res.GetString(0, 1)
	return v
}

// table prints the soak's summary.
func (s *soak) table(seed uint64, d time.Duration, lost int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "chaos soak: seed %d, %v, lease %v, load average %s\n", seed, d.Round(time.Second), lease, strings.Join(strings.Fields(string(load))[:3], " "))
	byKind := map[string]int{}
	foByKind := map[string]int{}
	for _, e := range s.events {
		byKind[e.kind]++
		foByKind[e.kind] += e.failovers
	}
	var ks []string
	for k := range byKind {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	fmt.Fprintf(&b, "%-20s %8s %10s\n", "fault", "injected", "failovers")
	for _, k := range ks {
		fmt.Fprintf(&b, "%-20s %8d %10d\n", k, byKind[k], foByKind[k])
	}
	var rtos []time.Duration
	falseFO := 0
	for _, fo := range s.failovers {
		if !fo.justified {
			falseFO++
		}
		if fo.rto > 0 {
			rtos = append(rtos, fo.rto)
		}
	}
	sort.Slice(rtos, func(i, j int) bool { return rtos[i] < rtos[j] })
	pct := func(p float64) string {
		if len(rtos) == 0 {
			return "-"
		}
		return rtos[min(len(rtos)-1, int(p*float64(len(rtos))))].Round(10 * time.Millisecond).String()
	}
	fmt.Fprintf(&b, "faults %d, failovers %d (false %d), RTO p50 %s p99 %s max %s (n=%d)\n", len(s.events), len(s.failovers), falseFO, pct(0.5), pct(0.99), pct(1), len(rtos))
	for _, fo := range s.failovers {
		fmt.Fprintf(&b, "  failover at %s during %-16s epoch %d, %s -> %s, RTO %v\n", fo.at.Format("15:04:05"), fo.fault, fo.epoch, fo.from, fo.to, fo.rto.Round(10*time.Millisecond))
	}
	fmt.Fprintf(&b, "acknowledged commits %d, lost %d, violations %d\n", s.load.count(), lost, len(s.violations))
	for _, v := range s.violations {
		fmt.Fprintf(&b, "  violation: %s\n", v)
	}
	return b.String()
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func startSoak(t *testing.T, seed uint64) *soak {
	r := newRig(t, seed)
	s := &soak{r: r, rnd: rand.New(rand.NewPCG(seed, 0x636861)), epochs: map[uint64]string{}}
	s.load = r.startLoad(8)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.monitor(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	if err := fleet.Poll(context.Background(), wait, func() error {
		if s.load.count() < 50 {
			return fmt.Errorf("%d commits acknowledged", s.load.count())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestChaos is the randomized soak: CHAOS_SEED (default 1), CHAOS_DURATION
// (default 3m) and CHAOS_FAULTS (comma-separated kinds, default those that
// pass today; "all" for every kind). make chaos SEED=... DURATION=... runs
// it.
func TestChaos(t *testing.T) {
	seed, err := strconv.ParseUint(env("CHAOS_SEED", "1"), 10, 64)
	if err != nil {
		t.Fatalf("CHAOS_SEED: %v", err)
	}
	d, err := time.ParseDuration(env("CHAOS_DURATION", "3m"))
	if err != nil {
		t.Fatalf("CHAOS_DURATION: %v", err)
	}
	faults := env("CHAOS_FAULTS", passing)
	var allowed []string
	if faults == "all" {
		for k := range kinds {
			allowed = append(allowed, k)
		}
	} else {
		allowed = strings.Split(faults, ",")
	}
	sort.Strings(allowed)
	for _, k := range allowed {
		if _, ok := kinds[k]; !ok {
			t.Fatalf("CHAOS_FAULTS: unknown fault %q (kinds: all, %s)", k, passing)
		}
	}
	t0 := time.Now()
	s := startSoak(t, seed)
	s.run(allowed, d, false)
	lost := s.finish()
	t.Logf("\n%s", s.table(seed, time.Since(t0), lost))
	if t.Failed() {
		t.Logf("rerun: make chaos SEED=%d DURATION=%s CHAOS_FAULTS=%s", seed, d, faults)
	}
}

// TestNetworkFaults injects each network fault once, in a fixed order:
// the leader cut from the followers, its one-way cut, 2 % loss on every
// link, 20 ms RTT between members (no failover for any), then the source
// cut from every member
// (a failover, no acknowledged commit lost).
func TestNetworkFaults(t *testing.T) {
	s := startSoak(t, 7)
	s.run([]string{"cut-leader", "oneway-leader", "loss", "member-delay", "cut-source-all"}, 0, true)
	lost := s.finish()
	t.Logf("\n%s", s.table(7, 0, lost))
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.failovers); n != 1 || s.failovers[0].fault != "cut-source-all" {
		for _, fo := range s.failovers {
			t.Logf("failover %s -> %s during %s", fo.from, fo.to, fo.fault)
		}
		t.Errorf("%d failovers, want exactly one, during cut-source-all", n)
	}
}

// fencedText: a status page's source is a failover's fence.
func fencedText(src string) bool { return strings.HasPrefix(src, api.FencedPrefix) }
