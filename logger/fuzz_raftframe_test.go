package logger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var guardMembers = map[uint64]string{1: "127.0.0.1:1001", 2: "127.0.0.1:1002", 3: "127.0.0.1:1003"}

// guarded is a tcp transport of member 1 of shard 1 (deployment 1) with
// the production guard, not started: tests hand it connections.
type guarded struct {
	tr      *tcpTransport
	mu      sync.Mutex
	batches []pb.MessageBatch
	chunks  []pb.Chunk
}

func newGuarded() *guarded {
	g := &guarded{}
	shards := newShardSet()
	shards.add(shardEntry{shard: 1, replica: 1, peers: newPeerSet(guardMembers)})
	f := &tcpFactory{log: slog.New(slog.DiscardHandler), shards: shards}
	g.tr = f.Create(config.NodeHostConfig{RaftAddress: guardMembers[1]},
		func(b pb.MessageBatch) { g.mu.Lock(); g.batches = append(g.batches, b); g.mu.Unlock() },
		func(c pb.Chunk) bool { g.mu.Lock(); g.chunks = append(g.chunks, c); g.mu.Unlock(); return true }).(*tcpTransport)
	// NB: the guard does not log more than once per logEvery anyway.
	g.tr.guard.lastLog.Store(time.Now().Add(time.Hour).UnixNano())
	return g
}

// feed writes b into an accepted connection as a peer would and closes
// it; the transport serves it with the code that serves real connections
// (handle: recover, serve, the guard). It returns when the handler ended.
func (g *guarded) feed(b []byte) {
	srv, cli := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer srv.Close()
		g.tr.handle(srv)
	}()
	go io.Copy(io.Discard, cli) // the poison's answer
	cli.SetWriteDeadline(time.Now().Add(2 * time.Second))
	cli.Write(b)
	cli.Close()
	<-done
}

func guardBatch(src string, from, to uint64, typ pb.MessageType, term uint64) []byte {
	b := pb.MessageBatch{DeploymentId: 1, BinVer: raftio.TransportBinVersion, SourceAddress: src,
		Requests: []pb.Message{{Type: typ, ShardID: 1, From: from, To: to, Term: term}}}
	p, _ := b.Marshal()
	return frame(wireRaft, p)
}

func guardChunk(shard, to, from uint64, data []byte) []byte {
	c := pb.Chunk{DeploymentId: 1, BinVer: raftio.TransportBinVersion, ShardID: shard, ReplicaID: to, From: from, ChunkCount: 1, Data: data}
	p, _ := c.Marshal()
	return frame(wireSnapshot, p)
}

func poison51() []byte {
	b := append([]byte("\n"), bytes.Repeat([]byte("0"), 49)...)
	return append(b, 0x98)
}

func hugeHeader() []byte {
	f := frame(wireRaft, []byte("x"))
	h := f[2:wireHeadLen]
	binary.BigEndian.PutUint64(h[2:], 1<<30)
	binary.BigEndian.PutUint32(h[10:], 0)
	binary.BigEndian.PutUint32(h[10:], crc32.ChecksumIEEE(h))
	return f
}

// Each crafted frame is rejected for its reason and never reaches
// dragonboat; a good one does.
func TestGuardRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		b      []byte
		reason string
	}{
		{"invalid target x", guardBatch("x", 2, 1, pb.Heartbeat, 1), rejectSource},
		{"empty source", guardBatch("", 2, 1, pb.Heartbeat, 1), rejectSource},
		{"inconsistent target", guardBatch("127.0.0.1:1003", 2, 1, pb.Heartbeat, 1), rejectSender},
		{"unknown address", guardBatch("127.0.0.9:9999", 9, 1, pb.RequestVote, 1000), rejectSender},
		{"from itself", guardBatch(guardMembers[1], 1, 1, pb.Heartbeat, 1), rejectSender},
		{"no target", guardBatch(guardMembers[2], 2, 0, pb.Heartbeat, 1), rejectTarget},
		{"other replica", guardBatch(guardMembers[2], 2, 3, pb.Heartbeat, 1), rejectTarget},
		{"local type", guardBatch(guardMembers[2], 2, 1, pb.Election, 1), rejectType},
		{"install snapshot", guardBatch(guardMembers[2], 2, 1, pb.InstallSnapshot, 1), rejectType},
		{"51-byte payload", frame(wireRaft, poison51()), rejectDecode},
		{"1 GiB header", hugeHeader(), rejectFrame},
		{"chunk from a stranger", guardChunk(1, 1, 9, []byte("x")), rejectSender},
		{"chunk of another shard", guardChunk(7, 1, 2, []byte("x")), rejectShard},
		{"chunk too large", guardChunk(1, 1, 2, make([]byte, wireMaxChunk+1)), rejectFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuarded()
			g.feed(tc.b)
			if n := len(g.batches) + len(g.chunks); n != 0 {
				t.Fatalf("%d batches or chunks reached dragonboat", n)
			}
			if got := testutil.ToFloat64(g.tr.guard.rejected.WithLabelValues(tc.reason)); got != 1 {
				t.Fatalf("rejected{reason=%q} = %v, want 1", tc.reason, got)
			}
		})
	}
	g := newGuarded()
	g.feed(append(guardBatch(guardMembers[2], 2, 1, pb.Heartbeat, 1), guardChunk(1, 1, 3, []byte("x"))...))
	if len(g.batches) != 1 || len(g.chunks) != 1 {
		t.Fatalf("a good batch and chunk: %d and %d reached dragonboat", len(g.batches), len(g.chunks))
	}
}

// A host of two shards: a batch that carries both shards' messages loses
// only the ones that fail, each checked against its own shard's
// membership, and the rest reach dragonboat.
func TestGuardManyShards(t *testing.T) {
	g := newGuarded()
	// Shard 2: this host is replica 5 of members 4, 5, 6; host 2's
	// address is member 4's.
	g.tr.guard.shards.add(shardEntry{shard: 2, replica: 5, peers: newPeerSet(map[uint64]string{4: guardMembers[2], 5: guardMembers[1], 6: guardMembers[3]})})
	batch := func(msgs ...pb.Message) []byte {
		b := pb.MessageBatch{DeploymentId: 1, BinVer: raftio.TransportBinVersion, SourceAddress: guardMembers[2], Requests: msgs}
		p, _ := b.Marshal()
		return frame(wireRaft, p)
	}
	hb := func(shard, from, to uint64) pb.Message {
		return pb.Message{Type: pb.Heartbeat, ShardID: shard, From: from, To: to, Term: 1}
	}
	for _, tc := range []struct {
		name   string
		b      []byte
		kept   []uint64 // shard ids of the messages delivered
		reason string
	}{
		{"both shards' members", batch(hb(1, 2, 1), hb(2, 4, 5)), []uint64{1, 2}, ""},
		{"shard 1's id 4 is no member of it", batch(hb(1, 4, 1), hb(2, 4, 5)), []uint64{2}, rejectSender},
		{"shard 2's member 6 is at another address", batch(hb(1, 2, 1), hb(2, 6, 5)), []uint64{1}, rejectSender},
		{"shard 2 addressed to replica 1", batch(hb(2, 4, 1), hb(1, 2, 1)), []uint64{1}, rejectTarget},
		{"a shard this host does not run", batch(hb(7, 2, 1), hb(2, 4, 5)), []uint64{2}, rejectShard},
		{"two senders of shard 2", batch(hb(2, 4, 5), hb(2, 6, 5), hb(1, 2, 1)), []uint64{2, 1}, rejectSender},
		{"nothing left", batch(hb(7, 2, 1)), nil, rejectShard},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.mu.Lock()
			g.batches = nil
			g.mu.Unlock()
			before := map[string]float64{}
			for _, r := range []string{rejectSender, rejectTarget, rejectShard} {
				before[r] = testutil.ToFloat64(g.tr.guard.rejected.WithLabelValues(r))
			}
			g.feed(tc.b)
			var got []uint64
			for _, b := range g.batches {
				for _, m := range b.Requests {
					got = append(got, m.ShardID)
				}
			}
			if len(got) != len(tc.kept) || (len(got) > 0 && fmt.Sprint(got) != fmt.Sprint(tc.kept)) {
				t.Fatalf("delivered messages of shards %v, want %v", got, tc.kept)
			}
			for r, n := range before {
				want := n
				if r == tc.reason {
					want++
				}
				if got := testutil.ToFloat64(g.tr.guard.rejected.WithLabelValues(r)); got != want {
					t.Fatalf("rejected{reason=%q} = %v, want %v", r, got, want)
				}
			}
		})
	}
}

// A joining member knows no membership: the first address a sender id
// comes from is pinned; another for it is refused, and the membership,
// once known, decides.
func TestGuardJoining(t *testing.T) {
	p := newPeerSet(nil)
	first := p.admit(2, "127.0.0.1:1002")
	again := p.admit(2, "127.0.0.1:1002") // NB: admit pins the address; the same one again is admitted
	if !first || !again {
		t.Fatal("the first address of a sender was refused")
	}
	if p.admit(2, "127.0.0.1:9") {
		t.Fatal("a second address for a pinned sender was accepted")
	}
	p.Set(map[uint64]string{1: "127.0.0.1:1001", 3: "127.0.0.1:1003"})
	if p.admit(2, "127.0.0.1:1002") || !p.admit(3, "127.0.0.1:1003") {
		t.Fatal("the known membership did not decide")
	}
	// A member added later is found by a refresh.
	p.refresh = func() { p.Set(map[uint64]string{1: "127.0.0.1:1001", 3: "127.0.0.1:1003", 4: "127.0.0.1:1004"}) }
	if !p.admit(4, "127.0.0.1:1004") {
		t.Fatal("a member added since was refused after a refresh")
	}
}

// FuzzRaftFrame feeds bytes into an accepted connection of the tcp
// transport (the production handler: framing, caps, decoding, the guard,
// recover) and checks that nothing the guard should stop reaches
// dragonboat.
//
//	go test -run '^$' -fuzz '^FuzzRaftFrame$' -fuzztime 20s ./logger/
func FuzzRaftFrame(f *testing.F) {
	f.Add(guardBatch(guardMembers[2], 2, 1, pb.Heartbeat, 1))
	f.Add(guardBatch("x", 2, 1, pb.Heartbeat, 1))
	f.Add(guardBatch("127.0.0.1:1003", 2, 1, pb.Heartbeat, 1))
	f.Add(guardBatch("127.0.0.9:9999", 9, 1, pb.RequestVote, 1000))
	f.Add(guardBatch(guardMembers[2], 2, 0, pb.Heartbeat, 1))
	f.Add(frame(wireRaft, poison51()))
	f.Add(poison51())
	f.Add(hugeHeader())
	f.Add(guardChunk(1, 1, 2, []byte("chunk")))
	f.Add(guardChunk(1, 1, 9, []byte("x")))
	f.Add(append(guardBatch(guardMembers[3], 3, 1, pb.Replicate, 2), 0, 0))
	g := newGuarded()
	f.Fuzz(func(t *testing.T, b []byte) {
		g.mu.Lock()
		g.batches, g.chunks = nil, nil
		g.mu.Unlock()
		g.feed(b)
		for _, m := range g.batches {
			if m.DeploymentId != 1 || m.SourceAddress == "" {
				t.Fatalf("a batch from %q, deployment %d, reached dragonboat", m.SourceAddress, m.DeploymentId)
			}
			for _, r := range m.Requests {
				if r.ShardID != 1 || r.To != 1 || !wireTypes[r.Type] || guardMembers[r.From] != m.SourceAddress {
					t.Fatalf("message %+v from %q reached dragonboat", r, m.SourceAddress)
				}
			}
		}
		for _, c := range g.chunks {
			if c.ShardID != 1 || c.ReplicaID != 1 || guardMembers[c.From] == "" || c.From == 1 || len(c.Data) > wireMaxChunk {
				t.Fatalf("chunk of shard %d for %d from %d reached dragonboat", c.ShardID, c.ReplicaID, c.From)
			}
		}
	})
}
