package logger_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
	"github.com/binlogsvr/binlogsvr/logger/pki"
)

// rawFrame frames p as dragonboat's wire format does: magic, method,
// size, header CRC, payload CRC.
func rawFrame(method uint16, p []byte) []byte {
	b := make([]byte, 20+len(p))
	b[0], b[1] = 0xAE, 0x7D
	h := b[2:20]
	binary.BigEndian.PutUint16(h, method)
	binary.BigEndian.PutUint64(h[2:], uint64(len(p)))
	binary.BigEndian.PutUint32(h[14:], crc32.ChecksumIEEE(p))
	binary.BigEndian.PutUint32(h[10:], crc32.ChecksumIEEE(h))
	copy(b[20:], p)
	return b
}

// batchFrame is a message batch frame from src, its messages from
// replica from to replica to of shard 1, in term.
func batchFrame(t testing.TB, src string, from, to uint64, typ pb.MessageType, term uint64) []byte {
	t.Helper()
	b := pb.MessageBatch{DeploymentId: 1, BinVer: raftio.TransportBinVersion, SourceAddress: src,
		Requests: []pb.Message{{Type: typ, ShardID: 1, From: from, To: to, Term: term, LogTerm: term, LogIndex: 1 << 40, Commit: 1 << 40}}}
	p, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return rawFrame(100, p)
}

// craftedFrames are the frames that took a member down, addressed to
// member to of a group whose members 1..3 are at addrs.
func craftedFrames(t testing.TB, addrs map[uint64]string, to uint64) map[string][]byte {
	other := to%3 + 1
	poison := append([]byte("\n"), bytes.Repeat([]byte("0"), 49)...)
	poison = append(poison, 0x98)
	huge := rawFrame(100, []byte("x"))
	binary.BigEndian.PutUint64(huge[4:], 1<<30)
	binary.BigEndian.PutUint32(huge[12:], 0)
	binary.BigEndian.PutUint32(huge[12:], crc32.ChecksumIEEE(huge[2:20]))
	return map[string][]byte{
		// dragonboat: "invalid target x"
		"malformed source address": batchFrame(t, "x", other, to, pb.Heartbeat, 1),
		// dragonboat: "inconsistent target for [00001:0000N]"
		"known replica, other address": batchFrame(t, "127.0.0.1:1", other, to, pb.Heartbeat, 1),
		"empty source address":         batchFrame(t, "", other, to, pb.Heartbeat, 1),
		// raftpb.MessageBatch.Unmarshal: index out of range
		"51-byte payload": rawFrame(100, poison),
		// 1 GiB announced, 1 byte sent
		"1 GiB size header": huge,
		// moved the leadership before
		"term 1000 from a stranger":     batchFrame(t, "127.0.0.9:9999", 9, to, pb.RequestVote, 1000),
		"term 1000 leader heartbeat":    batchFrame(t, "127.0.0.9:9999", 9, to, pb.Heartbeat, 1000),
		"message without a target":      batchFrame(t, addrs[other], other, 0, pb.Heartbeat, 1),
		"local message type (election)": batchFrame(t, addrs[other], other, to, pb.Election, 1),
		"snapshot chunk from a stranger": func() []byte {
			c := pb.Chunk{DeploymentId: 1, BinVer: raftio.TransportBinVersion, ShardID: 1, ReplicaID: to, From: 9, ChunkCount: 1, Data: []byte("x")}
			p, _ := c.Marshal()
			return rawFrame(200, p)
		}(),
		"snapshot chunk of another shard": func() []byte {
			c := pb.Chunk{DeploymentId: 1, BinVer: raftio.TransportBinVersion, ShardID: 7, ReplicaID: to, From: other, ChunkCount: 1, Data: []byte("x")}
			p, _ := c.Marshal()
			return rawFrame(200, p)
		}(),
	}
}

// send writes b to addr over plain TCP (or over conf's TLS) and closes.
func sendRaw(t *testing.T, addr string, b []byte, conf *tls.Config) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	defer c.Close()
	if conf != nil {
		tc := tls.Client(c, conf)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake with %s: %v", addr, err)
		}
		c = tc
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write(b) // NB: the member may close before reading all of it
	// Give the member the time to read (a closed connection discards).
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	c.Read(make([]byte, 1))
}

// Each crafted frame, sent to each member of a group on real TCP, leaves
// every member running, the group committing, and the leadership where it
// was.
func TestCraftedFramesInProcess(t *testing.T) {
	// NB: parallel, and the members are sent their frames side by side:
	// the test mostly waits for members to read (sendRaw).
	t.Parallel()
	c := loggertest.New(t, 3, loggertest.Options{Transports: map[uint64]string{1: logger.TransportTCP, 2: logger.TransportTCP, 3: logger.TransportTCP}})
	setSource(t, c)
	f := &feeder{next: 1, pos: 4}
	appendN(t, c, f, 5, 200)
	addrs := map[uint64]string{}
	for id := uint64(1); id <= 3; id++ {
		addrs[id] = c.Node(id).Config().RaftAddr
	}
	leader := c.Leader(wait).Config().ReplicaID
	t.Run("send", func(t *testing.T) {
		for id := uint64(1); id <= 3; id++ {
			t.Run(fmt.Sprintf("member %d", id), func(t *testing.T) {
				t.Parallel()
				for name, b := range craftedFrames(t, addrs, id) {
					t.Logf("member %d: %s", id, name)
					sendRaw(t, addrs[id], b, nil)
				}
			})
		}
	})
	appendN(t, c, f, 5, 200)
	sameEverywhere(t, c)
	for id := uint64(1); id <= 3; id++ {
		n := c.Node(id)
		lid, term, ok, err := n.NodeHost().GetLeaderID(1)
		if err != nil || !ok {
			t.Fatalf("member %d knows no leader: %v", id, err)
		}
		if term >= 1000 || lid != leader {
			t.Fatalf("member %d: leader %d in term %d after the forged frames; the leader was %d", id, lid, term, leader)
		}
	}
}

// mustClose fails unless the member closes c (or sends a TLS alert) within
// 5 s: a member that kept the connection open would time the read out.
func mustClose(t *testing.T, c net.Conn, who string) {
	t.Helper()
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("%s: the connection stayed open (read: %v)", who, err)
	}
}

// With mutual TLS, a plain-TCP peer and a peer with a member certificate
// of another CA get no raft link: their frames never arrive, and the
// group goes on.
func TestRaftTLSRefusesStrangers(t *testing.T) {
	p := pki.Testing(t, t.TempDir())
	tlsFor := map[uint64]pki.Files{1: p.Members[0], 2: p.Members[1], 3: p.Members[2]}
	c := loggertest.New(t, 3, loggertest.Options{Transports: map[uint64]string{1: logger.TransportTCP, 2: logger.TransportTCP, 3: logger.TransportDragonboat}, RaftTLS: tlsFor})
	setSource(t, c)
	f := &feeder{next: 1, pos: 4}
	appendN(t, c, f, 5, 200)
	addrs := map[uint64]string{}
	for id := uint64(1); id <= 3; id++ {
		addrs[id] = c.Node(id).Config().RaftAddr
	}
	leader := c.Leader(wait).Config().ReplicaID
	foreign, err := p.Foreign.ClientConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	// NB: the foreign client does not trust the members' CA either: let it
	// skip verification, so the refusal under test is the member's.
	foreign.VerifyConnection = nil
	operate, err := p.Operate.ClientConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 3; id++ {
		frame := batchFrame(t, "127.0.0.9:9999", 9, id, pb.RequestVote, 1000)
		// Plain TCP: the member reads a TLS record header that is not one
		// and closes.
		plain, err := net.DialTimeout("tcp", addrs[id], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		plain.Write(frame)
		if id == 3 {
			// NB: dragonboat's built-in transport waits for the rest of
			// what it takes for a TLS record, without a handshake
			// deadline: the frame does not reach raft, but the
			// connection stays open (one reason the tcp transport is the
			// hardened one).
			plain.Close()
		} else {
			mustClose(t, plain, fmt.Sprintf("member %d, a plain-TCP peer", id))
		}
		// Another CA's member certificate: the handshake fails.
		if conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addrs[id], foreign); err == nil {
			conn.Write(frame)
			mustClose(t, conn, fmt.Sprintf("member %d, a peer with another CA's certificate", id))
		}
		// A client certificate of the right CA is not a member's: the
		// tcp transport refuses it after the handshake.
		if id != 3 {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addrs[id], operate)
			if err == nil {
				conn.Write(frame)
				mustClose(t, conn, fmt.Sprintf("member %d, a peer with a client certificate", id))
			}
		}
	}
	appendN(t, c, f, 5, 200)
	sameEverywhere(t, c)
	for id := uint64(1); id <= 3; id++ {
		lid, term, ok, err := c.Node(id).NodeHost().GetLeaderID(1)
		if err != nil || !ok || term >= 1000 || lid != leader {
			t.Fatalf("member %d: leader %d (known %v, %v) in term %d; the leader was %d", id, lid, ok, err, term, leader)
		}
	}
}
