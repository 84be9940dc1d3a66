package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// TestDumpAnswersTheSourceVariables: a member's dump server answers the
// source's own binlog_row_image (Canal, Debezium and Maxwell check it), as
// the ingest recorded it in the log, and follows the source when it is
// reconfigured; the other answers describing the data do too.
func TestDumpAnswersTheSourceVariables(t *testing.T) {
	for _, flavor := range flavors {
		t.Run(string(flavor), func(t *testing.T) {
			src := sandboxtest.Start(t, sandbox.Options{Flavor: flavor, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute,
				ExtraArgs: []string{"--binlog-row-image=MINIMAL"}})
			user, pass := src.ReplUser()
			f, err := fleet.Start(context.Background(), fleet.Options{Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
				ExtraArgs: []string{"--source-heartbeat", "500ms", "--dump-addr", "127.0.0.1:0", "--dump-user", "repl"}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if t.Failed() {
					t.Log(f.LogTails(60))
				}
				f.Close()
			})
			if _, err := f.WaitStreaming(context.Background(), wait); err != nil {
				t.Fatal(err)
			}
			st, err := f.Status(context.Background(), 2, true)
			if err != nil || st.DumpAddr == "" {
				t.Fatalf("member 2 dump address: %v (%+v)", err, st)
			}
			answer := func(q string) (string, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, err := dumptest.Dial(ctx, st.DumpAddr, "repl", fleet.DumpPassword)
				if err != nil {
					return "", err
				}
				defer c.Close()
				res, err := c.Exec(q)
				if err != nil {
					return "", err
				}
				v, err := res.GetString(0, 0)
				return strings.Clone(v), err
			}
			waitAnswer := func(q, want string) {
				t.Helper()
				err := fleet.Poll(context.Background(), wait, func() error {
					v, err := answer(q)
					if err != nil {
						return err
					}
					if !strings.EqualFold(v, want) {
						return fmt.Errorf("%s answers %q", q, v)
					}
					return nil
				})
				if err != nil {
					t.Fatalf("the fleet's dump server: %v, want %q", err, want)
				}
			}
			waitAnswer("SELECT @@binlog_row_image", "MINIMAL")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := src.Exec(ctx, "SELECT @@GLOBAL.collation_server")
			if err != nil {
				t.Fatal(err)
			}
			coll, _ := res.GetString(0, 0)
			waitAnswer("SELECT @@collation_server", strings.Clone(coll))

			// Reconfigured: the next session records the new value (the
			// fleet's binlog dump connection is killed to start one).
			if _, err := src.Exec(ctx, "SET GLOBAL binlog_row_image = 'NOBLOB'"); err != nil {
				t.Fatal(err)
			}
			res, err = src.Exec(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
			if err != nil || res.RowNumber() == 0 {
				t.Fatalf("the fleet's dump thread on the source: %v (%d rows)", err, res.RowNumber())
			}
			for i := 0; i < res.RowNumber(); i++ {
				id, _ := res.GetInt(i, 0)
				if _, err := src.Exec(ctx, fmt.Sprintf("KILL %d", id)); err != nil {
					t.Fatal(err)
				}
			}
			waitAnswer("SELECT @@binlog_row_image", "NOBLOB")
		})
	}
}
