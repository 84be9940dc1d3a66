package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger/mysqltls"
	"github.com/binlogsvr/binlogsvr/semisync"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// dialMode logs in with the replication account in a mode and reports
// whether the connection is TLS.
func dialMode(t *testing.T, src *sandbox.Server, cfg mysqltls.Config) (bool, error) {
	t.Helper()
	user, pass := src.ReplUser()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := semisync.DialTLS(ctx, src.Addr(), user, pass, cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	if _, err := c.Execute("SELECT 1"); err != nil {
		return false, err
	}
	_, isTLS := c.Conn.Conn.(*tls.Conn)
	return isTLS, nil
}

// TestSourceSSLModesMySQL: MySQL 9.7 generates its own CA and server
// certificate, so REQUIRED and VERIFY_CA (with the data directory's
// ca.pem) use TLS; VERIFY_CA with another CA and VERIFY_IDENTITY (its
// certificate names no host) are refused; DISABLED logs in without TLS.
func TestSourceSSLModesMySQL(t *testing.T) {
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MySQL})
	ca := filepath.Join(src.DataDir(), "ca.pem")
	if _, err := os.Stat(ca); err != nil {
		t.Fatalf("MySQL did not generate its CA: %v", err)
	}
	other := otherCA(t)
	for _, c := range []struct {
		cfg     mysqltls.Config
		wantTLS bool
		wantErr string
	}{
		{mysqltls.Config{Mode: mysqltls.Disabled}, false, ""},
		{mysqltls.Config{}, true, ""},
		{mysqltls.Config{Mode: mysqltls.Required}, true, ""},
		{mysqltls.Config{Mode: mysqltls.VerifyCA, CAFile: ca}, true, ""},
		{mysqltls.Config{Mode: mysqltls.VerifyCA, CAFile: other}, false, "does not chain to"},
		{mysqltls.Config{Mode: mysqltls.VerifyIdentity, CAFile: ca}, false, "certificate"},
	} {
		t.Run(c.cfg.Mode.String(), func(t *testing.T) {
			isTLS, err := dialMode(t, src, c.cfg)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("%v: %v", c.cfg.Mode, err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("%v with %s: %v, want an error with %q", c.cfg.Mode, c.cfg.CAFile, err, c.wantErr)
			case err == nil && isTLS != c.wantTLS:
				t.Fatalf("%v: TLS %v, want %v", c.cfg.Mode, isTLS, c.wantTLS)
			}
		})
	}
}

// TestSourceSSLModesMariaDB: the sandbox's MariaDB 10.11 has no server
// certificate unless configured: PREFERRED and DISABLED log in without
// TLS, and REQUIRED is refused saying the server offers none.
func TestSourceSSLModesMariaDB(t *testing.T) {
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB})
	r, err := src.Exec(context.Background(), "SELECT @@have_ssl")
	if err != nil {
		t.Fatal(err)
	}
	haveSSL, _ := r.GetString(0, 0)
	for _, m := range []mysqltls.Mode{mysqltls.Disabled, mysqltls.Preferred} {
		isTLS, err := dialMode(t, src, mysqltls.Config{Mode: m})
		if err != nil || isTLS != (m == mysqltls.Preferred && haveSSL == "YES") {
			t.Fatalf("%v (have_ssl %s): TLS %v, %v", m, haveSSL, isTLS, err)
		}
	}
	isTLS, err := dialMode(t, src, mysqltls.Config{Mode: mysqltls.Required})
	if haveSSL == "YES" {
		if err != nil || !isTLS {
			t.Fatalf("REQUIRED with have_ssl=YES: TLS %v, %v", isTLS, err)
		}
	} else if !errors.Is(err, mysqltls.ErrNoTLS) || !strings.Contains(err.Error(), "--source-ssl-mode=REQUIRED") {
		t.Fatalf("REQUIRED with have_ssl=%s: %v, want ErrNoTLS naming --source-ssl-mode", haveSSL, err)
	}
}

// TestStatementEvents: a session with binlog_format=STATEMENT on a ROW
// source writes an INSERT; the fleet stores and ACKs it, counts one
// statement event and names its GTID. The MySQL fleet logs in with
// --source-ssl-mode=VERIFY_CA, and the source sees its dump over TLS.
func TestStatementEvents(t *testing.T) {
	for _, flavor := range flavors {
		t.Run(string(flavor), func(t *testing.T) {
			var srcArgs []string
			if flavor == sandbox.MySQL {
				srcArgs = []string{"--performance-schema=ON"} // NB: to see the dump connection's type
			}
			src := sandboxtest.Start(t, sandbox.Options{Flavor: flavor, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute, ExtraArgs: srcArgs})
			var extra []string
			if flavor == sandbox.MySQL {
				extra = []string{"--source-ssl-mode", "VERIFY_CA", "--source-ssl-ca", filepath.Join(src.DataDir(), "ca.pem")}
			}
			user, pass := src.ReplUser()
			f, err := fleet.Start(context.Background(), fleet.Options{Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
				ExtraArgs: append([]string{"--source-heartbeat", "500ms"}, extra...)})
			if err != nil {
				t.Fatal(err)
			}
			r := &rig{t: t, src: src, f: f}
			t.Cleanup(func() {
				if t.Failed() {
					t.Log(f.LogTails(40))
				}
				f.Close()
			})
			r.waitStreaming()
			ctx := context.Background()
			if flavor == sandbox.MySQL {
				res, err := src.Exec(ctx, "SELECT CONNECTION_TYPE FROM performance_schema.threads WHERE PROCESSLIST_COMMAND LIKE 'Binlog Dump%'")
				if err != nil {
					t.Fatal(err)
				}
				if res.RowNumber() != 1 {
					t.Fatalf("%d dump threads on the source, want 1", res.RowNumber())
				}
				if ct, _ := res.GetString(0, 0); ct != "SSL/TLS" {
					t.Fatalf("the fleet's dump connection is %q, want SSL/TLS", ct)
				}
			}
			for _, q := range []string{"CREATE DATABASE IF NOT EXISTS test", "CREATE TABLE test.stmt (id INT PRIMARY KEY, v INT)", "INSERT INTO test.stmt VALUES (1, 1)"} {
				if _, err := src.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			c, err := src.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, q := range []string{"SET SESSION binlog_format = 'STATEMENT'", "INSERT INTO test.stmt VALUES (2, 2)"} {
				if _, err := c.Execute(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			want := r.sourceGTIDs()
			r.waitLogHas(want)
			var last string
			err = fleet.Poll(ctx, wait, func() error {
				st, err := r.leaderStatus()
				if err != nil {
					return err
				}
				if st.Ingest == nil || st.Ingest.StatementEvents != 1 {
					return fmt.Errorf("ingest %+v: want 1 statement event", st.Ingest)
				}
				last = st.Ingest.LastStatementGTID
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if last == "" || last != lastGTIDOf(t, r) {
				t.Fatalf("last statement GTID %q, want the INSERT's (the log's last, %q)", last, lastGTIDOf(t, r))
			}
			// The transaction is in the log: its text is in the log's files.
			found := false
			l, _ := r.f.Leader(ctx, wait)
			for _, b := range r.logFiles(l) {
				found = found || strings.Contains(string(b), "INSERT INTO test.stmt VALUES (2, 2)")
			}
			if !found {
				t.Fatal("the statement-based INSERT is not in the log's files")
			}
			if n := r.semiStatus("yes_tx"); n < 4 {
				t.Errorf("the source counts %d semi-sync ACKed transactions, want at least 4 (the INSERT's included)", n)
			}
		})
	}
}

// otherCA writes a CA certificate that signed nothing MySQL has.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "not the MySQL CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func lastGTIDOf(t *testing.T, r *rig) string {
	t.Helper()
	st, err := r.leaderStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st.LastGTID
}
