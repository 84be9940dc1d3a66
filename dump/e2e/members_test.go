package e2e

import (
	"bytes"
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

// fetch dumps (non-blocking) from file:pos and returns the events.
func fetch(t *testing.T, addr, file string, pos uint32) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := dumptest.Dial(ctx, addr, dumptest.DumpUser, dumptest.DumpPassword)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if _, err := c.Exec("SET @master_binlog_checksum = @@global.binlog_checksum"); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(mysql.COM_BINLOG_DUMP, dumptest.DumpPayload(pos, dumptest.NonBlock, 0, file)); err != nil {
		t.Fatal(err)
	}
	evs, err := c.All()
	if err != nil {
		t.Fatalf("dump %s:%d from %s: %v", file, pos, addr, err)
	}
	return evs
}

// TestThreeMembersSameBytes: the same file and position read through the
// dump server of each of three members give identical events, and each
// member's files are identical byte for byte.
func TestThreeMembersSameBytes(t *testing.T) {
	t.Parallel()
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB})
	cl := loggertest.New(t, 3, loggertest.Options{})
	leader := cl.Leader(30 * time.Second)
	dumptest.SetMaxFileSize(t, leader, 64<<10)
	feeder := dumptest.Feed(t, src, leader)
	dumptest.Workload(t, src, "w", dumptest.WorkloadOptions{BigTxnRows: 5000})
	feeder.WaitCaughtUp(t, time.Minute)
	cl.WaitApplied(30*time.Second, leader.Reader().Applied())

	files, err := leader.Reader().Files()
	if err != nil || len(files) < 3 {
		t.Fatalf("want several files, got %d (%v)", len(files), err)
	}
	// A transaction start in the middle of the log.
	mid := files[len(files)/2]
	var pos uint64
	leader.Reader().Txns(mid.Number, mid.HeaderEnd, func(r logger.TxnRecord) bool {
		pos = r.Pos
		return r.Pos == mid.HeaderEnd
	})

	var first [][][]byte
	for id := uint64(1); id <= 3; id++ {
		node := cl.Node(id)
		srv := dumptest.Serve(t, node, nil)
		for _, f := range files {
			a, _, err := node.Reader().ReadAt(f.Number, 0, int(f.Size))
			b, _, err2 := leader.Reader().ReadAt(f.Number, 0, int(f.Size))
			if err != nil || err2 != nil || !bytes.Equal(a, b) {
				t.Errorf("member %d: %s differs from the leader's (%v, %v)", id, f.Name(), err, err2)
			}
		}
		got := [][][]byte{fetch(t, srv.Addr(), files[0].Name(), 4), fetch(t, srv.Addr(), mid.Name(), uint32(pos))}
		if first == nil {
			first = got
			if len(got[0]) < 10 || len(got[1]) < 3 {
				t.Fatalf("member %d sent %d and %d events", id, len(got[0]), len(got[1]))
			}
			continue
		}
		for k := range got {
			if len(got[k]) != len(first[k]) {
				t.Errorf("member %d: dump %d sent %d events, member 1 sent %d", id, k, len(got[k]), len(first[k]))
				continue
			}
			for i := range got[k] {
				if !bytes.Equal(got[k][i], first[k][i]) {
					t.Errorf("member %d: dump %d event %d differs from member 1's", id, k, i)
					break
				}
			}
		}
	}
}
