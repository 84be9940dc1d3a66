package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/semisync"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// TestBinlogGTIDsPaged reads a real server's binlog GTIDs in pages of a
// few events (rejoin-check on an old source with large binlogs): the same
// GTIDs, in order, as one read of the whole file, and the stop callback
// ends the walk at the first file that starts with a known GTID.
func TestBinlogGTIDsPaged(t *testing.T) {
	for _, flavor := range []sandbox.Flavor{sandbox.MariaDB, sandbox.MySQL} {
		t.Run(string(flavor), func(t *testing.T) {
			src := sandboxtest.Start(t, sandbox.Options{Flavor: flavor})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			mustExec := func(q string) {
				t.Helper()
				if _, err := src.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			mustExec("CREATE DATABASE IF NOT EXISTS pg")
			mustExec("CREATE TABLE pg.t (id INT PRIMARY KEY)")
			for i := 0; i < 40; i++ {
				mustExec(fmt.Sprintf("INSERT INTO pg.t VALUES (%d)", i))
				if i == 19 {
					mustExec("FLUSH BINARY LOGS")
				}
			}
			user, pass := src.RootUser()
			s, err := failover.SQLConnector(semisync.Dial)(ctx, src.Addr(), failover.Credentials{User: user, Password: pass})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			whole, err := s.BinlogGTIDs(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer failover.SetBinlogEventsPage(7)()
			paged, err := s.BinlogGTIDs(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(whole) < 42 {
				t.Fatalf("%d GTIDs in the binlog, want at least 42 (2 DDL + 40 inserts): %v", len(whole), whole)
			}
			if fmt.Sprint(paged) != fmt.Sprint(whole) {
				t.Fatalf("paged read differs:\n paged %v\n whole %v", paged, whole)
			}
			// The stop callback: the second file starts with the 21st insert.
			newest, err := s.BinlogGTIDs(ctx, func(string) bool { return true })
			if err != nil {
				t.Fatal(err)
			}
			if len(newest) != 20 || newest[19] != whole[len(whole)-1] {
				t.Fatalf("stopping at the newest file gave %d GTIDs (%v), want the last 20 of %v", len(newest), newest, whole)
			}
		})
	}
}
