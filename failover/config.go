package failover

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/binlogsvr/binlogsvr/logger/mysqltls"
)

// EnvAdminPassword carries the admin account's password (never a flag, so
// it is not in the process list).
const EnvAdminPassword = "BINLOGSVR_FAILOVER_PASSWORD"

// Config configures the failover.
type Config struct {
	// Auto turns automatic failover on when the source's lease runs out.
	Auto bool
	// Lease is how long the source may go unheard before it is judged dead;
	// a new leader waits one full lease before judging.
	Lease time.Duration
	// ProbeInterval is how often the leader probes the source with SQL on
	// its own connection; ProbeTimeout bounds one probe.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// CatchUpTimeout bounds the wait for the chosen replica to apply the
	// whole log; after it, another candidate may be chosen.
	CatchUpTimeout time.Duration
	// ResumeTimeout bounds the wait for the ingest to stream from the new
	// source.
	ResumeTimeout time.Duration
	// SwitchoverTimeout bounds the wait for the log to hold everything the
	// old source committed.
	SwitchoverTimeout time.Duration
	// AntiFlap is the window after a failover in which no automatic one
	// starts, unless forced.
	AntiFlap time.Duration
	// SemiSyncTimeout is the promoted source's semi-sync timeout: long, so
	// that it waits for the fleet rather than silently going async.
	SemiSyncTimeout time.Duration
	// AdminUser and AdminPassword: the account that fences, promotes and
	// re-points servers (SUPER or its dynamic privileges, REPLICATION
	// SLAVE ADMIN, CONNECTION ADMIN, SYSTEM_VARIABLES_ADMIN).
	AdminUser         string
	AdminPassword     string `json:"-"`
	AdminPasswordFile string
	// CredentialsFile holds the accounts candidates name (NAME USER
	// PASSWORD lines), read on each member: the log holds only names.
	CredentialsFile string
	// TLS is --failover-ssl-mode and --failover-ssl-ca: the logins to
	// candidates, old sources and servers rejoining.
	TLS mysqltls.Config
	// Candidates are --failover-candidate values: host:port[,priority=N][,never-promote][,user=NAME].
	Candidates []string
	// PreHook may veto (non-zero exit); PostHook runs after. Both run with
	// sh -c and the BINLOGSVR_FAILOVER_* environment variables.
	PreHook, PostHook string
	HookTimeout       time.Duration
	// FleetAddr is the dump address a re-pointed server (the old source
	// after a switchover or a rejoin) replicates from; empty: this member's
	// --dump-addr.
	FleetAddr string
}

// DefaultConfig returns the flags' defaults.
func DefaultConfig() Config {
	return Config{
		Auto: true, Lease: 3 * time.Second, ProbeInterval: 500 * time.Millisecond, ProbeTimeout: time.Second,
		CatchUpTimeout: time.Minute, ResumeTimeout: 30 * time.Second, SwitchoverTimeout: 30 * time.Second,
		AntiFlap: 5 * time.Minute, SemiSyncTimeout: time.Hour, AdminUser: "root", HookTimeout: 30 * time.Second,
	}
}

// RegisterFlags registers the failover flags.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&c.Auto, "failover-auto", c.Auto, "fail over automatically when the source's lease runs out")
	fs.DurationVar(&c.Lease, "failover-lease", c.Lease, "the source's lease: how long it may go unheard (no event, ACK or probe) before it is judged dead")
	fs.DurationVar(&c.ProbeInterval, "failover-probe-interval", c.ProbeInterval, "how often the leader probes the source with SQL")
	fs.DurationVar(&c.ProbeTimeout, "failover-probe-timeout", c.ProbeTimeout, "bound on one probe of the source")
	fs.DurationVar(&c.CatchUpTimeout, "failover-catchup-timeout", c.CatchUpTimeout, "bound on the wait for the chosen replica to apply the whole log")
	fs.DurationVar(&c.ResumeTimeout, "failover-resume-timeout", c.ResumeTimeout, "bound on the wait for the ingest to stream from the new source")
	fs.DurationVar(&c.SwitchoverTimeout, "failover-switchover-timeout", c.SwitchoverTimeout, "bound on the wait for the log to hold everything the old source committed (switchover)")
	fs.DurationVar(&c.AntiFlap, "failover-anti-flap", c.AntiFlap, "no second automatic failover within this window (binlogctl failover --force overrides)")
	fs.DurationVar(&c.SemiSyncTimeout, "failover-semi-sync-timeout", c.SemiSyncTimeout, "semi-sync timeout set on a promoted source (long: wait for the fleet rather than go async)")
	fs.StringVar(&c.AdminUser, "failover-admin-user", c.AdminUser, "admin account on the source and candidates (password from $"+EnvAdminPassword+" or --failover-admin-password-file)")
	fs.StringVar(&c.AdminPasswordFile, "failover-admin-password-file", c.AdminPasswordFile, "file holding the admin account's password")
	fs.StringVar(&c.CredentialsFile, "failover-credentials-file", c.CredentialsFile, "file of accounts that candidates name (credential=NAME): one \"NAME USER PASSWORD\" a line, mode 0600, the same names on every member; the log stores only the names")
	fs.StringArrayVar(&c.Candidates, "failover-candidate", c.Candidates, "a replica that may be promoted: host:port[,priority=N][,never-promote][,user=NAME][,credential=NAME] (repeatable; stored in the log)")
	c.TLS.RegisterFlags(fs, "failover", "the failover's logins (candidates, old sources, rejoin)")
	fs.StringVar(&c.PreHook, "failover-pre-hook", c.PreHook, "command run (sh -c) before a failover or switchover; a non-zero exit vetoes it")
	fs.StringVar(&c.PostHook, "failover-post-hook", c.PostHook, "command run (sh -c) after a failover or switchover (DNS, proxies, paging)")
	fs.DurationVar(&c.HookTimeout, "failover-hook-timeout", c.HookTimeout, "bound on one hook")
	fs.StringVar(&c.FleetAddr, "failover-fleet-addr", c.FleetAddr, "the fleet's dump address that re-pointed servers replicate from (default: this member's --dump-addr)")
}

// unarmed says why an automatic failover could not act ("" when it can):
// with no admin password and no credentials file it cannot log in to the
// source, a candidate or a re-admitted source.
func (c *Config) unarmed() string {
	if c.AdminPassword != "" || c.CredentialsFile != "" {
		return ""
	}
	return "automatic failover is not armed: no admin password ($" + EnvAdminPassword + " or --failover-admin-password-file) and no " +
		"--failover-credentials-file, so it could neither fence the source nor promote a replica; the fleet waits for the source " +
		"to come back (binlogctl failover --force fails over by hand)"
}

// Validate checks the Config and names the flag to fix.
func (c *Config) Validate() error {
	switch {
	case c.Lease < 500*time.Millisecond:
		return errors.New("failover: --failover-lease must be at least 500ms")
	case c.ProbeInterval <= 0 || c.ProbeInterval > c.Lease/2:
		return fmt.Errorf("failover: --failover-probe-interval must be positive and at most half the lease (%v)", c.Lease/2)
	case c.ProbeTimeout <= 0:
		return errors.New("failover: --failover-probe-timeout must be positive")
	case c.CatchUpTimeout <= 0 || c.ResumeTimeout <= 0 || c.SwitchoverTimeout <= 0 || c.HookTimeout <= 0:
		return errors.New("failover: the --failover-*-timeout flags must be positive")
	case c.AntiFlap < 0:
		return errors.New("failover: --failover-anti-flap must not be negative")
	case c.SemiSyncTimeout < time.Second:
		return errors.New("failover: --failover-semi-sync-timeout must be at least 1s")
	}
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("failover: %w", err)
	}
	var creds map[string]Credentials
	if c.CredentialsFile != "" {
		var err error
		if creds, err = ReadCredentials(c.CredentialsFile); err != nil {
			return err
		}
	}
	for _, s := range c.Candidates {
		cand, err := ParseCandidate(s)
		if err != nil {
			return err
		}
		if _, ok := creds[cand.Credential]; cand.Credential != "" && !ok {
			return fmt.Errorf("%w %q of --failover-candidate %s is not in --failover-credentials-file", ErrCredential, cand.Credential, cand.Addr)
		}
	}
	return nil
}
