// Package mysqltls is how the fleet logs in to MySQL and MariaDB servers as
// a client: the source (ingest, probe, seed), the failover candidates and
// old sources. It holds the one parser of MySQL's --ssl-mode names, builds
// the tls.Config each mode asks for, and guards every login so that a
// password never crosses a plaintext connection in a form the server (or
// anyone on the path) can read back.
//
// It imports nothing of the project: semisync and failover both use it.
//
// Caller's duties: register Config's flags under a prefix (RegisterFlags),
// call Validate once at start, and dial every login through Connect.
package mysqltls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// Mode is a MySQL client ssl-mode. The zero value is Preferred, MySQL's
// own client default.
type Mode int

// The modes, with MySQL's names and meanings.
const (
	// Preferred: TLS when the server offers it (capability CLIENT_SSL),
	// else plaintext; the server's certificate is not checked.
	Preferred Mode = iota
	// Disabled: plaintext only.
	Disabled
	// Required: TLS or no connection; the certificate is not checked.
	Required
	// VerifyCA: TLS, and the server's certificate must chain to the CA file.
	VerifyCA
	// VerifyIdentity: VerifyCA, and the certificate must name the host
	// dialled (a DNS name or IP address in its subject alternative names).
	VerifyIdentity
)

var modeNames = [...]string{"PREFERRED", "DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"}

// String returns MySQL's name of the mode.
func (m Mode) String() string {
	if m < 0 || int(m) >= len(modeNames) {
		return fmt.Sprintf("Mode(%d)", int(m))
	}
	return modeNames[m]
}

// ParseMode reads a mode by MySQL's name (case-insensitive).
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown ssl mode %q: want one of %s", s, strings.Join(modeNames[:], ", "))
}

// Encrypts reports whether a connection in this mode is always TLS.
func (m Mode) Encrypts() bool { return m >= Required }

// Config is the TLS setting of one kind of login.
type Config struct {
	Mode Mode
	// CAFile is a PEM file of the CA certificates the server's
	// certificate must chain to (VerifyCA, VerifyIdentity). It is read at
	// every login, so a rotated file takes effect without a restart.
	CAFile string
	// Prefix names the flags in messages: "source" gives --source-ssl-mode
	// and --source-ssl-ca. Empty: "source".
	Prefix string
}

func (c Config) prefix() string {
	if c.Prefix == "" {
		return "source"
	}
	return c.Prefix
}

// ModeFlag and CAFlag are the flags' names, for messages.
func (c Config) ModeFlag() string { return "--" + c.prefix() + "-ssl-mode" }
func (c Config) CAFlag() string   { return "--" + c.prefix() + "-ssl-ca" }

// modeValue adapts Mode to pflag.
type modeValue struct{ m *Mode }

func (v modeValue) String() string { return v.m.String() }
func (v modeValue) Type() string   { return "mode" }
func (v modeValue) Set(s string) error {
	m, err := ParseMode(s)
	if err != nil {
		return err
	}
	*v.m = m
	return nil
}

// RegisterFlags registers --PREFIX-ssl-mode and --PREFIX-ssl-ca. what
// names the logins in the help ("the source", "failover logins").
func (c *Config) RegisterFlags(fs *pflag.FlagSet, prefix, what string) {
	c.Prefix = prefix
	fs.Var(modeValue{&c.Mode}, prefix+"-ssl-mode", "TLS toward "+what+", MySQL's --ssl-mode names: DISABLED, PREFERRED (TLS when the server offers it; "+
		"MySQL's client default), REQUIRED (TLS, certificate not checked), VERIFY_CA (checked against --"+prefix+"-ssl-ca), VERIFY_IDENTITY (and the host name)")
	fs.StringVar(&c.CAFile, prefix+"-ssl-ca", c.CAFile, "PEM file of the CA certificates that "+what+"'s TLS certificates must chain to (with "+prefix+"-ssl-mode VERIFY_CA or VERIFY_IDENTITY)")
}

// Validate checks the setting and names the flag to fix.
func (c Config) Validate() error {
	if c.Mode < Preferred || c.Mode > VerifyIdentity {
		return fmt.Errorf("mysqltls: %s: unknown mode %d", c.ModeFlag(), c.Mode)
	}
	if c.Mode >= VerifyCA && c.CAFile == "" {
		return fmt.Errorf("mysqltls: %s=%s needs %s (the CA file the server's certificate must chain to; MySQL's is ca.pem in its data directory)", c.ModeFlag(), c.Mode, c.CAFlag())
	}
	if c.Mode < VerifyCA && c.CAFile != "" {
		return fmt.Errorf("mysqltls: %s is set but %s=%s does not check certificates: use %s=VERIFY_CA or VERIFY_IDENTITY", c.CAFlag(), c.ModeFlag(), c.Mode, c.ModeFlag())
	}
	if c.CAFile != "" {
		if _, err := c.caPool(); err != nil {
			return err
		}
	}
	return nil
}

func (c Config) caPool() (*x509.CertPool, error) {
	b, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("mysqltls: %s: %w", c.CAFlag(), err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("mysqltls: %s: %s holds no PEM certificate", c.CAFlag(), c.CAFile)
	}
	return pool, nil
}

// TLSConfig returns the tls.Config for a login to addr (host:port) in
// this mode; nil for Disabled.
func (c Config) TLSConfig(addr string) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	switch c.Mode {
	case Disabled:
		return nil, nil
	case Preferred, Required:
		// NB: MySQL's PREFERRED and REQUIRED encrypt without checking the
		// certificate: they protect against a passive listener only.
		return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, ServerName: host}, nil //nolint:gosec // NB: the mode asks for it
	}
	pool, err := c.caPool()
	if err != nil {
		return nil, err
	}
	if c.Mode == VerifyIdentity {
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: host}, nil
	}
	// VerifyCA: the chain is checked, the host name is not (MySQL's
	// auto-generated certificates name no host).
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // NB: VerifyConnection checks the chain below
		ServerName:         host,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("mysqltls: the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter})
			if err != nil {
				return fmt.Errorf("mysqltls: %s=VERIFY_CA: the server's certificate does not chain to %s: %w", c.ModeFlag(), c.CAFile, err)
			}
			return nil
		},
	}, nil
}
