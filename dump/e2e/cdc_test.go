package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/dump"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// sameChanges fails unless got has every wanted change exactly once.
func sameChanges(t *testing.T, who string, want, got map[string]int) {
	t.Helper()
	bad := 0
	for k, v := range want {
		if got[k] != v && bad < 10 {
			t.Errorf("%s: change %q seen %d times, want %d", who, k, got[k], v)
			bad++
		}
	}
	for k, v := range got {
		if want[k] == 0 && bad < 10 {
			t.Errorf("%s: unexpected change %q (%d times)", who, k, v)
			bad++
		}
	}
}

// schemaEndpoint is the source as the read-only schema endpoint (the CDC
// clients only read table definitions through it).
// schemaEndpoint sets the schema endpoint to s's root account (the
// password as the daemon passes it: never in the endpoint).
func schemaEndpoint(c *dump.Config, s *sandbox.Server) {
	u, p := s.RootUser()
	c.SchemaEndpoint, c.SchemaPassword = u+"@"+s.Addr(), p
}

// TestCDCClients: go-mysql canal and zongji (node, @vlasky/zongji) receive
// every row change exactly once from a fleet member, with their schema
// queries (canal: SHOW FULL COLUMNS; zongji: a prepared I_S query) passed
// through to the schema endpoint.
func TestCDCClients(t *testing.T) {
	t.Parallel()
	for _, flav := range []sandbox.Flavor{sandbox.MariaDB, sandbox.MySQL} {
		t.Run(string(flav), func(t *testing.T) {
			t.Parallel()
			src := sandboxtest.Start(t, sandbox.Options{Flavor: flav})
			cl := loggertest.New(t, 1, loggertest.Options{})
			leader := cl.Leader(30 * time.Second)
			dumptest.SetMaxFileSize(t, leader, 64<<10)
			feeder := dumptest.Feed(t, src, leader)
			srv := dumptest.Serve(t, leader, func(c *dump.Config) {
				c.Flavor = string(flav)
				schemaEndpoint(c, src)
			})
			want := dumptest.CDCWorkload(t, src, "cdc")
			feeder.WaitCaughtUp(t, time.Minute)

			t.Run("canal", func(t *testing.T) { runCanal(t, srv.Addr(), string(flav), want) })
			t.Run("zongji", func(t *testing.T) { runZongji(t, srv.Addr(), want) })
		})
	}
}

// canalDir holds the canal binary once built.
var canalDir string

// TestMain removes the canal binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if canalDir != "" {
		os.RemoveAll(canalDir)
	}
	os.Exit(code)
}

// canalBinary builds testdata/canal (its own module, so canal's
// dependencies stay out of go.mod) once per test binary.
var canalBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "canalcheck-")
	if err != nil {
		return "", err
	}
	canalDir = dir
	bin := filepath.Join(dir, "canal")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = "testdata/canal"
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build testdata/canal: %v\n%s", err, out)
	}
	return bin, nil
})

func runCanal(t *testing.T, addr, flavor string, want map[string]int) {
	bin, err := canalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, addr, dumptest.DumpUser, dumptest.DumpPassword, flavor, "cdc",
		strconv.Itoa(dumptest.Total(want)), "60s")
	got := runLines(t, "canal", cmd)
	sameChanges(t, "canal", want, got)
}

// runLines runs a CDC client and counts its output lines.
func runLines(t *testing.T, who string, cmd *exec.Cmd) map[string]int {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstderr: %s\nstdout (%d bytes): %s", who, err, clipOut(errb.String()), out.Len(), clipOut(out.String()))
	}
	got := map[string]int{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		got[sc.Text()]++
	}
	return got
}

// zongjiDir installs the npm packages of testdata/zongji once per
// package-lock (in a cache directory outside the repository) and returns
// the directory to run the script in.
func zongjiDir(t *testing.T) string {
	lock, err := os.ReadFile("testdata/zongji/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	cache := os.Getenv("BINLOGSVR_CACHE_DIR")
	if cache == "" {
		cache = "/var/cache/binlogsvr"
	}
	dir := filepath.Join(cache, "npm", "zongji-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@vlasky", "zongji")); err != nil {
		tmp, err := os.MkdirTemp(filepath.Dir(dir)+"", "zongji-tmp-")
		if err != nil {
			os.MkdirAll(filepath.Dir(dir), 0o755)
			if tmp, err = os.MkdirTemp(filepath.Dir(dir), "zongji-tmp-"); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{"package.json", "package-lock.json"} {
			b, _ := os.ReadFile(filepath.Join("testdata/zongji", f))
			os.WriteFile(filepath.Join(tmp, f), b, 0o644)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(tmp)
			t.Fatalf("npm ci for zongji: %v\n%s", err, out)
		}
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp) // another test installed it first
		}
	}
	script, err := os.ReadFile("testdata/zongji/zj.mjs")
	if err != nil {
		t.Fatal(err)
	}
	run := t.TempDir()
	os.WriteFile(filepath.Join(run, "zj.mjs"), script, 0o644)
	os.Symlink(filepath.Join(dir, "node_modules"), filepath.Join(run, "node_modules"))
	return run
}

func runZongji(t *testing.T, addr string, want map[string]int) {
	dir := zongjiDir(t)
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "zj.mjs", host, port, dumptest.DumpUser, dumptest.DumpPassword, "cdc",
		strconv.Itoa(dumptest.Total(want)), "60000")
	cmd.Dir = dir
	got := runLines(t, "zongji", cmd)
	sameChanges(t, "zongji", want, got)
}
