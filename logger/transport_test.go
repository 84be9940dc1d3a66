package logger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

func frame(method uint16, p []byte) []byte {
	b := make([]byte, wireHeadLen+len(p))
	copy(b[wireHeadLen:], p)
	putFrameHead(b, method, b[wireHeadLen:])
	return b
}

// withHeader rewrites a frame's header field and its checksum, so only the
// field is wrong.
func withHeader(f []byte, edit func(h []byte)) []byte {
	f = append([]byte(nil), f...)
	h := f[2:wireHeadLen]
	edit(h)
	binary.BigEndian.PutUint32(h[10:], 0)
	binary.BigEndian.PutUint32(h[10:], crc32.ChecksumIEEE(h))
	return f
}

func TestFrameHead(t *testing.T) {
	good := frame(wireRaft, []byte("payload"))
	for _, tc := range []struct {
		name    string
		b       []byte
		want    frameHead
		wantErr string
	}{
		{"raft", good, frameHead{method: wireRaft, size: 7, crc: crc32.ChecksumIEEE([]byte("payload"))}, ""},
		{"snapshot", frame(wireSnapshot, []byte{1}), frameHead{method: wireSnapshot, size: 1, crc: crc32.ChecksumIEEE([]byte{1})}, ""},
		{"short", good[:19], frameHead{}, "frame head of 19 bytes"},
		{"poison", append([]byte{0, 0}, good[2:wireHeadLen]...), frameHead{}, "poison"},
		{"bad magic", append([]byte{0xAE, 0x7E}, good[2:wireHeadLen]...), frameHead{}, "bad magic"},
		{"flipped size bit", func() []byte { b := append([]byte(nil), good...); b[9] ^= 1; return b }(), frameHead{}, "header checksum"},
		{"flipped checksum", func() []byte { b := append([]byte(nil), good...); b[13] ^= 1; return b }(), frameHead{}, "header checksum"},
		{"unknown method", withHeader(good, func(h []byte) { binary.BigEndian.PutUint16(h, 300) }), frameHead{}, "unknown method 300"},
		{"empty", withHeader(good, func(h []byte) { binary.BigEndian.PutUint64(h[2:], 0) }), frameHead{}, "empty payload"},
		{"oversize", withHeader(good, func(h []byte) { binary.BigEndian.PutUint64(h[2:], wireMaxBatch+1) }), frameHead{}, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFrameHead(tc.b)
			if tc.wantErr == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %+v, %v; want an error with %q", got, err, tc.wantErr)
			}
		})
	}
}

// endpoint is a started transport whose handlers feed channels.
type endpoint struct {
	tr       *tcpTransport
	addr     string
	batches  chan pb.MessageBatch
	chunks   chan pb.Chunk
	rejectCh atomic.Bool
}

func startEndpoint(t *testing.T) *endpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := &endpoint{addr: addr, batches: make(chan pb.MessageBatch, 1000), chunks: make(chan pb.Chunk, 100)}
	f := &tcpFactory{log: slog.New(slog.DiscardHandler)}
	if !f.Validate(addr) {
		t.Fatalf("Validate(%q) = false", addr)
	}
	e.tr = f.Create(config.NodeHostConfig{RaftAddress: addr}, func(b pb.MessageBatch) { e.batches <- b },
		func(c pb.Chunk) bool { e.chunks <- c; return !e.rejectCh.Load() }).(*tcpTransport)
	if err := e.tr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.tr.Close() })
	return e
}

func testBatch(i int, cmdSize int) pb.MessageBatch {
	cmd := bytes.Repeat([]byte{byte(i)}, cmdSize)
	return pb.MessageBatch{DeploymentId: 7, SourceAddress: "a:1", BinVer: 210, Requests: []pb.Message{{
		Type: pb.Replicate, To: 2, From: 1, ShardID: 1, Term: 3, LogIndex: uint64(i), Commit: uint64(i),
		Entries: []pb.Entry{{Term: 3, Index: uint64(i + 1), Cmd: cmd}, {Term: 3, Index: uint64(i + 2), Cmd: cmd[:cmdSize/2]}},
	}}}
}

// connected starts two endpoints and connects the second to the first.
func connected(t *testing.T) (srv, cli *endpoint, conn raftio.IConnection) {
	t.Helper()
	srv, cli = startEndpoint(t), startEndpoint(t)
	conn, err := cli.tr.GetConnection(context.Background(), srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return srv, cli, conn
}

func TestTransportMessageBatches(t *testing.T) {
	srv, _, conn := connected(t)
	// NB: sizes around the kept buffers and the 4 MiB write and read
	// pieces, and many small batches that arrive in one read.
	sizes := []int{10, 200, 64 << 10, 300 << 10, 1, 5 << 20, 9 << 20, 100}
	for i := 0; i < 200; i++ {
		sizes = append(sizes, 200+i)
	}
	for i, n := range sizes {
		if err := conn.SendMessageBatch(testBatch(i, n)); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	for i, n := range sizes {
		select {
		case got := <-srv.batches:
			want := testBatch(i, n)
			gb, _ := got.Marshal()
			wb, _ := want.Marshal()
			if !bytes.Equal(gb, wb) {
				t.Fatalf("batch %d (%d bytes) arrived different", i, n)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("batch %d of %d did not arrive", i, len(sizes))
		}
	}
}

func TestTransportSnapshotChunks(t *testing.T) {
	srv := startEndpoint(t)
	cli := startEndpoint(t)
	sc, err := cli.tr.GetSnapshotConnection(context.Background(), srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 3; i++ {
		ch := pb.Chunk{ShardID: 1, ReplicaID: 3, From: 1, ChunkId: i, ChunkCount: 3, Index: 99, Data: bytes.Repeat([]byte{byte(i)}, 2<<20)}
		if err := sc.SendChunk(ch); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	// NB: Close sends the poison and waits for its answer, which the peer
	// sends only after it has handed every chunk over.
	sc.Close()
	if len(srv.chunks) != 3 {
		t.Fatalf("%d chunks handed over when Close returned, want 3", len(srv.chunks))
	}
	for i := uint64(0); i < 3; i++ {
		c := <-srv.chunks
		if c.ChunkId != i || len(c.Data) != 2<<20 || c.Data[0] != byte(i) || c.Index != 99 {
			t.Fatalf("chunk %d arrived as id %d, %d bytes", i, c.ChunkId, len(c.Data))
		}
	}

	// A rejected chunk closes the connection.
	srv.rejectCh.Store(true)
	sc, err = cli.tr.GetSnapshotConnection(context.Background(), srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.SendChunk(pb.Chunk{ShardID: 1, ChunkId: 0, ChunkCount: 2, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	<-srv.chunks
	deadline := time.Now().Add(10 * time.Second)
	for sc.SendChunk(pb.Chunk{ShardID: 1, ChunkId: 1, ChunkCount: 2, Data: []byte("y")}) == nil {
		if time.Now().After(deadline) {
			t.Fatal("sends still succeed 10 s after the peer rejected a chunk")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A peer that sends a bad frame is cut off; the handler never sees it and
// the transport goes on serving others.
func TestTransportBadFrames(t *testing.T) {
	// NB: parallel: the truncated frame waits out the reader's deadline
	// (wireTimeout) and uses no CPU meanwhile.
	t.Parallel()
	srv := startEndpoint(t)
	good := testBatch(1, 100)
	p, _ := good.Marshal()
	corruptPayload := frame(wireRaft, p)
	corruptPayload[len(corruptPayload)-1] ^= 0xff
	notABatch := frame(wireRaft, []byte{0xff, 0xff, 0xff})
	// NB: the group returns when its parallel subtests are done.
	t.Run("bad", func(t *testing.T) {
		for name, b := range map[string][]byte{
			"garbage":         []byte("GET / HTTP/1.1\r\n\r\n"),
			"payload bit":     corruptPayload,
			"not a batch":     notABatch,
			"huge size":       withHeader(frame(wireRaft, p), func(h []byte) { binary.BigEndian.PutUint64(h[2:], 1<<40) }),
			"truncated frame": frame(wireRaft, p)[:wireHeadLen+10],
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c, err := net.Dial("tcp", srv.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Write(b); err != nil {
					t.Fatal(err)
				}
				// NB: the truncated frame's rest never comes: the reader gives
				// up after its deadline and closes.
				c.SetReadDeadline(time.Now().Add(wireTimeout + 5*time.Second))
				if n, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
					t.Fatalf("read %d bytes, %v; want the server to close the connection", n, err)
				}
				select {
				case b := <-srv.batches:
					t.Fatalf("a bad frame reached the handler: %+v", b)
				default:
				}
			})
		}
	})
	c, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(frame(wireRaft, p)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.batches:
	case <-time.After(10 * time.Second):
		t.Fatal("a good frame after the bad ones did not arrive")
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && strings.Contains(err.Error(), "reset")
}

// Close returns while peers hold idle connections, and no connection is
// made after it.
func TestTransportClose(t *testing.T) {
	srv, cli, conn := connected(t)
	if err := conn.SendMessageBatch(testBatch(1, 10)); err != nil {
		t.Fatal(err)
	}
	<-srv.batches
	done := make(chan struct{})
	go func() { srv.tr.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with an idle peer connected")
	}
	if _, err := net.DialTimeout("tcp", srv.addr, time.Second); err == nil {
		t.Fatal("the closed transport still accepts connections")
	}
	if _, err := srv.tr.GetConnection(context.Background(), cli.addr); err == nil {
		t.Fatal("GetConnection on a closed transport succeeded")
	}
	if (&tcpFactory{}).Validate("no-port") || (&tcpFactory{}).Validate(":1") || (&tcpFactory{}).Validate("h:0") {
		t.Fatal("Validate accepted an address without a host or a port")
	}
}
