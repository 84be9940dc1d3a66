package e2e

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/dump"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// semiStatusVar is the replica's own semi-sync status variable.
func semiStatusVar(f sandbox.Flavor) string {
	if f == sandbox.MySQL {
		return "Rpl_semi_sync_replica_status"
	}
	return "Rpl_semi_sync_slave_status"
}

// globalStatus reads one SHOW GLOBAL STATUS value ("" if absent).
func globalStatus(t *testing.T, s *sandbox.Server, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := s.Exec(ctx, "SHOW GLOBAL STATUS LIKE '"+name+"'")
	if err != nil {
		t.Fatalf("SHOW GLOBAL STATUS on %s: %v", s.Addr(), err)
	}
	if r.RowNumber() == 0 {
		return ""
	}
	v, _ := r.GetString(0, 1)
	return v
}

// ioRunning reports the replica's IO thread state ("Yes" when running).
func ioRunning(t *testing.T, r *sandbox.Server) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := dumptest.ReplicaStatus(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := st["Replica_IO_Running"]; ok {
		return v
	}
	return st["Slave_IO_Running"]
}

// semiClient returns the dump server's entry of the replica with server
// id id once it is dumping.
func semiClient(srv *dump.Server, id uint32) (dump.ClientStatus, bool) {
	for _, c := range srv.Clients() {
		if c.ServerID == id && c.Dumping {
			return c, true
		}
	}
	return dump.ClientStatus{}, false
}

// waitAck waits until the replica's ACK reaches the end of the member's
// log, and returns its entry.
func waitAck(t *testing.T, srv *dump.Server, node *logger.Node, id uint32, d time.Duration) dump.ClientStatus {
	t.Helper()
	deadline := time.Now().Add(d)
	var last dump.ClientStatus
	for time.Now().Before(deadline) {
		st := node.Reader().State()
		if c, ok := semiClient(srv, id); ok {
			last = c
			if c.SemiSync && c.AckFile == logger.FileName(st.File) && c.AckPos == st.Pos {
				return c
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := node.Reader().State()
	t.Fatalf("the replica's ACK did not reach the log's end %s:%d within %v: %+v", logger.FileName(st.File), st.Pos, d, last)
	return last
}

// TestSemiSyncReplicas: a MySQL 9.7 replica with rpl_semi_sync_replica_enabled
// and a MariaDB 10.11 replica with rpl_semi_sync_slave_enabled replicate
// from a fleet member with semi-sync on (their own status says so), end
// with the source's data and a running IO thread, and their ACKs, shown
// in the dump server's client list, follow the log to its end under a
// small write load.
func TestSemiSyncReplicas(t *testing.T) {
	t.Parallel()
	for _, flav := range []sandbox.Flavor{sandbox.MySQL, sandbox.MariaDB} {
		t.Run(string(flav), func(t *testing.T) {
			t.Parallel()
			opts := sandbox.Options{Flavor: flav}
			src := sandboxtest.Start(t, opts)
			cl := loggertest.New(t, 1, loggertest.Options{})
			leader := cl.Leader(30 * time.Second)
			dumptest.SetMaxFileSize(t, leader, 256<<10) // ACKs cross file boundaries
			feeder := dumptest.Feed(t, src, leader)
			srv := dumptest.Serve(t, leader, func(c *dump.Config) { c.Flavor = string(flav) })

			ropts := opts
			ropts.SemiSyncReplica = true
			replica := sandboxtest.Start(t, ropts)
			dumptest.PointReplica(t, replica, srv.Addr(), dumptest.ByGTID)
			tables := dumptest.Workload(t, src, "w", dumptest.WorkloadOptions{BigTxnRows: 5000})
			feeder.WaitCaughtUp(t, 2*time.Minute)
			dumptest.WaitReplicated(t, src, replica, 2*time.Minute)
			dumptest.SameData(t, src, replica, tables)
			if v := globalStatus(t, replica, semiStatusVar(flav)); v != "ON" {
				t.Fatalf("%s on the replica is %q: it does not replicate with semi-sync", semiStatusVar(flav), v)
			}
			id := replica.ServerID()
			first := waitAck(t, srv, leader, id, time.Minute)
			t.Logf("after the workload: %d ACKs, at %s:%d", first.Acks, first.AckFile, first.AckPos)

			// A small write load: one commit every 20 ms; each commit's ACK
			// is timed from the source's commit to the fleet's record of it.
			const writes = 40
			dumptest.Exec(t, src, "CREATE TABLE w.semi (id INT PRIMARY KEY, v VARCHAR(32))")
			var lags []time.Duration
			for i := 0; i < writes; i++ {
				before, _ := semiClient(srv, id)
				t0 := time.Now()
				dumptest.Exec(t, src, fmt.Sprintf("INSERT INTO w.semi VALUES (%d, 'v%d')", i, i))
				for {
					c, ok := semiClient(srv, id)
					if ok && c.Acks > before.Acks {
						lags = append(lags, time.Since(t0))
						break
					}
					if time.Since(t0) > time.Minute {
						t.Fatalf("write %d: no ACK within a minute (%+v)", i, c)
					}
					time.Sleep(time.Millisecond)
				}
				time.Sleep(20 * time.Millisecond)
			}
			feeder.WaitCaughtUp(t, time.Minute)
			last := waitAck(t, srv, leader, id, time.Minute)
			if last.Acks < first.Acks+writes || !last.AckTime.After(first.AckTime) {
				t.Errorf("ACKs did not advance with %d commits: %d then %d (at %v then %v)", writes, first.Acks, last.Acks, first.AckTime, last.AckTime)
			}
			sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
			t.Logf("%s semi-sync replica: source commit to the fleet's record of the replica's ACK over %d commits: p50 %v, p90 %v, max %v; last ACK %s:%d (%d ACKs), its latency from the flagged event %.2f ms",
				flav, writes, lags[len(lags)/2], lags[len(lags)*9/10], lags[len(lags)-1], last.AckFile, last.AckPos, last.Acks, last.AckLatencySeconds*1000)

			dumptest.WaitReplicated(t, src, replica, time.Minute)
			dumptest.SameData(t, src, replica, append(tables, "w.semi"))
			if v := ioRunning(t, replica); v != "Yes" {
				t.Errorf("the replica's IO thread: %q, want Yes", v)
			}
		})
	}
}
