package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/binlogsvr/binlogsvr/logger/pki"
)

const certsUsage = `Usage: binlogctl certs SUBCOMMAND [flags]

  create-ca --certs-dir DIR                       a CA: DIR/ca.crt and DIR/ca.key (0600); refuses to overwrite
  create-member NAME --hosts H1,H2 --certs-dir DIR  a member's certificate (raft links and admin API, server and
                                                  client auth) for the hosts (IPs or DNS names):
                                                  DIR/member.NAME.crt and .key (or --out-cert/--out-key)
  create-client NAME --role read|operate --certs-dir DIR
                                                  a client certificate for binlogctl --cert/--key:
                                                  DIR/client.NAME.crt and .key
  create-token NAME --role read|operate           print a token file line "ROLE NAME TOKEN" (32 random bytes,
                                                  base64url): binlogctl certs create-token ops --role operate >> tokens

A member runs with --raft-tls-ca DIR/ca.crt --raft-tls-cert DIR/member.N.crt --raft-tls-key DIR/member.N.key
--admin-token-file tokens (chmod 600); binlogctl with --ca DIR/ca.crt and --token-file (a file holding one token).
Rotation without downtime: docs/SECURITY.md.

`

func cmdCerts(_ *client, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(stderr, certsUsage)
		if len(args) == 0 {
			return usageFor("certs", "certs needs a subcommand")
		}
		return pflag.ErrHelp
	}
	sub, rest := args[0], args[1:]
	fs := pflag.NewFlagSet("certs "+sub, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("certs-dir", envOr("BINLOGCTL_CERTS_DIR", "."), "directory of ca.crt and ca.key (and the new files)")
	validity := fs.Duration("validity", 365*24*time.Hour, "how long the certificate is valid (create-ca: default 10 years)")
	hosts := fs.StringSlice("hosts", nil, "create-member: the member's host names and IP addresses (comma separated)")
	role := fs.String("role", "", "create-client, create-token: read or operate")
	outCert := fs.String("out-cert", "", "create-member, create-client: the certificate file (default DIR/member.NAME.crt, DIR/client.NAME.crt)")
	outKey := fs.String("out-key", "", "create-member, create-client: the key file (default beside the certificate, .key)")
	fs.Usage = func() { fmt.Fprint(stderr, certsUsage); fs.PrintDefaults() }
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	caCert, caKey := filepath.Join(*dir, "ca.crt"), filepath.Join(*dir, "ca.key")
	name := fs.Arg(0)
	needName := func() error {
		if fs.NArg() != 1 || name == "" || strings.ContainsAny(name, " \t\n/") {
			return usageError{fmt.Errorf("certs %s needs one NAME (no spaces or slashes)", sub)}
		}
		return nil
	}
	needRole := func() error {
		if *role != pki.RoleRead && *role != pki.RoleOperate {
			return usageError{fmt.Errorf("certs %s needs --role read or --role operate", sub)}
		}
		return nil
	}
	noClobber := func(files ...string) error {
		for _, f := range files {
			if _, err := os.Stat(f); err == nil {
				return fmt.Errorf("%s exists; refusing to overwrite it (remove it first, or choose another --certs-dir/--out-cert)", f)
			}
		}
		return nil
	}
	outs := func(prefix string) (string, string) {
		c, k := *outCert, *outKey
		if c == "" {
			c = filepath.Join(*dir, prefix+"."+name+".crt")
		}
		if k == "" {
			k = strings.TrimSuffix(c, ".crt") + ".key"
		}
		return c, k
	}
	switch sub {
	case "create-ca":
		if fs.NArg() != 0 {
			return usageError{errors.New("certs create-ca takes no arguments (only --certs-dir)")}
		}
		if err := noClobber(caCert, caKey); err != nil {
			return err
		}
		v := *validity
		if !fs.Changed("validity") {
			v = 10 * 365 * 24 * time.Hour
		}
		ca, err := pki.NewCA("binlogsvr CA", v)
		if err != nil {
			return err
		}
		if err := ca.WriteFiles(caCert, caKey); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s and %s (keep the key secret and off the members)\n", caCert, caKey)
		return nil
	case "create-member", "create-client":
		if err := needName(); err != nil {
			return err
		}
		ca, err := pki.LoadCA(caCert, caKey)
		if err != nil {
			return fmt.Errorf("loading the CA from --certs-dir %s (make one with `binlogctl certs create-ca`): %w", *dir, err)
		}
		var c, k []byte
		var cf, kf string
		if sub == "create-member" {
			if len(*hosts) == 0 {
				return usageError{errors.New("certs create-member needs --hosts H1,H2 (the member's IP addresses and host names)")}
			}
			cf, kf = outs("member")
			if err := noClobber(cf, kf); err != nil {
				return err
			}
			c, k, err = ca.IssueMember(name, *hosts, *validity)
		} else {
			if err := needRole(); err != nil {
				return err
			}
			cf, kf = outs("client")
			if err := noClobber(cf, kf); err != nil {
				return err
			}
			c, k, err = ca.IssueClient(name, *role, *validity)
		}
		if err != nil {
			return err
		}
		if err := pki.WritePair(cf, kf, c, k); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s and %s\n", cf, kf)
		return nil
	case "create-token":
		if err := needName(); err != nil {
			return err
		}
		if err := needRole(); err != nil {
			return err
		}
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s %s\n", *role, name, base64.RawURLEncoding.EncodeToString(b))
		return nil
	}
	fmt.Fprint(stderr, certsUsage)
	return usageError{fmt.Errorf("unknown certs subcommand %q", sub)}
}
