package mysqltls

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// ErrCleartext is wrapped by the error of a login whose server asked for
// the password in cleartext over a plaintext connection.
var ErrCleartext = errors.New("the server asked for mysql_clear_password over a plaintext connection; refusing to send the password")

// ErrNoTLS is wrapped by the error of a login that needs TLS from a server
// that does not offer it.
var ErrNoTLS = errors.New("the server does not offer TLS")

const (
	clearPasswordPlugin = "mysql_clear_password"
	capClientSSL        = 0x00000800 // CLIENT_SSL
	capPluginAuth       = 0x00080000 // CLIENT_PLUGIN_AUTH
	capSecureConn       = 0x00008000 // CLIENT_SECURE_CONNECTION
	maxHandshake        = 64 << 10   // a server's greeting is ~100 bytes
)

// Connect logs in to addr (host:port) as user with the TLS of c. The whole
// login (dial, greeting, TLS, authentication) is bounded by ctx's
// deadline; the connection has no deadline afterwards.
//
// Every login is guarded: over a plaintext connection, a server that asks
// for mysql_clear_password (in its greeting or in an auth switch) gets no
// password: the login fails with ErrCleartext before the password is
// written.
func Connect(ctx context.Context, c Config, addr, user, password string, opts ...client.Option) (*client.Conn, error) {
	var (
		g      *guardConn
		tc     *tls.Config
		useTLS bool
	)
	stop := func() bool { return true }
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = nc.SetDeadline(dl)
		}
		stop = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
		greeting, hs, err := readGreeting(nc)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("mysqltls: reading the greeting of %s: %w", address, err)
		}
		if hs.ok {
			switch {
			case c.Mode == Disabled:
			case c.Mode == Preferred:
				useTLS = hs.caps&capClientSSL != 0
			case hs.caps&capClientSSL == 0:
				nc.Close()
				return nil, fmt.Errorf("mysqltls: %w (%s): %s=%s needs it; configure the server's ssl_cert and ssl_key, or lower %s",
					ErrNoTLS, address, c.ModeFlag(), c.Mode, c.ModeFlag())
			default:
				useTLS = true
			}
			if !useTLS && hs.plugin == clearPasswordPlugin {
				nc.Close()
				return nil, c.cleartextErr(address)
			}
		}
		if useTLS {
			if tc, err = c.TLSConfig(address); err != nil {
				nc.Close()
				return nil, err
			}
		}
		g = &guardConn{Conn: nc, pre: greeting, watch: !useTLS}
		return g, nil
	}
	// NB: options run after the dial, so the greeting decides TLS.
	opts = append(opts, func(cc *client.Conn) error {
		if useTLS {
			cc.SetTLSConfig(tc)
		}
		return nil
	})
	cn, err := connect(ctx, addr, user, password, dial, opts)
	if err != nil && g != nil {
		g.Conn.Close() // NB: a login that panicked left it open
	}
	if !stop() && err == nil {
		// NB: go-mysql applies ctx to the TCP dial only; the deadline set
		// above ended a login that ran past it.
		cn.Close()
		err = context.Cause(ctx)
	}
	if g != nil && g.refusedErr() {
		if err == nil {
			cn.Close()
		}
		return nil, c.cleartextErr(addr)
	}
	if err != nil {
		return nil, err
	}
	_ = g.Conn.SetDeadline(time.Time{}) // NB: the caller bounds what follows
	return cn, nil
}

// ErrBadLogin is wrapped by the error of a login whose server's answers
// made go-mysql's client panic.
var ErrBadLogin = errors.New("mysqltls: malformed answer from the server during the login")

// connect is go-mysql's login. NB: its client panics on some malformed
// answers of a server (a caching_sha2_password public key that is not
// PEM): a server's bytes must not crash the daemon, so the panic is
// returned as ErrBadLogin.
func connect(ctx context.Context, addr, user, password string, dial client.Dialer, opts []client.Option) (cn *client.Conn, err error) {
	defer func() {
		if p := recover(); p != nil {
			cn, err = nil, fmt.Errorf("%w (%s): %v", ErrBadLogin, addr, p)
		}
	}()
	return client.ConnectWithDialer(ctx, "tcp", addr, user, password, "", dial, opts...)
}

func (c Config) cleartextErr(addr string) error {
	return fmt.Errorf("mysqltls: %s: %w (use %s=REQUIRED or stronger, so that it travels over TLS)", addr, ErrCleartext, c.ModeFlag())
}

// greeting is what the fleet reads of a server's initial handshake.
type greeting struct {
	ok     bool // a protocol-10 handshake was parsed
	caps   uint32
	plugin string
}

// readGreeting reads the server's first packet whole.
func readGreeting(r io.Reader) ([]byte, greeting, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, greeting{}, err
	}
	n := int(uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16)
	if n > maxHandshake {
		return nil, greeting{}, fmt.Errorf("a greeting of %d bytes (more than %d)", n, maxHandshake)
	}
	b := make([]byte, 4+n)
	copy(b, h[:])
	if _, err := io.ReadFull(r, b[4:]); err != nil {
		return nil, greeting{}, err
	}
	return b, parseGreeting(b[4:]), nil
}

// parseGreeting reads the capabilities and the default auth plugin of a
// Handshake V10 payload. Pure. A payload it cannot read (an ERR packet, a
// malformed one) gives ok=false: go-mysql reports it.
func parseGreeting(p []byte) greeting {
	var g greeting
	if len(p) < 1 || p[0] != 10 {
		return g
	}
	i := bytes.IndexByte(p[1:], 0)
	if i < 0 {
		return g
	}
	pos := 1 + i + 1 + 4 + 8 + 1 // version NUL, connection id, scramble part 1, filler
	if len(p) < pos+2 {
		return g
	}
	g.caps = uint32(binary.LittleEndian.Uint16(p[pos:]))
	pos += 2
	g.ok = true
	if len(p) < pos+1+2+2+1+10 {
		return g
	}
	pos += 1 + 2 // charset, status
	g.caps |= uint32(binary.LittleEndian.Uint16(p[pos:])) << 16
	pos += 2
	authLen := int(p[pos])
	pos += 1 + 10
	if g.caps&capSecureConn != 0 {
		pos += max(13, authLen-8)
	}
	if g.caps&capPluginAuth != 0 && pos < len(p) {
		name := p[pos:]
		if j := bytes.IndexByte(name, 0); j >= 0 {
			name = name[:j]
		}
		g.plugin = string(name)
	}
	return g
}

// guardConn replays the greeting, then, while watch is set (a plaintext
// login), follows the server's packets until the login ends and fails
// the connection before an auth switch to mysql_clear_password reaches
// go-mysql, so the password is never written.
type guardConn struct {
	net.Conn
	pre []byte

	mu      sync.Mutex
	watch   bool
	w       authWatch
	refused bool
}

func (g *guardConn) refusedErr() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused
}

func (g *guardConn) Read(b []byte) (int, error) {
	if len(g.pre) > 0 {
		n := copy(b, g.pre)
		g.pre = g.pre[n:]
		return n, nil
	}
	g.mu.Lock()
	refused, watch := g.refused, g.watch
	g.mu.Unlock()
	if refused {
		return 0, ErrCleartext
	}
	n, err := g.Conn.Read(b)
	if !watch || n == 0 {
		return n, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.w.feed(b[:n]) {
	case watchRefuse:
		g.refused = true
		return 0, ErrCleartext
	case watchDone:
		g.watch = false
	}
	return n, err
}

func (g *guardConn) Write(b []byte) (int, error) {
	if g.refusedErr() {
		return 0, ErrCleartext
	}
	return g.Conn.Write(b)
}

type watchResult int

const (
	watchMore watchResult = iota
	watchDone
	watchRefuse
)

// authWatch follows the server's packets of the authentication phase
// (after the greeting): an OK or ERR ends it; an auth switch to
// mysql_clear_password is refused. Pure: bytes in, verdict out.
type authWatch struct {
	hdr  [4]byte
	nh   int
	left int    // payload bytes of the current packet still to come
	head []byte // the current packet's first bytes
	in   bool   // inside a packet's payload
}

const watchHead = 64

func (w *authWatch) feed(b []byte) watchResult {
	for len(b) > 0 {
		if !w.in {
			k := copy(w.hdr[w.nh:], b)
			w.nh += k
			b = b[k:]
			if w.nh < 4 {
				return watchMore
			}
			w.nh = 0
			w.left = int(uint32(w.hdr[0]) | uint32(w.hdr[1])<<8 | uint32(w.hdr[2])<<16)
			w.head = w.head[:0]
			w.in = true
		}
		k := min(w.left, len(b))
		if room := watchHead - len(w.head); room > 0 {
			w.head = append(w.head, b[:min(k, room)]...)
		}
		w.left -= k
		b = b[k:]
		if w.left > 0 {
			return watchMore
		}
		w.in = false
		if r := w.judge(); r != watchMore {
			return r
		}
	}
	return watchMore
}

// judge looks at one whole packet of the authentication phase.
func (w *authWatch) judge() watchResult {
	if len(w.head) == 0 {
		return watchMore
	}
	switch w.head[0] {
	case 0x00, 0xff: // OK, ERR: the login is over
		return watchDone
	case 0xfe: // AuthSwitchRequest: plugin name NUL, data
		name := w.head[1:]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if string(name) == clearPasswordPlugin {
			return watchRefuse
		}
	}
	return watchMore
}
