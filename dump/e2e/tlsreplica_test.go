package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/dump"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
	"github.com/binlogsvr/binlogsvr/logger/pki"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// TestReplicaOverTLS: with --dump-require-tls a real MariaDB replica
// with MASTER_SSL=1 replicates the source's data, and one without TLS
// is refused with error 3159 (its IO thread says so).
func TestReplicaOverTLS(t *testing.T) {
	t.Parallel()
	p := pki.Testing(t, t.TempDir())
	opts := sandbox.Options{Flavor: sandbox.MariaDB, ExtraArgs: dumptest.ServerArgs}
	src := sandboxtest.Start(t, opts)
	cl := loggertest.New(t, 1, loggertest.Options{})
	leader := cl.Leader(30 * time.Second)
	feeder := dumptest.Feed(t, src, leader)
	srv := dumptest.Serve(t, leader, func(c *dump.Config) {
		c.TLSCert, c.TLSKey, c.RequireTLS = p.Members[0].Cert, p.Members[0].Key, true
	})
	withTLS := sandboxtest.Start(t, opts)
	plain := sandboxtest.Start(t, opts)
	dumptest.PointReplicaTLS(t, withTLS, srv.Addr(), dumptest.ByGTID)
	dumptest.PointReplica(t, plain, srv.Addr(), dumptest.ByGTID)

	tables := dumptest.Workload(t, src, "w", dumptest.WorkloadOptions{})
	feeder.WaitCaughtUp(t, time.Minute)
	dumptest.WaitReplicated(t, src, withTLS, time.Minute)
	dumptest.SameData(t, src, withTLS, tables)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := fleet.Poll(ctx, 30*time.Second, func() error {
		st, err := dumptest.ReplicaStatus(ctx, plain)
		if err != nil {
			return err
		}
		if e := st["Last_IO_Error"]; !strings.Contains(e, "3159") && !strings.Contains(e, "insecure transport") {
			return &pollErr{e}
		}
		return nil
	}); err != nil {
		t.Errorf("plaintext replica: want its IO thread refused with 3159: %v", err)
	}
}

type pollErr struct{ s string }

func (e *pollErr) Error() string { return "Last_IO_Error " + e.s }
