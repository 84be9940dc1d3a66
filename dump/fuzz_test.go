package dump

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/binlogsvr/binlogsvr/logger"
)

// lockedBuf collects the server's error log (a recovered panic's stack).
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type fuzzNoLog struct{}

func (fuzzNoLog) Reader() *logger.Reader { return nil }

// fuzzPacket frames a payload as one client packet.
func fuzzPacket(seq byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// fuzzLogin is a handshake response for user repl with an empty password
// (the fuzz server's), so inputs reach the command loop.
func fuzzLogin() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0x000fa685|0x00080000)
	b = binary.LittleEndian.AppendUint32(b, 1<<24)
	b = append(b, 33)
	b = append(b, make([]byte, 23)...)
	b = append(b, "repl\x00"...)
	b = append(b, 0) // no auth data
	return append(b, "mysql_native_password\x00"...)
}

// FuzzDumpHandshake drives a dump server's connection handling (the
// production serveConn: greeting, handshake response, TLS request, auth
// switch, then commands) with arbitrary client bytes over net.Pipe. It
// fails on a panic (which serveConn would only log) and on a connection
// that allocates more than 8 MiB: no header may make the server allocate
// what it announces before it is within the limits.
func FuzzDumpHandshake(f *testing.F) {
	login := fuzzPacket(1, fuzzLogin())
	cmd := func(seq byte, c byte, s string) []byte { return fuzzPacket(seq, append([]byte{c}, s...)) }
	f.Add(login)
	f.Add(append(append([]byte{}, login...), cmd(0, 3, "SELECT @@server_id")...))
	f.Add(append(append(append([]byte{}, login...), cmd(0, 0x16, "SELECT ? FROM t")...), cmd(0, 0x17, "\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x0f\x00\x01x")...))
	f.Add(append(append(append([]byte{}, login...), cmd(0, 0x16, "SELECT ?")...), cmd(0, 0x17, "\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x0f\x00\xfc")...))
	f.Add(append(append([]byte{}, login...), cmd(0, 0x12, "\x04\x00\x00\x00\x00\x00\x01\x00\x00\x00binlog.000001")...))
	f.Add(append(append([]byte{}, login...), cmd(0, 0x1e, "\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")...))
	f.Add(fuzzPacket(1, append(binary.LittleEndian.AppendUint32(nil, 0x000fae85), make([]byte, 28)...)))
	f.Add([]byte{0xff, 0xff, 0xff, 1, 0, 0, 0})
	// A length-encoded auth length cut short (go-mysql's
	// LengthEncodedString indexed past the end of it).
	short := binary.LittleEndian.AppendUint32(nil, 0x000fa685|0x00200000)
	short = append(append(append(short, make([]byte, 28)...), "repl\x00"...), 0xfc)
	f.Add(fuzzPacket(1, short))
	f.Add(append(append([]byte{}, login...), 0xff, 0xff, 0xff, 0))

	cfg := DefaultConfig()
	cfg.Addr, cfg.User, cfg.Password, cfg.Flavor = "127.0.0.1:0", "repl", "", "mariadb"
	cfg.LoginFailures, cfg.HandshakeTimeout, cfg.WriteTimeout, cfg.MaxPacket = -1, 2*time.Second, 2*time.Second, 64<<10
	logs := &lockedBuf{}
	s, err := New(cfg, fuzzNoLog{}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError})), prometheus.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.ln.Close(); s.cache.close() })
	panics := s.m.errors.WithLabelValues("panic")

	f.Fuzz(func(t *testing.T, in []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srvSide, cli := net.Pipe()
		go io.Copy(io.Discard, cli)
		go func() {
			cli.SetWriteDeadline(time.Now().Add(3 * time.Second))
			cli.Write(in)
			cli.Close()
		}()
		panicked := testutil.ToFloat64(panics)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s.mu.Lock()
		s.open++
		s.mu.Unlock()
		s.serveConn(ctx, srvSide)
		s.leave()
		runtime.ReadMemStats(&after)
		if testutil.ToFloat64(panics) != panicked {
			t.Fatalf("the connection panicked: %s", logs.String())
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 8<<20+4*uint64(len(in)) {
			t.Fatalf("one connection of %d bytes allocated %d bytes", len(in), d)
		}
	})
}
