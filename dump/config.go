package dump

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/pflag"
)

// DefaultServerID is the server_id the fleet shows replicas unless
// --dump-server-id sets another. It must differ from every replica's.
const DefaultServerID = 1919191919

// Config configures the dump server. Addr, User and Password come from the
// daemon's existing --dump-addr, --dump-user and $BINLOGSVR_DUMP_PASSWORD;
// RegisterFlags registers only the flags that are the dump server's own.
type Config struct {
	// Addr is the host:port to listen on ("127.0.0.1:0" picks a port).
	Addr string
	// User and Password: the one account replicas and CDC clients log in
	// with (mysql_native_password or caching_sha2_password).
	User     string
	Password string `json:"-"`

	// ServerID and ServerUUID are the fleet's own identity, the same on
	// every member and across source changes, so a replica never has to be
	// re-pointed. An empty ServerUUID is derived from ServerID.
	ServerID   uint32
	ServerUUID string

	// SchemaEndpoint is a read-only MySQL endpoint (a replica), as
	// user:password@host:port, that schema SQL from CDC tools is passed
	// through to. Empty: such SQL gets an error naming it.
	SchemaEndpoint string `json:"-"`

	// TLSCert and TLSKey are PEM files; when both are set, clients may use
	// TLS.
	TLSCert, TLSKey string

	// MaxClients bounds concurrent connections (0: 1000).
	MaxClients int
	// HandshakeTimeout bounds a login; WriteTimeout bounds every write to
	// a client (a client that stops reading is dropped after it).
	HandshakeTimeout time.Duration
	WriteTimeout     time.Duration
	// ReadBufferBytes is how much of the log one read fetches (0: 256 KiB).
	ReadBufferBytes int
	// CacheBytes bounds the chunks of the log kept for all dumps to share
	// (0: 64 MiB; negative: no cache).
	CacheBytes int64

	// Flavor ("mysql" or "mariadb") is assumed before the log records its
	// source's flavor; the log's own flavor wins once known.
	Flavor string

	// Variables overrides or adds answers to SHOW VARIABLES and
	// SELECT @@name. Keys are lower case. The source's own values of the
	// variables that describe its data (binlog_row_image, ...) are answered
	// without it: the ingest records them in the log.
	Variables map[string]string
}

// DefaultConfig returns the defaults of the flags.
func DefaultConfig() Config {
	return Config{
		Addr: "127.0.0.1:3307", User: "repl", ServerID: DefaultServerID,
		MaxClients: 1000, HandshakeTimeout: 10 * time.Second, WriteTimeout: 60 * time.Second,
		ReadBufferBytes: 256 << 10, CacheBytes: 64 << 20,
	}
}

// RegisterFlags registers the dump server's own flags (not --dump-addr and
// --dump-user, which the daemon owns and copies into Addr and User).
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.Uint32Var(&c.ServerID, "dump-server-id", c.ServerID, "the fleet's server_id as replicas see it: the same on every member, different from every replica's")
	fs.StringVar(&c.ServerUUID, "dump-server-uuid", c.ServerUUID, "the fleet's server_uuid as replicas see it (empty: derived from --dump-server-id)")
	fs.StringVar(&c.SchemaEndpoint, "dump-schema-endpoint", c.SchemaEndpoint, "read-only MySQL endpoint user:password@host:port (a replica) that schema SQL from CDC tools is passed through to")
	fs.StringVar(&c.TLSCert, "dump-tls-cert", c.TLSCert, "PEM certificate file for TLS to dump clients (with --dump-tls-key)")
	fs.StringVar(&c.TLSKey, "dump-tls-key", c.TLSKey, "PEM private key file for TLS to dump clients (with --dump-tls-cert)")
	fs.IntVar(&c.MaxClients, "dump-max-clients", c.MaxClients, "most concurrent connections to the dump server")
	fs.Int64Var(&c.CacheBytes, "dump-cache-bytes", c.CacheBytes, "memory for chunks of the log shared by all dump clients (negative: none)")
	fs.DurationVar(&c.WriteTimeout, "dump-write-timeout", c.WriteTimeout, "drop a dump client that accepts no data for this long")
}

// Validate checks the Config and names the flag to fix.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("dump: --dump-addr %q: %v", c.Addr, err)
	}
	if c.User == "" {
		return errors.New("dump: --dump-user is required")
	}
	if c.ServerID == 0 {
		return errors.New("dump: --dump-server-id must be positive")
	}
	if c.ServerUUID != "" {
		if _, err := uuid.Parse(c.ServerUUID); err != nil || len(c.ServerUUID) != 36 {
			return fmt.Errorf("dump: --dump-server-uuid %q is not a uuid of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", c.ServerUUID)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("dump: --dump-tls-cert and --dump-tls-key go together")
	}
	if c.Flavor != "" && c.Flavor != "mysql" && c.Flavor != "mariadb" {
		return fmt.Errorf("dump: flavor %q: want mysql or mariadb", c.Flavor)
	}
	if c.SchemaEndpoint != "" {
		if _, err := parseEndpoint(c.SchemaEndpoint); err != nil {
			return fmt.Errorf("dump: --dump-schema-endpoint: %v", err)
		}
	}
	if c.MaxClients < 0 || c.HandshakeTimeout < 0 || c.WriteTimeout < 0 || c.ReadBufferBytes < 0 || (c.ReadBufferBytes > 0 && c.ReadBufferBytes < 4096) {
		return errors.New("dump: --dump-max-clients and the timeouts must not be negative")
	}
	return nil
}

// withDefaults fills zero values.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxClients == 0 {
		c.MaxClients = d.MaxClients
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.ReadBufferBytes == 0 {
		c.ReadBufferBytes = d.ReadBufferBytes
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = d.CacheBytes
	}
	if c.ServerUUID == "" {
		c.ServerUUID = DeriveUUID(c.ServerID)
	}
	return c
}

// DeriveUUID returns the stable server_uuid the fleet shows for a server
// id when none is configured: a name-based (v5) uuid, identical on every
// member.
func DeriveUUID(serverID uint32) string {
	ns := uuid.NewHash(sha1.New(), uuid.NameSpaceOID, []byte("binlogsvr"), 5)
	return uuid.NewHash(sha1.New(), ns, fmt.Appendf(nil, "dump-server-id:%d", serverID), 5).String()
}

// endpoint is a parsed SchemaEndpoint.
type endpoint struct{ user, password, addr, db string }

// parseEndpoint parses user:password@host:port[/db].
func parseEndpoint(s string) (endpoint, error) {
	var e endpoint
	at := -1
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '@' {
			at = i
			break
		}
	}
	if at < 0 {
		return e, fmt.Errorf("%q: want user:password@host:port", redact(s))
	}
	cred, hp := s[:at], s[at+1:]
	for i := 0; i < len(cred); i++ {
		if cred[i] == ':' {
			e.user, e.password = cred[:i], cred[i+1:]
			break
		}
		if i == len(cred)-1 {
			e.user = cred
		}
	}
	for i := 0; i < len(hp); i++ {
		if hp[i] == '/' {
			hp, e.db = hp[:i], hp[i+1:]
			break
		}
	}
	if _, _, err := net.SplitHostPort(hp); err != nil {
		return e, fmt.Errorf("%q: %v", redact(s), err)
	}
	e.addr = hp
	if e.user == "" {
		return e, fmt.Errorf("%q: no user", redact(s))
	}
	return e, nil
}

// redact hides the password of a user:password@host endpoint.
func redact(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '@' {
			for j := 0; j < i; j++ {
				if s[j] == ':' {
					return s[:j+1] + "***" + s[i:]
				}
			}
			return s
		}
	}
	return s
}
