package e2e

import (
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger/loggertest"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// TestMariaDBReplicas: a real MariaDB 10.11 replica by GTID and another by
// file/position, both attached to a fleet member, replicate a mixed
// workload (with a 20 MiB row and a 100,000-row transaction) and end with
// the source's data.
func TestMariaDBReplicas(t *testing.T) {
	t.Parallel()
	opts := sandbox.Options{Flavor: sandbox.MariaDB, ExtraArgs: dumptest.ServerArgs}
	src := sandboxtest.Start(t, opts)
	cl := loggertest.New(t, 1, loggertest.Options{})
	leader := cl.Leader(30 * time.Second)
	feeder := dumptest.Feed(t, src, leader)
	srv := dumptest.Serve(t, leader, nil)

	byGTID := sandboxtest.Start(t, opts)
	byPos := sandboxtest.Start(t, opts)
	dumptest.PointReplica(t, byGTID, srv.Addr(), dumptest.ByGTID)
	dumptest.PointReplica(t, byPos, srv.Addr(), dumptest.ByFilePos)

	tables := dumptest.Workload(t, src, "w", dumptest.WorkloadOptions{BigRow: 20 << 20, BigTxnRows: 100000})
	feeder.WaitCaughtUp(t, 2*time.Minute)
	dumptest.WaitReplicated(t, src, byGTID, 2*time.Minute)
	dumptest.WaitReplicated(t, src, byPos, 2*time.Minute)
	dumptest.SameData(t, src, byGTID, tables)
	dumptest.SameData(t, src, byPos, tables)

	// The replicas are listed, and a restarted GTID replica resumes.
	if n := len(srv.Clients()); n < 2 {
		t.Errorf("Clients() lists %d connections, want the 2 replicas", n)
	}
	dumptest.Exec(t, byGTID, "STOP SLAVE", "START SLAVE")
	dumptest.Exec(t, src, "INSERT INTO w.t3 VALUES ('after-restart', 'x')")
	feeder.WaitCaughtUp(t, time.Minute)
	dumptest.WaitReplicated(t, src, byGTID, time.Minute)
	dumptest.WaitReplicated(t, src, byPos, time.Minute)
	dumptest.SameData(t, src, byGTID, tables)
}
