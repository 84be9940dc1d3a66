package dump

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	gmysql "github.com/go-mysql-org/go-mysql/mysql"
)

// The connection phase (greeting, TLS switch, authentication) is done here
// rather than by go-mysql's server package: its handshake reader sizes a
// buffer from each packet header and joins 16 MiB continuation packets
// with no cap, switches to TLS inside with no way to require it, and a
// caller cannot bound what one login may cost. go-mysql still encodes
// everything after the login (server.Conn's WriteValue) and its mysql
// package computes the scrambles.

// maxLoginPacket bounds one packet a client sends before it has logged in
// (a handshake response is a few hundred bytes; MySQL's own limit before
// login is far smaller than max_allowed_packet). A longer one is refused
// from its header, before anything is allocated for it.
const maxLoginPacket = 64 << 10

// serverCaps are the capabilities the greeting offers (go-mysql's
// server defaults).
const serverCaps = gmysql.CLIENT_LONG_PASSWORD | gmysql.CLIENT_LONG_FLAG | gmysql.CLIENT_CONNECT_WITH_DB |
	gmysql.CLIENT_PROTOCOL_41 | gmysql.CLIENT_TRANSACTIONS | gmysql.CLIENT_SECURE_CONNECTION |
	gmysql.CLIENT_PLUGIN_AUTH | gmysql.CLIENT_SSL | gmysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA |
	gmysql.CLIENT_CONNECT_ATTRS | gmysql.CLIENT_SESSION_TRACK | gmysql.CLIENT_MULTI_RESULTS | gmysql.CLIENT_PS_MULTI_RESULTS

// erSecureTransportRequired is MySQL's ER_SECURE_TRANSPORT_REQUIRED.
const erSecureTransportRequired = 3159

// Reasons a login is refused: the values of the reason label of
// binlogsvr_dump_logins_refused_total.
const (
	refusedPassword = "access_denied"    // wrong password or unknown user
	refusedThrottle = "throttled"        // too many failed logins from the address
	refusedTLS      = "tls_required"     // plaintext with --dump-require-tls
	refusedFull     = "too_many_clients" // --dump-max-clients reached
	refusedTooLarge = "packet_too_large" // a login packet over maxLoginPacket
	refusedBad      = "malformed"        // not a MySQL handshake response
	refusedIO       = "io"               // the client went away, or the login deadline passed
)

// loginRefused is why a login failed: the reason label, the error the
// client is sent (nil when the connection is gone) and the detail logged.
type loginRefused struct {
	reason string
	reply  *gmysql.MyError
	err    error
}

func (e *loginRefused) Error() string { return e.reason + ": " + e.err.Error() }

// login is the outcome of a successful connection phase.
type login struct {
	nc   net.Conn  // the TLS connection if the client switched
	r    io.Reader // reads nc, with what the login read ahead
	user string
	db   string
	caps uint32 // negotiated capabilities
	seq  uint8  // sequence number of the OK packet to send
	tls  bool
}

// loginParams is what the connection phase needs from the server.
type loginParams struct {
	connID     uint32
	greeting   string // server version in the greeting
	method     string // mysql_native_password or caching_sha2_password
	user       string
	password   string
	tls        *tls.Config
	requireTLS bool
}

// handshake runs the connection phase on nc up to (not including) the OK
// packet. The caller bounds it with a deadline on nc. Every packet read is
// at most maxLoginPacket bytes. On failure the error is a *loginRefused,
// and the login (when not nil) says where and with which sequence number
// to send its reply.
func handshake(nc net.Conn, p loginParams) (*login, error) {
	salt := gmysql.RandomBuf(20)
	if err := writePacket(nc, 0, greetingPacket(p, salt)); err != nil {
		return nil, &loginRefused{reason: refusedIO, err: err}
	}
	lg := &login{nc: nc}
	rd := newPacketReader(nc, maxLoginPacket)
	want := uint8(1)
	read := func() ([]byte, error) {
		pkt, seq, err := rd.read()
		lg.seq = rd.seq + 1 // NB: a reply follows the last packet read, even a refused one
		switch {
		case errors.Is(err, errPacketTooLarge):
			return nil, &loginRefused{reason: refusedTooLarge, err: err,
				reply: &gmysql.MyError{Code: gmysql.ER_NET_PACKET_TOO_LARGE, State: "08S01", Message: fmt.Sprintf("Got a packet bigger than %d bytes before login", maxLoginPacket)}}
		case err != nil:
			return nil, &loginRefused{reason: refusedIO, err: err}
		case seq != want:
			return nil, &loginRefused{reason: refusedBad, err: fmt.Errorf("packet sequence %d, want %d", seq, want),
				reply: &gmysql.MyError{Code: gmysql.ER_NET_PACKETS_OUT_OF_ORDER, State: "08S01", Message: "Got packets out of order"}}
		}
		want = lg.seq
		return pkt, nil
	}
	bad := func(format string, args ...any) error {
		return &loginRefused{reason: refusedBad, err: fmt.Errorf(format, args...),
			reply: &gmysql.MyError{Code: gmysql.ER_HANDSHAKE_ERROR, State: "08S01", Message: "Bad handshake"}}
	}
	pkt, err := read()
	if err != nil {
		return lg, err
	}
	if len(pkt) < 32 {
		return lg, bad("a handshake response of %d bytes", len(pkt))
	}
	caps := binary.LittleEndian.Uint32(pkt)
	if caps&gmysql.CLIENT_PROTOCOL_41 == 0 || caps&gmysql.CLIENT_SECURE_CONNECTION == 0 {
		return lg, bad("a client without CLIENT_PROTOCOL_41 and CLIENT_SECURE_CONNECTION")
	}
	if len(pkt) == 32 && caps&gmysql.CLIENT_SSL != 0 {
		// An SSLRequest: TLS, then the real handshake response over it.
		// NB: the client may send its ClientHello right behind the
		// SSLRequest; bytes the reader already buffered go to TLS first.
		tc := tls.Server(bufferedConn{nc, rd.r}, p.tls)
		if err := tc.Handshake(); err != nil {
			return lg, &loginRefused{reason: refusedIO, err: fmt.Errorf("TLS handshake: %w", err)}
		}
		lg.nc, lg.tls = tc, true
		rd = newPacketReader(tc, maxLoginPacket)
		if pkt, err = read(); err != nil {
			return lg, err
		}
		if len(pkt) < 32 {
			return lg, bad("a handshake response of %d bytes", len(pkt))
		}
		caps = binary.LittleEndian.Uint32(pkt)
	}
	if p.requireTLS && !lg.tls {
		return lg, &loginRefused{reason: refusedTLS, err: errors.New("the client did not switch to TLS"),
			reply: &gmysql.MyError{Code: erSecureTransportRequired, State: "HY000", Message: "Connections using insecure transport are prohibited while --dump-require-tls is on."}}
	}
	lg.caps, lg.r = caps&serverCaps, rd.r
	resp, err := parseHandshakeResponse(pkt, caps)
	if err != nil {
		return lg, bad("%v", err)
	}
	lg.user, lg.db = resp.user, resp.db
	auth := resp.auth
	if resp.plugin != p.method {
		// NB: whatever the client offered (mysql_clear_password included),
		// it switches to the server's method; the password never travels in
		// a readable form.
		sw := append([]byte{gmysql.EOF_HEADER}, p.method...)
		salt = gmysql.RandomBuf(20)
		sw = append(append(append(sw, 0), salt...), 0)
		if err := writePacket(lg.nc, lg.seq, sw); err != nil {
			return lg, &loginRefused{reason: refusedIO, err: err}
		}
		if auth, err = read(); err != nil {
			return lg, err
		}
		if len(auth) == 1 && auth[0] == 0 {
			auth = nil
		}
	}
	if !checkPassword(p, resp.user, salt, auth) {
		using := "YES"
		if len(auth) == 0 {
			using = "NO"
		}
		return lg, &loginRefused{reason: refusedPassword, err: errors.New("wrong password or unknown user"),
			reply: &gmysql.MyError{Code: gmysql.ER_ACCESS_DENIED_ERROR, State: "28000", Message: fmt.Sprintf("Access denied for user '%s'@'%s' (using password: %s)", clipName(resp.user), hostOf(nc.RemoteAddr()), using)}}
	}
	if p.method == gmysql.AUTH_CACHING_SHA2_PASSWORD && len(auth) > 0 {
		// Fast authentication succeeded: the scramble proves the password
		// (the server knows it, so there is never a full-auth round).
		if err := writePacket(lg.nc, lg.seq, []byte{gmysql.MORE_DATE_HEADER, gmysql.CACHE_SHA2_FAST_AUTH}); err != nil {
			return lg, &loginRefused{reason: refusedIO, err: err}
		}
		lg.seq++
	}
	return lg, nil
}

// bufferedConn reads through r (which buffered nc's bytes) and writes to nc.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (b bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// greetingPacket is the Protocol::HandshakeV10 payload.
func greetingPacket(p loginParams, salt []byte) []byte {
	b := []byte{10}
	b = append(append(b, p.greeting...), 0)
	b = binary.LittleEndian.AppendUint32(b, p.connID)
	b = append(append(b, salt[:8]...), 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(serverCaps&0xffff))
	b = append(b, gmysql.DEFAULT_COLLATION_ID, 0, 0) // charset, status
	b = binary.LittleEndian.AppendUint16(b, uint16(serverCaps>>16))
	b = append(b, byte(len(salt)+1))
	b = append(b, make([]byte, 10)...)
	b = append(append(b, salt[8:]...), 0)
	return append(append(b, p.method...), 0)
}

type handshakeResponse struct {
	user, db, plugin string
	auth             []byte
}

// parseHandshakeResponse decodes Protocol::HandshakeResponse41 (pure).
func parseHandshakeResponse(pkt []byte, caps uint32) (handshakeResponse, error) {
	var r handshakeResponse
	b := pkt[32:]
	cstr := func(what string) (string, error) {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return "", fmt.Errorf("%s not terminated", what)
		}
		s := string(b[:i])
		b = b[i+1:]
		return s, nil
	}
	var err error
	if r.user, err = cstr("user name"); err != nil {
		return r, err
	}
	switch {
	case caps&gmysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0:
		// NB: not gmysql.LengthEncodedString, which indexes past the end
		// of a short input.
		n, hl, ok := lenencInt(b)
		if !ok || n > uint64(len(b)-hl) {
			return r, errors.New("bad auth data")
		}
		r.auth, b = b[hl:hl+int(n)], b[hl+int(n):]
	default:
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return r, errors.New("auth data truncated")
		}
		r.auth, b = b[1:1+int(b[0])], b[1+int(b[0]):]
	}
	if caps&gmysql.CLIENT_CONNECT_WITH_DB != 0 && len(b) > 0 {
		if r.db, err = cstr("database name"); err != nil {
			return r, err
		}
	}
	r.plugin = gmysql.AUTH_NATIVE_PASSWORD
	if caps&gmysql.CLIENT_PLUGIN_AUTH != 0 && len(b) > 0 {
		if i := bytes.IndexByte(b, 0); i >= 0 {
			r.plugin = string(b[:i])
		} else {
			r.plugin = string(b)
		}
	}
	return r, nil // NB: connection attributes are not read
}

// lenencInt decodes a length-encoded integer: its value and length; ok
// is false when b is too short or holds NULL (0xfb) or 0xff.
func lenencInt(b []byte) (v uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch b[0] {
	case 0xfb, 0xff:
		return 0, 0, false
	case 0xfc:
		n = 3
	case 0xfd:
		n = 4
	case 0xfe:
		n = 9
	default:
		return uint64(b[0]), 1, true
	}
	if len(b) < n {
		return 0, 0, false
	}
	for i := n - 1; i >= 1; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, n, true
}

// checkPassword verifies a client's scramble of the account's password
// for salt; an unknown user never matches.
func checkPassword(p loginParams, user string, salt, auth []byte) bool {
	if user != p.user {
		return false
	}
	if p.password == "" || len(auth) == 0 {
		return p.password == "" && len(auth) == 0
	}
	var want []byte
	if p.method == gmysql.AUTH_CACHING_SHA2_PASSWORD {
		want = gmysql.CalcCachingSha2Password(salt, []byte(p.password))
	} else {
		want = gmysql.CalcNativePassword(salt, []byte(p.password))
	}
	return subtle.ConstantTimeCompare(want, auth) == 1
}

// writePacket writes one packet (payload under 16 MiB) with sequence seq.
func writePacket(w io.Writer, seq uint8, payload []byte) error {
	b := make([]byte, 4, 4+len(payload))
	n := len(payload)
	b[0], b[1], b[2], b[3] = byte(n), byte(n>>8), byte(n>>16), seq
	_, err := w.Write(append(b, payload...))
	return err
}

// errPacket is an ERR packet's payload.
func errPacket(e *gmysql.MyError) []byte {
	b := []byte{gmysql.ERR_HEADER, byte(e.Code), byte(e.Code >> 8), '#'}
	return append(append(b, e.State...), e.Message...)
}

// hostOf is the host of an address (the address itself if it has none).
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// clipName shortens a user name a client sent for messages and logs.
func clipName(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return string(bytes.ToValidUTF8([]byte(s), []byte("?")))
}
