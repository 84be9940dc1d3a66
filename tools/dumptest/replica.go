package dumptest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// exec runs statements on s, failing the test on error.
func exec(t testing.TB, s *sandbox.Server, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_, err := s.Exec(ctx, q)
		cancel()
		if err != nil {
			t.Fatalf("dumptest: %v", err)
		}
	}
}

// Exec runs statements on s as root, failing the test on the first error.
func Exec(t testing.TB, s *sandbox.Server, stmts ...string) { t.Helper(); exec(t, s, stmts...) }

// ReplicaMode says how a replica positions itself.
type ReplicaMode int

const (
	// ByGTID: MariaDB MASTER_USE_GTID=slave_pos; MySQL SOURCE_AUTO_POSITION=1.
	ByGTID ReplicaMode = iota
	// ByFilePos: MariaDB MASTER_USE_GTID=no; MySQL SOURCE_AUTO_POSITION=0
	// from the first file.
	ByFilePos
)

// PointReplica makes r replicate from the dump server at addr and starts it.
func PointReplica(t testing.TB, r *sandbox.Server, addr string, mode ReplicaMode) {
	t.Helper()
	pointReplica(t, r, addr, mode, false)
}

// PointReplicaTLS is PointReplica over TLS (MASTER_SSL=1 /
// SOURCE_SSL=1; the server's certificate is not verified).
func PointReplicaTLS(t testing.TB, r *sandbox.Server, addr string, mode ReplicaMode) {
	t.Helper()
	pointReplica(t, r, addr, mode, true)
}

func pointReplica(t testing.TB, r *sandbox.Server, addr string, mode ReplicaMode, ssl bool) {
	t.Helper()
	host, port, err := splitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var q string
	if r.Flavor() == sandbox.MariaDB {
		gtid := "slave_pos"
		extra := ""
		if mode == ByFilePos {
			gtid = "no"
			extra = ", MASTER_LOG_FILE='binlog.000001', MASTER_LOG_POS=4"
		}
		if ssl {
			extra += ", MASTER_SSL=1"
		}
		q = fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', "+
			"MASTER_USE_GTID=%s, MASTER_HEARTBEAT_PERIOD=1, MASTER_CONNECT_RETRY=1%s", host, port, DumpUser, DumpPassword, gtid, extra)
		exec(t, r, q, "START SLAVE")
		return
	}
	auto := "SOURCE_AUTO_POSITION=1"
	if mode == ByFilePos {
		auto = "SOURCE_AUTO_POSITION=0, SOURCE_LOG_FILE='binlog.000001', SOURCE_LOG_POS=4"
	}
	if ssl {
		auto += ", SOURCE_SSL=1"
	}
	q = fmt.Sprintf("CHANGE REPLICATION SOURCE TO SOURCE_HOST='%s', SOURCE_PORT=%d, SOURCE_USER='%s', SOURCE_PASSWORD='%s', "+
		"%s, GET_SOURCE_PUBLIC_KEY=1, SOURCE_HEARTBEAT_PERIOD=1, SOURCE_CONNECT_RETRY=1", host, port, DumpUser, DumpPassword, auto)
	exec(t, r, q, "START REPLICA")
}

// ReplicaStatus returns the replica's status row as a map.
func ReplicaStatus(ctx context.Context, r *sandbox.Server) (map[string]string, error) {
	q := "SHOW SLAVE STATUS"
	if r.Flavor() == sandbox.MySQL {
		q = "SHOW REPLICA STATUS"
	}
	res, err := r.Exec(ctx, q)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if res.RowNumber() == 0 {
		return out, nil
	}
	for i, f := range res.Fields {
		v, _ := res.GetString(0, i)
		out[string(f.Name)] = v
	}
	return out, nil
}

// gtidState reads a server's executed GTID state.
func gtidState(ctx context.Context, s *sandbox.Server, replica bool) (string, error) {
	q := "SELECT @@GLOBAL.gtid_executed"
	if s.Flavor() == sandbox.MariaDB {
		q = "SELECT @@GLOBAL.gtid_binlog_pos"
		if replica {
			q = "SELECT @@GLOBAL.gtid_slave_pos"
		}
	}
	res, err := s.Exec(ctx, q)
	if err != nil {
		return "", err
	}
	v, _ := res.GetString(0, 0)
	return v, nil
}

// WaitReplicated waits (bounded by d) until replica r has applied every
// transaction source src has executed; a replication error fails at once.
func WaitReplicated(t testing.TB, src, r *sandbox.Server, d time.Duration) {
	t.Helper()
	if err := Replicated(context.Background(), src, r, d); err != nil {
		t.Fatalf("dumptest: %v", err)
	}
}

// Replicated is WaitReplicated returning an error.
func Replicated(ctx context.Context, src, r *sandbox.Server, d time.Duration) error {
	flav, _ := binlog.FlavorByName(string(src.Flavor()))
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	want, err := gtidState(cctx, src, false)
	if err != nil {
		return err
	}
	wantSet, err := flav.ParseSet(want)
	if err != nil {
		return err
	}
	var last string
	for {
		st, err := ReplicaStatus(cctx, r)
		if err == nil {
			for _, k := range []string{"Last_IO_Error", "Last_SQL_Error"} {
				if st[k] != "" {
					return fmt.Errorf("replica %s: %s: %s", r.Addr(), k, st[k])
				}
			}
			if have, err := gtidState(cctx, r, true); err == nil {
				last = have
				if hs, err := flav.ParseSet(have); err == nil && hs.ContainsSet(wantSet) {
					return nil
				}
			}
		}
		select {
		case <-cctx.Done():
			return fmt.Errorf("replica %s has %q, the source has %q (after %v; status %v)", r.Addr(), last, want, d, brief(st))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func brief(st map[string]string) string {
	var b strings.Builder
	for _, k := range []string{"Slave_IO_Running", "Replica_IO_Running", "Slave_SQL_Running", "Replica_SQL_Running",
		"Master_Log_File", "Source_Log_File", "Read_Master_Log_Pos", "Read_Source_Log_Pos", "Gtid_IO_Pos", "Retrieved_Gtid_Set"} {
		if v, ok := st[k]; ok {
			fmt.Fprintf(&b, "%s=%s ", k, v)
		}
	}
	return b.String()
}

// Checksums returns CHECKSUM TABLE for each table (db.table).
func Checksums(t testing.TB, s *sandbox.Server, tables []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tb := range tables {
		r, err := s.Exec(ctx, "CHECKSUM TABLE "+tb+" EXTENDED")
		if err != nil {
			t.Fatalf("dumptest: checksum %s on %s: %v", tb, s.Addr(), err)
		}
		v, _ := r.GetString(0, 1)
		out[tb] = v
	}
	return out
}

// SameData fails the test unless every table has the same CHECKSUM TABLE
// on a and b.
func SameData(t testing.TB, a, b *sandbox.Server, tables []string) {
	t.Helper()
	ca, cb := Checksums(t, a, tables), Checksums(t, b, tables)
	for _, tb := range tables {
		if ca[tb] != cb[tb] {
			t.Errorf("table %s: checksum %s on %s, %s on %s", tb, ca[tb], a.Addr(), cb[tb], b.Addr())
		}
	}
}
