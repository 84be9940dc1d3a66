package logger

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lni/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
)

// DiskConfig is how a member watches its data directory's free space and
// what it does when the disk is full.
type DiskConfig struct {
	// WarnBytes: below this many free bytes the member logs a warning
	// (--disk-warn-bytes).
	WarnBytes uint64
	// ReserveBytes: below this many free bytes the member, when it leads,
	// stops proposing appends until space returns: the source's commits
	// wait for their ACK rather than the member filling its disk
	// (--disk-reserve-bytes; 0: never pause).
	ReserveBytes uint64
	// Interval between free-space checks (0: 2 s).
	Interval time.Duration
	// OnFull is called once, by the first write that finds the disk full
	// (ENOSPC or EDQUOT), before its error reaches dragonboat or Pebble,
	// which would panic on it. The daemon's logs the error and exits the
	// process. nil: the error is logged and goes on as it is.
	OnFull func(*DiskFullError)
}

// Disk states in DiskStatus.State.
const (
	DiskOK      = "ok"      // at least WarnBytes free
	DiskLow     = "low"     // below WarnBytes: a warning
	DiskReserve = "reserve" // below ReserveBytes: appends paused
	DiskUnknown = "unknown" // not measured (yet, or a file system without usage)
)

// DefaultDiskConfig returns the flags' defaults.
func DefaultDiskConfig() DiskConfig {
	return DiskConfig{WarnBytes: 1 << 30, ReserveBytes: 64 << 20}
}

// RegisterFlags registers the free-space flags.
func (c *DiskConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.Uint64Var(&c.WarnBytes, "disk-warn-bytes", c.WarnBytes, "log a warning while the data directory's disk has fewer free bytes than this (see binlogsvr_disk_free_bytes)")
	fs.Uint64Var(&c.ReserveBytes, "disk-reserve-bytes", c.ReserveBytes, "while the data directory's disk has fewer free bytes than this, the leader proposes no new transactions (the source's commits wait for their ACK) until space is freed; "+
		"a member whose disk still fills up exits with code 75 and a message, and catches up when restarted (0: never pause)")
}

// DiskStatus is the member's last measure of its data directory's disk.
type DiskStatus struct {
	FreeBytes uint64 `json:"disk_free_bytes"`
	State     string `json:"disk_state"`
}

// diskMonitor measures the free space of the data directory every
// Interval, exports it, warns, and gates appends below the reserve.
type diskMonitor struct {
	cfg   DiskConfig
	dir   string
	usage func(string) (vfs.DiskUsage, error)
	log   *slog.Logger
	gauge prometheus.Gauge
	reg   prometheus.Registerer

	mu     sync.Mutex
	st     DiskStatus
	resume chan struct{} // non-nil while paused; closed when appends may go on
}

func newDiskMonitor(cfg DiskConfig, dir string, usage func(string) (vfs.DiskUsage, error), log *slog.Logger, reg prometheus.Registerer) (*diskMonitor, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 2 * time.Second
	}
	m := &diskMonitor{cfg: cfg, dir: dir, usage: usage, log: log, reg: reg, st: DiskStatus{State: DiskUnknown}}
	if reg != nil {
		m.gauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "binlogsvr_disk_free_bytes",
			Help:        "Bytes free for the member on the disk of its data directory, measured every few seconds.",
			ConstLabels: prometheus.Labels{"dir": dir}})
		if err := reg.Register(m.gauge); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *diskMonitor) unregister() {
	if m.reg != nil {
		m.reg.Unregister(m.gauge)
	}
}

// status returns the last measure.
func (m *diskMonitor) status() DiskStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}

// gate returns nil while appends may be proposed, else a channel closed
// when they may be again.
func (m *diskMonitor) gate() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.resume == nil {
		return nil
	}
	return m.resume
}

// measure takes one measure and acts on a change of state. It reports
// false when the file system cannot tell its usage (a memory FS in tests).
func (m *diskMonitor) measure() bool {
	du, err := m.usage(m.dir)
	if err != nil {
		m.log.Info("disk: cannot measure free space; free-space metric and reserve off", "dir", m.dir, "err", err)
		return false
	}
	free := du.AvailBytes
	state := DiskOK
	switch {
	case m.cfg.ReserveBytes > 0 && free < m.cfg.ReserveBytes:
		state = DiskReserve
	case free < m.cfg.WarnBytes:
		state = DiskLow
	}
	if m.gauge != nil {
		m.gauge.Set(float64(free))
	}
	m.mu.Lock()
	prev := m.st.State
	m.st = DiskStatus{FreeBytes: free, State: state}
	switch {
	case state == DiskReserve && m.resume == nil:
		m.resume = make(chan struct{})
	case state != DiskReserve && m.resume != nil:
		close(m.resume)
		m.resume = nil
	}
	m.mu.Unlock()
	if state == prev {
		return true
	}
	switch state {
	case DiskReserve:
		m.log.Error("disk: free space is below --disk-reserve-bytes: this member proposes no new transactions while it leads (the source's commits wait) until space is freed",
			"dir", m.dir, "free_bytes", free, "reserve_bytes", m.cfg.ReserveBytes)
	case DiskLow:
		m.log.Warn("disk: free space is below --disk-warn-bytes; free space before it runs out: a member whose disk is full exits",
			"dir", m.dir, "free_bytes", free, "warn_bytes", m.cfg.WarnBytes, "reserve_bytes", m.cfg.ReserveBytes)
	case DiskOK:
		if prev != DiskUnknown {
			m.log.Info("disk: free space is back above --disk-warn-bytes", "dir", m.dir, "free_bytes", free)
		}
	}
	return true
}

// run measures every Interval until stop closes.
func (m *diskMonitor) run(stop <-chan struct{}) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if !m.measure() {
			return
		}
	}
}

// tightenModes makes the data directory 0700 and everything in it
// 0700/0600, logging what it changed: a data directory written by an older
// build (or under a looser umask) held world-readable binlogs.
func tightenModes(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	var changed []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		want := fileMode
		if d.IsDir() {
			want = dirMode
		} else if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&^want != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&want); err != nil {
				return err
			}
			changed = append(changed, p)
		}
		return nil
	})
	if len(changed) > 0 {
		log.Warn("data directory: removed group and other access (directories 0700, files 0600)", "dir", dir, "paths", len(changed), "first", changed[0])
	}
	return err
}

// startDisk tightens the data directory's modes, starts the free-space
// monitor and returns the guard every file system of the host goes
// through. Called by startHost before dragonboat opens anything.
func (h *Host) startDisk() (*diskGuard, error) {
	cfg := h.cfg
	usage := vfs.Default.GetDiskUsage
	if cfg.FS != nil {
		usage = cfg.FS.GetDiskUsage
	} else if err := tightenModes(cfg.DataDir, h.log); err != nil {
		return nil, fmt.Errorf("logger: --data-dir %s: %w", cfg.DataDir, err)
	}
	onFull := cfg.Disk.OnFull
	if onFull == nil {
		onFull = func(e *DiskFullError) { h.log.Error(e.Error()) }
	}
	g := &diskGuard{dir: cfg.DataDir, usage: usage, onFull: onFull}
	m, err := newDiskMonitor(cfg.Disk, cfg.DataDir, usage, h.log, cfg.Registry)
	if err != nil {
		return nil, err
	}
	h.disk = m
	if m.measure() {
		h.wg.Add(1)
		go func() { defer h.wg.Done(); m.run(h.stop) }()
	}
	return g, nil
}

// stopDisk stops the monitor (Close, or startHost failing after
// startDisk).
func (h *Host) stopDisk() {
	close(h.stop)
	h.wg.Wait()
	h.disk.unregister()
}

// Disk returns the member's last measure of its data directory's disk
// (the host's: every shard of a host shares its disk).
func (n *Node) Disk() DiskStatus { return n.host.disk.status() }

// appendGate returns nil while appends may be proposed, else a channel
// closed once the disk has more than --disk-reserve-bytes free again.
func (n *Node) appendGate() <-chan struct{} { return n.host.disk.gate() }
