package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// proc is one running server process.
type proc struct {
	pid  int
	done chan struct{} // closed once the process has been reaped
	err  error         // Wait's result; read only after done is closed
}

// startProc starts argv (argv[0] as seen inside root; root "" means no chroot) with its output
// appended to console.
//
// NB: PR_SET_PDEATHSIG fires when the OS thread that forked the child exits, not the process. The
// goroutine that starts the child therefore stays locked to its thread until the child is reaped,
// so the server dies with the test process (a panic, a go test timeout) and at no other time.
func startProc(root string, argv []string, console string) (*proc, error) {
	out, err := os.OpenFile(console, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	p := &proc{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(p.done)
		defer out.Close()
		cmd := &exec.Cmd{
			Path:   argv[0],
			Args:   argv,
			Env:    []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "TZ=UTC"},
			Stdout: out,
			Stderr: out,
			SysProcAttr: &syscall.SysProcAttr{
				Chroot:    root,
				Setpgid:   true, // a terminal's Ctrl-C goes to the test, which then cleans up
				Pdeathsig: syscall.SIGKILL,
			},
		}
		if root != "" {
			cmd.Dir = "/"
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("sandbox: start %s: %w", argv[0], err)
	}
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit, at most d.
func (p *proc) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("sandbox: kill -%d %d: %w", sig, p.pid, err)
	}
	return nil
}

// kill sends SIGKILL and waits (bounded) until the process is reaped.
func (p *proc) kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	if !p.wait(context.Background(), 30*time.Second) {
		return fmt.Errorf("sandbox: pid %d still running 30s after SIGKILL", p.pid)
	}
	return nil
}

// stop sends SIGTERM (a clean shutdown), waits up to grace or ctx, then SIGKILLs. It reports
// whether the shutdown was clean.
func (p *proc) stop(ctx context.Context, grace time.Duration) (clean bool, err error) {
	if p.exited() {
		return true, nil
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return false, err
	}
	if p.wait(ctx, grace) {
		return true, nil
	}
	return false, p.kill()
}

// withFlock runs fn holding an exclusive flock on path, so that concurrent test binaries build a
// template (or mount proc) once.
func withFlock(path string, fn func() error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("sandbox: flock %s: %w", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

// ensureProc mounts proc at chroot/proc unless something is mounted there already. It is left
// mounted: other sandbox servers (in this or other processes) may be running in the chroot.
func ensureProc(chroot string) error {
	target := filepath.Join(chroot, "proc")
	return withFlock(filepath.Join(chroot, "var/lib/binlogsvr/proc.lock"), func() error {
		mounted, err := isMountPoint(target)
		if err != nil {
			return err
		}
		if mounted {
			return nil
		}
		if err := syscall.Mount("proc", target, "proc", 0, ""); err != nil {
			return fmt.Errorf("sandbox: mount proc on %s: %w", target, err)
		}
		return nil
	})
}

func isMountPoint(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// Field 5 is the mount point, with spaces and the like octal-escaped.
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == dir {
			return true, nil
		}
	}
	return false, sc.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
