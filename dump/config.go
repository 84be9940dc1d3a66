package dump

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/binlogsvr/binlogsvr/logger/mysqltls"
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
	// user@host:port[/db], that schema SQL from CDC tools is passed
	// through to. Empty: such SQL gets an error naming it. Its password is
	// SchemaPassword, which LoadSecrets reads from $BINLOGSVR_SCHEMA_PASSWORD
	// or SchemaPasswordFile: never from the command line.
	SchemaEndpoint     string
	SchemaPassword     string `json:"-"`
	SchemaPasswordFile string
	// SchemaTLS is the TLS toward the schema endpoint
	// (--dump-schema-ssl-mode, --dump-schema-ssl-ca; PREFERRED by default,
	// MySQL's client default). Its login never sends the password in
	// cleartext over a plaintext connection.
	SchemaTLS mysqltls.Config

	// TLSCert and TLSKey are PEM files (re-read when they change); when
	// both are set, clients may use TLS with them, else with a self-signed
	// certificate made at start (as MySQL does).
	TLSCert, TLSKey string
	// RequireTLS refuses a client that does not switch to TLS (MySQL's
	// require_secure_transport): error 3159. Needs TLSCert and TLSKey.
	RequireTLS bool

	// MaxClients bounds concurrent connections, logged in or still
	// logging in (0: 1000).
	MaxClients int
	// HandshakeTimeout bounds a login, from accept to the OK packet;
	// WriteTimeout bounds every write to a client (a client that stops
	// reading is dropped after it).
	HandshakeTimeout time.Duration
	WriteTimeout     time.Duration
	// AheadWait is how long a dump whose client holds transactions this
	// member's log does not hold yet waits for the log to catch up before
	// it is refused (0: 20 s; negative: refuse at once).
	AheadWait time.Duration
	// MaxPacket bounds one command from a logged-in client (MySQL's
	// max_allowed_packet; 0: 64 MiB). Commands of 1 MiB or more also
	// share a server-wide budget of 4 × MaxPacket.
	MaxPacket int
	// MaxPreparedStmts bounds the prepared statements of one session
	// (MySQL's max_prepared_stmt_count; 0: 64).
	MaxPreparedStmts int
	// LoginFailures is how many failed logins from one client address
	// within a minute block it, for a backoff that doubles with each
	// further failure (1 s up to 5 min). 0: 5; negative: no throttling.
	LoginFailures int
	// ReadBufferBytes is how much of the log one read fetches (0: 256 KiB).
	ReadBufferBytes int
	// CacheBytes bounds the chunks of the log kept for all dumps to share
	// (0: 64 MiB; negative: no cache).
	CacheBytes int64

	// SemiSync offers semi-sync to replicas (--dump-semi-sync, on by
	// default): the probe of the source-side switch answers enabled, and a
	// dump whose session set @rpl_semi_sync_replica or @rpl_semi_sync_slave
	// gets the semi-sync header and is asked for an ACK at the end of each
	// transaction. Off, the probes answer as a server without the plugin
	// (error 1193, no row), so such replicas run asynchronously. Either way
	// the fleet's own ACK to its source never waits for its replicas.
	SemiSync bool

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
		MaxClients: 1000, HandshakeTimeout: 10 * time.Second, WriteTimeout: 60 * time.Second, AheadWait: 20 * time.Second,
		ReadBufferBytes: 256 << 10, CacheBytes: 64 << 20, MaxPacket: 64 << 20, MaxPreparedStmts: 64, LoginFailures: 5,
		SemiSync: true,
	}
}

// RegisterFlags registers the dump server's own flags (not --dump-addr and
// --dump-user, which the daemon owns and copies into Addr and User).
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.Uint32Var(&c.ServerID, "dump-server-id", c.ServerID, "the fleet's server_id as replicas see it: the same on every member, different from every replica's")
	fs.StringVar(&c.ServerUUID, "dump-server-uuid", c.ServerUUID, "the fleet's server_uuid as replicas see it (empty: derived from --dump-server-id)")
	fs.StringVar(&c.SchemaEndpoint, "dump-schema-endpoint", c.SchemaEndpoint, "read-only MySQL endpoint user@host:port[/db] (a replica) that schema SQL from CDC tools is passed through to (password from $"+EnvSchemaPassword+" or --dump-schema-password-file)")
	c.SchemaTLS.RegisterFlags(fs, "dump-schema", "the schema endpoint")
	fs.StringVar(&c.SchemaPasswordFile, "dump-schema-password-file", c.SchemaPasswordFile, "file holding the password of --dump-schema-endpoint's user")
	fs.StringVar(&c.TLSCert, "dump-tls-cert", c.TLSCert, "PEM certificate file for TLS to dump clients (with --dump-tls-key; re-read when it changes)")
	fs.StringVar(&c.TLSKey, "dump-tls-key", c.TLSKey, "PEM private key file for TLS to dump clients (with --dump-tls-cert)")
	fs.BoolVar(&c.RequireTLS, "dump-require-tls", c.RequireTLS, "refuse dump clients that do not use TLS (like require_secure_transport; needs --dump-tls-cert and --dump-tls-key)")
	fs.IntVar(&c.MaxClients, "dump-max-clients", c.MaxClients, "most concurrent connections to the dump server, those still logging in included")
	fs.DurationVar(&c.HandshakeTimeout, "dump-login-timeout", c.HandshakeTimeout, "drop a dump client that has not logged in within this time")
	fs.IntVar(&c.MaxPacket, "dump-max-packet", c.MaxPacket, "largest command a logged-in dump client may send, in bytes (like max_allowed_packet)")
	fs.IntVar(&c.MaxPreparedStmts, "dump-max-prepared-stmts", c.MaxPreparedStmts, "most prepared statements one dump client session may hold (like max_prepared_stmt_count)")
	fs.IntVar(&c.LoginFailures, "dump-login-failures", c.LoginFailures, "failed logins from one address within a minute that block it for a growing backoff (negative: never)")
	fs.Int64Var(&c.CacheBytes, "dump-cache-bytes", c.CacheBytes, "memory for chunks of the log shared by all dump clients (negative: none)")
	fs.DurationVar(&c.WriteTimeout, "dump-write-timeout", c.WriteTimeout, "drop a dump client that accepts no data for this long")
	fs.BoolVar(&c.SemiSync, "dump-semi-sync", c.SemiSync, "speak semi-sync to replicas that ask for it (rpl_semi_sync_replica_enabled / rpl_semi_sync_slave_enabled): send the semi-sync header, ask for and record their ACKs (shown in binlogctl status); the fleet's own ACK to its source never waits for them. false: answer as a source without the semi-sync plugin, so they replicate asynchronously")
	fs.DurationVar(&c.AheadWait, "dump-ahead-wait", c.AheadWait, "a replica that holds transactions this member has not stored yet (the member restarted or lags) waits this long for them before its dump is refused with error 1236, which stops its IO thread (keep it below the replicas' slave_net_timeout; negative: refuse at once)")
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
	if c.RequireTLS && c.TLSCert == "" {
		return errors.New("dump: --dump-require-tls needs --dump-tls-cert and --dump-tls-key (the certificate clients verify)")
	}
	if c.MaxPacket < 0 || (c.MaxPacket > 0 && c.MaxPacket < 64<<10) {
		return errors.New("dump: --dump-max-packet must be at least 65536 bytes")
	}
	if c.MaxPreparedStmts < 0 {
		return errors.New("dump: --dump-max-prepared-stmts must not be negative")
	}
	if c.Flavor != "" && c.Flavor != "mysql" && c.Flavor != "mariadb" {
		return fmt.Errorf("dump: flavor %q: want mysql or mariadb", c.Flavor)
	}
	if c.SchemaEndpoint != "" {
		if _, err := parseEndpoint(c.SchemaEndpoint); err != nil {
			return fmt.Errorf("dump: --dump-schema-endpoint: %v", err)
		}
		if c.SchemaTLS.Prefix == "" {
			c.SchemaTLS.Prefix = "dump-schema"
		}
		if err := c.SchemaTLS.Validate(); err != nil {
			return fmt.Errorf("dump: %w", err)
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
	if c.AheadWait == 0 {
		c.AheadWait = d.AheadWait
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
	if c.MaxPacket == 0 {
		c.MaxPacket = d.MaxPacket
	}
	if c.MaxPreparedStmts == 0 {
		c.MaxPreparedStmts = d.MaxPreparedStmts
	}
	if c.LoginFailures == 0 {
		c.LoginFailures = d.LoginFailures
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

// EnvSchemaPassword carries the password of SchemaEndpoint's user.
const EnvSchemaPassword = "BINLOGSVR_SCHEMA_PASSWORD"

// LoadSecrets reads SchemaPassword from SchemaPasswordFile (when named)
// or from $BINLOGSVR_SCHEMA_PASSWORD. The daemon calls it with os.Getenv
// before Validate.
func (c *Config) LoadSecrets(getenv func(string) string) error {
	if c.SchemaPasswordFile == "" {
		c.SchemaPassword = getenv(EnvSchemaPassword)
		return nil
	}
	b, err := os.ReadFile(c.SchemaPasswordFile)
	if err != nil {
		return fmt.Errorf("dump: --dump-schema-password-file: %w", err)
	}
	c.SchemaPassword = strings.TrimRight(string(b), "\r\n")
	return nil
}

// endpoint is a parsed SchemaEndpoint.
type endpoint struct{ user, addr, db string }

// parseEndpoint parses user@host:port[/db]. NB: the old form
// user:password@host:port is refused: a password on the command line
// shows in ps.
func parseEndpoint(s string) (endpoint, error) {
	var e endpoint
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return e, fmt.Errorf("%q: want user@host:port", redact(s))
	}
	e.user, e.addr = s[:at], s[at+1:]
	if strings.Contains(e.user, ":") {
		return e, fmt.Errorf("%q holds a password, which would show in ps: give user@host:port and put the password in $%s or a file named by --dump-schema-password-file",
			redact(s), EnvSchemaPassword)
	}
	if i := strings.IndexByte(e.addr, '/'); i >= 0 {
		e.addr, e.db = e.addr[:i], e.addr[i+1:]
	}
	if _, _, err := net.SplitHostPort(e.addr); err != nil {
		return e, fmt.Errorf("%q: %v", s, err)
	}
	if e.user == "" {
		return e, fmt.Errorf("%q: no user", s)
	}
	return e, nil
}

// redact hides the password of a user:password@host endpoint.
func redact(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	if j := strings.IndexByte(s[:at], ':'); j >= 0 {
		return s[:j+1] + "***" + s[at:]
	}
	return s
}
