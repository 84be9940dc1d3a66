package dump

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/pki"
)

// ReaderSource gives the member's committed log; *logger.Node satisfies
// it. Reader returns nil until the log is open, and the Server answers
// "not ready" until then.
type ReaderSource interface{ Reader() *logger.Reader }

// Server is the dump server of one member.
type Server struct {
	cfg Config
	src ReaderSource
	log *slog.Logger
	m   *metrics
	ln  net.Listener

	tls      *tls.Config
	cache    *chunkCache
	throttle *throttle  // failed logins by client address; nil: none
	budget   *memBudget // large commands of all sessions
	nextID   atomic.Uint32

	mu       sync.Mutex
	open     int // connections, logged in or logging in
	sessions map[uint32]*session
	dumpers  map[uint32]*session // by client server id
	wg       sync.WaitGroup
	closed   bool
}

// New validates cfg, listens on cfg.Addr and returns a Server; Run serves.
// The caller must call Run (which closes the listener when it returns).
func New(cfg Config, src ReaderSource, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("dump: no log source")
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.SchemaEndpoint != "" && cfg.SchemaPassword == "" {
		// NB: a caller that did not call LoadSecrets (the password is never
		// on the command line) still gets the environment's or the file's.
		if err := cfg.LoadSecrets(os.Getenv); err != nil {
			return nil, err
		}
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, src: src, log: log.With("component", "dump"),
		sessions: map[uint32]*session{}, dumpers: map[uint32]*session{},
		budget: &memBudget{limit: 4 * int64(cfg.MaxPacket)}}
	s.nextID.Store(10000) // NB: connection ids as go-mysql's server numbered them
	if cfg.LoginFailures > 0 {
		s.throttle = newThrottle(cfg.LoginFailures, time.Minute)
	}
	s.cache = newChunkCache(cfg.ReadBufferBytes, cfg.CacheBytes)
	var err error
	if s.tls, err = loadTLS(cfg); err != nil {
		return nil, err
	}
	if s.m, err = newMetrics(reg, s); err != nil {
		return nil, fmt.Errorf("dump: registering metrics: %w", err)
	}
	if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("dump: listening on --dump-addr %s: %w", cfg.Addr, err)
	}
	return s, nil
}

// loadTLS returns the TLS config: the certificate files (re-read when
// they change, so a rotation needs no restart), or a self-signed
// certificate made now, as MySQL does at first start.
func loadTLS(cfg Config) (*tls.Config, error) {
	if cfg.TLSCert != "" {
		tc, err := pki.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey}.ServerConfig(tls.NoClientCert)
		if err != nil {
			return nil, fmt.Errorf("dump: --dump-tls-cert/--dump-tls-key: %w", err)
		}
		return tc, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dump: generating a key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "binlogsvr_dump_auto_generated_certificate"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("dump: making a self-signed certificate: %w", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run accepts connections until ctx ends, then closes every connection and
// returns once all of its goroutines are done.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	s.log.Info("serving replicas and CDC clients", "addr", s.Addr(), "server_id", s.cfg.ServerID, "server_uuid", s.cfg.ServerUUID)
	var err error
	for {
		c, aerr := s.ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				var ne net.Error
				if errors.As(aerr, &ne) && ne.Timeout() {
					continue
				}
				err = fmt.Errorf("dump: accept: %w", aerr)
			}
			break
		}
		s.m.connections.Inc()
		if !s.admit() {
			s.refuseFull(c)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.leave()
			s.serveConn(ctx, c)
		}()
	}
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for _, ss := range s.sessions {
		ss.kill(ErrKilled)
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.cache.close() // NB: every dump has ended; gives back the chunks' memory
	return err
}

// Clients lists the connections, oldest first.
func (s *Server) Clients() []ClientStatus {
	now := time.Now()
	var out []ClientStatus
	for _, ss := range s.sessionList() {
		out = append(out, ss.status(now))
	}
	return out
}

func (s *Server) sessionList() []*session {
	s.mu.Lock()
	out := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		out = append(out, ss)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// reader returns the log, or nil before it is open.
func (s *Server) reader() Log {
	if r := s.src.Reader(); r != nil {
		return r
	}
	return nil
}

// identity returns the flavor and greeting/VERSION() strings from the
// log's source FDE (or the defaults before the log knows its source).
func (s *Server) identity() (binlog.Flavor, string) {
	flav, ver := binlog.Flavor(nil), ""
	if lg := s.reader(); lg != nil {
		st := lg.State()
		if f, err := binlog.FlavorByName(st.Flavor); err == nil {
			flav = f
		}
		if len(st.FDE) > 0 {
			ver = binlog.ServerVersion(st.FDE)
		}
	}
	if flav == nil {
		if f, err := binlog.FlavorByName(s.cfg.Flavor); err == nil {
			flav = f
		} else {
			flav = binlog.MariaDB()
		}
	}
	return flav, flav.AnnouncedVersion(ver)
}

// authFor returns the greeting's version string and the authentication
// method for a flavor and version (binlog.Quirks.Greeting).
func authFor(flav binlog.Flavor, ver string) (greeting, method string) {
	return flav.Greeting(ver)
}

// admit counts a new connection; false when --dump-max-clients
// connections (logged in or logging in) are open.
func (s *Server) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open >= s.cfg.MaxClients {
		return false
	}
	s.open++
	return true
}

func (s *Server) leave() {
	s.mu.Lock()
	s.open--
	s.mu.Unlock()
}

// refuseFull answers a connection over the cap with "Too many
// connections" in place of the greeting, as MySQL does, and closes it.
// NB: runs in the accept loop: the packet fits any fresh socket's buffer,
// and the deadline bounds the write anyway.
func (s *Server) refuseFull(c net.Conn) {
	s.m.refused.WithLabelValues(refusedFull).Inc()
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	writePacket(c, 0, errPacket(myError(gmysql.ER_CON_COUNT_ERROR, "Too many connections")))
	c.Close()
}

// register adds a logged-in session; false if the server is stopping.
func (s *Server) register(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions[ss.id] = ss
	return true
}

func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, ss.id)
	for id, d := range s.dumpers {
		if d == ss {
			delete(s.dumpers, id)
		}
	}
}

// claimServerID makes ss the one dump of a client server id, replacing
// (and waiting a little for) an older dump with the same id, as MySQL and
// MariaDB do. Server id 0 is not tracked.
func (s *Server) claimServerID(ss *session, id uint32) {
	if id == 0 {
		return
	}
	s.mu.Lock()
	old := s.dumpers[id]
	s.dumpers[id] = ss
	s.mu.Unlock()
	if old != nil && old != ss {
		s.log.Info("a new dump replaces the dump of the same server id", "server_id", id, "old_conn", old.id, "new_conn", ss.id)
		old.stopDump(ErrReplaced)
		select {
		case <-old.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// find returns a session by connection id.
func (s *Server) find(id uint32) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}
