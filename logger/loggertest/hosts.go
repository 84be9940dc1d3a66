package loggertest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/vfs"
	lvfs "github.com/lni/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/logger"
)

// Hosts is an in-process fleet of hosts, each a logger.Host on real
// loopback TCP (the tcp transport and its guard, plaintext) and memory
// file systems, running several shards: host id is the replica id of
// every shard it runs.
type Hosts struct {
	t     testing.TB
	log   *slog.Logger
	addrs map[uint64]string
	fs    map[uint64]lvfs.FS
	pfs   map[uint64]pebblevfs.FS

	opts HostsOptions

	mu     sync.Mutex
	hosts  map[uint64]*logger.Host
	regs   map[uint64]*prometheus.Registry // each host's metrics, its shards' labelled shard="S"
	shards map[uint64][]uint64             // shard → the hosts it was placed on
}

// HostsOptions are what NewHostsWith's hosts differ in from the defaults.
type HostsOptions struct {
	RaftLogMultiplex logger.Multiplex // logger.HostConfig.RaftLogMultiplex
}

// NewHosts starts hosts 1..n with no shard and closes them at the end of
// the test.
func NewHosts(t testing.TB, n int) *Hosts {
	t.Helper()
	return NewHostsWith(t, n, HostsOptions{})
}

// NewHostsWith is NewHosts with hosts configured by o.
func NewHostsWith(t testing.TB, n int, o HostsOptions) *Hosts {
	t.Helper()
	log := testLogger()
	h := &Hosts{t: t, log: log, opts: o, addrs: map[uint64]string{}, fs: map[uint64]lvfs.FS{}, pfs: map[uint64]pebblevfs.FS{},
		hosts: map[uint64]*logger.Host{}, regs: map[uint64]*prometheus.Registry{}, shards: map[uint64][]uint64{}}
	var held []net.Listener
	for id := uint64(1); id <= uint64(n); id++ {
		ln := freeListener(t)
		held = append(held, ln)
		h.addrs[id] = ln.Addr().String()
		h.fs[id] = lvfs.NewMem()
		h.pfs[id] = pebblevfs.NewMem()
	}
	for _, ln := range held {
		ln.Close()
	}
	t.Cleanup(h.Close)
	for id := uint64(1); id <= uint64(n); id++ {
		h.StartHost(id)
	}
	return h
}

// Addr returns host id's raft address.
func (h *Hosts) Addr(id uint64) string { return h.addrs[id] }

// HostConfig returns the configuration StartHost starts host id with,
// with a registry of its own.
func (h *Hosts) HostConfig(id uint64) logger.Config {
	cfg := logger.DefaultConfig()
	cfg.DataDir = fmt.Sprintf("/h%d", id)
	cfg.RaftAddr = h.addrs[id]
	cfg.RTTMillisecond = 5 // as Cluster's: see config
	cfg.Insecure = true
	cfg.Logger = h.log
	cfg.FS, cfg.PebbleFS = h.fs[id], h.pfs[id]
	cfg.NoNotifyCommit = noNotifyCommit()
	cfg.RaftLogMultiplex = h.opts.RaftLogMultiplex
	cfg.Registry = prometheus.NewRegistry()
	return cfg
}

// FS returns host id's file system (its raft log's, dragonboat's).
func (h *Hosts) FS(id uint64) lvfs.FS { return h.fs[id] }

// StartHost starts (or restarts) host id, with the shards placed on it.
func (h *Hosts) StartHost(id uint64) *logger.Host {
	h.t.Helper()
	cfg := h.HostConfig(id)
	reg := cfg.Registry.(*prometheus.Registry)
	host, err := logger.StartHost(cfg.Host())
	if err != nil {
		h.t.Fatalf("loggertest: starting host %d: %v", id, err)
	}
	h.mu.Lock()
	h.hosts[id], h.regs[id] = host, reg
	var placed []uint64
	for s, on := range h.shards {
		if slices.Contains(on, id) {
			placed = append(placed, s)
		}
	}
	h.mu.Unlock()
	for _, s := range placed {
		h.startReplica(host, s, id, false)
	}
	return host
}

// StartShard places shard on hosts (a new group of those loggers) and
// starts its replica on each running one.
func (h *Hosts) StartShard(shard uint64, hosts ...uint64) {
	h.t.Helper()
	h.mu.Lock()
	h.shards[shard] = slices.Clone(hosts)
	h.mu.Unlock()
	for _, id := range hosts {
		if host := h.Host(id); host != nil {
			h.startReplica(host, shard, id, true)
		}
	}
}

func (h *Hosts) startReplica(host *logger.Host, shard, id uint64, bootstrap bool) {
	h.t.Helper()
	cfg := logger.DefaultConfig()
	cfg.ShardID, cfg.ReplicaID = shard, id
	cfg.ElectionRTT, cfg.HeartbeatRTT = 50, 2
	cfg.SnapshotEntries, cfg.CompactionOverhead = 0, 5
	if bootstrap {
		cfg.Members = map[uint64]string{}
		for _, m := range h.shards[shard] {
			cfg.Members[m] = h.addrs[m]
		}
	}
	h.mu.Lock()
	cfg.Registry = prometheus.WrapRegistererWith(prometheus.Labels{"shard": strconv.FormatUint(shard, 10)}, h.regs[id])
	h.mu.Unlock()
	if _, err := host.StartShard(cfg); err != nil {
		h.t.Fatalf("loggertest: starting shard %d on host %d: %v", shard, id, err)
	}
}

// Host returns running host id, or nil.
func (h *Hosts) Host(id uint64) *logger.Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hosts[id]
}

// Registry returns host id's metrics (since its last start).
func (h *Hosts) Registry(id uint64) *prometheus.Registry {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.regs[id]
}

// Node returns shard's replica on host id, or nil.
func (h *Hosts) Node(id, shard uint64) *logger.Node {
	if host := h.Host(id); host != nil {
		return host.Shard(shard)
	}
	return nil
}

// StopHost closes host id and every shard on it; its data stays.
func (h *Hosts) StopHost(id uint64) {
	h.mu.Lock()
	host := h.hosts[id]
	delete(h.hosts, id)
	h.mu.Unlock()
	if host != nil {
		host.Close()
	}
}

// Leader waits (bounded by d) until shard's running replicas agree on a
// leader among them, and returns it.
func (h *Hosts) Leader(shard uint64, d time.Duration) *logger.Node {
	h.t.Helper()
	var leader *logger.Node
	err := Poll(context.Background(), d, func() error {
		leader = nil
		var lid uint64
		h.mu.Lock()
		on := slices.Clone(h.shards[shard])
		h.mu.Unlock()
		for _, id := range on {
			n := h.Node(id, shard)
			if n == nil {
				continue
			}
			l, ok := n.LeaderID()
			if !ok {
				return fmt.Errorf("host %d knows no leader of shard %d", id, shard)
			}
			if lid != 0 && l != lid {
				return fmt.Errorf("hosts disagree on shard %d's leader (%d, %d)", shard, lid, l)
			}
			lid = l
		}
		if leader = h.Node(lid, shard); leader == nil {
			return fmt.Errorf("shard %d's leader %d is not running", shard, lid)
		}
		return nil
	})
	if err != nil {
		h.t.Fatalf("loggertest: waiting for a leader of shard %d: %v", shard, err)
	}
	return leader
}

// Close closes every host.
func (h *Hosts) Close() {
	for id := range h.addrs {
		h.StopHost(id)
	}
}
