// Package loggertest runs an in-process group of log members for tests:
// dragonboat's channel transport (wrapped, so links can be cut) and memory
// file systems, so members can be stopped, restarted and partitioned
// without touching the disk or the network.
package loggertest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/vfs"
	chantransport "github.com/lni/dragonboat/v4/plugin/chan"
	lvfs "github.com/lni/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/pki"
)

var clusterSeq atomic.Int64

// Options tunes a test cluster.
type Options struct {
	// SnapshotEntries and CompactionOverhead: small values make a restarted
	// member catch up from a snapshot. Zero: 0 (no snapshots) and 5.
	SnapshotEntries    uint64
	CompactionOverhead uint64
	// SnapshotBytes: snapshot by size too (logger.Config.SnapshotBytes).
	// Zero: by count only.
	SnapshotBytes uint64
	Retention     logger.Retention
	// RetentionFor overrides Retention for some members.
	RetentionFor map[uint64]logger.Retention
	// Transports, when set, runs every member on real loopback TCP with
	// the raft transport named here for it (logger.TransportTCP when
	// absent) instead of the channel transport. Partition is not
	// available then.
	Transports map[uint64]string
	// RaftTLS, with Transports, gives members their raft TLS files
	// (logger.Config.RaftTLS); the others run with Insecure.
	RaftTLS map[uint64]pki.Files
	// MaxEncoding runs some members as an older binary would: reading and
	// reporting entry encodings up to the value (logger.Config.MaxEncoding).
	// Read at each Start: change it between Stop and Start to upgrade.
	MaxEncoding map[uint64]byte
	// NoNotifyCommit turns dragonboat's NotifyCommit off on every member
	// (logger.Config.NoNotifyCommit); so does $BINLOGSVR_TEST_NO_NOTIFY_COMMIT
	// for every cluster and host of a test run.
	NoNotifyCommit bool
}

// noNotifyCommit: $BINLOGSVR_TEST_NO_NOTIFY_COMMIT runs a package's tests
// with NotifyCommit off.
func noNotifyCommit() bool { return os.Getenv("BINLOGSVR_TEST_NO_NOTIFY_COMMIT") != "" }

// Cluster is an in-process group of members.
type Cluster struct {
	t     testing.TB
	opts  Options
	net   *Network
	addrs map[uint64]string
	log   *slog.Logger

	mu    sync.Mutex
	nodes map[uint64]*logger.Node
	regs  map[uint64]*prometheus.Registry // each member's metrics since its last Start
	fs    map[uint64]lvfs.FS
	pfs   map[uint64]pebblevfs.FS
}

// New starts a group of n loggers with ids 1..n and stops it at the end of
// the test, even if it fails.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	l := testLogger()
	if opts.CompactionOverhead == 0 {
		opts.CompactionOverhead = 5
	}
	seq := clusterSeq.Add(1)
	c := &Cluster{t: t, opts: opts, net: newNetwork(), addrs: map[uint64]string{}, log: l,
		nodes: map[uint64]*logger.Node{}, regs: map[uint64]*prometheus.Registry{}, fs: map[uint64]lvfs.FS{}, pfs: map[uint64]pebblevfs.FS{}}
	var held []net.Listener
	for id := uint64(1); id <= uint64(n); id++ {
		c.addrs[id] = fmt.Sprintf("c%d-m%d:1", seq, id)
		if opts.Transports != nil {
			// NB: each port stays held until all are picked: a port just
			// closed may be handed out again, to the next member.
			ln := freeListener(t)
			held = append(held, ln)
			c.addrs[id] = ln.Addr().String()
		}
		c.fs[id] = lvfs.NewMem()
		c.pfs[id] = pebblevfs.NewMem()
	}
	for _, ln := range held {
		ln.Close()
	}
	t.Cleanup(c.Close)
	for id := uint64(1); id <= uint64(n); id++ {
		c.Start(id)
	}
	return c
}

// testLogger is the members' logger, which dragonboat's logs go to too.
func testLogger() *slog.Logger {
	// NB: BINLOGSVR_TEST_VERBOSE shows dragonboat's own elections,
	// snapshot streams and recoveries too.
	level, dbLevel := slog.LevelWarn, slog.LevelError
	if os.Getenv("BINLOGSVR_TEST_VERBOSE") != "" {
		level, dbLevel = slog.LevelDebug, slog.LevelInfo
	}
	l := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	logger.RouteDragonboatLogs(l, dbLevel)
	return l
}

func (c *Cluster) config(id uint64) logger.Config {
	cfg := logger.DefaultConfig()
	cfg.ReplicaID = id
	cfg.DataDir = fmt.Sprintf("/m%d", id)
	cfg.RaftAddr = c.addrs[id]
	cfg.Members = c.addrs
	// NB: an election timeout of 250-500 ms: with CheckQuorum a leader
	// steps down when a follower is silent that long, and under -race on
	// two shared cores a member's loop stalls for 100-600 ms while it
	// copies a multi-MiB entry or snapshot (dragonboat logs "had N
	// LocalTick msgs in one batch"). At 100 ms, leaders changed every
	// second or two and each change restarted a snapshot stream.
	cfg.RTTMillisecond = 5
	cfg.ElectionRTT = 50
	cfg.HeartbeatRTT = 2
	cfg.SnapshotEntries = c.opts.SnapshotEntries
	cfg.CompactionOverhead = c.opts.CompactionOverhead
	cfg.SnapshotBytes = c.opts.SnapshotBytes
	cfg.Retention = c.opts.Retention
	if r, ok := c.opts.RetentionFor[id]; ok {
		cfg.Retention = r
	}
	cfg.Logger = c.log
	cfg.MaxEncoding = c.opts.MaxEncoding[id]
	cfg.NoNotifyCommit = c.opts.NoNotifyCommit || noNotifyCommit()
	cfg.FS = c.fs[id]
	cfg.PebbleFS = c.pfs[id]
	cfg.TransportFactory = &factory{net: c.net, inner: &chantransport.ChanTransportFactory{}}
	if c.opts.Transports != nil {
		cfg.TransportFactory = nil
		if tr, ok := c.opts.Transports[id]; ok {
			cfg.Transport = tr
		}
		cfg.RaftTLS, cfg.Insecure = c.opts.RaftTLS[id], !c.opts.RaftTLS[id].Set()
	}
	return cfg
}

// freeListener holds a free loopback port; the caller closes it just
// before the port is used.
func freeListener(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("loggertest: finding a free port: %v", err)
	}
	return ln
}

// Start starts (or restarts) member id on its own memory file systems.
func (c *Cluster) Start(id uint64) *logger.Node {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.nodes[id]; ok {
		c.t.Fatalf("loggertest: member %d is already running", id)
	}
	cfg := c.config(id)
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	n, err := logger.Start(cfg)
	if err != nil {
		c.t.Fatalf("loggertest: starting member %d: %v", id, err)
	}
	c.nodes[id], c.regs[id] = n, reg
	return n
}

// Stop stops member id; its data stays for Start.
func (c *Cluster) Stop(id uint64) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n != nil {
		n.Close()
	}
}

// Node returns running member id, or nil.
func (c *Cluster) Node(id uint64) *logger.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// Running returns the ids of the running members.
func (c *Cluster) Running() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint64
	for id := uint64(1); id <= uint64(len(c.addrs)); id++ {
		if _, ok := c.nodes[id]; ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// Partition cuts every link between the members in ids and the others.
func (c *Cluster) Partition(ids ...uint64) {
	if c.opts.Transports != nil {
		c.t.Fatalf("loggertest: Partition needs the channel transport (Options.Transports is set)")
	}
	in := map[uint64]bool{}
	for _, id := range ids {
		in[id] = true
	}
	for a := range c.addrs {
		for b := range c.addrs {
			if in[a] && !in[b] {
				c.net.setCut(c.addrs[a], c.addrs[b], true)
			}
		}
	}
}

// Heal restores every link.
func (c *Cluster) Heal() { c.net.heal() }

// Leader waits (bounded by d) until a running member leads and every
// running member agrees, and returns it.
func (c *Cluster) Leader(d time.Duration) *logger.Node {
	c.t.Helper()
	var leader *logger.Node
	c.Eventually(d, "a leader", func() error {
		leader = nil
		var lid uint64
		for _, id := range c.Running() {
			n := c.Node(id)
			if n == nil {
				continue
			}
			l, ok := n.LeaderID()
			if !ok {
				return fmt.Errorf("member %d knows no leader", id)
			}
			if lid != 0 && l != lid {
				return fmt.Errorf("members disagree on the leader (%d, %d)", lid, l)
			}
			lid = l
		}
		leader = c.Node(lid)
		if leader == nil {
			return fmt.Errorf("leader %d is not running", lid)
		}
		return nil
	})
	return leader
}

// WaitApplied waits until every running member applied at least index.
func (c *Cluster) WaitApplied(d time.Duration, index uint64) {
	c.t.Helper()
	c.Eventually(d, fmt.Sprintf("every member applied index %d", index), func() error {
		for _, id := range c.Running() {
			n := c.Node(id)
			if n == nil || n.Reader() == nil {
				return fmt.Errorf("member %d not open", id)
			}
			if a := n.Reader().Applied(); a < index {
				return fmt.Errorf("member %d applied %d", id, a)
			}
		}
		return nil
	})
}

// Eventually polls f every 10ms until it returns nil, failing the test
// with f's last error after d.
func (c *Cluster) Eventually(d time.Duration, what string, f func() error) {
	c.t.Helper()
	if err := Poll(context.Background(), d, f); err != nil {
		c.t.Fatalf("loggertest: waiting for %s: %v\n%s", what, err, c.Report())
	}
}

// WaitEncodingReports waits until every running member's report of the
// encodings it reads is in the log (logger.MetaEncodingReport): the Meta
// entries each member proposes once at start. A test that counts raft
// entries waits for them first, so that they do not fall in its count.
func (c *Cluster) WaitEncodingReports(d time.Duration) {
	c.t.Helper()
	c.Eventually(d, "every member's encoding report", func() error {
		r := c.Leader(d).Reader()
		for _, id := range c.Running() {
			if _, ok, err := r.Meta(fmt.Sprintf(logger.MetaEncodingReport, id)); err != nil || !ok {
				return fmt.Errorf("member %d has not reported (%v)", id, err)
			}
		}
		return nil
	})
}

// Report describes every member's raft and state machine state, one line
// each: what a failed wait prints, so that a timeout in CI says whether a
// member lagged, a snapshot was never sent, or leaders kept changing.
func (c *Cluster) Report() string {
	var b strings.Builder
	for id := uint64(1); id <= uint64(len(c.addrs)); id++ {
		c.mu.Lock()
		n, reg := c.nodes[id], c.regs[id]
		c.mu.Unlock()
		if n == nil {
			fmt.Fprintf(&b, "  member %d: stopped\n", id)
			continue
		}
		tr := "chan"
		if c.opts.Transports != nil {
			tr = n.Config().Transport
		}
		fmt.Fprintf(&b, "  member %d (%s):", id, tr)
		if lid, term, ok, err := n.NodeHost().GetLeaderID(n.Config().ShardID); err != nil {
			fmt.Fprintf(&b, " leader: %v;", err)
		} else {
			fmt.Fprintf(&b, " leader %d (known %t), term %d;", lid, ok, term)
		}
		if r := n.Reader(); r != nil {
			fmt.Fprintf(&b, " applied %d;", r.Applied())
		}
		fmt.Fprintf(&b, " snapshots recovered %d, sent %s\n", n.SM().SnapshotsRecovered(), snapshotSends(reg))
	}
	return b.String()
}

// snapshotSends reads a member's binlogsvr_logger_snapshot_sends_total by
// result (Gather sorts them by label).
func snapshotSends(reg *prometheus.Registry) string {
	mfs, err := reg.Gather()
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, mf := range mfs {
		if mf.GetName() != "binlogsvr_logger_snapshot_sends_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" {
					parts = append(parts, fmt.Sprintf("%s %.0f", lp.GetValue(), m.GetCounter().GetValue()))
				}
			}
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Poll calls f every 10ms until it returns nil or d passes, and returns its
// last error.
func Poll(ctx context.Context, d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", d, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Close stops every member.
func (c *Cluster) Close() {
	for id := range c.addrs {
		c.Stop(id)
	}
}
