package dump_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlogsvr/binlogsvr/dump"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/mysqltls"
	"github.com/binlogsvr/binlogsvr/logger/pki"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
)

// noLog is a member whose log is not open: logins and probes work, dumps
// wait.
type noLog struct{}

func (noLog) Reader() *logger.Reader { return nil }

// TestLoginMethods: both flavors' methods (mysql_native_password,
// caching_sha2_password), plaintext and TLS, right and wrong password.
func TestLoginMethods(t *testing.T) {
	t.Parallel()
	for _, flavor := range []string{"mariadb", "mysql"} {
		srv := dumptest.Serve(t, noLog{}, func(c *dump.Config) { c.Flavor = flavor; c.LoginFailures = -1 })
		for _, tc := range []*tls.Config{nil, {InsecureSkipVerify: true}} {
			c, err := dumptest.Connect(srv.Addr(), dumptest.DumpPassword, tc)
			if err != nil {
				t.Fatalf("%s tls=%v: login: %v", flavor, tc != nil, err)
			}
			r, err := c.Execute("SELECT @@server_id")
			if err != nil || len(r.Values) != 1 {
				t.Errorf("%s tls=%v: SELECT @@server_id: %v", flavor, tc != nil, err)
			}
			c.Close()
			_, err = dumptest.Connect(srv.Addr(), "wrong", tc)
			if dumptest.MySQLErrorCode(err) != mysql.ER_ACCESS_DENIED_ERROR {
				t.Errorf("%s tls=%v: wrong password: got %v, want error 1045", flavor, tc != nil, err)
			}
			_, err = dumptest.Connect(srv.Addr(), "", tc)
			if dumptest.MySQLErrorCode(err) != mysql.ER_ACCESS_DENIED_ERROR || !strings.Contains(err.Error(), "using password: NO") {
				t.Errorf("%s tls=%v: no password: got %v, want error 1045 (using password: NO)", flavor, tc != nil, err)
			}
		}
	}
}

// TestRequireTLS: with --dump-require-tls a plaintext client gets error
// 3159 and a TLS client (verifying the certificate) logs in.
func TestRequireTLS(t *testing.T) {
	t.Parallel()
	p := pki.Testing(t, t.TempDir())
	srv := dumptest.Serve(t, noLog{}, func(c *dump.Config) {
		c.TLSCert, c.TLSKey, c.RequireTLS = p.Members[0].Cert, p.Members[0].Key, true
	})
	_, err := dumptest.Connect(srv.Addr(), dumptest.DumpPassword, nil)
	if dumptest.MySQLErrorCode(err) != 3159 || !strings.Contains(err.Error(), "--dump-require-tls") {
		t.Fatalf("plaintext: got %v, want error 3159 naming --dump-require-tls", err)
	}
	tc, err := pki.Files{CA: p.CA}.ClientConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := dumptest.Connect(srv.Addr(), dumptest.DumpPassword, tc)
	if err != nil {
		t.Fatalf("TLS: %v", err)
	}
	c.Close()

	cfg := dump.DefaultConfig()
	cfg.RequireTLS = true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--dump-tls-cert") {
		t.Errorf("Validate of --dump-require-tls without a certificate: %v", err)
	}
}

// rawConn dials and reads the greeting (or the error sent instead).
func rawConn(t *testing.T, addr string) (net.Conn, []byte) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc, dumptest.ReadPacket(t, nc)
}

// TestPreAuthPacketCap: a client that announces 16 MiB continuation
// packets before login is refused at the first header (error 1153) and
// its connection closed, before the server reads or allocates the
// payload.
func TestPreAuthPacketCap(t *testing.T) {
	t.Parallel()
	srv := dumptest.Serve(t, noLog{}, nil)
	nc, _ := rawConn(t, srv.Addr())
	hdr := []byte{0xff, 0xff, 0xff, 1}
	if _, err := nc.Write(append(hdr, make([]byte, 64<<10)...)); err != nil {
		t.Fatal(err)
	}
	p := dumptest.ReadPacket(t, nc)
	if dumptest.ErrCode(p) != mysql.ER_NET_PACKET_TOO_LARGE {
		t.Fatalf("got %q, want error 1153", p)
	}
	if _, err := io.Copy(io.Discard, nc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed: %v", err)
	}
}

// TestPreLoginClientsCounted: connections that never log in count toward
// --dump-max-clients (the next one gets 1040) and are dropped at the
// login deadline, which frees their places.
func TestPreLoginClientsCounted(t *testing.T) {
	t.Parallel()
	srv := dumptest.Serve(t, noLog{}, func(c *dump.Config) { c.MaxClients, c.HandshakeTimeout = 3, 2*time.Second })
	start := time.Now()
	var idle []net.Conn
	for i := 0; i < 3; i++ {
		nc, g := rawConn(t, srv.Addr())
		if len(g) == 0 || g[0] != 10 {
			t.Fatalf("connection %d: got %q, want a greeting", i, g)
		}
		idle = append(idle, nc)
	}
	_, p := rawConn(t, srv.Addr())
	if dumptest.ErrCode(p) != mysql.ER_CON_COUNT_ERROR {
		t.Fatalf("4th connection: got %q, want error 1040", p)
	}
	for i, nc := range idle {
		if _, err := io.Copy(io.Discard, nc); err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
	}
	if d := time.Since(start); d < 1500*time.Millisecond || d > 8*time.Second {
		t.Errorf("idle connections dropped after %v, want about the 2 s login deadline", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dumptest.Connect(srv.Addr(), dumptest.DumpPassword, nil)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login after the idle connections were dropped: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLoginThrottle: after 5 wrong passwords from one address the
// address is blocked (error 1129, even with the right password) for a
// backoff that doubles; a login after the block succeeds.
func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	srv := dumptest.Serve(t, noLog{}, nil)
	start := time.Now()
	tries, checked := 0, 0
	for time.Since(start) < 3*time.Second {
		_, err := dumptest.Connect(srv.Addr(), "guess", nil)
		tries++
		switch dumptest.MySQLErrorCode(err) {
		case mysql.ER_ACCESS_DENIED_ERROR:
			checked++
		case mysql.ER_HOST_IS_BLOCKED:
		default:
			t.Fatalf("guess %d: got %v, want 1045 or 1129", tries, err)
		}
	}
	// 5 guesses, a 1 s block, 1 guess, a 2 s block: at most 7 in 3 s.
	if checked < 5 || checked > 7 {
		t.Errorf("%d of %d guesses were checked in 3 s, want 5 to 7", checked, tries)
	}
	// The loop may end just as a block runs out: guess until one more is
	// checked (that starts a fresh, longer block), then the right
	// password must be refused too.
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err := dumptest.Connect(srv.Addr(), "guess", nil)
		if dumptest.MySQLErrorCode(err) == mysql.ER_ACCESS_DENIED_ERROR {
			break
		}
		if dumptest.MySQLErrorCode(err) != mysql.ER_HOST_IS_BLOCKED || time.Now().After(deadline) {
			t.Fatalf("guess after the loop: got %v, want 1045 once the block ends", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err := dumptest.Connect(srv.Addr(), dumptest.DumpPassword, nil)
	if dumptest.MySQLErrorCode(err) != mysql.ER_HOST_IS_BLOCKED || !strings.Contains(err.Error(), "--dump-login-failures") {
		t.Fatalf("right password while blocked: got %v, want 1129", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := dumptest.Connect(srv.Addr(), dumptest.DumpPassword, nil)
		if err == nil {
			c.Close()
			break
		}
		if dumptest.MySQLErrorCode(err) != mysql.ER_HOST_IS_BLOCKED || time.Now().After(deadline) {
			t.Fatalf("right password after the block: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d guesses in 3 s, %d checked (unthrottled: hundreds)", tries, checked)
}

// TestPreparedStmtCap: a session holds at most --dump-max-prepared-stmts
// statements (error 1461 past it); closing one makes room.
func TestPreparedStmtCap(t *testing.T) {
	t.Parallel()
	srv := dumptest.Serve(t, noLog{}, func(c *dump.Config) { c.MaxPreparedStmts = 8 })
	c, err := dumptest.Connect(srv.Addr(), dumptest.DumpPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var stmts []*client.Stmt
	for i := 0; i < 8; i++ {
		st, err := c.Prepare("SELECT @@server_id")
		if err != nil {
			t.Fatalf("statement %d: %v", i, err)
		}
		stmts = append(stmts, st)
	}
	if _, err := c.Prepare("SELECT @@server_id"); dumptest.MySQLErrorCode(err) != mysql.ER_MAX_PREPARED_STMT_COUNT_REACHED {
		t.Fatalf("9th statement: got %v, want error 1461", err)
	}
	if err := stmts[0].Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prepare("SELECT @@server_id"); err != nil {
		t.Fatalf("after a close: %v", err)
	}
}

// TestMaxPacket: a logged-in client's command over --dump-max-packet is
// refused with 1153 from its header.
func TestMaxPacket(t *testing.T) {
	t.Parallel()
	srv := dumptest.Serve(t, noLog{}, func(c *dump.Config) { c.MaxPacket = 64 << 10 })
	c, err := dumptest.Connect(srv.Addr(), dumptest.DumpPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Execute("SELECT '" + strings.Repeat("x", 32<<10) + "'"); dumptest.MySQLErrorCode(err) == mysql.ER_NET_PACKET_TOO_LARGE {
		t.Fatalf("a 32 KiB query: %v", err)
	}
	_, err = c.Execute("SELECT '" + strings.Repeat("x", 100<<10) + "'")
	if dumptest.MySQLErrorCode(err) != mysql.ER_NET_PACKET_TOO_LARGE {
		t.Fatalf("a 100 KiB query: got %v, want error 1153", err)
	}
}

// TestSchemaEndpointSecret: the schema endpoint's password never comes
// from the command line: the old user:password@host form is refused with
// an error naming where the password goes (and not showing it), and
// LoadSecrets reads it from the environment or a file.
func TestSchemaEndpointSecret(t *testing.T) {
	cfg := dump.DefaultConfig()
	cfg.SchemaEndpoint = "root:hunter2@127.0.0.1:3306"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), dump.EnvSchemaPassword) || !strings.Contains(err.Error(), "--dump-schema-password-file") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("old form: %v", err)
	}
	cfg.SchemaEndpoint = "root@127.0.0.1:3306/db"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("user@host:port/db: %v", err)
	}
	env := map[string]string{dump.EnvSchemaPassword: "from-env"}
	if err := cfg.LoadSecrets(func(k string) string { return env[k] }); err != nil || cfg.SchemaPassword != "from-env" {
		t.Fatalf("from the environment: %q %v", cfg.SchemaPassword, err)
	}
	file := t.TempDir() + "/pw"
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.SchemaPasswordFile = file
	if err := cfg.LoadSecrets(func(k string) string { return env[k] }); err != nil || cfg.SchemaPassword != "from-file" {
		t.Fatalf("from the file: %q %v", cfg.SchemaPassword, err)
	}
	cfg.SchemaTLS.Mode = mysqltls.VerifyCA
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--dump-schema-ssl-ca") {
		t.Fatalf("VERIFY_CA without a CA: %v", err)
	}
}
