package logger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/plugin/tan"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/logger/pki"
)

// A Host is what one process shares among the shards it runs: one
// dragonboat NodeHost (its raft log, its engine's worker pools, its
// snapshot directories), one raft transport with its frame guard and TLS,
// one data directory and the watch on its disk, the loop that keeps the
// guard's view of every shard's membership current, and the host's
// metrics. Each shard on it is a Node (StartShard): its own state machine
// and Pebble database under the data directory, its membership feed for
// the guard (updated by the host's loop), its proposer and loops.
//
// Start runs one shard on a Host of its own, as a one-source daemon does;
// the data directory's layout is the same either way:
//
//	DataDir/raft                              the NodeHost: raft log (tan), snapshots of every shard
//	DataDir/binlog/shard-S-replica-R          shard S's state machine (Pebble)
type Host struct {
	cfg     HostConfig
	log     *slog.Logger
	nh      *dragonboat.NodeHost
	metrics *hostMetrics
	disk    *diskMonitor // disk.go
	shards  *shardSet    // the shards the tcp transport accepts frames for; nil on other transports
	fs      config.IFS   // cfg.FS behind the full-disk guard
	pfs     vfs.FS       // cfg.PebbleFS behind the full-disk guard

	stop chan struct{}
	wg   sync.WaitGroup

	// The guard's member loop (transport_members.go): nil on transports
	// without a guard.
	members     *memberLoop
	membersStop context.CancelFunc
	membersDone chan struct{}

	mu     sync.Mutex
	nodes  map[uint64]*Node     // by shard id
	raw    map[uint64]*RawShard // shards of other state machines (host_raw.go), by shard id
	closed bool
}

// HostConfig is the part of a member's Config that its host shares among
// shards: Config.Host returns it. The fields mean what Config's do.
type HostConfig struct {
	DataDir        string
	RaftAddr       string
	RaftListenAddr string
	LogDB          string
	Transport      string
	LogPrefill     bool
	RTTMillisecond uint64
	Disk           DiskConfig
	RaftTLS        pki.Files
	Insecure       bool
	NoNotifyCommit bool
	// ApplyWorkers is the number of dragonboat's apply goroutines
	// (--raft-apply-workers); 0 picks startApplyWorkers for Start's one
	// shard and DefaultHostApplyWorkers for StartHost.
	ApplyWorkers int
	// RaftLogMultiplex (--raft-log-multiplex; StartHost with LogDB tan
	// only) makes the shards share tan's log files: dragonboat's
	// multiplexed tan (tanmux.go), shard S in the group S % 16, each group
	// one log file and one step worker that fsyncs it once per round for
	// all its shards. The layout is fixed when the data directory is
	// created (raftLayoutFile): auto (the default) creates it in
	// DefaultHostMultiplexed's layout (per-shard) and opens an existing one
	// as it is; true or false refuse a data
	// directory of the other layout. Start ignores it: a one-source daemon
	// keeps per-shard tan.
	RaftLogMultiplex Multiplex

	Logger *slog.Logger
	// Registry receives the host's metrics: the raft transport's rejected
	// frames, the raft log's files, snapshot sends, the disk's free space.
	// Each shard's own metrics go to its Config.Registry.
	Registry prometheus.Registerer

	FS               config.IFS
	PebbleFS         vfs.FS
	TransportFactory config.TransportFactory
}

// Apply workers (dragonboat's ApplyShards, engine.go:1059-1064 in
// dragonboat v4): each is one goroutine that runs the Update of its
// shards one after another; shard S goes to worker S % ApplyShards
// (internal/server/partition.go:38-39). So a slow apply (a 64 MiB
// transaction, a Pebble stall) of one shard delays the apply, and the
// ACK, of every shard on its worker. Unlike the step workers it is not in
// the data directory's flag file (internal/server/environment.go:431-443
// checks ExecShards and LogDB.Shards only), so it may change on restart.
const (
	// startApplyWorkers is Start's (the one-source daemon): its one shard
	// uses one worker whatever the number, and 2 is what every data
	// directory ran with so far.
	startApplyWorkers = 2
	// DefaultHostApplyWorkers is StartHost's: source shard ids are
	// consecutive (docs/MULTISOURCE.md), so a host of up to 16 sources
	// gives each its own apply goroutine, for one idle goroutine per
	// worker. It is dragonboat's own default too (config.go:907).
	DefaultHostApplyWorkers = 16
	maxApplyWorkers         = 256
)

// Host returns the host's part of c.
func (c *Config) Host() HostConfig {
	return HostConfig{DataDir: c.DataDir, RaftAddr: c.RaftAddr, RaftListenAddr: c.RaftListenAddr, LogDB: c.LogDB, Transport: c.Transport,
		LogPrefill: c.LogPrefill, RTTMillisecond: c.RTTMillisecond, Disk: c.Disk, RaftTLS: c.RaftTLS, Insecure: c.Insecure, NoNotifyCommit: c.NoNotifyCommit,
		ApplyWorkers: c.ApplyWorkers, RaftLogMultiplex: c.RaftLogMultiplex, Logger: c.Logger, Registry: c.Registry, FS: c.FS, PebbleFS: c.PebbleFS, TransportFactory: c.TransportFactory}
}

// withHost returns c with the host's fields of h, so that a shard's Config
// says where it runs.
func (c Config) withHost(h HostConfig) Config {
	c.DataDir, c.RaftAddr, c.RaftListenAddr, c.LogDB, c.Transport = h.DataDir, h.RaftAddr, h.RaftListenAddr, h.LogDB, h.Transport
	c.LogPrefill, c.RTTMillisecond, c.Disk, c.RaftTLS, c.Insecure = h.LogPrefill, h.RTTMillisecond, h.Disk, h.RaftTLS, h.Insecure
	c.FS, c.PebbleFS, c.TransportFactory, c.NoNotifyCommit = h.FS, h.PebbleFS, h.TransportFactory, h.NoNotifyCommit
	c.ApplyWorkers, c.RaftLogMultiplex = h.ApplyWorkers, h.RaftLogMultiplex
	return c
}

// Validate checks the host's fields and names the flag to fix.
func (c *HostConfig) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("logger: --data-dir is required")
	case c.RaftAddr == "":
		return errors.New("logger: --raft-addr is required")
	case c.LogDB != "tan" && c.LogDB != "pebble":
		return fmt.Errorf("logger: --raft-logdb must be tan or pebble, got %q", c.LogDB)
	case c.Transport != TransportTCP && c.Transport != TransportDragonboat:
		return fmt.Errorf("logger: --raft-transport must be %s or %s, got %q", TransportTCP, TransportDragonboat, c.Transport)
	case c.RTTMillisecond == 0:
		return errors.New("logger: --raft-rtt-ms must be positive")
	case c.RaftLogMultiplex == MultiplexOn && c.LogDB != "tan":
		return fmt.Errorf("logger: --raft-log-multiplex needs --raft-logdb tan, got %q", c.LogDB)
	case c.ApplyWorkers < 0 || c.ApplyWorkers > maxApplyWorkers:
		return fmt.Errorf("logger: --raft-apply-workers must be 1 to %d (0: automatic), got %d", maxApplyWorkers, c.ApplyWorkers)
	}
	if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil && c.TransportFactory == nil {
		return fmt.Errorf("logger: --raft-addr %q: %v", c.RaftAddr, err)
	}
	if _, _, err := net.SplitHostPort(c.RaftListenAddr); c.RaftListenAddr != "" && err != nil {
		return fmt.Errorf("logger: --raft-listen-addr %q: %v", c.RaftListenAddr, err)
	}
	return validateRaftTLS(c.RaftTLS, c.Insecure, c.TransportFactory != nil)
}

// applyWorkers is the number of apply workers the host runs: single is a
// host that Start made for its one shard.
func (c *HostConfig) applyWorkers(single bool) int {
	switch {
	case c.ApplyWorkers > 0:
		return c.ApplyWorkers
	case single:
		return startApplyWorkers
	}
	return DefaultHostApplyWorkers
}

// StartHost starts a host with no shard: its NodeHost, transport and disk
// watch. Start shards on it with StartShard; Close stops them all.
func StartHost(cfg HostConfig) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return startHost(cfg, cfg.Logger, false, nil)
}

// startHost starts the host; single is a host that Start made for one
// shard. first, when set, is a shard the guard accepts frames for from the
// start (Start's one shard: a frame for it that arrives before the shard
// started is dropped by dragonboat, not counted as rejected, as when the
// guard was made for one shard).
func startHost(cfg HostConfig, log *slog.Logger, single bool, first *shardEntry) (*Host, error) {
	h := &Host{cfg: cfg, log: log, stop: make(chan struct{}), nodes: map[uint64]*Node{}}
	m, err := newHostMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	h.metrics = m
	// NB: every file the host writes goes through a diskGuard (diskfs.go).
	guard, err := h.startDisk()
	if err != nil {
		m.unregister()
		return nil, err
	}
	multiplexed := false
	if cfg.LogDB == "tan" {
		multiplexed, err = checkRaftLayout(cfg.FS, cfg.DataDir, cfg.RaftLogMultiplex, single)
		if err != nil {
			h.stopDisk()
			m.unregister()
			return nil, err
		}
	}
	h.fs = newDiskFS(cfg.FS, guard)
	h.pfs = newPebbleDiskFS(cfg.PebbleFS, guard)
	tf, shards := cfg.raftTransport(log)
	h.shards = shards
	if shards != nil && first != nil {
		shards.add(*first)
	}
	var onMembership func()
	if shards != nil {
		h.members = newMemberLoop(h.feeds)
		onMembership = h.members.wake
	}
	nhc := config.NodeHostConfig{
		NodeHostDir:    filepath.Join(cfg.DataDir, "raft"),
		WALDir:         filepath.Join(cfg.DataDir, "raft"),
		RTTMillisecond: cfg.RTTMillisecond,
		RaftAddress:    cfg.RaftAddr,
		ListenAddress:  cfg.RaftListenAddr,
		EnableMetrics:  true,
		// NB: the proposer learns when its entries commit on a quorum, as
		// well as when they apply: the ACK path's commit and apply stages.
		NotifyCommit:        !cfg.NoNotifyCommit,
		Expert:              config.ExpertConfig{FS: h.fs, TransportFactory: tf},
		SystemEventListener: &events{log: log, sends: m.snapshotSends, shared: !single, membership: onMembership},
	}
	cfg.dragonboatTLS(&nhc)
	// NB: one LogDB shard and small memtables keep the resident size low
	// (dragonboat's default reserves gigabytes). tan keeps a log of its
	// own per raft shard whatever the LogDB shards; ExecShards and
	// LogDB.Shards are in the data directory's flag file and cannot change
	// once a host has data (dragonboat's ErrHardSettingChanged), so a host
	// of many shards keeps two step workers too (docs/MULTISOURCE.md).
	nhc.Expert.LogDB = config.GetTinyMemLogDBConfig()
	nhc.Expert.LogDB.Shards = 1
	nhc.Expert.Engine = config.GetDefaultEngineConfig()
	nhc.Expert.Engine.ExecShards, nhc.Expert.Engine.CommitShards = 2, 2
	nhc.Expert.Engine.ApplyShards = uint64(cfg.applyWorkers(single))
	nhc.Expert.Engine.SnapshotShards, nhc.Expert.Engine.CloseShards = 2, 2
	if multiplexed {
		// NB: required, not tuned: a step worker's round must hold shards
		// of one multiplexed log only (tanmux.go).
		nhc.Expert.Engine.ExecShards = multiplexExecShards
	}
	if cfg.LogDB == "tan" {
		// NB: the wrapper's readers are needed without prefill too: log
		// files written with it end in zeros (see zeroedLogFS).
		prefill := cfg.LogPrefill
		var inner config.LogDBFactory = tan.Factory
		if multiplexed {
			inner = multiplexedTan{}
		}
		f := tanStateFactory{inner: inner, multiplexed: multiplexed, log: log,
			fs: func(fs config.IFS, log *slog.Logger) *zeroedLogFS {
				z := newZeroedLogFS(fs, log, prefill)
				z.files, z.spares = m.raftLogFiles, m.raftLogSpares
				return z
			}}
		nhc.Expert.LogDBFactory = f
		// NB: tan allocates 16 encoding buffers of this size up front (one
		// per possible LogDB shard; this host uses one), 64 MiB of Go heap
		// at the tiny config's 4 MiB that let the garbage collector grow
		// the heap by as much again. A raft update larger than 1 MiB gets a
		// buffer of its own, as it would past 4 MiB.
		nhc.Expert.LogDB.KVWriteBufferSize = 1 << 20
	}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		h.stopDisk()
		m.unregister()
		return nil, fmt.Errorf("logger: starting raft on %s (data in %s): %w", nhc.GetListenAddress(), cfg.DataDir, err)
	}
	h.nh = nh
	h.startMembers()
	return h, nil
}

// NodeHost returns the host's dragonboat NodeHost.
func (h *Host) NodeHost() *dragonboat.NodeHost { return h.nh }

// Config returns the host's configuration.
func (h *Host) Config() HostConfig { return h.cfg }

// Disk returns the host's last measure of its data directory's disk.
func (h *Host) Disk() DiskStatus { return h.disk.status() }

// Shards returns the ids of the shards running on the host: its Nodes'
// and its RawShards'.
func (h *Host) Shards() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]uint64, 0, len(h.nodes)+len(h.raw))
	for id := range h.nodes {
		ids = append(ids, id)
	}
	for id := range h.raw {
		ids = append(ids, id)
	}
	return ids
}

// Shard returns the host's Node of shard id, or nil.
func (h *Host) Shard(id uint64) *Node {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nodes[id]
}

// reserve claims shard id for a Node being started.
func (h *Host) reserve(n *Node) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if _, dup := h.nodes[n.cfg.ShardID]; dup || h.raw[n.cfg.ShardID] != nil {
		return fmt.Errorf("logger: shard %d already runs on this host", n.cfg.ShardID)
	}
	h.nodes[n.cfg.ShardID] = n
	return nil
}

// release forgets shard id's Node; it reports false once the host is
// closing, which stops every shard itself.
func (h *Host) release(n *Node) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.nodes[n.cfg.ShardID] == n {
		delete(h.nodes, n.cfg.ShardID)
	}
	return !h.closed
}

// Close stops every shard on the host, then the host.
func (h *Host) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	nodes := make([]*Node, 0, len(h.nodes))
	for _, n := range h.nodes {
		nodes = append(nodes, n)
	}
	raw := h.rawShards()
	h.mu.Unlock()
	for _, n := range nodes {
		n.shutdown()
	}
	for _, r := range raw {
		r.shutdown()
	}
	h.stopMembers()
	h.nh.Close()
	for _, n := range nodes {
		n.metrics.unregister()
	}
	h.stopDisk()
	h.metrics.unregister()
}
