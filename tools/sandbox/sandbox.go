package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// Options configures Start. The zero value of every field but Flavor is usable.
type Options struct {
	Flavor Flavor
	// ServerID is the server_id; 0 picks the server's port, which no other live sandbox server has.
	ServerID uint32
	// SemiSyncSource enables the source side of semi-sync, waiting AFTER_SYNC for SemiSyncTimeout.
	// MariaDB: rpl_semi_sync_master_*; MySQL: semisync_source.so, rpl_semi_sync_source_*. With no
	// semi-sync replica connected, every commit waits the whole timeout.
	SemiSyncSource bool
	// SemiSyncReplica enables the replica side (MariaDB rpl_semi_sync_slave_enabled; MySQL
	// semisync_replica.so, rpl_semi_sync_replica_enabled).
	SemiSyncReplica bool
	// SemiSyncTimeout is how long a semi-sync source waits for an ACK before it falls back to
	// asynchronous replication. 0 means 30 s: long, so a test sees a missing ACK rather than a
	// source that silently degraded.
	SemiSyncTimeout time.Duration
	// ExtraArgs are appended to the server's command line (later options win).
	ExtraArgs []string
	// Dir is the parent of the sandbox directory; "" means os.TempDir() for MariaDB and the
	// chroot's /tmp for MySQL. For MySQL it must lie inside the chroot (ChrootDir()).
	Dir string
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
	// BindAddress is the loopback address the server listens on and reports (--bind-address,
	// --report-host); "" means 127.0.0.1. It must lie in 127.0.0.0/8 (tools/netsim gives each
	// simulated host its own).
	BindAddress string
}

// Server is one running (or stopped) sandbox server. Its methods are safe for concurrent use.
type Server struct {
	impl flavorImpl
	opts Options
	l    layout
	port int
	argv []string

	mu     sync.Mutex
	p      *proc // nil when not running
	closed bool
}

const (
	readyTimeout = 120 * time.Second // bound on one start until the server accepts logins (loaded CI machines)
	stopGrace    = 60 * time.Second  // bound on a clean shutdown before SIGKILL
	startTries   = 3                 // attempts with fresh ports when the chosen one is taken
)

// Start makes a fresh server: copies the flavor's template data directory (building the template
// the first time), starts the server on a free 127.0.0.1 port and waits until RootUser can log in.
// Start writes nothing, so the binary log and GTID history start empty. The returned Server must
// be Closed. On error nothing is left running or on disk.
func Start(ctx context.Context, o Options) (*Server, error) {
	impl, err := lookupFlavor(o.Flavor)
	if err != nil {
		return nil, err
	}
	if err := impl.available(); err != nil {
		return nil, err
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.SemiSyncTimeout <= 0 {
		o.SemiSyncTimeout = 30 * time.Second
	}
	if o.BindAddress == "" {
		o.BindAddress = "127.0.0.1"
	}
	if ip := net.ParseIP(o.BindAddress); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return nil, fmt.Errorf("sandbox: Options.BindAddress %q is not an IPv4 loopback address (127.0.0.0/8)", o.BindAddress)
	}
	parent := o.Dir
	if parent == "" {
		parent = impl.defaultParent()
	}
	parent, err = filepath.Abs(parent)
	if err != nil {
		return nil, err
	}
	if root := impl.root(); root != "" && !inside(root, parent) {
		return nil, fmt.Errorf("sandbox: Options.Dir %s must be inside the %s chroot %s (leave it empty to use %s)",
			parent, impl.name(), root, impl.defaultParent())
	}
	if root := impl.root(); root != "" {
		if err := ensureProc(root); err != nil {
			return nil, err
		}
	}
	tmpl, err := template(ctx, impl, o.Logf)
	if err != nil {
		return nil, err
	}

	var lastErr error
	for try := 0; try < startTries; try++ {
		s, err := startFresh(ctx, impl, o, parent, tmpl)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) || ctx.Err() != nil {
			break
		}
		o.Logf("sandbox: %v; retrying on another port", err)
	}
	return nil, lastErr
}

var errPortTaken = errors.New("sandbox: port already in use")

func startFresh(ctx context.Context, impl flavorImpl, o Options, parent, tmpl string) (*Server, error) {
	t0 := time.Now()
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "sbx-"+string(impl.name())+"-*")
	if err != nil {
		return nil, err
	}
	l := newLayout(impl.root(), dir)
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := l.makeDirs(); err != nil {
		return fail(err)
	}
	if err := copyTree(tmpl, l.dataDir); err != nil {
		return fail(err)
	}
	port, err := freePort(o.BindAddress)
	if err != nil {
		return fail(err)
	}
	if o.ServerID == 0 {
		o.ServerID = uint32(port)
	}
	argv := append([]string{impl.binary(), "--no-defaults"}, impl.baseArgs(l)...)
	argv = append(argv, impl.serverArgs(l, o, port)...)
	argv = append(argv, o.ExtraArgs...)
	s := &Server{impl: impl, opts: o, l: l, port: port, argv: argv}
	if err := s.launch(ctx); err != nil {
		return fail(err)
	}
	o.Logf("sandbox: %s started on %s (pid %d, server_id %d, dir %s) in %v",
		impl.name(), s.Addr(), s.PID(), o.ServerID, dir, time.Since(t0).Round(time.Millisecond))
	return s, nil
}

// launch starts the process and waits until root can log in over TCP; on failure the process is
// gone.
func (s *Server) launch(ctx context.Context) error {
	p, err := startProc(s.l.root, s.argv, s.l.console)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	wantSocket := s.l.in(s.l.socket)
	conn, err := waitReady(rctx, p, s.l, func(ctx context.Context) (*client.Conn, error) {
		c, err := connect(ctx, "tcp", s.Addr(), rootUser, rootPassword)
		if err != nil {
			return nil, err
		}
		// NB: if another process took the port, this login may reach that server (another
		// sandbox has the same accounts) while ours fails to bind: check it is ours.
		r, err := c.Execute("SELECT @@GLOBAL.socket")
		if err == nil {
			got, _ := r.GetString(0, 0)
			if got != wantSocket {
				err = fmt.Errorf("port %d answered by another server (socket %s)", s.port, got)
			}
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	})
	if err != nil {
		p.kill()
		if strings.Contains(s.l.logTail(50), "Address already in use") {
			return fmt.Errorf("%w: %d", errPortTaken, s.port)
		}
		return fmt.Errorf("sandbox: %s on port %d: %w", s.impl.name(), s.port, err)
	}
	conn.Close()
	s.mu.Lock()
	s.p = p
	s.mu.Unlock()
	return nil
}

// waitReady polls dial until it logs in, the process exits or ctx ends.
func waitReady(ctx context.Context, p *proc, l layout, dial func(context.Context) (*client.Conn, error)) (*client.Conn, error) {
	var lastErr error
	for {
		if p.exited() {
			return nil, fmt.Errorf("server exited during startup (%v)%s", p.err, l.logTail(40))
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := dial(actx)
		cancel()
		if err == nil {
			return conn, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("server not ready: %w (last login error: %v)%s", ctx.Err(), lastErr, l.logTail(40))
		case <-p.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// connect logs in over network ("tcp" or "unix") with the login bounded by ctx, or by 30 s without
// a deadline: go-mysql's own timeout covers only the dial, and a server that accepts but never
// answers would hang the handshake.
func connect(ctx context.Context, network, addr, user, password string) (*client.Conn, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	var nc net.Conn
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialNet(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(deadline)
		nc = c
		return c, nil
	}
	conn, err := client.ConnectWithDialer(ctx, network, addr, user, password, "", dial)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return conn, nil
}

// dialNet dials TCP, or a Unix socket whose host path may exceed the 108-byte sun_path limit (a
// socket deep inside the chroot): that goes through /proc/self/fd/N of the socket's directory.
func dialNet(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if network != "unix" || len(addr) < 100 {
		return d.DialContext(ctx, network, addr)
	}
	dir, err := os.Open(filepath.Dir(addr))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(addr)))
}

func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("sandbox: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Addr is "127.0.0.1:PORT" (Options.BindAddress instead of 127.0.0.1 when set).
func (s *Server) Addr() string { return net.JoinHostPort(s.opts.BindAddress, strconv.Itoa(s.port)) }

// Port is the server's TCP port; it stays the same across Restart.
func (s *Server) Port() int { return s.port }

// Flavor is the server's flavor.
func (s *Server) Flavor() Flavor { return s.impl.name() }

// ServerID is the server_id the server runs with.
func (s *Server) ServerID() uint32 { return s.opts.ServerID }

// PID is the server process's id (mysqld's own, also for the chrooted MySQL), or 0 when it is not
// running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil || s.p.exited() {
		return 0
	}
	return s.p.pid
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool { return s.PID() != 0 }

// RootUser is an administrator with all privileges, for TCP logins from 127.0.0.1.
func (s *Server) RootUser() (user, password string) { return rootUser, rootPassword }

// ReplUser is the replication account: REPLICATION SLAVE and REPLICATION CLIENT on *.*, which
// covers COM_REGISTER_SLAVE, COM_BINLOG_DUMP(_GTID), SHOW MASTER/BINARY LOG STATUS, SHOW BINARY
// LOGS and the variable probes replicas and CDC clients send. It has no SELECT on tables.
func (s *Server) ReplUser() (user, password string) { return replUser, replPassword }

// Dir is the host path of the sandbox directory (data, binlogs, logs, socket).
func (s *Server) Dir() string { return s.l.dir }

// DataDir is the host path of the data directory.
func (s *Server) DataDir() string { return s.l.dataDir }

// ErrorLog is the host path of the server's error log.
func (s *Server) ErrorLog() string { return s.l.errorLog }

// BinlogDir is the host path of the directory holding the binary log files (binlog.000001, ...,
// binlog.index).
func (s *Server) BinlogDir() string { return s.l.binlogDir }

// Socket is the host path of the server's Unix socket.
func (s *Server) Socket() string { return s.l.socket }

// LogTail returns the last lines of the error log and console output, for test failure messages.
func (s *Server) LogTail(lines int) string { return s.l.logTail(lines) }

// Conn opens a new go-mysql connection as RootUser; the caller closes it. ctx bounds the
// connection and login only.
func (s *Server) Conn(ctx context.Context) (*client.Conn, error) {
	conn, err := connect(ctx, "tcp", s.Addr(), rootUser, rootPassword)
	if err != nil {
		return nil, fmt.Errorf("sandbox: connect to %s %s: %w", s.Flavor(), s.Addr(), err)
	}
	return conn, nil
}

// Exec runs one statement as RootUser on a new connection (with args, as a prepared statement).
// ctx bounds the whole call.
func (s *Server) Exec(ctx context.Context, sql string, args ...any) (*gomysql.Result, error) {
	conn, err := s.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, err := conn.Execute(sql, args...)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sandbox: exec %q: %w (%v)", sql, ctx.Err(), err)
		}
		return nil, fmt.Errorf("sandbox: exec %q: %w", sql, err)
	}
	return r, nil
}

// Stop shuts the server down cleanly: SIGTERM, then SIGKILL if it has not exited within 60 s or
// when ctx ends. Stopping a stopped server does nothing.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(ctx)
}

func (s *Server) stopLocked(ctx context.Context) error {
	if s.p == nil {
		return nil
	}
	t0 := time.Now()
	clean, err := s.p.stop(ctx, stopGrace)
	if err != nil {
		return err
	}
	s.p = nil
	s.opts.Logf("sandbox: %s %s stopped (clean %v) in %v", s.Flavor(), s.Addr(), clean, time.Since(t0).Round(time.Millisecond))
	if !clean {
		return fmt.Errorf("sandbox: %s %s did not shut down within %v; killed", s.Flavor(), s.Addr(), stopGrace)
	}
	return nil
}

// Kill kills the server with SIGKILL (a crash) and waits until the process is gone.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return nil
	}
	if err := s.p.kill(); err != nil {
		return err
	}
	s.p = nil
	return nil
}

// Restart starts the server again on the same port and data directory (stopping it cleanly first
// if it runs) and waits until it accepts logins.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("sandbox: Restart after Close")
	}
	err := s.stopLocked(ctx)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	// Stale files from a killed server would not stop it, but a stale pid file confuses readers.
	os.Remove(s.l.pidFile)
	if err := s.launch(ctx); err != nil {
		return err
	}
	s.opts.Logf("sandbox: %s restarted on %s (pid %d)", s.Flavor(), s.Addr(), s.PID())
	return nil
}

// Close kills the server if it runs and removes its directory. It does not shut down cleanly: the
// data is deleted anyway, and a clean shutdown can take seconds (a MySQL source waits ~10 s for
// the dump thread of a replica that went away). Use Stop first to test a clean shutdown. It is
// safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.p != nil {
		if err := s.p.kill(); err != nil {
			return fmt.Errorf("sandbox: close %s %s: %w (directory %s kept)", s.Flavor(), s.Addr(), err, s.l.dir)
		}
		s.p = nil
	}
	if err := os.RemoveAll(s.l.dir); err != nil {
		return fmt.Errorf("sandbox: close %s %s: %w", s.Flavor(), s.Addr(), err)
	}
	return nil
}
