// Package e2e tests the dump server against real replicas and clients:
// MariaDB and MySQL replicas (tools/sandbox), binlog client libraries
// (go-mysql canal, zongji), and binlogsvr processes (tools/fleet). The
// protocol and login tests on an in-process log stay in package dump.
package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// TestBadInput: a malformed dump packet, an unknown GTID, a diverged GTID,
// a purged file, a wrong password, unknown statements and commands, and a
// client that disconnects in the middle of a 20 MiB event each get the
// right error or are dropped cleanly, while a real replica attached to the
// same member keeps replicating.
func TestBadInput(t *testing.T) {
	t.Parallel()
	opts := sandbox.Options{Flavor: sandbox.MariaDB, ExtraArgs: dumptest.ServerArgs}
	src := sandboxtest.Start(t, opts)
	cl := loggertest.New(t, 1, loggertest.Options{})
	leader := cl.Leader(30 * time.Second)
	dumptest.SetMaxFileSize(t, leader, 64<<10)
	feeder := dumptest.Feed(t, src, leader)
	srv := dumptest.Serve(t, leader, nil)
	replica := sandboxtest.Start(t, opts)
	dumptest.PointReplica(t, replica, srv.Addr(), dumptest.ByGTID)
	tables := dumptest.Workload(t, src, "w", dumptest.WorkloadOptions{BigRow: 20 << 20})
	feeder.WaitCaughtUp(t, time.Minute)
	dumptest.WaitReplicated(t, src, replica, time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dial := func() *dumptest.DumpClient {
		t.Helper()
		c, err := dumptest.Dial(ctx, srv.Addr(), dumptest.DumpUser, dumptest.DumpPassword)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("wrong password", func(t *testing.T) {
		_, err := dumptest.Dial(ctx, srv.Addr(), dumptest.DumpUser, "not-the-password")
		dumptest.WantMySQLError(t, "wrong password", err, mysql.ER_ACCESS_DENIED_ERROR, "Access denied")
		_, err = dumptest.Dial(ctx, srv.Addr(), "nobody", dumptest.DumpPassword)
		dumptest.WantMySQLError(t, "unknown user", err, mysql.ER_ACCESS_DENIED_ERROR, "Access denied")
	})
	t.Run("malformed dump packets", func(t *testing.T) {
		c := dial()
		c.Send(mysql.COM_BINLOG_DUMP, []byte{1, 2, 3})
		_, err := c.Next()
		dumptest.WantMySQLError(t, "short COM_BINLOG_DUMP", err, 1236, "malformed")
		c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, 0, "binlog\x01bad"))
		_, err = c.Next()
		dumptest.WantMySQLError(t, "control byte in the file name", err, 1236, "malformed")
		c.Send(mysql.COM_BINLOG_DUMP_GTID, []byte{0, 0, 1})
		_, err = c.Next()
		dumptest.WantMySQLError(t, "COM_BINLOG_DUMP_GTID to a MariaDB fleet", err, 1047, "Unknown command")
		c.Send(0x99, []byte("junk"))
		_, err = c.Next()
		dumptest.WantMySQLError(t, "unknown command", err, 1047, "Unknown command")
		// The connection still answers.
		if r, err := c.Exec("SELECT @@server_id"); err != nil || r.RowNumber() != 1 {
			t.Errorf("after malformed packets: %v", err)
		}
	})
	t.Run("unknown statement", func(t *testing.T) {
		_, err := dial().Exec("INSERT INTO w.t1 (name) VALUES ('x')")
		dumptest.WantMySQLError(t, "INSERT", err, 1235, "INSERT INTO w.t1")
		_, err = dial().Exec("SELECT @@no_such_variable")
		dumptest.WantMySQLError(t, "unknown variable", err, 1193, "no_such_variable")
		_, err = dial().Exec("KILL 4242")
		dumptest.WantMySQLError(t, "KILL of an unknown id", err, 1094, "Unknown thread id: 4242")
	})
	t.Run("unknown GTID", func(t *testing.T) {
		c := dial()
		c.Exec("SET @mariadb_slave_capability=4")
		c.Exec("SET @slave_connect_state='0-1-999999'")
		c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, 0, ""))
		_, err := c.Next()
		dumptest.WantMySQLError(t, "GTID beyond the log", err, 1236, "requested to start from GTID 0-1-999999, which is not in the master's binlog")
		c = dial()
		c.Exec("SET @slave_connect_state='0-77-3'")
		c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, 0, ""))
		_, err = c.Next()
		dumptest.WantMySQLError(t, "diverged GTID", err, 1236, "diverged")
		c = dial()
		c.Exec("SET @slave_connect_state='0-1-2-3'")
		c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, 0, ""))
		_, err = c.Next()
		dumptest.WantMySQLError(t, "unparsable state", err, 1236, "slave_connect_state")
	})
	t.Run("bad position", func(t *testing.T) {
		c := dial()
		c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, 0, "binlog.999999"))
		_, err := c.Next()
		dumptest.WantMySQLError(t, "unknown file", err, 1236, "Could not find first log file name in binary log index file")
		c = dial()
		c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, 0, "mysql-bin.000001"))
		_, err = c.Next()
		dumptest.WantMySQLError(t, "foreign file name", err, 1236, "Could not find first log file name")
		c = dial()
		c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(1<<30, 0, 0, "binlog.000001"))
		_, err = c.Next()
		dumptest.WantMySQLError(t, "position past the end", err, 1236, "position > file size")
		c = dial()
		c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(7, 0, 0, "binlog.000001"))
		_, err = c.Next()
		dumptest.WantMySQLError(t, "position inside an event", err, 1236, "not the start of an event")
	})
	t.Run("disconnect mid-event", func(t *testing.T) {
		before := len(srv.Clients())
		c, err := dumptest.Dial(ctx, srv.Addr(), dumptest.DumpUser, dumptest.DumpPassword)
		if err != nil {
			t.Fatal(err)
		}
		c.Exec("SET @slave_connect_state=''")
		c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, 5555, ""))
		buf := make([]byte, 1<<20)
		got := 0
		for got < 2<<20 {
			n, err := c.C.Conn.Conn.Read(buf)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			got += n
		}
		c.C.Conn.Conn.Close() // NB: in the middle of the 20 MiB event
		deadline := time.Now().Add(30 * time.Second)
		for len(srv.Clients()) > before {
			if time.Now().After(deadline) {
				t.Fatalf("the server still lists %d connections after the client left (%d before)", len(srv.Clients()), before)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("purged file", func(t *testing.T) {
		files, _ := leader.Reader().Files()
		pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := leader.Propose(pctx, &logger.Purge{UpTo: files[2].Number})
		pcancel()
		if err != nil || !res.Code.Stored() {
			t.Fatalf("purge: %v %v", err, res)
		}
		c := dial()
		c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, 0, files[0].Name()))
		_, err = c.Next()
		dumptest.WantMySQLError(t, "purged file", err, 1236, "purged")
		c = dial()
		c.Exec("SET @slave_connect_state=''")
		c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(4, 0, 0, ""))
		_, err = c.Next()
		dumptest.WantMySQLError(t, "empty GTID state with purged files", err, 1236, "Could not find GTID state requested by slave in any binlog files")
	})

	// The replica was untouched by all of this.
	dumptest.Exec(t, src, "INSERT INTO w.t3 VALUES ('after-bad-input', 'x')")
	feeder.WaitCaughtUp(t, time.Minute)
	dumptest.WaitReplicated(t, src, replica, time.Minute)
	dumptest.SameData(t, src, replica, tables)
}
