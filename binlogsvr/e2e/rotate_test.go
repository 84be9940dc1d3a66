package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// TestRotateCommand: binlogctl rotate, asked of a follower, closes the open
// file on every member and opens the next at once; the source's next
// transactions go there, the members' files stay byte-identical, and a
// rotate of a file that holds nothing yet changes nothing and says so.
func TestRotateCommand(t *testing.T) {
	f, src := startFleet(t, sandbox.MariaDB)
	ctx := context.Background()
	bin, err := fleet.Tool(t.TempDir(), "binlogctl")
	if err != nil {
		t.Fatal(err)
	}
	write := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			if _, err := src.Exec(ctx, fmt.Sprintf("INSERT INTO rot.t VALUES (%d)", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, q := range []string{"CREATE DATABASE rot", "CREATE TABLE rot.t (id INT PRIMARY KEY)"} {
		if _, err := src.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	write(1, 5)
	converge(t, f)
	l, err := f.Leader(ctx, wait)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Status(ctx, l, false)
	if err != nil {
		t.Fatal(err)
	}
	open, err := logger.ParseFileName(st.LastFile)
	if err != nil {
		t.Fatalf("status last_file %q: %v", st.LastFile, err)
	}
	follower := f.Members[0]
	if follower.ID == l {
		follower = f.Members[1]
	}
	rotate := func() api.Rotation {
		t.Helper()
		out, err := exec.Command(bin, append(f.CtlArgs(), "--admin", follower.AdminAddr, "rotate", "--json")...).CombinedOutput()
		if err != nil {
			t.Fatalf("binlogctl rotate: %v\n%s", err, out)
		}
		var r api.Rotation
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("binlogctl rotate --json: %v\n%s", err, out)
		}
		return r
	}
	r := rotate()
	if !r.Rotated || r.Closed != logger.FileName(open) || r.File != logger.FileName(open+1) {
		t.Fatalf("rotate of %s: %+v", logger.FileName(open), r)
	}
	// The new file exists on every member before any transaction reaches it.
	converge(t, f)
	for _, m := range f.Members {
		files, err := f.Files(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if last := files[len(files)-1].Name; last != r.File {
			t.Fatalf("member %d: last file %s, want %s", m.ID, last, r.File)
		}
	}
	if again := rotate(); again.Rotated || again.File != r.File || !strings.Contains(again.Message, "holds no transaction") {
		t.Fatalf("rotate of the fresh file: %+v", again)
	}
	write(6, 10)
	gtids := converge(t, f)
	if !strings.Contains(gtids, fmt.Sprintf("-%d-", src.ServerID())) {
		t.Fatalf("gtid_executed %q", gtids)
	}
	st, err = f.Status(ctx, l, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastFile != r.File {
		t.Fatalf("after more writes the open file is %s, want %s", st.LastFile, r.File)
	}
	// The plain output is one line for people.
	out, err := exec.Command(bin, append(f.CtlArgs(), "--admin", follower.AdminAddr, "rotate")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "closed "+r.File+" on every member") {
		t.Fatalf("binlogctl rotate: %v: %s", err, out)
	}
}

// TestFollowSourceRotate: FLUSH BINARY LOGS on the source (MySQL 9.7 and
// MariaDB 10.11) closes
// the fleet's open file too (--follow-source-rotate, on by default), at
// once, before the source's next transaction; the transactions after it go
// to the new file; a second FLUSH with no transaction between them opens
// no empty file in the fleet.
func TestFollowSourceRotate(t *testing.T) {
	for _, fl := range []sandbox.Flavor{sandbox.MySQL, sandbox.MariaDB} {
		t.Run(string(fl), func(t *testing.T) { followSourceRotate(t, fl) })
	}
}

func followSourceRotate(t *testing.T, fl sandbox.Flavor) {
	f, src := startFleet(t, fl)
	ctx := context.Background()
	run := func(qs ...string) {
		t.Helper()
		for _, q := range qs {
			if _, err := src.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	run("CREATE DATABASE rot", "CREATE TABLE rot.t (id INT PRIMARY KEY)", "INSERT INTO rot.t VALUES (1)")
	l, err := f.Leader(ctx, wait)
	if err != nil {
		t.Fatal(err)
	}
	// openFile waits until every member holds the same files and the
	// source's newest transaction, and returns the leader's open file.
	openFile := func(what string) string {
		t.Helper()
		var last string
		if err := fleet.Poll(ctx, wait, func() error {
			gtids := converge(t, f)
			q := "SELECT @@global.gtid_executed"
			if fl == sandbox.MariaDB {
				q = "SELECT @@global.gtid_binlog_pos"
			}
			res, err := src.Exec(ctx, q)
			if err != nil {
				return err
			}
			srcGTIDs, err := res.GetString(0, 0)
			if err != nil {
				return err
			}
			if strings.ReplaceAll(srcGTIDs, "\n", "") != gtids {
				return fmt.Errorf("the fleet holds %q, the source %q", gtids, srcGTIDs)
			}
			st, err := f.Status(ctx, l, false)
			if err != nil {
				return err
			}
			last = st.LastFile
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return last
	}
	before := openFile("before the flush")
	n, err := logger.ParseFileName(before)
	if err != nil {
		t.Fatal(err)
	}
	run("FLUSH BINARY LOGS")
	// NB: polled: the rotate follows the source's ROTATE event, which
	// arrives just after the FLUSH returns.
	want := logger.FileName(n + 1)
	if err := fleet.Poll(ctx, wait, func() error {
		st, err := f.Status(ctx, l, false)
		if err != nil {
			return err
		}
		if st.LastFile != want {
			return fmt.Errorf("the leader's open file is %s, want %s", st.LastFile, want)
		}
		return nil
	}); err != nil {
		t.Fatalf("after FLUSH BINARY LOGS on the source: %v", err)
	}
	run("INSERT INTO rot.t VALUES (2)", "INSERT INTO rot.t VALUES (3)")
	if got := openFile("after the flush"); got != want {
		t.Fatalf("after the source's next transactions the open file is %s, want %s", got, want)
	}
	files, err := f.Files(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fi := range files {
		names = append(names, fi.Name)
	}
	if len(names) < 2 || names[len(names)-2] != before || names[len(names)-1] != want {
		t.Fatalf("the leader's files %v: want %s then %s", names, before, want)
	}
	run("FLUSH BINARY LOGS", "FLUSH BINARY LOGS", "INSERT INTO rot.t VALUES (4)")
	if got, next := openFile("after two flushes"), logger.FileName(n+2); got != next {
		t.Fatalf("after two flushes with no transaction between them the open file is %s, want %s", got, next)
	}
}
