package netsim

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func newNet(t *testing.T) *Net {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netsim needs root (CI runs as root)")
	}
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
		out, _ := exec.Command("nft", "list", "tables").Output()
		if strings.Contains(string(out), n.Name()) {
			t.Errorf("table %s still there after Close", n.Name())
		}
	})
	return n
}

// dialFrom dials addr from a bash process in host h's cgroup and reports
// whether it got the listener's greeting within 2 s.
func dialFrom(t *testing.T, h *Host, addr string) bool {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("timeout", "2", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s && head -c 5 <&3", host, port))
	if err := h.Attach(cmd); err != nil {
		t.Fatal(err)
	}
	out, _ := cmd.Output()
	return string(out) == "hello"
}

func listen(t *testing.T, h *Host) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", h.Addr(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello"))
			go func() { time.Sleep(3 * time.Second); c.Close() }()
		}
	}()
	return ln
}

// TestCuts cuts links between hosts with real nftables rules: a one-way
// block in either direction stops a TCP connection; other hosts are not
// affected; Heal restores it; Close removes the table.
func TestCuts(t *testing.T) {
	n := newNet(t)
	a, _ := n.AddHost("a")
	b, _ := n.AddHost("b")
	c, _ := n.AddHost("c")
	if !strings.HasPrefix(a.IP, "127.") || a.IP == b.IP {
		t.Fatalf("addresses %s %s", a.IP, b.IP)
	}
	lb := listen(t, b).Addr().String()
	lc := listen(t, c).Addr().String()
	if !dialFrom(t, a, lb) || !dialFrom(t, a, lc) {
		t.Fatal("a cannot reach b or c before any cut")
	}
	if err := n.Block(a, b); err != nil {
		t.Fatal(err)
	}
	if dialFrom(t, a, lb) {
		t.Error("a reaches b with a->b blocked")
	}
	if !dialFrom(t, a, lc) {
		t.Error("a cannot reach c with only a->b blocked")
	}
	if !dialFrom(t, c, lb) {
		t.Error("c cannot reach b with only a->b blocked")
	}
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	if !dialFrom(t, a, lb) {
		t.Error("a cannot reach b after Heal")
	}
	// The reply direction alone: b's SYN-ACK to a is dropped.
	if err := n.Block(b, a); err != nil {
		t.Fatal(err)
	}
	if dialFrom(t, a, lb) {
		t.Error("a's connection to b works with b->a blocked")
	}
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := n.Cut([]*Host{a}, []*Host{b, c}); err != nil {
		t.Fatal(err)
	}
	if dialFrom(t, a, lb) || dialFrom(t, a, lc) {
		t.Error("a reaches b or c while cut from both")
	}
	if got := len(n.Blocked()); got != 4 {
		t.Errorf("%d blocked links, want 4: %v", got, n.Blocked())
	}
}

// TestCutEstablished cuts an open connection: its bytes stop flowing, and
// flow again after Heal (TCP retransmits).
func TestCutEstablished(t *testing.T) {
	n := newNet(t)
	a, _ := n.AddHost("a")
	b, _ := n.AddHost("b")
	ln, err := net.Listen("tcp", b.Addr(0))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// An echo server on b; the client is a bash in a's cgroup that echoes
	// each line it reads back, prefixed.
	got := make(chan string, 16)
	conns := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		conns <- c
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			got <- sc.Text()
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	cmd := exec.Command("timeout", "60", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s; while read -r l <&3; do echo \"re $l\" >&3; done", host, port))
	if err := a.Attach(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c := <-conns
	roundTrip := func(s string, d time.Duration) bool {
		fmt.Fprintf(c, "%s\n", s)
		select {
		case l := <-got:
			if l != "re "+s {
				t.Fatalf("got %q", l)
			}
			return true
		case <-time.After(d):
			return false
		}
	}
	if !roundTrip("one", 5*time.Second) {
		t.Fatal("no echo before the cut")
	}
	if err := n.Cut([]*Host{a}, []*Host{b}); err != nil {
		t.Fatal(err)
	}
	if roundTrip("two", 2*time.Second) {
		t.Fatal("an echo came through the cut")
	}
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-got: // NB: "two" retransmitted
		if l != "re two" {
			t.Fatalf("got %q after Heal", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no echo 10 s after Heal")
	}
}

// TestSweep deletes the table of a netsim process that died without
// closing, and not a live one's.
func TestSweep(t *testing.T) {
	n := newNet(t)
	dead := TablePrefix + "999999999_1"
	if err := nft("add table inet " + dead + "\n"); err != nil {
		t.Fatal(err)
	}
	Sweep()
	out, _ := exec.Command("nft", "list", "tables").Output()
	if strings.Contains(string(out), dead) {
		t.Errorf("Sweep left %s", dead)
	}
	if !strings.Contains(string(out), n.Name()) {
		t.Errorf("Sweep deleted the live %s", n.Name())
	}
}

// TestProxy measures the proxy's delay: a request/response through a
// 10 ms-each-way link takes at least 20 ms; with loss, some take 200 ms
// more.
func TestProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 1)
				for {
					if _, err := c.Read(buf); err != nil {
						c.Close()
						return
					}
					c.Write(buf)
				}
			}()
		}
	}()
	p, err := NewProxy("127.0.0.1:0", ln.Addr().String(), Link{Delay: 10 * time.Millisecond, Jitter: 2 * time.Millisecond}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rtt := func() time.Duration {
		t0 := time.Now()
		b := []byte{7}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(b); err != nil {
			t.Fatal(err)
		}
		return time.Since(t0)
	}
	for i := 0; i < 10; i++ {
		if d := rtt(); d < 20*time.Millisecond {
			t.Fatalf("round trip %v through a 10 ms-each-way proxy", d)
		}
	}
	p.Set(Link{Delay: time.Millisecond, Loss: 0.5})
	slow := 0
	for i := 0; i < 20; i++ {
		if rtt() >= 200*time.Millisecond {
			slow++
		}
	}
	if slow == 0 || slow == 20 {
		t.Errorf("%d of 20 round trips stalled at 50%% loss", slow)
	}
}

// TestProxyOnHost: a proxy listening on host b in front of b's listener
// is part of host b: a cut from a to b stops connections through it (the
// leg from a to the proxy carries a's mark and b's address), and Heal
// restores them. So a delay proxy in front of a member's raft port keeps
// partitions working.
func TestProxyOnHost(t *testing.T) {
	n := newNet(t)
	a, _ := n.AddHost("a")
	b, _ := n.AddHost("b")
	lb := listen(t, b).Addr().String()
	p, err := NewProxy(b.Addr(0), lb, Link{Delay: time.Millisecond}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !dialFrom(t, a, p.Addr()) {
		t.Fatal("a cannot reach b's listener through the proxy")
	}
	if err := n.Block(a, b); err != nil {
		t.Fatal(err)
	}
	if dialFrom(t, a, p.Addr()) {
		t.Fatal("a reaches b through the proxy across a cut from a to b")
	}
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := n.Block(b, a); err != nil {
		t.Fatal(err)
	}
	if dialFrom(t, a, p.Addr()) {
		t.Fatal("a gets b's answer through the proxy across a cut from b to a")
	}
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	if !dialFrom(t, a, p.Addr()) {
		t.Fatal("a cannot reach b through the proxy after Heal")
	}
}
