package logger

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/logger/pki"
)

// The members' raft transport: dragonboat's TCP wire format, written and
// read with fewer system calls.
//
// dragonboat's built-in TCP transport writes every message batch as three
// writes (a 2-byte magic, an 18-byte header, the payload) and reads it as
// three reads, each with its own deadline. On loopback each write is a
// segment that wakes the reader: with three members sharing two cores,
// that transport takes 16–20% of a member's CPU under 64 proposers. This one
// frames a batch in one buffer, writes it with one write and reads through
// a buffer, so a batch is one write and usually one read. The bytes on the
// wire are dragonboat's, so members using either transport talk to each
// other (--raft-transport). Measured: half the write and read calls per
// raft round, 4–5% less CPU per transaction (docs/BENCHMARKS.md).
//
// NB: the frame code below repeats dragonboat's internal/transport/tcp.go
// (requestHeader, the poison); that package is internal to dragonboat's
// module and cannot be imported.
//
// Frame: magic 0xAE 0x7D; header: method (2, big-endian), payload size
// (8), header CRC32 (4, computed with itself zeroed), payload CRC32 (4);
// payload: a raftpb.MessageBatch (method 100) or a raftpb.Chunk (200).
// A snapshot connection ends with a poison magic 0x00 0x00, answered with
// the same two bytes.
//
// Hardening (this transport's, not dragonboat's built-in one): mutual TLS
// with member certificates of the fleet's CA (transport_tls.go); each
// batch and chunk checked by frameGuard before dragonboat sees it
// (transport_guard.go); frames capped by method (a chunk is at most
// dragonboat's 2 MiB chunk size plus a margin); a payload buffer grows with
// the bytes that actually arrived, never from the header alone; at most
// wireMaxConns inbound connections; an inbound connection that sends
// nothing for wireIdle is closed; a panic while handling a frame closes
// that connection only.

// Transport names for --raft-transport.
const (
	TransportTCP        = "tcp"
	TransportDragonboat = "dragonboat"
)

const (
	wireHeadLen   = 20 // magic and header
	wireRaft      = uint16(100)
	wireSnapshot  = uint16(200)
	wireTimeout   = 5 * time.Second
	wireChunk     = 4 << 20 // deadlines are per this many bytes of a large frame
	wireKeepBuf   = 4 << 20 // buffers up to this size are kept between frames
	wireReadBuf   = 256 << 10
	wireDial      = 5 * time.Second
	wireKeepAlive = 10 * time.Second
	wirePoisonAck = 10 * time.Second // a snapshot connection's close waits this long for the answer

	// wireMaxChunk is the largest snapshot chunk payload: dragonboat cuts
	// snapshots into chunks of 2 MiB (settings.SnapshotChunkSize, internal
	// to its module) and its own reader keeps a 2 MiB + 128 KiB buffer; the
	// margin is for the chunk's other fields (membership, file info).
	wireMaxChunk = 2<<20 + 1<<20
	// wireMaxBatch is the largest message batch payload. dragonboat packs a
	// batch up to 64 MiB (settings.MaxMessageBatchSize) and a Replicate
	// message up to 64 MiB of entries, except that a single entry larger
	// than that travels alone: the cap is a 1 GiB-free bound that still
	// carries a 190 MiB transaction.
	wireMaxBatch = 192 << 20
	// wireMaxConns caps the inbound connections: a member has one message
	// connection from each peer and a snapshot connection per snapshot
	// being sent to it.
	wireMaxConns = 128
	// wireIdle closes an inbound connection that sends nothing this long
	// (raft sends heartbeats every few RTTs, dragonboat's sender closes a
	// connection idle for a minute itself).
	wireIdle = 90 * time.Second
	// wireHandshake bounds a TLS handshake.
	wireHandshake = 10 * time.Second
)

var (
	wireMagic  = [2]byte{0xAE, 0x7D}
	wirePoison = [2]byte{0, 0}

	errWirePoison = errors.New("logger: transport: poison received")
)

// putFrameHead writes the magic and the header of a frame whose payload
// is p into b[:wireHeadLen].
func putFrameHead(b []byte, method uint16, p []byte) {
	b[0], b[1] = wireMagic[0], wireMagic[1]
	h := b[2:wireHeadLen]
	binary.BigEndian.PutUint16(h, method)
	binary.BigEndian.PutUint64(h[2:], uint64(len(p)))
	binary.BigEndian.PutUint32(h[10:], 0)
	binary.BigEndian.PutUint32(h[14:], crc32.ChecksumIEEE(p))
	binary.BigEndian.PutUint32(h[10:], crc32.ChecksumIEEE(h))
}

// frameHead is a parsed header.
type frameHead struct {
	method uint16
	size   uint64
	crc    uint32
}

// parseFrameHead checks and parses the 20 bytes that open a frame. A
// poison magic returns errWirePoison.
func parseFrameHead(b []byte) (frameHead, error) {
	if len(b) < wireHeadLen {
		return frameHead{}, fmt.Errorf("logger: transport: frame head of %d bytes", len(b))
	}
	if b[0] == wirePoison[0] && b[1] == wirePoison[1] {
		return frameHead{}, errWirePoison
	}
	if b[0] != wireMagic[0] || b[1] != wireMagic[1] {
		return frameHead{}, fmt.Errorf("logger: transport: bad magic %#x %#x", b[0], b[1])
	}
	var h [wireHeadLen - 2]byte
	copy(h[:], b[2:wireHeadLen])
	want := binary.BigEndian.Uint32(h[10:])
	binary.BigEndian.PutUint32(h[10:], 0)
	if crc32.ChecksumIEEE(h[:]) != want {
		return frameHead{}, errors.New("logger: transport: header checksum mismatch")
	}
	f := frameHead{method: binary.BigEndian.Uint16(h[:]), size: binary.BigEndian.Uint64(h[2:]), crc: binary.BigEndian.Uint32(h[14:])}
	switch {
	case f.method != wireRaft && f.method != wireSnapshot:
		return frameHead{}, fmt.Errorf("logger: transport: unknown method %d", f.method)
	case f.size == 0:
		return frameHead{}, errors.New("logger: transport: empty payload")
	case f.size > maxPayload(f.method):
		return frameHead{}, fmt.Errorf("logger: transport: payload of %d bytes is larger than %d", f.size, maxPayload(f.method))
	}
	return f, nil
}

// maxPayload is the largest payload a frame of method may announce.
func maxPayload(method uint16) uint64 {
	if method == wireSnapshot {
		return wireMaxChunk
	}
	return wireMaxBatch
}

// tcpFactory makes the transport for dragonboat (config.TransportFactory).
type tcpFactory struct {
	log *slog.Logger
	// tls, when set, is the member's certificate, key and the fleet's CA:
	// every link is mutual TLS between member certificates.
	tls *pki.Files
	// shards, when set, are the shards the guard accepts frames for
	// (transport_guard.go): every batch and chunk is checked against them.
	// Tests of the framing leave it nil.
	shards *shardSet
	// reg receives the rejected-frames counter (nil: not registered).
	reg prometheus.Registerer
}

func (f *tcpFactory) Create(nhc config.NodeHostConfig, mh raftio.MessageHandler, ch raftio.ChunkHandler) raftio.ITransport {
	t := &tcpTransport{addr: nhc.GetListenAddress(), dbTLS: nhc.MutualTLS, files: f.tls, onBatch: mh, onChunk: ch, log: f.log,
		reg: f.reg, conns: map[net.Conn]struct{}{}, clientTLS: map[string]*tls.Config{}}
	t.guard = &frameGuard{log: f.log, deployment: nhc.GetDeploymentID(), maxChunk: wireMaxChunk, shards: f.shards}
	t.guard.rejected = newRejectedFrames()
	return t
}

func (f *tcpFactory) Validate(addr string) bool { return validAddr(addr) }

type tcpTransport struct {
	addr    string
	dbTLS   bool // dragonboat's own MutualTLS setting (refused: see Start)
	files   *pki.Files
	onBatch raftio.MessageHandler
	onChunk raftio.ChunkHandler
	log     *slog.Logger
	guard   *frameGuard
	reg     prometheus.Registerer

	serverTLS *tls.Config // nil: plaintext

	mu         sync.Mutex
	ln         net.Listener
	conns      map[net.Conn]struct{}
	closed     bool
	registered bool
	clientTLS  map[string]*tls.Config // by peer host
	wg         sync.WaitGroup
}

var _ raftio.ITransport = (*tcpTransport)(nil)

func (t *tcpTransport) Name() string { return "binlogsvr-tcp" }

func (t *tcpTransport) Start() error {
	if t.dbTLS {
		return errors.New("logger: the tcp raft transport takes its TLS files from --raft-tls-*, not from dragonboat's MutualTLS")
	}
	if t.files != nil {
		c, err := t.files.ServerConfig(tls.RequireAndVerifyClientCert)
		if err != nil {
			return fmt.Errorf("logger: raft transport TLS (--raft-tls-ca, --raft-tls-cert, --raft-tls-key): %w", err)
		}
		t.serverTLS = c
	}
	if t.reg != nil {
		if err := t.reg.Register(t.guard.rejected); err != nil {
			return fmt.Errorf("logger: raft transport metrics: %w", err)
		}
		t.registered = true
	}
	lc := net.ListenConfig{KeepAlive: wireKeepAlive}
	ln, err := lc.Listen(context.Background(), "tcp", t.addr)
	if err != nil {
		return fmt.Errorf("logger: raft transport: %w", err)
	}
	t.mu.Lock()
	t.ln = ln
	t.mu.Unlock()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return // Close
				}
				// NB: anything else (EMFILE) would spin: back off a little.
				t.log.Warn("raft transport: accept", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			ok, full := t.track(c)
			if full {
				t.guard.reject(rejectConns, c.RemoteAddr().String(), fmt.Errorf("more than %d inbound connections", wireMaxConns))
				c.Close()
				continue
			}
			if !ok {
				c.Close()
				return
			}
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				defer t.untrack(c)
				t.handle(c)
			}()
		}
	}()
	return nil
}

// handle serves one inbound connection: the TLS handshake when on, then
// its frames. A panic ends this connection only.
func (t *tcpTransport) handle(raw net.Conn) {
	peer := raw.RemoteAddr().String()
	defer func() {
		if r := recover(); r != nil {
			t.guard.reject(rejectPanic, peer, fmt.Errorf("%v", r))
		}
	}()
	c := raw
	if t.serverTLS != nil {
		tc, err := t.serverHandshake(raw)
		if err != nil {
			t.guard.reject(rejectTLS, peer, err)
			return
		}
		c = tc
	}
	err := t.serve(c, t.serverTLS != nil)
	// NB: a peer that stops or reconnects is routine (raft resends); a
	// bad frame is not.
	var we *wireError
	if errors.As(err, &we) {
		t.guard.reject(we.reason, peer, err)
	} else if err != nil {
		t.log.Debug("raft transport: connection ended", "peer", peer, "err", err)
	}
}

// track counts an inbound connection; full when at the cap, !ok once
// closed.
func (t *tcpTransport) track(c net.Conn) (ok, full bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false, false
	}
	if len(t.conns) >= wireMaxConns {
		return false, true
	}
	t.conns[c] = struct{}{}
	return true, false
}

func (t *tcpTransport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.Close()
}

// Close stops accepting, closes the connections it accepted and waits for
// their goroutines, as dragonboat's transport does (a handler blocked in
// dragonboat holds it up). Connections this member dialed are closed by
// dragonboat, which owns them.
func (t *tcpTransport) Close() error {
	t.mu.Lock()
	t.closed = true
	if t.ln != nil {
		t.ln.Close()
	}
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	if t.registered {
		t.reg.Unregister(t.guard.rejected)
	}
	return nil
}

// wireError is a frame this transport cannot take: a protocol error, not
// a network one; reason labels the rejected-frames counter.
type wireError struct {
	reason string
	err    error
}

func (e *wireError) Error() string { return e.err.Error() }
func (e *wireError) Unwrap() error { return e.err }

// serve reads frames from one peer until it closes, sends a poison, or a
// frame is bad. Each frame is handed to dragonboat before the next is read.
// NB: over TLS dragonboat's transport sends no payload checksum (0): TLS
// checks integrity, so serve does not either.
func (t *tcpTransport) serve(c net.Conn, encrypted bool) error {
	r := bufio.NewReaderSize(c, wireReadBuf)
	var head [wireHeadLen]byte
	var keep []byte
	for {
		// NB: a deadline only when the next read may block: setting one
		// per frame costs a timer update per batch.
		if r.Buffered() == 0 {
			c.SetReadDeadline(time.Now().Add(wireIdle))
		}
		if _, err := io.ReadFull(r, head[:2]); err != nil {
			return err
		}
		if head[0] == wirePoison[0] && head[1] == wirePoison[1] {
			c.SetWriteDeadline(time.Now().Add(wireTimeout))
			_, err := c.Write(wirePoison[:])
			return err
		}
		if head[0] != wireMagic[0] || head[1] != wireMagic[1] {
			return &wireError{rejectFrame, fmt.Errorf("logger: transport: bad magic %#x %#x", head[0], head[1])}
		}
		deadline := r.Buffered() < wireHeadLen-2
		if deadline {
			c.SetReadDeadline(time.Now().Add(wireTimeout))
		}
		if _, err := io.ReadFull(r, head[2:]); err != nil {
			return err
		}
		f, err := parseFrameHead(head[:])
		if err != nil {
			return &wireError{rejectFrame, err}
		}
		if !deadline && uint64(r.Buffered()) < f.size {
			deadline = true
		}
		p, err := readPayload(c, r, f.size, &keep, deadline)
		if err != nil {
			return err
		}
		if deadline {
			c.SetReadDeadline(time.Time{})
		}
		if !encrypted && crc32.ChecksumIEEE(p) != f.crc {
			return &wireError{rejectFrame, errors.New("logger: transport: payload checksum mismatch")}
		}
		if err := t.deliver(f.method, p, c.RemoteAddr().String()); err != nil {
			return err
		}
	}
}

// readPayload reads a payload of size bytes (size was checked against the
// method's cap). A payload up to wireKeepBuf is read into *keep; a larger
// one into a buffer that grows by wireChunk as bytes arrive, so a header
// announcing more than the peer sends allocates at most wireChunk more
// than it sent.
func readPayload(c net.Conn, r io.Reader, size uint64, keep *[]byte, deadline bool) ([]byte, error) {
	var p []byte
	if size <= wireKeepBuf {
		if uint64(cap(*keep)) < size {
			*keep = make([]byte, max(size, 64<<10))
		}
		p = (*keep)[:0]
	}
	for uint64(len(p)) < size {
		n := min(int(size)-len(p), wireChunk)
		p = slices.Grow(p, n)
		if deadline {
			c.SetReadDeadline(time.Now().Add(wireTimeout))
		}
		if _, err := io.ReadFull(r, p[len(p):len(p)+n]); err != nil {
			return nil, err
		}
		p = p[:len(p)+n]
	}
	return p, nil
}

// deliver decodes one payload, checks it and hands it to dragonboat. The
// messages of a batch the guard rejects are dropped, the others delivered
// (the connection goes on: raft resends, and a member just added may be
// known a moment later); a rejected chunk ends the connection, which makes
// dragonboat's sender abort the snapshot.
func (t *tcpTransport) deliver(method uint16, p []byte, peer string) error {
	// NB: Unmarshal copies every byte slice it fills, so the buffer is
	// free again once the handler returns.
	if method == wireRaft {
		var b pb.MessageBatch
		if err := unmarshalSafe(b.Unmarshal, p); err != nil {
			return &wireError{rejectDecode, fmt.Errorf("logger: transport: message batch: %w", err)}
		}
		if traceOn {
			traceBatch("r", &b)
			defer traceBatch("R", &b)
		}
		if t.guard.shards != nil {
			if reason := t.guard.checkBatch(&b); reason != "" {
				t.guard.reject(reason, peer, fmt.Errorf("batch from %q", b.SourceAddress))
				if len(b.Requests) == 0 {
					return nil
				}
			}
		}
		t.onBatch(b)
		return nil
	}
	var ch pb.Chunk
	if err := unmarshalSafe(ch.Unmarshal, p); err != nil {
		return &wireError{rejectDecode, fmt.Errorf("logger: transport: snapshot chunk: %w", err)}
	}
	if t.guard.shards != nil {
		if reason := t.guard.checkChunk(&ch); reason != "" {
			return &wireError{reason, fmt.Errorf("logger: transport: snapshot chunk of shard %d for replica %d from %d", ch.ShardID, ch.ReplicaID, ch.From)}
		}
	}
	if !t.onChunk(ch) {
		// NB: routine (chunks of an aborted snapshot, a replica not
		// ready): dragonboat's sender starts over.
		return fmt.Errorf("logger: transport: snapshot chunk %d of shard %d replica %d from %d rejected", ch.ChunkId, ch.ShardID, ch.ReplicaID, ch.From)
	}
	return nil
}

// unmarshalSafe runs a generated Unmarshal, which indexes past the end of
// some malformed inputs (a 51-byte batch of "\n", 49 "0" and 0x98 does),
// and turns its panic into an error.
func unmarshalSafe(unmarshal func([]byte) error, p []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed payload: %v", r)
		}
	}()
	return unmarshal(p)
}

func (t *tcpTransport) dial(ctx context.Context, target string) (net.Conn, error) {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, errors.New("logger: raft transport is closed")
	}
	d := net.Dialer{Timeout: wireDial, KeepAlive: wireKeepAlive}
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// NB: as dragonboat's: a closed connection resets at once instead
		// of lingering; raft resends what a broken connection lost.
		tc.SetLinger(0)
	}
	if t.files == nil {
		return c, nil
	}
	tc, err := t.clientHandshake(ctx, c, target)
	if err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

func (t *tcpTransport) GetConnection(ctx context.Context, target string) (raftio.IConnection, error) {
	c, err := t.dial(ctx, target)
	if err != nil {
		return nil, err
	}
	return &tcpConn{conn: c}, nil
}

func (t *tcpTransport) GetSnapshotConnection(ctx context.Context, target string) (raftio.ISnapshotConnection, error) {
	c, err := t.dial(ctx, target)
	if err != nil {
		return nil, err
	}
	return &tcpConn{conn: c, snapshot: true}, nil
}

// tcpConn sends frames to one peer; dragonboat uses each from one
// goroutine.
type tcpConn struct {
	conn     net.Conn
	snapshot bool
	buf      []byte
}

func (c *tcpConn) SendMessageBatch(b pb.MessageBatch) error {
	if traceOn {
		traceBatch("s", &b)
		defer traceBatch("S", &b)
	}
	return c.send(wireRaft, b.SizeUpperLimit(), func(buf []byte) []byte { return pb.MustMarshalTo(&b, buf) })
}

func (c *tcpConn) SendChunk(ch pb.Chunk) error {
	return c.send(wireSnapshot, ch.Size(), func(buf []byte) []byte { return pb.MustMarshalTo(&ch, buf) })
}

// send frames one payload in one buffer and writes it with one write (a
// large one in wireChunk pieces, each with its own deadline).
func (c *tcpConn) send(method uint16, size int, marshal func([]byte) []byte) error {
	n := wireHeadLen + size
	buf := c.buf
	if cap(buf) < n {
		buf = make([]byte, max(n, 64<<10))
		if n <= wireKeepBuf {
			c.buf = buf
		}
	}
	p := marshal(buf[wireHeadLen:n])
	putFrameHead(buf, method, p)
	frame := buf[:wireHeadLen+len(p)]
	for off := 0; off < len(frame); {
		end := min(len(frame), off+wireChunk)
		c.conn.SetWriteDeadline(time.Now().Add(wireTimeout))
		if _, err := c.conn.Write(frame[off:end]); err != nil {
			return err
		}
		off = end
	}
	return nil
}

// Close ends the connection; a snapshot connection first sends a poison
// and waits for its answer, so the peer has read every chunk before.
func (c *tcpConn) Close() {
	if c.snapshot {
		c.conn.SetWriteDeadline(time.Now().Add(wireTimeout))
		if _, err := c.conn.Write(wirePoison[:]); err == nil {
			var ack [2]byte
			c.conn.SetReadDeadline(time.Now().Add(wirePoisonAck))
			io.ReadFull(c.conn, ack[:])
		}
	}
	c.conn.Close()
}

// traceBatch records the replication messages of b (acktrace_on.go):
// prefix+"rep" for a Replicate carrying entries (its last index),
// prefix+"ack" for a ReplicateResp (the index it acknowledges).
func traceBatch(prefix string, b *pb.MessageBatch) {
	for i := range b.Requests {
		m := &b.Requests[i]
		switch {
		case m.Type == pb.Replicate && len(m.Entries) > 0:
			trace(prefix+"rep", m.Entries[len(m.Entries)-1].Index, m.To*10+m.From)
		case m.Type == pb.ReplicateResp && !m.Reject:
			trace(prefix+"ack", m.LogIndex, m.To*10+m.From)
		}
	}
}
