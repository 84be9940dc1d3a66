package binlogsvr

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/binlogsvr/binlogsvr/dump"
	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/pki"
	"github.com/binlogsvr/binlogsvr/semisync"
)

// Environment variables that carry secrets, so they never appear in the
// process list or in logs.
const (
	EnvSourcePassword = "BINLOGSVR_SOURCE_PASSWORD"
	EnvDumpPassword   = "BINLOGSVR_DUMP_PASSWORD"
)

// Config is the daemon's configuration.
type Config struct {
	Log    logger.Config
	Ingest semisync.Config
	Dump   dump.Config

	Source string
	// SourceStart is where the log begins when it is seeded (--source-start):
	// semisync.StartOldest, StartCurrent or a GTID set.
	SourceStart        string
	SourceUser         string
	SourcePassword     string `json:"-"`
	SourcePasswordFile string
	ServerID           uint32

	DumpAddr         string
	DumpUser         string
	DumpPassword     string `json:"-"`
	DumpPasswordFile string

	AdminAddr string
	LogLevel  string
	Members   learner.Config // members.go
	Failover  failoverConfig // failover.go
	// Insecure turns off TLS on the raft links and the admin API and the
	// admin API's tokens (loud in the log and in /status).
	Insecure bool
	// AdminTLS is the admin API's certificate and the CA its clients'
	// certificates are verified against; unset parts default to the raft
	// member's (--raft-tls-*), so a fleet needs one certificate per member.
	AdminTLS pki.Files
	// AdminTokenFile holds the admin API's tokens: lines "ROLE NAME TOKEN".
	AdminTokenFile string
	// MetricsOpen serves /metrics without a token.
	MetricsOpen bool
	// CatalogMembers makes the daemon a host of several sources: the
	// fleet's hosts that hold the catalog shard, host id → raft address
	// (--catalog-members). Sources are then added with binlogctl sources
	// add; --source, --members, --join and --dump-addr are for a
	// one-source daemon only (docs/MULTISOURCE.md).
	CatalogMembers map[uint64]string
	// SourceName names a one-source daemon's source in GET /sources.
	SourceName string
	// DebugAPI enables /debug/append and /debug/bench, which append
	// synthetic transactions for tests and benchmarks, and the rest of
	// /debug/. Only a binary built with -tags binlogsvr_debug has them;
	// the release build refuses the flag.
	DebugAPI bool
}

// DefaultConfig returns the flags' defaults.
func DefaultConfig() Config {
	return Config{Log: logger.DefaultConfig(), Ingest: semisync.DefaultConfig(), Dump: dump.DefaultConfig(), SourceStart: semisync.StartOldest, SourceName: "default", SourceUser: "repl", DumpUser: "repl", AdminAddr: "127.0.0.1:7070", LogLevel: "info"}
}

// RegisterFlags registers the daemon's flags.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	c.Log.RegisterFlags(fs)
	c.Ingest.RegisterFlags(fs)
	c.Dump.RegisterFlags(fs)
	c.registerMembersFlags(fs)  // members.go
	c.registerFailoverFlags(fs) // failover.go
	fs.StringVar(&c.Source, "source", c.Source, "host:port of the MySQL/MariaDB source; seeds the log's first source only (afterwards the log's own record wins)")
	fs.StringVar(&c.SourceStart, "source-start", c.SourceStart, "where the log begins when the fleet first attaches to --source: oldest (copy every binlog the source still holds, then stream), "+
		"current (only what the source commits from now on) or a GTID set within the source's executed set that holds its purged set; applies to an empty log only (afterwards the log's own record wins)")
	fs.StringVar(&c.SourceUser, "source-user", c.SourceUser, "replication account on the source (password from $"+EnvSourcePassword+" or --source-password-file)")
	fs.StringVar(&c.SourcePasswordFile, "source-password-file", c.SourcePasswordFile, "file holding the source account's password")
	fs.Uint32Var(&c.ServerID, "server-id", c.ServerID, "this member's server_id toward the source (unique among the source's replicas)")
	fs.StringVar(&c.DumpAddr, "dump-addr", c.DumpAddr, "host:port to serve replicas and CDC subscribers on (empty: do not serve)")
	fs.StringVar(&c.DumpUser, "dump-user", c.DumpUser, "account replicas log in to the fleet with (password from $"+EnvDumpPassword+" or --dump-password-file)")
	fs.StringVar(&c.DumpPasswordFile, "dump-password-file", c.DumpPasswordFile, "file holding the dump account's password")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "host:port of the admin HTTP API (/status, /metrics, /healthz)")
	fs.Var(logger.MembersValue(&c.CatalogMembers), "catalog-members", "run as a host of several sources: the fleet's hosts that hold the catalog of sources, ID=HOST:PORT,... (their raft addresses; this host's --id among them); sources are then added with binlogctl sources add")
	fs.StringVar(&c.SourceName, "source-name", c.SourceName, "the name of a one-source daemon's source (GET /sources, binlogctl sources)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "turn off TLS on the raft links and the admin API and the admin API's tokens (anyone who can reach a port can change the fleet; for throw-away tests only)")
	fs.StringVar(&c.AdminTLS.Cert, "admin-tls-cert", c.AdminTLS.Cert, "the admin API's TLS certificate (default: --raft-tls-cert; re-read when it changes)")
	fs.StringVar(&c.AdminTLS.Key, "admin-tls-key", c.AdminTLS.Key, "the admin API's TLS key (default: --raft-tls-key)")
	fs.StringVar(&c.AdminTLS.CA, "admin-tls-ca", c.AdminTLS.CA, "CA that client certificates to the admin API must come from (default: --raft-tls-ca)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", c.AdminTokenFile, "the admin API's tokens, lines \"ROLE NAME TOKEN\" (roles read, operate; # comments); re-read when it changes. Make lines with `binlogctl certs create-token`")
	fs.BoolVar(&c.MetricsOpen, "metrics-open", c.MetricsOpen, "serve /metrics without a token")
	fs.BoolVar(&c.DebugAPI, "debug-api", c.DebugAPI, "enable /debug/append and /debug/bench (synthetic appends for tests and benchmarks; only in a binary built with -tags binlogsvr_debug)")
	fs.DurationVar(&c.Ingest.DebugCommitDelay, "debug-commit-delay", 0, "with --debug-api: delay every ingested transaction before it is proposed (tests: the ACK waits for the commit)")
}

// LoadSecrets reads the passwords from the environment or the files.
func (c *Config) LoadSecrets(getenv func(string) string) error {
	var err error
	if c.SourcePassword, err = secret(getenv(EnvSourcePassword), c.SourcePasswordFile, "--source-password-file"); err != nil {
		return err
	}
	c.DumpPassword, err = secret(getenv(EnvDumpPassword), c.DumpPasswordFile, "--dump-password-file")
	return err
}

func secret(env, file, flag string) (string, error) {
	if file == "" {
		return env, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("binlogsvr: %s: %w", flag, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Validate checks the configuration and names the flag to fix.
func (c *Config) Validate() error {
	if c.Insecure {
		c.Log.Insecure = true // NB: one --insecure for raft and admin
	}
	if err := c.Log.Validate(); err != nil {
		return err
	}
	if c.AdminAddr == "" {
		return errors.New("binlogsvr: --admin-addr is required")
	}
	for flag, addr := range map[string]string{"--admin-addr": c.AdminAddr, "--dump-addr": c.DumpAddr, "--source": c.Source} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("binlogsvr: %s %q: %v", flag, addr, err)
		}
	}
	if err := c.validateMulti(); err != nil { // multi.go
		return err
	}
	if err := c.validateMembers(); err != nil {
		return err
	}
	if err := c.validateFailover(); err != nil {
		return err
	}
	if err := c.validateAdmin(); err != nil { // auth.go
		return err
	}
	if c.DebugAPI && !debugEndpoints {
		return errors.New("binlogsvr: --debug-api: built without debug endpoints: build with -tags binlogsvr_debug")
	}
	if c.Ingest.DebugCommitDelay != 0 && !c.DebugAPI {
		return errors.New("binlogsvr: --debug-commit-delay needs --debug-api (it is for tests only)")
	}
	if c.Source != "" && c.SourceUser == "" {
		return errors.New("binlogsvr: --source needs --source-user")
	}
	if err := semisync.CheckStartSyntax(c.SourceStart); err != nil {
		return fmt.Errorf("binlogsvr: --source-start: %w", err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("binlogsvr: --log-level must be debug, info, warn or error, got %q", c.LogLevel)
	}
	return nil
}
