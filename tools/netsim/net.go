// Package netsim simulates hosts on one machine for fault tests: each host
// is its own loopback address (127.0.X.11, 127.0.X.12, ...; never outside
// 127.0.0.0/8) and, for processes that dial out, its own cgroup, so
// nftables rules can cut the traffic between two hosts in one or both
// directions. Latency, jitter and loss go through Proxy (this kernel has no
// netem qdisc).
//
// How a packet's hosts are known: a connection's dialer is the host whose
// cgroup the dialing socket belongs to (or whose address it bound); the
// first packet stores that host in the connection's conntrack mark. Its
// listener is the host of the address it listens on. So in the original
// direction the sender is the mark and the receiver the destination
// address; in the reply direction the sender is the source address and
// the receiver the mark.
//
// Caller's duties:
//
//  1. Root, the nft binary (Debian's nftables, installed by
//     tools/sandbox/install.sh) and a cgroup2 hierarchy under /sys/fs/cgroup.
//  2. Create the Net before starting the processes (connections opened
//     before it carry no mark and are never cut), start every process that
//     dials out through Host.Attach, bind listeners on Host.IP.
//  3. Close the Net (tests: New registers it with t.Cleanup) after its
//     processes ended: it deletes exactly its own nft table and cgroups. New
//     also deletes the tables and cgroups of netsim processes that died
//     without closing.
package netsim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// TablePrefix starts the name of every nft table and cgroup netsim makes:
// binlogsvr_netsim_<pid>_<net>.
const TablePrefix = "binlogsvr_netsim_"

// Net is one simulated network: its hosts, its nft table and the blocked
// links between hosts.
type Net struct {
	name    string // nft table and cgroup name
	octet   int    // the third octet of the hosts' addresses
	lock    *os.File
	cgMount string // the cgroup2 mount point
	cgRel   string // the cgroup2 mount relative to /sys/fs/cgroup (nft resolves paths there)

	mu      sync.Mutex
	hosts   []*Host
	blocked map[[2]*Host]bool
	closed  bool
}

// Host is one simulated host.
type Host struct {
	Name string
	IP   string
	n    *Net
	mark int
	cg   string // its cgroup directory
	fd   *os.File
}

func (h *Host) String() string { return h.Name + "(" + h.IP + ")" }

// Addr is IP:port on the host.
func (h *Host) Addr(port int) string { return net.JoinHostPort(h.IP, strconv.Itoa(port)) }

// New makes a network with its own nft table, after deleting those of
// dead netsim processes.
func New() (*Net, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("netsim: needs root (nftables, cgroups)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, errors.New("netsim: the nft binary is missing: run tools/sandbox/install.sh (Debian's nftables)")
	}
	mount, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel("/sys/fs/cgroup", mount)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("netsim: the cgroup2 hierarchy is mounted at %s, not under /sys/fs/cgroup where nft looks", mount)
	}
	Sweep()
	n := &Net{cgMount: mount, cgRel: rel, blocked: map[[2]*Host]bool{}}
	// NB: the third octet keeps two networks of concurrent processes apart;
	// a lock file held for the Net's life reserves it.
	for o := 1; o < 255; o++ {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("binlogsvr-netsim-%d.lock", o)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("netsim: %w", err)
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			continue
		}
		n.octet, n.lock = o, f
		break
	}
	if n.lock == nil {
		return nil, errors.New("netsim: no free 127.0.X.0/24 range (254 networks in use)")
	}
	n.name = fmt.Sprintf("%s%d_%d", TablePrefix, os.Getpid(), n.octet)
	if err := os.Mkdir(filepath.Join(mount, n.name), 0o755); err != nil && !os.IsExist(err) {
		n.lock.Close()
		return nil, fmt.Errorf("netsim: cgroup: %w", err)
	}
	script := fmt.Sprintf(`table inet %[1]s {
	chain hostmark { type filter hook output priority -10; policy accept; }
	chain cuts { type filter hook output priority 0; policy accept; }
}
`, n.name)
	if err := nft(script); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Name is the network's nft table (and cgroup) name.
func (n *Net) Name() string { return n.name }

// AddHost adds a host at the next address, 127.0.X.11 onwards.
func (n *Net) AddHost(name string) (*Host, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	i := len(n.hosts)
	if i >= 200 {
		return nil, errors.New("netsim: too many hosts")
	}
	h := &Host{Name: name, IP: fmt.Sprintf("127.0.%d.%d", n.octet, 11+i), n: n, mark: 0x4e530000 | n.octet<<8 | (11 + i)}
	h.cg = filepath.Join(n.cgMount, n.name, fmt.Sprintf("h%d", 11+i))
	if err := os.Mkdir(h.cg, 0o755); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("netsim: cgroup: %w", err)
	}
	cgPath := filepath.Join(n.cgRel, n.name, fmt.Sprintf("h%d", 11+i))
	script := fmt.Sprintf("add rule inet %[1]s hostmark ct state new socket cgroupv2 level 2 %[2]q ct mark set %[3]d\n"+
		"add rule inet %[1]s hostmark ct state new ip saddr %[4]s ct mark set %[3]d\n", n.name, cgPath, h.mark, h.IP)
	if err := nft(script); err != nil {
		return nil, err
	}
	n.hosts = append(n.hosts, h)
	return h, nil
}

// Attach makes cmd start inside the host's cgroup, so the connections it
// dials are the host's. Call it before cmd.Start.
func (h *Host) Attach(cmd *exec.Cmd) error {
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	if h.fd == nil {
		f, err := os.Open(h.cg)
		if err != nil {
			return fmt.Errorf("netsim: %w", err)
		}
		h.fd = f
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = int(h.fd.Fd())
	return nil
}

// Block cuts the packets from host from to host to (one way: a TCP
// connection between them stalls either way, as with a real one-way
// loss).
func (n *Net) Block(from, to *Host) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocked[[2]*Host{from, to}] = true
	return n.applyLocked()
}

// Cut blocks both directions between every host of a and every host of b.
func (n *Net) Cut(a, b []*Host) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			if x != y {
				n.blocked[[2]*Host{x, y}] = true
				n.blocked[[2]*Host{y, x}] = true
			}
		}
	}
	return n.applyLocked()
}

// Heal removes every cut.
func (n *Net) Heal() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.blocked)
	return n.applyLocked()
}

// Blocked lists the blocked links as "from->to".
func (n *Net) Blocked() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for k := range n.blocked {
		out = append(out, k[0].Name+"->"+k[1].Name)
	}
	return out
}

func (n *Net) applyLocked() error {
	if n.closed {
		return errors.New("netsim: closed")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "flush chain inet %s cuts\n", n.name)
	for k := range n.blocked {
		from, to := k[0], k[1]
		fmt.Fprintf(&b, "add rule inet %s cuts ct direction original ct mark %d ip daddr %s drop\n", n.name, from.mark, to.IP)
		fmt.Fprintf(&b, "add rule inet %s cuts ct direction reply ip saddr %s ct mark %d drop\n", n.name, from.IP, to.mark)
	}
	return nft(b.String()) // NB: one nft transaction: all or nothing
}

// Close deletes the network's nft table and cgroups. Processes still in a
// host's cgroup keep it (it is removed by the next New's sweep).
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	var errs []error
	if n.name != "" {
		if err := deleteTable(n.name); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range n.hosts {
		if h.fd != nil {
			h.fd.Close()
		}
		_ = os.Remove(h.cg)
	}
	if n.name != "" {
		_ = os.Remove(filepath.Join(n.cgMount, n.name))
	}
	if n.lock != nil {
		n.lock.Close()
	}
	return errors.Join(errs...)
}

// Sweep deletes the nft tables and cgroups of netsim processes that are
// gone.
func Sweep() {
	out, err := exec.Command("nft", "list", "tables").Output()
	if err == nil {
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text()) // "table inet NAME"
			if len(f) == 3 && strings.HasPrefix(f[2], TablePrefix) && !ownerAlive(f[2]) {
				_ = nft(fmt.Sprintf("delete table %s %s\n", f[1], f[2]))
			}
		}
	}
	if mount, err := cgroup2Mount(); err == nil {
		dirs, _ := filepath.Glob(filepath.Join(mount, TablePrefix+"*"))
		for _, d := range dirs {
			if ownerAlive(filepath.Base(d)) {
				continue
			}
			subs, _ := filepath.Glob(filepath.Join(d, "h*"))
			for _, s := range subs {
				_ = os.Remove(s)
			}
			_ = os.Remove(d)
		}
	}
}

// ownerAlive reports whether the process named in binlogsvr_netsim_<pid>_<n> runs.
func ownerAlive(name string) bool {
	f := strings.Split(strings.TrimPrefix(name, TablePrefix), "_")
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return true // NB: not ours to judge
	}
	return syscall.Kill(pid, 0) == nil
}

func deleteTable(name string) error {
	if err := nft(fmt.Sprintf("delete table inet %s\n", name)); err != nil && !strings.Contains(err.Error(), "No such file") {
		return err
	}
	return nil
}

func nft(script string) error {
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netsim: nft: %v: %s (script:\n%s)", err, bytes.TrimSpace(out), script)
	}
	return nil
}

func cgroup2Mount() (string, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[2] == "cgroup2" {
			return f[1], nil
		}
	}
	return "", errors.New("netsim: no cgroup2 hierarchy mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)")
}
