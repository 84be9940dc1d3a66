// Package chaos runs a fleet, a MariaDB source and replicas as simulated
// hosts (tools/netsim) under a ledgered write load, and injects faults:
// partitions, one-way cuts, lossy links, kill -9, SIGSTOP and a full
// disk. It checks that no acknowledged commit is lost, that replicas end
// checksum-equal, that an epoch never names two sources, and that the fleet
// fails over only when the source was unreachable from a majority.
package chaos

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/netsim"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

const (
	lease = 3 * time.Second
	wait  = 2 * time.Minute
	// provisionWait bounds how long a new replica or candidate takes to
	// apply the whole log.
	provisionWait = 10 * time.Minute
	// Every link between the fleet and a MariaDB server: 10 ms each way
	// (20 ms RTT, cross-zone) plus up to 2 ms jitter.
	delay  = 10 * time.Millisecond
	jitter = 2 * time.Millisecond
)

// server is a MariaDB server on its own host.
type server struct {
	*sandbox.Server
	host *netsim.Host
	name string
	// addr is the address the fleet and the clients reach it at: a delay
	// proxy on its host.
	addr string
}

// rig is the simulated network, the fleet and its MariaDB servers.
type rig struct {
	t       *testing.T
	n       *netsim.Net
	dir     string
	f       *fleet.Fleet
	members []*netsim.Host // index id-1
	full    string         // member 3's data dir: a small tmpfs
	proxies []*netsim.Proxy
	// raft are the delay proxies in front of each member's raft port, on
	// its host (index id-1): every raft link goes through one.
	raft []*netsim.Proxy
	seed uint64

	mu         sync.Mutex
	src        *server   // the server the fleet last named as source
	replica    *server   // fed by the fleet, never promoted
	candidates []*server // fed by the fleet, promotable
	retired    []*server
	hosts      int
	byAddr     map[string]*server
	stopped    map[int]bool // pids under SIGSTOP (resumed on cleanup)
}

func newRig(t *testing.T, seed uint64) *rig {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netsim needs root (CI runs as root)")
	}
	n, err := netsim.New()
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, n: n, dir: t.TempDir(), seed: seed, byAddr: map[string]*server{}, stopped: map[int]bool{}}
	// NB: cleanups run last first: this one runs after the fleet and the
	// servers are gone.
	t.Cleanup(func() {
		for _, p := range append(r.proxies, r.raft...) {
			p.Close()
		}
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for pid := range r.stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	for i := 1; i <= 3; i++ {
		h, err := n.AddHost(fmt.Sprintf("member%d", i))
		if err != nil {
			t.Fatal(err)
		}
		r.members = append(r.members, h)
	}
	r.full = filepath.Join(r.dir, "fleet", "member3")
	mountTmpfs(t, r.full, "256m")

	r.src = r.newServer("source", true)
	r.replica = r.newServer("replica", false)
	r.candidates = []*server{r.newServer("candidate", false)}

	rootUser, rootPass := r.src.RootUser()
	write := func(name, v string) string {
		p := filepath.Join(r.dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	args := []string{"--source-heartbeat", "500ms",
		"--dump-user", dumptest.DumpUser, "--dump-password-file", write("dump.pw", dumptest.DumpPassword),
		"--failover-admin-user", rootUser, "--failover-admin-password-file", write("admin.pw", rootPass),
		"--failover-lease", lease.String(), "--failover-probe-interval", "250ms", "--failover-probe-timeout", "500ms",
		"--failover-anti-flap", "5s", "--failover-candidate", r.candidates[0].addr}
	user, pass := r.src.ReplUser()
	f, err := fleet.StartEach(context.Background(), fleet.Options{Dir: filepath.Join(r.dir, "fleet"), Members: 3,
		Source: r.src.addr, SourceUser: user, SourcePassword: pass, ExtraArgs: args,
		Host: func(id uint64) string { return r.members[id-1].IP },
		Cmd: func(m *fleet.Member, cmd *exec.Cmd) {
			if err := r.members[m.ID-1].Attach(cmd); err != nil {
				t.Error(err)
			}
		},
		RaftFront: func(m *fleet.Member, listen string) (string, error) {
			p, err := netsim.NewProxy(r.members[m.ID-1].Addr(0), listen, netsim.Link{}, seed*1000+500+m.ID)
			if err != nil {
				return "", err
			}
			r.mu.Lock()
			r.raft = append(r.raft, p)
			r.mu.Unlock()
			return p.Addr(), nil
		},
	}, func(uint64) fleet.MemberSpec { return fleet.MemberSpec{Serve: true} })
	if err != nil {
		t.Fatal(err)
	}
	r.f = f
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d; members' log tails:\n%s", r.seed, f.LogTails(40))
		}
		f.Close()
	})
	r.waitStreaming()
	r.exec(r.src.Server, "CREATE DATABASE IF NOT EXISTS test",
		"CREATE TABLE test.acked (c INT NOT NULL, n INT NOT NULL, v VARCHAR(64), PRIMARY KEY (c, n)) ENGINE=InnoDB",
		// NB: no SUPER/READ_ONLY ADMIN: read_only stops the application.
		"CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'",
		"GRANT SELECT, INSERT ON test.* TO 'app'@'%'")
	r.feed(r.replica)
	r.feed(r.candidates[0])
	return r
}

// setLinks changes every link between the fleet and a MariaDB server.
func (r *rig) setLinks(l netsim.Link) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.proxies {
		p.Set(l)
	}
}

// setRaftLinks changes every raft link between members (each way: a
// member's raft port is reached through the proxy on its host).
func (r *rig) setRaftLinks(l netsim.Link) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.raft {
		p.Set(l)
	}
}

// ackLatency is the leader's count and sum of ACK latencies
// (binlogsvr_semisync_ack_latency_seconds) so far.
func (r *rig) ackLatency(id uint64) (count, sum float64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.f.URL(id, "/metrics"), nil)
	resp, err := r.f.HTTP().Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /metrics on member %d: %s", id, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch k {
		case "binlogsvr_semisync_ack_latency_seconds_count":
			count, _ = strconv.ParseFloat(v, 64)
		case "binlogsvr_semisync_ack_latency_seconds_sum":
			sum, _ = strconv.ParseFloat(v, 64)
		}
	}
	return count, sum, sc.Err()
}

func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// newServer starts a MariaDB server on a new host.
func (r *rig) newServer(name string, source bool) *server {
	r.t.Helper()
	r.mu.Lock()
	r.hosts++
	name = fmt.Sprintf("%s.%d", name, r.hosts)
	r.mu.Unlock()
	h, err := r.n.AddHost(name)
	if err != nil {
		r.t.Fatal(err)
	}
	// NB: only the first source has semi-sync on from the start (a
	// replica's own commits would wait for ACKs); a promotion turns it on.
	s := sandboxtest.Start(r.t, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: source, SemiSyncTimeout: 10 * time.Minute, BindAddress: h.IP})
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := netsim.NewProxy(h.Addr(0), s.Addr(), netsim.Link{Delay: delay, Jitter: jitter}, r.seed*1000+uint64(r.hosts))
	if err != nil {
		r.t.Fatal(err)
	}
	r.proxies = append(r.proxies, p)
	srv := &server{Server: s, host: h, name: name, addr: p.Addr()}
	r.byAddr[srv.addr] = srv
	return srv
}

// feed points s at a member's dump port and waits until it has the source's data.
func (r *rig) feed(s *server) {
	r.t.Helper()
	st, err := r.f.LeaderStatus(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	var addr string
	for _, m := range r.f.Members {
		if m.ID != st.Leader && m.Running() {
			addr = m.DumpAddr
			break
		}
	}
	if addr == "" {
		addr = r.f.Member(st.Leader).DumpAddr
	}
	dumptest.PointReplica(r.t, s.Server, addr, dumptest.ByGTID)
	if src := r.source(); src != nil && src.Running() {
		// NB: a server fed from nothing replays the whole log: late in a
		// 30-minute soak that is over 100,000 transactions.
		dumptest.WaitReplicated(r.t, src.Server, s.Server, provisionWait)
	}
}

func (r *rig) exec(s *sandbox.Server, qs ...string) {
	r.t.Helper()
	for _, q := range qs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := s.Exec(ctx, q)
		cancel()
		if err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *rig) source() *server {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.src
}

func (r *rig) waitStreaming() {
	r.t.Helper()
	if _, err := r.f.WaitStreaming(context.Background(), wait); err != nil {
		r.t.Fatalf("the fleet does not stream: %v", err)
	}
}

// addCandidate stores s as a failover candidate through the admin API.
func (r *rig) addCandidate(s *server) error {
	form := url.Values{"addr": {s.addr}, "priority": {"0"}, "never_promote": {"false"}}
	var last error
	for _, m := range r.f.Members {
		if !m.Running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.f.URL(m.ID, "/failover/candidates"), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := r.f.HTTP().Do(req)
		cancel()
		if err != nil {
			last = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		last = fmt.Errorf("POST /failover/candidates on member %d: %s", m.ID, resp.Status)
	}
	return last
}

func (r *rig) leader() (uint64, error) {
	st, err := r.f.LeaderStatus(context.Background())
	if err != nil {
		return 0, err
	}
	return st.Leader, nil
}

// ledger is the write load: every commit acknowledged to a client.
type ledger struct {
	mu     sync.Mutex
	acked  map[[2]int]ack
	w      *fleet.Writers
	cancel context.CancelFunc
}

type ack struct {
	at     time.Time
	server string
}

func (r *rig) startLoad(clients int) *ledger {
	l := &ledger{acked: map[[2]int]ack{}}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	var mu sync.Mutex
	target := r.src.addr
	l.w = fleet.StartWriters(ctx, fleet.WriterOptions{Clients: clients, User: "app", Password: "app-pw", Pace: 20 * time.Millisecond,
		Target: func(refresh bool) (string, string) {
			mu.Lock()
			defer mu.Unlock()
			if refresh {
				if st, err := r.f.LeaderStatus(ctx); err == nil && st.Source != "" && !st.SourceFenced {
					target = st.Source
				}
			}
			return target, target
		},
		Acked: func(c, n int, at string, when time.Time) {
			l.mu.Lock()
			l.acked[[2]int{c, n}] = ack{when, at}
			l.mu.Unlock()
		}})
	return l
}

func (l *ledger) stop() {
	l.cancel()
	l.w.Stop()
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// firstAfter is the first commit acknowledged by addr after t (zero if none).
func (l *ledger) firstAfter(addr string, t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, a := range l.acked {
		if a.server == addr && a.at.After(t) && (first.IsZero() || a.at.Before(first)) {
			first = a.at
		}
	}
	return first
}

// missing lists the commits acknowledged before cutoff that are not on s,
// and how many were checked.
func (l *ledger) missing(s *sandbox.Server, cutoff time.Time) ([]string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := s.Exec(ctx, "SELECT c, n FROM test.acked")
	if err != nil {
		return nil, 0, err
	}
	have := map[[2]int]bool{}
	for i := 0; i < res.RowNumber(); i++ {
		c, _ := res.GetInt(i, 0)
		n, _ := res.GetInt(i, 1)
		have[[2]int{int(c), int(n)}] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	checked := 0
	for k, a := range l.acked {
		if a.at.After(cutoff) {
			continue
		}
		checked++
		if !have[k] {
			out = append(out, fmt.Sprintf("client %d commit %d (acknowledged by %s at %s)", k[0], k[1], a.server, a.at.Format("15:04:05.000")))
		}
	}
	sort.Strings(out)
	return out, checked, nil
}
