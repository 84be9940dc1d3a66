package logger

import (
	"log/slog"
	"maps"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
	"github.com/prometheus/client_golang/prometheus"
)

// What arrives on the tcp raft transport is checked here before dragonboat
// sees it. dragonboat trusts its peers: a message batch whose source
// address is malformed panics its address registry ("invalid target"), one
// naming a known replica at another address panics it too ("inconsistent
// target"), a message without a target panics the node host, and a forged
// RequestVote or Replicate from anywhere moves the group's term. The guard
// lets through only batches from this deployment, and of each batch only
// the messages of a shard this host runs (shardSet), addressed to the
// host's replica of that shard, of the message types raft sends between
// members, whose sender is a member of that shard's group at the address
// that shard's membership records for it.
//
// A host of several shards gets batches that carry messages of several
// shards: dragonboat's transport queues messages by target address (and
// shard id modulo its stream connections), not by shard. A message that
// fails is dropped alone and the rest of its batch goes on, so that one
// shard's stranger, or a shard this host stopped running a moment ago,
// never holds up another shard's traffic.
//
// NB: the membership is the one this member knows (peerSet, one per
// shard), kept current by the host's member loop (transport_members.go).
// A member that joins an existing group knows none until the first
// snapshot or configuration entry reaches it; until then the guard pins
// each sender id to the first address it came from, which is what
// keeps dragonboat's registry from panicking. Mutual TLS is what keeps
// strangers out in that window.

// Reasons a frame is rejected (the label of the rejected-frames counter).
const (
	rejectFrame      = "frame"      // bad magic, header or checksum; too large
	rejectDecode     = "decode"     // the payload is not a message batch or chunk
	rejectDeployment = "deployment" // another deployment id or binary version
	rejectSource     = "source"     // missing or malformed source address
	rejectShard      = "shard"      // another shard
	rejectTarget     = "target"     // not addressed to this replica
	rejectType       = "type"       // a message type raft does not send between members
	rejectSender     = "sender"     // the sender is not a member at that address
	rejectSize       = "size"       // a chunk larger than dragonboat ever sends
	rejectTLS        = "tls"        // the TLS handshake failed or the peer is not a member
	rejectConns      = "connections"
	rejectPanic      = "panic" // handling the frame panicked (the connection is closed)
)

// wireTypes are the message types raft sends to other members; the rest
// (ticks, elections, snapshot installs, unreachable notices) are local to
// a node and must never come from the network.
var wireTypes = map[pb.MessageType]bool{
	pb.Propose: true, pb.ReadIndex: true, pb.ReadIndexResp: true, pb.LeaderTransfer: true,
	pb.Replicate: true, pb.ReplicateResp: true, pb.Heartbeat: true, pb.HeartbeatResp: true,
	pb.RequestVote: true, pb.RequestVoteResp: true, pb.RequestPreVote: true, pb.RequestPreVoteResp: true,
	pb.TimeoutNow: true, pb.RateLimit: true, pb.Quiesce: true, pb.SnapshotReceived: true,
}

// maxAddrLen bounds a source address (a host name is at most 253 bytes).
const maxAddrLen = 300

// validAddr is the tcp transport's address rule (host:port, a host and a
// positive port), which dragonboat's registry also applies.
func validAddr(addr string) bool {
	if len(addr) > maxAddrLen {
		return false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n > 0
}

// peerSet is the membership the guard checks senders against: replica id →
// raft address of every logger and learner. Safe for concurrent use.
type peerSet struct {
	view atomic.Pointer[map[uint64]string] // nil: not known yet

	// refresh, when set, re-reads the membership after a sender was not
	// found (a member added since the last update); called at most every
	// refreshEvery.
	refresh     func()
	refreshMu   sync.Mutex
	lastRefresh time.Time

	pinMu  sync.Mutex
	pinned map[uint64]string // senders seen while the membership is unknown
}

const refreshEvery = 50 * time.Millisecond

func newPeerSet(initial map[uint64]string) *peerSet {
	p := &peerSet{pinned: map[uint64]string{}}
	p.Set(initial)
	return p
}

// Set replaces the membership; an empty one leaves it as it was (a member
// never has an empty membership once it knows one).
func (p *peerSet) Set(m map[uint64]string) {
	if len(m) == 0 {
		return
	}
	c := maps.Clone(m)
	p.view.Store(&c)
}

// Members returns a copy of the membership, nil while unknown.
func (p *peerSet) Members() map[uint64]string {
	if v := p.view.Load(); v != nil {
		return maps.Clone(*v)
	}
	return nil
}

// admit reports whether replica id from may send from addr.
func (p *peerSet) admit(from uint64, addr string) bool {
	if ok, known := p.lookup(from, addr); known {
		if ok {
			return true
		}
		if !p.tryRefresh() {
			return false
		}
		ok, _ = p.lookup(from, addr)
		return ok
	}
	// NB: membership not known yet (a joining member): the first address
	// a sender id comes from is the one dragonboat's registry keeps.
	p.pinMu.Lock()
	defer p.pinMu.Unlock()
	if a, ok := p.pinned[from]; ok {
		return a == addr
	}
	if len(p.pinned) >= 64 {
		return false
	}
	p.pinned[from] = addr
	return true
}

// isMember reports whether replica id from is a member (true while the
// membership is unknown).
func (p *peerSet) isMember(from uint64) bool {
	v := p.view.Load()
	if v == nil {
		return true
	}
	if _, ok := (*v)[from]; ok {
		return true
	}
	if !p.tryRefresh() {
		return false
	}
	_, ok := (*p.view.Load())[from]
	return ok
}

// lookup: known is false while the membership is unknown.
func (p *peerSet) lookup(from uint64, addr string) (ok, known bool) {
	v := p.view.Load()
	if v == nil {
		return false, false
	}
	a, found := (*v)[from]
	return found && a == addr, true
}

func (p *peerSet) tryRefresh() bool {
	if p.refresh == nil {
		return false
	}
	p.refreshMu.Lock()
	defer p.refreshMu.Unlock()
	if time.Since(p.lastRefresh) < refreshEvery {
		return false
	}
	p.lastRefresh = time.Now()
	p.refresh()
	return true
}

// shardEntry is one shard the host runs: the host's replica of it and
// the shard's membership.
type shardEntry struct {
	shard   uint64
	replica uint64
	peers   *peerSet
}

// shardSet is the shards a host runs, read on every frame without a lock.
type shardSet struct {
	mu   sync.Mutex // serializes writers
	view atomic.Pointer[map[uint64]shardEntry]
}

func newShardSet() *shardSet {
	s := &shardSet{}
	s.view.Store(&map[uint64]shardEntry{})
	return s
}

// add makes the guard accept frames for e.shard (replacing an entry).
func (s *shardSet) add(e shardEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := maps.Clone(*s.view.Load())
	m[e.shard] = e
	s.view.Store(&m)
}

// remove stops accepting frames for shard, if its entry is still peers'.
func (s *shardSet) remove(shard uint64, peers *peerSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := (*s.view.Load())[shard]; !ok || e.peers != peers {
		return
	}
	m := maps.Clone(*s.view.Load())
	delete(m, shard)
	s.view.Store(&m)
}

func (s *shardSet) get(shard uint64) (shardEntry, bool) {
	e, ok := (*s.view.Load())[shard]
	return e, ok
}

// frameGuard holds what a frame must match, and counts and logs the
// frames it rejects.
type frameGuard struct {
	deployment uint64
	shards     *shardSet // nil: frames are not checked (tests of the framing)
	maxChunk   int       // largest chunk data accepted

	rejected *prometheus.CounterVec // nil: not counted
	log      *slog.Logger
	lastLog  atomic.Int64 // unix nanoseconds of the last line logged
	dropped  atomic.Int64 // lines not logged since
}

// logEvery rate-limits the guard's log lines: a peer sending garbage in a
// loop must not fill the disk.
const logEvery = 5 * time.Second

// checkBatch drops from b every message that must not reach dragonboat
// and returns why the first was dropped, or "" when none was. A batch
// whose deployment or source address is bad loses all its messages.
func (g *frameGuard) checkBatch(b *pb.MessageBatch) string {
	switch {
	case b.DeploymentId != g.deployment || b.BinVer != raftio.TransportBinVersion:
		b.Requests = nil
		return rejectDeployment
	case !validAddr(b.SourceAddress):
		b.Requests = nil
		return rejectSource
	case len(b.Requests) == 0:
		return rejectDecode
	}
	var reason string
	// NB: one host runs one replica of a shard, so every message of a
	// shard in a batch comes from the same sender; senders holds it.
	var senders map[uint64]uint64
	kept := b.Requests[:0]
	for i := range b.Requests {
		m := b.Requests[i]
		why := g.checkMessage(&m, b.SourceAddress, &senders)
		if why == "" {
			kept = append(kept, m)
		} else if reason == "" {
			reason = why
		}
	}
	clear(b.Requests[len(kept):])
	b.Requests = kept
	return reason
}

// checkMessage returns why m, in a batch from addr, must not reach
// dragonboat, or "".
func (g *frameGuard) checkMessage(m *pb.Message, addr string, senders *map[uint64]uint64) string {
	e, ok := g.shards.get(m.ShardID)
	switch {
	case !ok:
		return rejectShard
	case m.To != e.replica:
		return rejectTarget
	case !wireTypes[m.Type]:
		return rejectType
	case m.From == 0 || m.From == e.replica:
		return rejectSender
	}
	if from, seen := (*senders)[m.ShardID]; seen {
		if from != m.From {
			return rejectSender
		}
		return ""
	}
	if !e.peers.admit(m.From, addr) {
		return rejectSender
	}
	if *senders == nil {
		*senders = map[uint64]uint64{}
	}
	(*senders)[m.ShardID] = m.From
	return ""
}

// checkChunk returns why c must not reach dragonboat, or "". A chunk names
// no address: its sender must be a member of its shard.
func (g *frameGuard) checkChunk(c *pb.Chunk) string {
	if c.DeploymentId != g.deployment || c.BinVer != raftio.TransportBinVersion {
		return rejectDeployment
	}
	e, ok := g.shards.get(c.ShardID)
	switch {
	case !ok:
		return rejectShard
	case c.ReplicaID != e.replica:
		return rejectTarget
	case len(c.Data) > g.maxChunk:
		return rejectSize
	case c.From == 0 || c.From == e.replica || !e.peers.isMember(c.From):
		return rejectSender
	}
	return ""
}

// reject counts a rejected frame and logs one line, at most every
// logEvery.
func (g *frameGuard) reject(reason, peer string, err error) {
	if g.rejected != nil {
		g.rejected.WithLabelValues(reason).Inc()
	}
	now := time.Now().UnixNano()
	last := g.lastLog.Load()
	if now-last < int64(logEvery) || !g.lastLog.CompareAndSwap(last, now) {
		g.dropped.Add(1)
		return
	}
	args := []any{"peer", peer, "reason", reason}
	if err != nil {
		args = append(args, "err", err)
	}
	if n := g.dropped.Swap(0); n > 0 {
		args = append(args, "not_logged_since_last", n)
	}
	g.log.Warn("raft transport: rejected a frame or connection", args...)
}

func newRejectedFrames() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "binlogsvr_logger_raft_frames_rejected_total",
		Help: "Raft transport frames and connections refused before dragonboat saw them, by reason (frame, decode, deployment, source, shard, target, type, sender, size, tls, connections, panic).",
	}, []string{"reason"})
}
