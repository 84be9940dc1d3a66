package logger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	sm "github.com/lni/dragonboat/v4/statemachine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/binlogsvr/binlogsvr/logger/pki"
)

// Roles of a member.
const (
	RoleLogger  = "logger"  // voting: stores the log and counts toward the quorum
	RoleLearner = "learner" // non-voting: follows the committed log
)

// Config configures one member of the log's group.
type Config struct {
	ShardID   uint64
	ReplicaID uint64
	DataDir   string
	RaftAddr  string
	// RaftListenAddr is where the raft transport listens when peers reach
	// it at another address (RaftAddr); "" listens on RaftAddr.
	RaftListenAddr string
	// Members are the initial loggers, replica id → raft address. Used to
	// bootstrap a new group; ignored once the member has data.
	Members map[uint64]string
	// Join starts a member that an existing group added (no Members).
	Join bool
	Role string

	// LogDB is the raft log's storage: "tan" (dragonboat's log-structured
	// WAL, the default) or "pebble" (dragonboat's sharded Pebble).
	LogDB string
	// Transport is the raft transport: TransportTCP (the default) or
	// TransportDragonboat (dragonboat's built-in; the same wire format).
	Transport string
	// LogPrefill writes each of tan's raft log files full of zeros before
	// tan appends to it, so that its fsyncs flush data only (see
	// zeroedLogFS). Pointless on copy-on-write file systems.
	LogPrefill bool

	RTTMillisecond     uint64
	ElectionRTT        uint64
	HeartbeatRTT       uint64
	SnapshotEntries    uint64
	CompactionOverhead uint64
	// SnapshotBytes: also snapshot once the commands applied since the last
	// size-triggered snapshot hold this many bytes, and compact the raft log
	// to about as many bytes behind it (see compaction.go). 0: count only.
	SnapshotBytes uint64
	// ApplyWorkers is the host's number of apply goroutines (see
	// HostConfig.ApplyWorkers); 0: automatic.
	ApplyWorkers int
	// RaftLogMultiplex: see HostConfig.RaftLogMultiplex.
	RaftLogMultiplex Multiplex
	// Quiesce lets an idle shard stop its heartbeats (dragonboat's
	// config.Config.Quiesce, experimental there). Not a flag: measured for
	// hosts of many shards (docs/MULTISOURCE.md).
	Quiesce bool
	// NoNotifyCommit turns off dragonboat's NotifyCommit (host.go): a
	// proposal then learns only its outcome, not when it committed. A
	// hidden flag, --raft-notify-commit=false, for measuring it.
	NoNotifyCommit bool

	Retention Retention
	Disk      DiskConfig // disk.go: free space, a full disk

	// RaftTLS is this member's certificate and key and the fleet's CA for
	// the raft links (--raft-tls-*): mutual TLS between member
	// certificates, on either transport. Required unless Insecure.
	RaftTLS pki.Files
	// Insecure runs the raft links in plaintext (the daemon's --insecure).
	Insecure bool

	// OnNewerEncoding is called, instead of applying, when the member meets
	// a log entry in an encoding newer than it reads (sm.go): the daemon
	// exits saying to upgrade. nil: the error goes to dragonboat, which
	// stops the process.
	OnNewerEncoding func(*NewerEncodingError)

	Logger   *slog.Logger
	Registry prometheus.Registerer

	// Test seams: nil means the real disk and TCP.
	//
	// MaxEncoding (0: MaxEncoding) makes the member read, and report, only
	// encodings up to it, as an older binary would.
	MaxEncoding      byte
	FS               config.IFS
	PebbleFS         vfs.FS
	TransportFactory config.TransportFactory
}

// Retention is this member's own retention: files older than these limits
// are removed from this member only (the group's positions never change).
// Zero means no limit.
type Retention struct {
	MaxFiles int
	MaxBytes uint64
	MaxAge   time.Duration
}

// DefaultConfig returns a Config with the defaults of the flags.
//
// NB: the election timeout is 1 s (100 × 10 ms), as etcd's: a member's raft
// step loop that writes and fsyncs megabytes of large transactions can
// stall for 160–600 ms on a shared disk. A 300 ms timeout loses the leader
// to such a stall (64 proposers of 1 MiB: elections and failed proposals
// in most runs); 1 s rides it out.
func DefaultConfig() Config {
	return Config{ShardID: 1, Role: RoleLogger, LogDB: "tan", Transport: TransportTCP, LogPrefill: true, RTTMillisecond: 10, ElectionRTT: 100, HeartbeatRTT: 3,
		SnapshotEntries: 10000, CompactionOverhead: 5000, SnapshotBytes: 256 << 20, Disk: DefaultDiskConfig()}
}

// RegisterFlags registers the member's flags.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.Uint64Var(&c.ReplicaID, "id", c.ReplicaID, "this member's id in the group (a positive integer, unique in the fleet)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the raft log and the binlog store")
	fs.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "host:port this member's raft transport listens on and peers reach it at")
	fs.StringVar(&c.RaftListenAddr, "raft-listen-addr", c.RaftListenAddr, "host:port the raft transport listens on when peers reach it at another address (--raft-addr: a NAT, a port mapping or a proxy in front); default: --raft-addr")
	fs.Var((*membersFlag)(&c.Members), "members", "initial loggers as id=host:port,... (bootstraps a new group; include this member)")
	fs.BoolVar(&c.Join, "join", c.Join, "start a member that the group added with binlogctl (no --members)")
	fs.StringVar(&c.Role, "role", c.Role, "this member's role: logger (votes) or learner (non-voting)")
	fs.Uint64Var(&c.ShardID, "shard", c.ShardID, "the group's shard id (one per source cluster)")
	fs.StringVar(&c.LogDB, "raft-logdb", c.LogDB, "raft log storage: tan (fsyncs entries and term/vote changes) or pebble (fsyncs every raft update, commit-index moves too: slower); cannot change once a member has data")
	fs.StringVar(&c.Transport, "raft-transport", c.Transport, "raft transport between members: tcp (one write per message batch) or dragonboat (dragonboat's built-in, three writes per batch); both speak dragonboat's wire format, so members can differ")
	fs.BoolVar(&c.LogPrefill, "raft-log-prefill", c.LogPrefill, "write raft log files (tan, 64 MiB each) full of zeros before use, so that appending overwrites blocks already on disk and each fsync flushes data only, not the file system's journal: the first at start, each next one in the background while the log grows at 16 MiB/s or less (faster, files grow as they are appended to, as with false); use false on copy-on-write file systems such as btrfs or ZFS, where it does not help")
	fs.Uint64Var(&c.RTTMillisecond, "raft-rtt-ms", c.RTTMillisecond, "round trip time between members in milliseconds; election and heartbeat timeouts are multiples of it")
	fs.IntVar(&c.ApplyWorkers, "raft-apply-workers", c.ApplyWorkers, fmt.Sprintf("apply goroutines of the host's raft shards, 1 to %d; shard S applies on worker S modulo this, so shards that share a worker wait for each other's applies and ACKs "+
		"(0: %d on a one-source daemon, %d on a host of many sources)", maxApplyWorkers, startApplyWorkers, DefaultHostApplyWorkers))
	fs.VarPF(&c.RaftLogMultiplex, "raft-log-multiplex", "", "hosts of several sources (--catalog-members), --raft-logdb tan: shards share tan's raft log files, shard S in group S modulo 16 "+
		"(one log file and one step worker per group, one fsync per group per round) instead of one log file per shard and 2 step workers; fixed when the data directory is created: "+
		"auto creates it per-shard (multiplexing is an operator's choice until it has crash and retention tests of its own) and opens an existing one as it is, true or false refuse a data directory of the other layout; a one-source daemon always keeps one file per shard").NoOptDefVal = "true"
	fs.Uint64Var(&c.ElectionRTT, "raft-election-rtt", c.ElectionRTT, "election timeout in RTTs")
	fs.Uint64Var(&c.HeartbeatRTT, "raft-heartbeat-rtt", c.HeartbeatRTT, "heartbeat interval in RTTs")
	fs.Uint64Var(&c.SnapshotEntries, "snapshot-entries", c.SnapshotEntries, "take a state machine snapshot every this many entries")
	fs.Uint64Var(&c.CompactionOverhead, "compaction-overhead", c.CompactionOverhead, "raft entries kept after a snapshot for slow followers")
	fs.Uint64Var(&c.SnapshotBytes, "snapshot-bytes", c.SnapshotBytes, "also snapshot once the entries applied since the last such snapshot hold this many bytes, keeping about as many bytes of raft log behind it: "+
		"a new or far-behind member then gets a snapshot, not tens of MiB of entries (0: by --snapshot-entries only; ignored with --retain-*)")
	fs.IntVar(&c.Retention.MaxFiles, "retain-files", c.Retention.MaxFiles, "keep at most this many binlog files on this member (0: no limit)")
	fs.Uint64Var(&c.Retention.MaxBytes, "retain-bytes", c.Retention.MaxBytes, "keep at most this many bytes of binlog files on this member (0: no limit)")
	fs.StringVar(&c.RaftTLS.CA, "raft-tls-ca", c.RaftTLS.CA, "PEM file of the CA whose member certificates the raft links accept (binlogctl certs create-ca); re-read when it changes")
	fs.StringVar(&c.RaftTLS.Cert, "raft-tls-cert", c.RaftTLS.Cert, "PEM file of this member's certificate for the raft links (binlogctl certs create-member), issued for the host of --raft-addr; re-read when it changes")
	fs.StringVar(&c.RaftTLS.Key, "raft-tls-key", c.RaftTLS.Key, "PEM file of the key of --raft-tls-cert; re-read when it changes")
	fs.DurationVar(&c.Retention.MaxAge, "retain-age", c.Retention.MaxAge, "remove this member's binlog files older than this (0: keep forever)")
	c.Disk.RegisterFlags(fs)
	fs.Var((*invertedBool)(&c.NoNotifyCommit), "raft-notify-commit", "have dragonboat report each proposal's commit on a quorum before its outcome (the ACK path's commit stage); false saves the commit workers' hop on every raft round")
	fs.Lookup("raft-notify-commit").NoOptDefVal = "true"
	_ = fs.MarkHidden("raft-notify-commit")
}

// invertedBool is a bool flag that sets a field meaning its negation, so
// that the field's zero value is the flag's default.
type invertedBool bool

func (b *invertedBool) String() string { return strconv.FormatBool(!bool(*b)) }

func (b *invertedBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b = invertedBool(!v)
	return nil
}

func (b *invertedBool) Type() string { return "bool" }

// Validate checks the Config and names the flag to fix: the shard's own
// fields here, the host's in HostConfig.Validate.
func (c *Config) Validate() error {
	switch {
	case c.ReplicaID == 0:
		return errors.New("logger: --id is required and must be positive")
	case c.ShardID == 0:
		return errors.New("logger: --shard must be positive")
	case c.Role != RoleLogger && c.Role != RoleLearner:
		return fmt.Errorf("logger: --role must be %s or %s, got %q", RoleLogger, RoleLearner, c.Role)
	case c.Join && len(c.Members) > 0:
		return errors.New("logger: --join and --members exclude each other: --members bootstraps a new group, --join starts a member an existing group added")
	case c.ElectionRTT < 2*c.HeartbeatRTT || c.HeartbeatRTT == 0:
		return fmt.Errorf("logger: --raft-election-rtt (%d) must be at least twice --raft-heartbeat-rtt (%d), which must be positive", c.ElectionRTT, c.HeartbeatRTT)
	}
	h := c.Host()
	if err := h.Validate(); err != nil {
		return err
	}
	if len(c.Members) > 0 {
		addr, ok := c.Members[c.ReplicaID]
		if !ok {
			return fmt.Errorf("logger: --members does not list this member's id %d", c.ReplicaID)
		}
		if addr != c.RaftAddr {
			return fmt.Errorf("logger: --members gives %s for member %d, but --raft-addr is %s", addr, c.ReplicaID, c.RaftAddr)
		}
		if c.Role == RoleLearner {
			return errors.New("logger: a learner starts with --join; --members lists the initial loggers")
		}
	}
	return nil
}

// membersFlag parses "1=host:port,2=host:port".
type membersFlag map[uint64]string

// MembersValue is a pflag.Value over m parsing "1=host:port,2=host:port"
// as --members does (the daemon's --catalog-members uses it too).
func MembersValue(m *map[uint64]string) pflag.Value { return (*membersFlag)(m) }

func (m *membersFlag) String() string {
	if m == nil || *m == nil {
		return ""
	}
	ids := make([]uint64, 0, len(*m))
	for id := range *m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%d=%s", id, (*m)[id]))
	}
	return strings.Join(parts, ",")
}

func (m *membersFlag) Set(s string) error {
	out, err := ParseMembers(s)
	if err != nil {
		return err
	}
	*m = out
	return nil
}

func (m *membersFlag) Type() string { return "id=host:port,..." }

// ParseMembers parses "1=host:port,2=host:port".
func ParseMembers(s string) (map[uint64]string, error) {
	out := map[uint64]string{}
	seen := map[string]uint64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("member %q: want id=host:port", part)
		}
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("member %q: the id must be a positive integer", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("member %q: %v", part, err)
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("member id %d is listed twice", n)
		}
		if other, dup := seen[addr]; dup {
			return nil, fmt.Errorf("members %d and %d share the address %s", other, n, addr)
		}
		out[n], seen[addr] = addr, n
	}
	if len(out) == 0 {
		return nil, errors.New("no members given")
	}
	return out, nil
}

// Node is one member of the log's group: the replica of the log's shard
// that runs on a Host (host.go). Start gives it a Host of its own.
type Node struct {
	cfg     Config
	log     *slog.Logger
	host    *Host
	owns    bool // the host is this Node's own (Start): Close closes it
	nh      *dragonboat.NodeHost
	metrics *metrics

	mu sync.Mutex
	sm *SM

	// Snapshots by size (compaction.go): onApply signals snapDue once the
	// applied bytes reach snapAt; nil when off.
	snapDue chan struct{}
	snapAt  atomic.Uint64

	feed *memberFeed // the tcp transport's membership of this shard; nil on other transports

	ctx      context.Context // canceled by Close
	cancel   context.CancelFunc
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// Start starts the member and its shard on a host of its own: one shard
// per process, as a one-source daemon runs. It returns once the shard is
// started; the group may not have a leader yet.
func Start(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("shard", cfg.ShardID, "replica", cfg.ReplicaID)
	// NB: the guard accepts the shard's frames from the start, as when
	// the guard was made for one shard.
	var feed *memberFeed
	var first *shardEntry
	if cfg.TransportFactory == nil && cfg.Transport == TransportTCP {
		feed = newMemberFeed(cfg.ShardID, cfg.Members)
		first = &shardEntry{shard: cfg.ShardID, replica: cfg.ReplicaID, peers: feed.peers}
	}
	h, err := startHost(cfg.Host(), log, true, first)
	if err != nil {
		return nil, err
	}
	n, err := h.startShard(cfg, log, feed)
	if err != nil {
		h.Close()
		return nil, err
	}
	n.owns = true
	return n, nil
}

// StartShard starts a replica of shard cfg.ShardID on the host. Of cfg it
// reads the shard's fields: ShardID, ReplicaID (this host's replica of the
// shard), Members, Join, Role, ElectionRTT, HeartbeatRTT, SnapshotEntries,
// CompactionOverhead, SnapshotBytes, Retention, OnNewerEncoding,
// MaxEncoding, Logger and Registry (the shard's metrics: on a host of
// several shards, give each its own registry or one wrapped with a label,
// since every shard registers the same names); the host's fields are the
// host's. Its state machine is DataDir/binlog/shard-S-replica-R. Close the
// Node to stop the replica (the shard's data stays); closing the host
// stops every shard on it.
func (h *Host) StartShard(cfg Config) (*Node, error) {
	cfg = cfg.withHost(h.cfg)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = h.cfg.Logger
	}
	log := cfg.Logger.With("shard", cfg.ShardID, "replica", cfg.ReplicaID)
	var feed *memberFeed
	if h.shards != nil {
		feed = newMemberFeed(cfg.ShardID, cfg.Members)
	}
	return h.startShard(cfg, log, feed)
}

// startShard starts the replica: feed (nil on transports without a guard)
// is the shard's membership for the guard.
func (h *Host) startShard(cfg Config, log *slog.Logger, feed *memberFeed) (*Node, error) {
	n := &Node{cfg: cfg, log: log, host: h, nh: h.nh, feed: feed, stop: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := h.reserve(n); err != nil {
		return nil, err
	}
	fail := func(err error) (*Node, error) {
		if n.feed != nil && h.shards != nil {
			h.shards.remove(cfg.ShardID, n.feed.peers)
		}
		if n.metrics != nil {
			n.metrics.unregister()
		}
		h.release(n)
		n.cancel()
		return nil, err
	}
	if cfg.sizeSnapshotsOn() {
		n.snapDue = make(chan struct{}, 1)
		n.snapAt.Store(cfg.SnapshotBytes)
	} else if cfg.SnapshotBytes > 0 {
		n.log.Info("snapshots by size are off on a member with its own retention: its snapshots lack the files it removed")
	}
	m, err := newMetrics(cfg.Registry, n)
	if err != nil {
		return fail(err)
	}
	n.metrics = m
	if n.feed != nil {
		n.feed.loop.Store(h.members)
		if h.shards != nil {
			h.shards.add(shardEntry{shard: cfg.ShardID, replica: cfg.ReplicaID, peers: n.feed.peers})
		}
	}
	traceStart(cfg.ReplicaID)
	rc := config.Config{
		ReplicaID: cfg.ReplicaID, ShardID: cfg.ShardID, CheckQuorum: true, PreVote: true,
		ElectionRTT: cfg.ElectionRTT, HeartbeatRTT: cfg.HeartbeatRTT,
		SnapshotEntries: cfg.SnapshotEntries, CompactionOverhead: cfg.CompactionOverhead,
		OrderedConfigChange: true, IsNonVoting: cfg.Role == RoleLearner, Quiesce: cfg.Quiesce,
	}
	pfs := h.pfs
	if pfs == nil {
		pfs = vfs.Default
	}
	smDir := filepath.Join(h.cfg.DataDir, "binlog", fmt.Sprintf("shard-%d-replica-%d", cfg.ShardID, cfg.ReplicaID))
	create := func(shardID, replicaID uint64) sm.IOnDiskStateMachine {
		s := newSM(shardID, replicaID, smDir, pfs, n.log)
		s.onApply = n.onApply
		s.onNewer = cfg.OnNewerEncoding
		s.maxEnc = n.maxEncoding()
		n.mu.Lock()
		n.sm = s
		n.mu.Unlock()
		return s
	}
	members := map[uint64]dragonboat.Target{}
	for id, addr := range cfg.Members {
		members[id] = addr
	}
	if err := h.nh.StartOnDiskReplica(members, cfg.Join, create, rc); err != nil {
		return fail(fmt.Errorf("logger: starting shard %d as member %d: %w", cfg.ShardID, cfg.ReplicaID, err))
	}
	n.wg.Add(2)
	go n.retentionLoop()
	go n.reportEncodingLoop() // gate.go
	if n.snapDue != nil {
		n.wg.Add(1)
		go n.sizeSnapshotLoop()
	}
	return n, nil
}

// Host returns the host the member runs on.
func (n *Node) Host() *Host { return n.host }

// NodeHost returns the dragonboat NodeHost (for membership calls).
func (n *Node) NodeHost() *dragonboat.NodeHost { return n.nh }

// Config returns the member's configuration.
func (n *Node) Config() Config { return n.cfg }

// SM returns the member's state machine, or nil before dragonboat made it.
func (n *Node) SM() *SM {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sm
}

// Reader returns a reader of this member's committed log.
func (n *Node) Reader() *Reader {
	if s := n.SM(); s != nil {
		return s.Reader()
	}
	return nil
}

// LeaderID returns the current leader's id, if one is known.
func (n *Node) LeaderID() (uint64, bool) {
	id, _, ok, err := n.nh.GetLeaderID(n.cfg.ShardID)
	if err != nil || !ok {
		return 0, false
	}
	return id, true
}

// IsLeader reports whether this member leads the group.
func (n *Node) IsLeader() bool {
	id, ok := n.LeaderID()
	return ok && id == n.cfg.ReplicaID
}

// Membership is the group's configuration.
type Membership struct {
	Loggers  map[uint64]string
	Learners map[uint64]string
	Removed  map[uint64]struct{}
}

// Membership reads the group's membership (a linearizable read).
func (n *Node) Membership(ctx context.Context) (Membership, error) {
	m, err := n.nh.SyncGetShardMembership(ctx, n.cfg.ShardID)
	if err != nil {
		return Membership{}, classify(err)
	}
	return Membership{Loggers: m.Nodes, Learners: m.NonVotings, Removed: m.Removed}, nil
}

// Propose proposes one command and waits for its result. A result code
// other than ResultOK/ResultDuplicate is returned with a nil error: the
// command was ordered and rejected, identically on every member. An error
// means the outcome is unknown (ErrRetry) or the member cannot propose.
func (n *Node) Propose(ctx context.Context, c Command) (Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	start := time.Now()
	b, err := n.encodeFor(ctx, c)
	if err != nil {
		return Result{}, err
	}
	res, err := n.nh.SyncPropose(ctx, n.nh.GetNoOPSession(n.cfg.ShardID), b)
	if err != nil {
		n.metrics.proposals.WithLabelValues(KindOf(c).String(), "error").Inc()
		return Result{}, classify(err)
	}
	r := decodeResult(res.Value, res.Data)
	n.metrics.proposals.WithLabelValues(KindOf(c).String(), r.Code.String()).Inc()
	n.metrics.commitLatency.Observe(time.Since(start).Seconds())
	return r, nil
}

// ProposeAsync proposes c and returns a function that waits for its
// result. Commands proposed by successive calls from one goroutine enter
// the log in call order (unless one is dropped), which is what lets the
// Proposer keep several Appends in flight. The wait function has Propose's
// result contract; it also returns when the entry committed on a quorum:
// when dragonboat reported it (NotifyCommit), else, for a completed
// proposal, when its result came (a completed entry is committed); zero if
// the outcome is not a completed proposal and no commit was reported.
func (n *Node) ProposeAsync(c Command, timeout time.Duration) (func() (Result, time.Time, error), error) {
	start := time.Now()
	kind := KindOf(c).String()
	trace("prop", 0, 0)
	rs, err := n.nh.Propose(n.nh.GetNoOPSession(n.cfg.ShardID), Encode(c), timeout)
	if err != nil {
		n.metrics.proposals.WithLabelValues(kind, "error").Inc()
		return nil, classify(err)
	}
	return func() (Result, time.Time, error) {
		defer rs.Release()
		// NB: with NotifyCommit, ResultC delivers the commit first (when
		// it happened before the outcome), then the outcome; without it,
		// the outcome only. The outcome is always delivered: dragonboat
		// times the request out itself. dragonboat's Committed() is true
		// for the commit notice AND for a completed outcome
		// (request.go:142), so the notice is Committed() && !Completed():
		// a completed outcome taken for the notice waits for a second
		// value that never comes (NotifyCommit off: every proposal).
		var committed time.Time
		r := <-rs.ResultC()
		if r.Committed() && !r.Completed() {
			committed = time.Now()
			trace("cmt", 0, 0)
			r = <-rs.ResultC()
		}
		trace("res", 0, 0)
		if committed.IsZero() && r.Completed() {
			committed = time.Now() // NB: no notice (NotifyCommit off): the commit stage includes the apply
		}
		var err error
		switch {
		case r.Completed():
			res := r.GetResult()
			out := decodeResult(res.Value, res.Data)
			n.metrics.proposals.WithLabelValues(kind, out.Code.String()).Inc()
			n.metrics.commitLatency.Observe(time.Since(start).Seconds())
			return out, committed, nil
		case r.Rejected():
			err = dragonboat.ErrRejected
		case r.Timeout():
			err = dragonboat.ErrTimeout
		case r.Terminated():
			err = dragonboat.ErrShardClosed
		case r.Dropped():
			err = dragonboat.ErrShardNotReady
		case r.Aborted():
			err = dragonboat.ErrAborted
		default:
			err = fmt.Errorf("unknown request outcome %v", r)
		}
		n.metrics.proposals.WithLabelValues(kind, "error").Inc()
		return Result{}, committed, classify(err)
	}, nil
}

// Close stops the member and joins its goroutines. A Node that Start made
// closes its host too; one that Host.StartShard made stops its replica on
// the host (its data stays) and leaves the other shards running.
func (n *Node) Close() {
	n.shutdown()
	if n.owns {
		n.host.Close()
		return
	}
	if !n.host.release(n) {
		return // the host is closing: it stops the replica
	}
	if err := n.nh.StopReplica(n.cfg.ShardID, n.cfg.ReplicaID); err != nil && !errors.Is(err, dragonboat.ErrShardNotFound) {
		n.log.Warn("stopping the shard's replica", "err", err)
	}
	if n.feed != nil && n.host.shards != nil {
		n.host.shards.remove(n.cfg.ShardID, n.feed.peers)
	}
	n.metrics.unregister()
}

// shutdown stops the member's own goroutines and joins them (once).
func (n *Node) shutdown() {
	n.stopOnce.Do(func() {
		close(n.stop)
		n.cancel()
		n.wg.Wait()
	})
}

// retentionLoop applies this member's own retention every few seconds.
func (n *Node) retentionLoop() {
	defer n.wg.Done()
	r := n.cfg.Retention
	if r.MaxFiles == 0 && r.MaxBytes == 0 && r.MaxAge == 0 {
		return
	}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if err := n.EnforceRetention(time.Now()); err != nil {
			n.log.Warn("retention: local purge failed", "err", err)
		}
	}
}

// EnforceRetention removes this member's copy of the files beyond its own
// retention now (the member also does so every few seconds).
func (n *Node) EnforceRetention(now time.Time) error {
	s := n.SM()
	if s == nil {
		return nil
	}
	files, err := s.Reader().Files()
	if err != nil || len(files) < 2 {
		return err
	}
	upTo := RetentionCut(files, n.cfg.Retention, now)
	if upTo == 0 {
		return nil
	}
	first, err := s.PurgeLocal(upTo)
	if err == nil {
		n.log.Info("retention: purged this member's old binlog files", "first_file", FileName(first))
	}
	return err
}

// RetentionCut returns the first file to keep under r (0: keep all). The
// last (open) file is always kept. Pure: now is passed in.
func RetentionCut(files []FileMeta, r Retention, now time.Time) uint32 {
	keep := len(files) - 1 // index of the oldest file kept; the last one always
	var total uint64
	for i := len(files) - 1; i >= 0; i-- {
		f := files[i]
		total += f.Size
		if i == len(files)-1 {
			continue
		}
		if r.MaxFiles > 0 && len(files)-i > r.MaxFiles {
			break
		}
		if r.MaxBytes > 0 && total > r.MaxBytes {
			break
		}
		if r.MaxAge > 0 && f.LastTime != 0 && now.Sub(time.Unix(int64(f.LastTime), 0)) > r.MaxAge {
			break
		}
		keep = i
	}
	if keep == 0 {
		return 0
	}
	return files[keep].Number
}

// LocalMembership is this member's own, possibly stale, view of the voting
// members, read without a quorum: for status pages during an outage, when
// the linearizable Membership cannot answer.
func (n *Node) LocalMembership() (Membership, bool) {
	info := n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
	for _, si := range info.ShardInfoList {
		if si.ShardID == n.cfg.ShardID {
			m := Membership{Loggers: map[uint64]string{}, Learners: map[uint64]string{}}
			for id, addr := range si.Replicas {
				m.Loggers[id] = addr
			}
			return m, len(m.Loggers) > 0
		}
	}
	return Membership{}, false
}
