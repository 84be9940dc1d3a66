package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/dump"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// run runs a command, failing the test with its output on error.
func run(t *testing.T, ctx context.Context, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstderr: %s", name, strings.Join(redactArgs(args), " "), err, clipOut(errb.String()))
	}
	return out.Bytes()
}

func redactArgs(args []string) []string {
	out := append([]string(nil), args...)
	for i, a := range out {
		if strings.HasPrefix(a, "--password=") {
			out[i] = "--password=***"
		}
	}
	return out
}

func clipOut(s string) string {
	if len(s) > 4000 {
		return s[:4000] + "..."
	}
	return s
}

// sameExceptCRCOfFDE compares two binlog files, ignoring the checksum of
// the FDE (the first event), which changes with its created field.
func sameExceptCRCOfFDE(a, b []byte) bool {
	if len(a) != len(b) || len(a) < 4+19 {
		return false
	}
	size := int(uint32(a[4+9]) | uint32(a[4+10])<<8 | uint32(a[4+11])<<16 | uint32(a[4+12])<<24)
	if 4+size > len(a) {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(a[:4+size-4], b[:4+size-4]) && bytes.Equal(a[4+size:], b[4+size:])
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestMariaDBBinlogRemote: mariadb-binlog --read-from-remote-server --raw
// fetches every file of the fleet (several, with a 20 MiB event), and
// replaying them into a fresh server gives the source's data.
func TestMariaDBBinlogRemote(t *testing.T) {
	t.Parallel()
	opts := sandbox.Options{Flavor: sandbox.MariaDB, ExtraArgs: dumptest.ServerArgs}
	src := sandboxtest.Start(t, opts)
	cl := loggertest.New(t, 1, loggertest.Options{})
	leader := cl.Leader(30 * time.Second)
	dumptest.SetMaxFileSize(t, leader, 256<<10)
	feeder := dumptest.Feed(t, src, leader)
	srv := dumptest.Serve(t, leader, nil)

	tables := dumptest.Workload(t, src, "w", dumptest.WorkloadOptions{BigRow: 20 << 20, BigTxnRows: 20000})
	feeder.WaitCaughtUp(t, 2*time.Minute)
	files, err := leader.Reader().Files()
	if err != nil || len(files) < 3 {
		t.Fatalf("want several files in the log, got %d (%v)", len(files), err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	host, port, _ := strings.Cut(srv.Addr(), ":")
	run(t, ctx, nil, "mariadb-binlog", "--read-from-remote-server", "--raw", "--to-last-log",
		"--host="+host, "--port="+port, "--user="+dumptest.DumpUser, "--password="+dumptest.DumpPassword,
		"--result-file="+dir+"/", files[0].Name())
	got, _ := filepath.Glob(filepath.Join(dir, "binlog.*"))
	sort.Strings(got)
	if len(got) != len(files) {
		t.Fatalf("mariadb-binlog wrote %d files, the log has %d", len(got), len(files))
	}
	// The files are the fleet's files, byte for byte.
	for i, f := range files {
		b, err := os.ReadFile(got[i])
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := leader.Reader().ReadAt(f.Number, 0, int(f.Size))
		if err != nil {
			t.Fatal(err)
		}
		// NB: a source zeroes the FDE's created field in every file after
		// the first of a dump, so does the fleet: mask it.
		const created = 4 + 19 + 2 + 50
		if len(b) > created+4 && len(want) > created+4 {
			copy(b[created:created+4], want[created:created+4])
		}
		if !sameExceptCRCOfFDE(b, want) {
			t.Errorf("%s: %d bytes fetched differ from the log's %d bytes (first difference at %d)", f.Name(), len(b), len(want), firstDiff(b, want))
		}
	}

	fresh := sandboxtest.Start(t, opts)
	sql := run(t, ctx, nil, "mariadb-binlog", got...)
	rootUser, rootPW := fresh.RootUser()
	fhost, fport, _ := strings.Cut(fresh.Addr(), ":")
	run(t, ctx, sql, "mariadb", "--host="+fhost, "--port="+fport, "--user="+rootUser, "--password="+rootPW, "--max-allowed-packet=1G")
	dumptest.SameData(t, src, fresh, tables)

	// A non-blocking dump of the open file ends with EOF, and the client
	// quits cleanly.
	out := run(t, ctx, nil, "mariadb-binlog", "--read-from-remote-server", "--host="+host, "--port="+port,
		"--user="+dumptest.DumpUser, "--password="+dumptest.DumpPassword, files[len(files)-1].Name())
	if !bytes.Contains(out, []byte("End of log file")) {
		t.Errorf("mariadb-binlog text output of the last file does not end the log: %s", clipOut(string(out)))
	}
	_ = fmt.Sprint()
}

// TestMySQLBinlogRemote: MySQL 9.7 mysqlbinlog
// --read-from-remote-source=BINLOG-DUMP-GTIDS --raw fetches every file of
// the fleet; replaying them into a fresh 9.7 server gives the source's data.
func TestMySQLBinlogRemote(t *testing.T) {
	t.Parallel()
	opts := sandbox.Options{Flavor: sandbox.MySQL, ExtraArgs: dumptest.ServerArgs}
	src := sandboxtest.Start(t, opts)
	cl := loggertest.New(t, 1, loggertest.Options{})
	leader := cl.Leader(30 * time.Second)
	dumptest.SetMaxFileSize(t, leader, 256<<10)
	feeder := dumptest.Feed(t, src, leader)
	srv := dumptest.Serve(t, leader, func(c *dump.Config) { c.Flavor = "mysql" })

	tables := dumptest.Workload(t, src, "w", dumptest.WorkloadOptions{BigRow: 20 << 20, BigTxnRows: 20000})
	feeder.WaitCaughtUp(t, 2*time.Minute)
	files, err := leader.Reader().Files()
	if err != nil || len(files) < 3 {
		t.Fatalf("want several files in the log, got %d (%v)", len(files), err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := sandbox.ChrootDir()
	dir, err := os.MkdirTemp(filepath.Join(root, "tmp"), "mysqlbinlog-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	in := strings.TrimPrefix(dir, root)
	host, port, _ := strings.Cut(srv.Addr(), ":")
	run(t, ctx, nil, "chroot", root, "/usr/bin/mysqlbinlog", "--read-from-remote-source=BINLOG-DUMP-GTIDS", "--raw", "--to-last-log",
		"--host="+host, "--port="+port, "--user="+dumptest.DumpUser, "--password="+dumptest.DumpPassword,
		"--result-file="+in+"/", files[0].Name())
	got, _ := filepath.Glob(filepath.Join(dir, "binlog.*"))
	sort.Strings(got)
	if len(got) != len(files) {
		t.Fatalf("mysqlbinlog wrote %d files, the log has %d", len(got), len(files))
	}
	var inChroot []string
	for _, g := range got {
		inChroot = append(inChroot, strings.TrimPrefix(g, root))
	}
	fresh := sandboxtest.Start(t, opts)
	sql := run(t, ctx, nil, "chroot", append([]string{root, "/usr/bin/mysqlbinlog"}, inChroot...)...)
	rootUser, rootPW := fresh.RootUser()
	fhost, fport, _ := strings.Cut(fresh.Addr(), ":")
	run(t, ctx, sql, "chroot", root, "/usr/bin/mysql", "--host="+fhost, "--port="+fport, "--user="+rootUser, "--password="+rootPW, "--max-allowed-packet=1G")
	dumptest.SameData(t, src, fresh, tables)
}
