package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/binlogsvr/binlogsvr/logger/pki"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
)

// vmRSS reads a process's resident set size in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the member's memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestDumpPortUnderAttack runs a real binlogsvr member with
// --dump-require-tls and checks, against that process: a 1 GiB pre-login
// packet (16 MiB continuation packets, on 4 connections at once) grows its
// RSS by less than 64 MiB; connections that never log in are capped by
// --dump-max-clients; the real mariadb client is refused in plaintext
// (3159) and logs in with --ssl; wrong passwords are throttled.
func TestDumpPortUnderAttack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// NB: the fleet's own CA secures raft and the admin API; the dump
	// port's certificate is this test's.
	// The member's dump certificate names the address it listens on.
	host := fleet.PrivateLoopback()
	p := pki.Testing(t, dir, host, "127.0.0.1", "localhost")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f, err := fleet.StartEach(ctx, fleet.Options{Dir: dir, Members: 1, Host: func(uint64) string { return host }}, func(uint64) fleet.MemberSpec {
		return fleet.MemberSpec{Serve: true, Args: []string{"--dump-require-tls", "--dump-tls-cert", p.Members[0].Cert, "--dump-tls-key", p.Members[0].Key,
			"--dump-max-clients", "20", "--dump-login-timeout", "3s"}}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	m := f.Member(1)
	tc, err := pki.Files{CA: p.CA}.ClientConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	login := func(password string) error {
		c, err := dumptest.Connect(m.DumpAddr, password, tc)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := fleet.Poll(ctx, time.Minute, func() error { return login(fleet.DumpPassword) }); err != nil {
		t.Fatalf("the member's dump port: %v\n%s", err, f.LogTails(30))
	}

	t.Run("1 GiB pre-login packet", func(t *testing.T) {
		pid := m.PID()
		base := vmRSS(t, pid)
		var wg sync.WaitGroup
		sent := make([]int64, 4)
		chunk := append([]byte{0xff, 0xff, 0xff, 1}, make([]byte, 1<<24-1)...)
		for i := range sent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nc, err := net.DialTimeout("tcp", m.DumpAddr, 5*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(30 * time.Second))
				go io.Copy(io.Discard, nc)
				chunk := append([]byte(nil), chunk...) // NB: its own: the sequence byte changes
				for k := 0; k < 64; k++ {              // 64 × 16 MiB = 1 GiB
					chunk[3] = byte(1 + k)
					n, err := nc.Write(chunk)
					sent[i] += int64(n)
					if err != nil {
						return
					}
				}
			}()
		}
		peak := base
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
	sample:
		for {
			if r := vmRSS(t, pid); r > peak {
				peak = r
			}
			select {
			case <-done:
				break sample
			case <-time.After(20 * time.Millisecond):
			}
		}
		for i, n := range sent {
			if n >= 1<<30 {
				t.Errorf("connection %d: the member took the whole 1 GiB", i)
			}
		}
		t.Logf("VmRSS %d MiB before, peak %d MiB (growth %d KiB); bytes the member let in per connection: %v",
			base>>20, peak>>20, (peak-base)>>10, sent)
		if peak-base >= 64<<20 {
			t.Errorf("RSS grew by %d MiB, want < 64 MiB", (peak-base)>>20)
		}
		if err := login(fleet.DumpPassword); err != nil {
			t.Errorf("login after the attack: %v", err)
		}
	})

	t.Run("pre-login connections capped", func(t *testing.T) {
		var idle []net.Conn
		defer func() {
			for _, c := range idle {
				c.Close()
			}
		}()
		refused := 0
		for i := 0; i < 25; i++ {
			nc, err := net.DialTimeout("tcp", m.DumpAddr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			idle = append(idle, nc)
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			if g := dumptest.ReadPacket(t, nc); dumptest.ErrCode(g) == mysql.ER_CON_COUNT_ERROR {
				refused++
			} else if len(g) == 0 || g[0] != 10 {
				t.Fatalf("connection %d: got %q", i, g)
			}
		}
		if refused != 5 {
			t.Errorf("%d of 25 idle connections refused, want 5 (--dump-max-clients 20)", refused)
		}
		for _, c := range idle {
			c.Close()
		}
		idle = nil
		if err := fleet.Poll(ctx, 10*time.Second, func() error { return login(fleet.DumpPassword) }); err != nil {
			t.Errorf("login once the idle connections are gone: %v", err)
		}
	})

	t.Run("mariadb client and --dump-require-tls", func(t *testing.T) {
		host, port, _ := net.SplitHostPort(m.DumpAddr)
		run := func(args ...string) (string, error) {
			cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
			defer ccancel()
			args = append([]string{"--no-defaults", "-h", host, "-P", port, "-u", "repl", "-N", "-e", "SELECT @@server_id"}, args...)
			cmd := exec.CommandContext(cctx, "mariadb", args...)
			cmd.Env = append(os.Environ(), "MYSQL_PWD="+fleet.DumpPassword)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		out, err := run("--skip-ssl")
		if err == nil || !strings.Contains(out, "3159") {
			t.Errorf("plaintext mariadb client: %v %s, want error 3159", err, out)
		}
		out, err = run("--ssl", "--ssl-ca", p.CA, "--ssl-verify-server-cert")
		if err != nil || strings.TrimSpace(out) == "" {
			t.Errorf("mariadb --ssl: %v %s", err, out)
		}
	})

	t.Run("200 wrong passwords throttled", func(t *testing.T) {
		start := time.Now()
		checked, tries := 0, 0
		for tries < 200 && time.Since(start) < 5*time.Second {
			err := login("guess-" + strconv.Itoa(tries))
			tries++
			switch dumptest.MySQLErrorCode(err) {
			case mysql.ER_ACCESS_DENIED_ERROR:
				checked++
			case mysql.ER_HOST_IS_BLOCKED:
			default:
				t.Fatalf("guess %d: %v", tries, err)
			}
		}
		t.Logf("%d guesses in %v, %d of them checked against the password", tries, time.Since(start).Round(time.Millisecond), checked)
		if checked > 8 {
			t.Errorf("%d passwords checked in 5 s, want at most 8 (5, then 1 s and 2 s blocks)", checked)
		}
	})
}
