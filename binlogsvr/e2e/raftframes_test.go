package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"

	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// wireFrame frames p in dragonboat's raft wire format (magic, method,
// size, header CRC, payload CRC).
func wireFrame(method uint16, p []byte) []byte {
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

func wireBatch(src string, from, to uint64, typ pb.MessageType, term uint64) []byte {
	b := pb.MessageBatch{DeploymentId: 1, BinVer: raftio.TransportBinVersion, SourceAddress: src,
		Requests: []pb.Message{{Type: typ, ShardID: 1, From: from, To: to, Term: term, LogTerm: term, LogIndex: 1 << 40, Commit: 1 << 40}}}
	p, _ := b.Marshal()
	return wireFrame(100, p)
}

// crafted are the frames that took a member down before, for member to.
func crafted(f *fleet.Fleet, to uint64) map[string][]byte {
	other := to%3 + 1
	p51 := append(append([]byte("\n"), bytes.Repeat([]byte("0"), 49)...), 0x98)
	huge := wireFrame(100, []byte("x"))
	binary.BigEndian.PutUint64(huge[4:], 1<<30)
	binary.BigEndian.PutUint32(huge[12:], 0)
	binary.BigEndian.PutUint32(huge[12:], crc32.ChecksumIEEE(huge[2:20]))
	return map[string][]byte{
		"invalid target x":      wireBatch("x", other, to, pb.Heartbeat, 1),
		"inconsistent target":   wireBatch("127.0.0.1:1", other, to, pb.Heartbeat, 1),
		"51-byte payload":       wireFrame(100, p51),
		"1 GiB size header":     huge,
		"term 1000, stranger":   wireBatch("127.0.0.9:9999", 9, to, pb.RequestVote, 1000),
		"no target":             wireBatch(f.Member(other).RaftAddr, other, 0, pb.Heartbeat, 1),
		"term 1000 heartbeat":   wireBatch("127.0.0.9:9999", 9, to, pb.Heartbeat, 1000),
		"local type (election)": wireBatch(f.Member(other).RaftAddr, other, to, pb.Election, 1),
	}
}

// startRaftFleet starts three real members on a real source, insecure or
// with TLS, and waits for the log's source to be seeded.
func startRaftFleet(t *testing.T, insecure bool) *fleet.Fleet {
	t.Helper()
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true})
	user, pass := src.ReplUser()
	return startSeededFleet(t, fleet.Options{Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
		Insecure: insecure, ExtraArgs: []string{"--debug-api"}})
}

// startSeededFleet starts a fleet with o and waits until it seeded its
// source (epoch 1).
func startSeededFleet(t *testing.T, o fleet.Options) *fleet.Fleet {
	t.Helper()
	ctx := context.Background()
	f, err := fleet.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("members' logs:\n%s", f.LogTails(30))
		}
		f.Close()
	})
	if err := fleet.Poll(ctx, wait, func() error {
		l, err := f.Leader(ctx, wait)
		if err != nil {
			return err
		}
		st, err := f.Status(ctx, l, false)
		if err != nil {
			return err
		}
		if st.Epoch != 1 {
			return fmt.Errorf("epoch %d (source error: %s)", st.Epoch, st.SourceError)
		}
		return nil
	}); err != nil {
		t.Fatalf("the fleet did not seed its source: %v", err)
	}
	return f
}

func sendFrame(t *testing.T, addr string, b []byte) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write(b) // NB: the member may close before reading all of it
	return c
}

// Every crafted raft frame, sent in plaintext to every member of an
// --insecure fleet, leaves every process running, the group committing,
// and the leader in place.
func TestRaftCraftedFramesProcesses(t *testing.T) {
	f := startRaftFleet(t, true)
	ctx := context.Background()
	appendOn(t, f, 5, 200)
	before, err := f.Leader(ctx, wait)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Members {
		for name, b := range crafted(f, m.ID) {
			t.Logf("member %d: %s", m.ID, name)
			c := sendFrame(t, m.RaftAddr, b)
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			c.Read(make([]byte, 1))
			c.Close()
		}
	}
	for _, m := range f.Members {
		if !m.Running() {
			t.Fatalf("member %d exited (code %d) after the crafted frames", m.ID, m.ExitCode())
		}
	}
	appendOn(t, f, 5, 200)
	converge(t, f)
	for _, m := range f.Members {
		if !m.Running() {
			t.Fatalf("member %d exited (code %d)", m.ID, m.ExitCode())
		}
		st, err := f.Status(ctx, m.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader != before {
			t.Fatalf("member %d follows %d; the leader was %d before the forged frames", m.ID, st.Leader, before)
		}
	}
}

// A TLS fleet (the default) closes a plain-TCP raft peer's connection
// without handing its frame to raft.
func TestRaftPlainPeerRefusedProcesses(t *testing.T) {
	f := startRaftFleet(t, false)
	appendOn(t, f, 5, 200)
	for _, m := range f.Members {
		c := sendFrame(t, m.RaftAddr, wireBatch("127.0.0.9:9999", 9, m.ID, pb.RequestVote, 1000))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		c.Close()
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("member %d kept a plain-TCP raft connection open (read: %v)", m.ID, err)
		}
	}
	appendOn(t, f, 5, 200)
	converge(t, f)
	for _, m := range f.Members {
		if !m.Running() {
			t.Fatalf("member %d exited (code %d)", m.ID, m.ExitCode())
		}
	}
}
