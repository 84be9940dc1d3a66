package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/logger/mysqltls"
	"github.com/binlogsvr/binlogsvr/semisync"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// TestFailoverSSLMode: the failover's logins use --failover-ssl-mode, as
// the daemon wires them (failover.SQLConnector over semisync.Dialer): VERIFY_CA
// with MySQL's own CA logs in; REQUIRED toward the sandbox's MariaDB
// (no server certificate) is refused naming --failover-ssl-mode.
func TestFailoverSSLMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	my := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MySQL})
	user, pass := my.RootUser()
	tc := mysqltls.Config{Mode: mysqltls.VerifyCA, CAFile: filepath.Join(my.DataDir(), "ca.pem"), Prefix: "failover"}
	if err := tc.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := failover.SQLConnector(semisync.Dialer(tc))(ctx, my.Addr(), failover.Credentials{User: user, Password: pass})
	if err != nil {
		t.Fatalf("VERIFY_CA with MySQL's ca.pem: %v", err)
	}
	info, err := s.Info(ctx)
	s.Close()
	if err != nil || info.Flavor != "mysql" {
		t.Fatalf("info %+v, %v", info, err)
	}

	ma := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB})
	r, err := ma.Exec(ctx, "SELECT @@have_ssl")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := r.GetString(0, 0); v == "YES" {
		t.Fatalf("the sandbox's MariaDB offers TLS (have_ssl=YES): this test needs one that does not")
	}
	user, pass = ma.RootUser()
	_, err = failover.SQLConnector(semisync.Dialer(mysqltls.Config{Mode: mysqltls.Required, Prefix: "failover"}))(ctx, ma.Addr(), failover.Credentials{User: user, Password: pass})
	if !errors.Is(err, mysqltls.ErrNoTLS) || !strings.Contains(err.Error(), "--failover-ssl-mode=REQUIRED") {
		t.Fatalf("REQUIRED toward a server without TLS: %v, want ErrNoTLS naming --failover-ssl-mode", err)
	}
}
