// Package e2e tests membership, holds and retention with binlogsvr
// processes (tools/fleet) in front of real MariaDB sources (tools/sandbox);
// the pure policy and the in-process group tests stay in package learner.
package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

const wait = 90 * time.Second

// bins holds the binlogsvr and binlogctl binaries, built once.
var bins struct {
	once     sync.Once
	dir      string
	svr, ctl string
	err      error
}

func binaries(t *testing.T) (svr, ctl string) {
	t.Helper()
	bins.once.Do(func() {
		if bins.dir, bins.err = os.MkdirTemp("", "learner-bins-"); bins.err != nil {
			return
		}
		if bins.svr, bins.err = fleet.Tool(bins.dir, "binlogsvr"); bins.err != nil {
			return
		}
		bins.ctl, bins.err = fleet.Tool(bins.dir, "binlogctl")
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return bins.svr, bins.ctl
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

type rig struct {
	t   *testing.T
	f   *fleet.Fleet
	src *sandbox.Server
	ctl string
}

// newRig starts a fleet of 3 loggers (spec gives each its flags) in front
// of src (nil: no source).
func newRig(t *testing.T, src *sandbox.Server, spec func(id uint64) fleet.MemberSpec, extra ...string) *rig {
	t.Helper()
	svr, ctl := binaries(t)
	o := fleet.Options{Bin: svr, Dir: t.TempDir(), Members: 3,
		ExtraArgs: append([]string{"--members-poll-interval", "300ms", "--catch-up-log-interval", "1s", "--leader-handoff-delay", "1s"}, extra...)}
	if src != nil {
		user, pass := src.ReplUser()
		o.Source, o.SourceUser, o.SourcePassword = src.Addr(), user, pass
	}
	f, err := fleet.StartEach(context.Background(), o, spec)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, f: f, src: src, ctl: ctl}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(f.LogTails(30))
		}
		f.Close()
	})
	return r
}

// binlogctl runs the real binlogctl against member id.
func (r *rig) binlogctl(id uint64, args ...string) (string, error) {
	out, err := exec.Command(r.ctl, append(append(r.f.CtlArgs(), "--admin", r.f.Member(id).AdminAddr), args...)...).CombinedOutput()
	return string(out), err
}

func (r *rig) mustCtl(id uint64, args ...string) string {
	r.t.Helper()
	out, err := r.binlogctl(id, args...)
	if err != nil {
		r.t.Fatalf("binlogctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r.t.Logf("binlogctl %s: %s", strings.Join(args, " "), strings.TrimSpace(out))
	return out
}

func (r *rig) leader() uint64 {
	r.t.Helper()
	l, err := r.f.Leader(context.Background(), wait)
	if err != nil {
		r.t.Fatal(err)
	}
	return l
}

func (r *rig) view(id uint64) (binlogsvr.MembersStatus, error) {
	var st binlogsvr.MembersStatus
	err := r.f.Get(context.Background(), id, "/members?refresh=1", &st)
	return st, err
}

// waitView polls member ask's view until ok accepts it.
func (r *rig) waitView(ask uint64, what string, ok func(v binlogsvr.MembersStatus) error) binlogsvr.MembersStatus {
	r.t.Helper()
	var v binlogsvr.MembersStatus
	err := fleet.Poll(context.Background(), wait, func() error {
		var err error
		if v, err = r.view(ask); err != nil {
			return err
		}
		return ok(v)
	})
	if err != nil {
		r.t.Fatalf("%s: %v", what, err)
	}
	return v
}

func member(v binlogsvr.MembersStatus, id uint64) (learner.Member, error) {
	m, ok := v.Get(id)
	if !ok {
		return m, fmt.Errorf("member %d is not in the group (%v)", id, ids(v))
	}
	return m, nil
}

func ids(v binlogsvr.MembersStatus) string {
	var s []string
	for _, m := range v.Members {
		s = append(s, fmt.Sprintf("%d:%s", m.ID, m.Role))
	}
	return strings.Join(s, ",")
}

// caughtUp accepts a view where member id has the role, is caught up and,
// if serving, serves.
func caughtUp(id uint64, role string, serving bool) func(v binlogsvr.MembersStatus) error {
	return func(v binlogsvr.MembersStatus) error {
		m, err := member(v, id)
		if err != nil {
			return err
		}
		if m.Role != role || !m.CaughtUp || !v.Complete || m.Serving != serving {
			return fmt.Errorf("member %d: role %s caught up %v serving %v lag %d entries %d bytes (%s)", id, m.Role, m.CaughtUp, m.Serving, m.LagEntries, m.LagBytes, m.Error)
		}
		return nil
	}
}

// logHas reports whether member id's log holds s.
func (r *rig) logHas(id uint64, s string) bool {
	b, _ := os.ReadFile(r.f.Member(id).LogPath)
	return strings.Contains(string(b), s)
}

func (r *rig) metrics(id uint64) string {
	resp, err := r.f.HTTP().Get(r.f.URL(id, "/metrics"))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric returns the value of one sample line's metric (name with labels).
func metric(text, name string) (float64, bool) {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, name+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(l[len(name):]), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// startSource starts a MariaDB semi-sync source with a long timeout: a
// missing ACK stalls commits instead of degrading them.
func startSource(t *testing.T) *sandbox.Server {
	return sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute})
}

func (r *rig) waitStreaming() {
	r.t.Helper()
	err := fleet.Poll(context.Background(), wait, func() error {
		if _, err := r.f.WaitStreaming(context.Background(), wait); err != nil {
			return err
		}
		if n := r.semi("clients"); n < 1 {
			return fmt.Errorf("the source counts %d semi-sync clients", n)
		}
		return nil
	})
	if err != nil {
		r.t.Fatalf("the fleet does not stream from the source: %v", err)
	}
}

func (r *rig) semi(name string) int64 {
	res, err := r.src.Exec(context.Background(), "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_"+name+"'")
	if err != nil || res.RowNumber() == 0 {
		return -1
	}
	v, _ := res.GetString(0, 1)
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// load inserts from several clients until stop closes; it reports the
// commits the source acknowledged and the longest a commit took.
type load struct {
	mu       sync.Mutex
	acked    int64
	maxPause time.Duration
	maxAt    time.Time // when the longest commit began
	err      error
	stop     chan struct{}
	done     chan struct{}
}

func (r *rig) startLoad(table string, clients int) *load {
	r.t.Helper()
	ctx := context.Background()
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS test",
		"CREATE TABLE IF NOT EXISTS test." + table + " (id INT AUTO_INCREMENT PRIMARY KEY, c INT, v VARCHAR(200))"} {
		if _, err := r.src.Exec(ctx, q); err != nil {
			r.t.Fatal(err)
		}
	}
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.src.Conn(ctx)
			if err != nil {
				l.fail(err)
				return
			}
			defer c.Close()
			for j := 0; ; j++ {
				select {
				case <-l.stop:
					return
				default:
				}
				t0 := time.Now()
				if _, err := c.Execute(fmt.Sprintf("INSERT INTO test.%s (c, v) VALUES (%d, REPEAT('v', %d))", table, i, 50+j%150)); err != nil {
					l.fail(err)
					return
				}
				l.mu.Lock()
				l.acked++
				if d := time.Since(t0); d > l.maxPause {
					l.maxPause, l.maxAt = d, t0
				}
				l.mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	return l
}

func (l *load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
}

func (l *load) finish() (int64, time.Duration, error) {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked, l.maxPause, l.err
}

func (l *load) status() (int64, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked, l.maxPause
}
