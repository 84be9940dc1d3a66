package mysqltls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

const secretPassword = "s3cret-Pa55word-never-on-the-wire"

// fakeServer is a tiny MySQL server: it greets, optionally upgrades to
// TLS, then asks the client to switch to a plugin (mysql_clear_password)
// and records every byte it receives (decrypted).
type fakeServer struct {
	ln       net.Listener
	offerTLS *tls.Config // offer CLIENT_SSL with this certificate
	greetAs  string      // the greeting's default plugin
	switchTo string      // the auth switch's plugin ("": none)

	mu   sync.Mutex
	got  []byte
	done chan struct{}
}

func startFake(t *testing.T, greetAs, switchTo string, offerTLS *tls.Config) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{ln: ln, offerTLS: offerTLS, greetAs: greetAs, switchTo: switchTo, done: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go f.serve()
	return f
}

func (f *fakeServer) addr() string { return f.ln.Addr().String() }

func (f *fakeServer) received() []byte {
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.got...)
}

type recorder struct {
	net.Conn
	f *fakeServer
}

func (r recorder) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	r.f.mu.Lock()
	r.f.got = append(r.f.got, b[:n]...)
	r.f.mu.Unlock()
	return n, err
}

func writePacket(w io.Writer, seq byte, p []byte) error {
	h := []byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), seq}
	_, err := w.Write(append(h, p...))
	return err
}

func readPacket(r io.Reader) ([]byte, byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, 0, err
	}
	p := make([]byte, int(h[0])|int(h[1])<<8|int(h[2])<<16)
	_, err := io.ReadFull(r, p)
	return p, h[3], err
}

func greetingPayload(plugin string, ssl bool) []byte {
	caps := uint32(0x1 | 0x200 | 0x2000 | 0x8000 | 0x80000) // LONG_PASSWORD, PROTOCOL_41, TRANSACTIONS, SECURE_CONNECTION, PLUGIN_AUTH
	if ssl {
		caps |= capClientSSL
	}
	p := []byte{10}
	p = append(p, "8.0.99-fake\x00"...)
	p = append(p, 1, 0, 0, 0)
	p = append(p, "abcdefgh"...)
	p = append(p, 0, byte(caps), byte(caps>>8), 0x21, 2, 0, byte(caps>>16), byte(caps>>24), 21)
	p = append(p, make([]byte, 10)...)
	p = append(p, "ijklmnopqrst\x00"...)
	return append(p, plugin+"\x00"...)
}

func (f *fakeServer) serve() {
	defer close(f.done)
	nc, err := f.ln.Accept()
	if err != nil {
		return
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	var c net.Conn = recorder{nc, f}
	if writePacket(c, 0, greetingPayload(f.greetAs, f.offerTLS != nil)) != nil {
		return
	}
	p, seq, err := readPacket(c)
	if err != nil {
		return
	}
	if f.offerTLS != nil && len(p) == 32 { // SSLRequest
		tc := tls.Server(nc, f.offerTLS)
		if tc.Handshake() != nil {
			return
		}
		c = recorder{tc, f}
		if p, seq, err = readPacket(c); err != nil {
			return
		}
	}
	_ = p
	if f.switchTo != "" {
		if writePacket(c, seq+1, append(append([]byte{0xfe}, f.switchTo+"\x00"...), "abcdefghijklmnopqrst\x00"...)) != nil {
			return
		}
		if _, seq, err = readPacket(c); err != nil {
			return
		}
	}
	_ = writePacket(c, seq+1, []byte{0, 0, 0, 2, 0, 0, 0})
	_, _, _ = readPacket(c) // until the client closes
}

// selfSigned returns a server certificate for 127.0.0.1 and its CA file.
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake mysql"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, ca
}

func login(cfg Config, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, cfg, addr, "admin", secretPassword)
	if err == nil {
		c.Close()
	}
	return err
}

func TestCleartextRefusedOverPlaintext(t *testing.T) {
	// The control: go-mysql alone sends the password to this server.
	f := startFake(t, "mysql_native_password", clearPasswordPlugin, nil)
	c, err := client.ConnectWithDialer(context.Background(), "tcp", f.addr(), "admin", secretPassword, "",
		(&net.Dialer{Timeout: 5 * time.Second}).DialContext)
	if err != nil {
		t.Fatalf("control login: %v", err)
	}
	c.Close()
	if !bytes.Contains(f.received(), []byte(secretPassword)) {
		t.Fatal("control: go-mysql did not send the cleartext password; the fake server does not reproduce the attack")
	}

	for _, c := range []struct {
		name              string
		mode              Mode
		greetAs, switchTo string
	}{
		{"auth switch, PREFERRED without server TLS", Preferred, "mysql_native_password", clearPasswordPlugin},
		{"auth switch, DISABLED", Disabled, "caching_sha2_password", clearPasswordPlugin},
		{"greeting's default plugin", Disabled, clearPasswordPlugin, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := startFake(t, c.greetAs, c.switchTo, nil)
			err := login(Config{Mode: c.mode}, f.addr())
			if !errors.Is(err, ErrCleartext) {
				t.Fatalf("login: %v, want ErrCleartext", err)
			}
			for _, want := range []string{"mysql_clear_password over a plaintext connection", "--source-ssl-mode=REQUIRED"} {
				if !bytes.Contains([]byte(err.Error()), []byte(want)) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if got := f.received(); bytes.Contains(got, []byte(secretPassword)) {
				t.Fatalf("the password reached the server: %q", got)
			}
		})
	}
}

func TestCleartextAllowedOverTLS(t *testing.T) {
	srv, ca := selfSigned(t)
	f := startFake(t, "mysql_native_password", clearPasswordPlugin, srv)
	if err := login(Config{Mode: VerifyIdentity, CAFile: ca}, f.addr()); err != nil {
		t.Fatalf("login over TLS: %v", err)
	}
	if !bytes.Contains(f.received(), []byte(secretPassword)) {
		t.Fatal("the password did not arrive over TLS")
	}
}

func TestModes(t *testing.T) {
	srv, ca := selfSigned(t)
	_, otherCA := selfSigned(t)
	for _, c := range []struct {
		name    string
		cfg     Config
		tls     bool // the server offers TLS
		wantTLS bool
		wantErr error
	}{
		{"PREFERRED, TLS offered", Config{}, true, true, nil},
		{"PREFERRED, none offered", Config{}, false, false, nil},
		{"DISABLED, TLS offered", Config{Mode: Disabled}, true, false, nil},
		{"REQUIRED, none offered", Config{Mode: Required}, false, false, ErrNoTLS},
		{"REQUIRED, TLS offered", Config{Mode: Required}, true, true, nil},
		{"VERIFY_CA, right CA", Config{Mode: VerifyCA, CAFile: ca}, true, true, nil},
		{"VERIFY_CA, wrong CA", Config{Mode: VerifyCA, CAFile: otherCA}, true, false, errAny},
		{"VERIFY_IDENTITY, wrong CA", Config{Mode: VerifyIdentity, CAFile: otherCA}, true, false, errAny},
	} {
		t.Run(c.name, func(t *testing.T) {
			var offer *tls.Config
			if c.tls {
				offer = srv
			}
			f := startFake(t, "mysql_native_password", "", offer)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cn, err := Connect(ctx, c.cfg, f.addr(), "admin", secretPassword)
			switch {
			case c.wantErr == nil && err != nil:
				t.Fatalf("login: %v", err)
			case c.wantErr == errAny && err == nil, c.wantErr != nil && c.wantErr != errAny && !errors.Is(err, c.wantErr):
				t.Fatalf("login: %v, want %v", err, c.wantErr)
			case err != nil:
				return
			}
			defer cn.Close()
			_, isTLS := cn.Conn.Conn.(*tls.Conn)
			if isTLS != c.wantTLS {
				t.Fatalf("TLS %v, want %v", isTLS, c.wantTLS)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestValidate(t *testing.T) {
	_, ca := selfSigned(t)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Mode: VerifyCA}, "--source-ssl-mode=VERIFY_CA needs --source-ssl-ca"},
		{Config{Mode: VerifyIdentity, Prefix: "failover"}, "--failover-ssl-mode=VERIFY_IDENTITY needs --failover-ssl-ca"},
		{Config{Mode: Required, CAFile: ca}, "--source-ssl-ca is set but --source-ssl-mode=REQUIRED does not check"},
		{Config{Mode: VerifyCA, CAFile: ca}, ""},
		{Config{Mode: VerifyCA, CAFile: filepath.Join(t.TempDir(), "none.pem")}, "--source-ssl-ca: open"},
	} {
		err := c.cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.want != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.want))):
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	for _, s := range []string{"disabled", "PREFERRED", "Required", "verify_ca", "VERIFY_IDENTITY"} {
		m, err := ParseMode(s)
		if err != nil || !bytes.EqualFold([]byte(m.String()), []byte(s)) {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMode("ON"); err == nil {
		t.Error("ParseMode(ON) accepted")
	}
}

// TestAuthWatchSplit feeds an auth switch one byte at a time, and one
// preceded by a caching_sha2 "more data" packet.
func TestAuthWatchSplit(t *testing.T) {
	pkt := func(p []byte) []byte {
		return append([]byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), 2}, p...)
	}
	sw := pkt([]byte("\xfemysql_clear_password\x00salt\x00"))
	for _, c := range []struct {
		name   string
		stream []byte
		want   watchResult
	}{
		{"switch", sw, watchRefuse},
		{"more data then switch", append(pkt([]byte{0x01, 0x04}), sw...), watchRefuse},
		{"switch to caching_sha2", pkt([]byte("\xfecaching_sha2_password\x00salt\x00")), watchMore},
		{"ok", pkt([]byte{0, 0, 0, 2, 0}), watchDone},
		{"err", pkt([]byte("\xff\x15\x04#28000denied")), watchDone},
	} {
		var w authWatch
		got := watchMore
		for i := range c.stream {
			if got = w.feed(c.stream[i : i+1]); got != watchMore {
				break
			}
		}
		if got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
