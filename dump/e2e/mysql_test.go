package e2e

import (
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/dump"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// TestMySQLReplica: a real MySQL 9.7 replica with SOURCE_AUTO_POSITION=1
// (GET_SOURCE_PUBLIC_KEY=1: caching_sha2_password over plain TCP) attached
// to a fleet in front of a 9.7 source replicates the mixed workload,
// across several files, and ends with the source's data.
func TestMySQLReplica(t *testing.T) {
	t.Parallel()
	opts := sandbox.Options{Flavor: sandbox.MySQL, ExtraArgs: dumptest.ServerArgs}
	src := sandboxtest.Start(t, opts)
	cl := loggertest.New(t, 1, loggertest.Options{})
	leader := cl.Leader(30 * time.Second)
	dumptest.SetMaxFileSize(t, leader, 1<<20)
	feeder := dumptest.Feed(t, src, leader)
	srv := dumptest.Serve(t, leader, func(c *dump.Config) { c.Flavor = "mysql" })

	replica := sandboxtest.Start(t, opts)
	dumptest.PointReplica(t, replica, srv.Addr(), dumptest.ByGTID)

	tables := dumptest.Workload(t, src, "w", dumptest.WorkloadOptions{BigRow: 20 << 20, BigTxnRows: 100000})
	feeder.WaitCaughtUp(t, 2*time.Minute)
	dumptest.WaitReplicated(t, src, replica, 3*time.Minute)
	dumptest.SameData(t, src, replica, tables)

	// Restarted, the replica resumes from its GTID set.
	dumptest.Exec(t, replica, "STOP REPLICA", "START REPLICA")
	dumptest.Exec(t, src, "INSERT INTO w.t3 VALUES ('after-restart', 'x')")
	feeder.WaitCaughtUp(t, time.Minute)
	dumptest.WaitReplicated(t, src, replica, time.Minute)
	dumptest.SameData(t, src, replica, tables)
}
