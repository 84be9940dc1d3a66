package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// template returns the host path of the flavor's template data directory, building it first if
// no process has yet. A template is an initialised data directory with the sandbox accounts, no
// binary log and no GTID history.
func template(ctx context.Context, impl flavorImpl, logf func(string, ...any)) (string, error) {
	parent, err := impl.templateParent()
	if err != nil {
		return "", err
	}
	key, err := binaryKey(impl.name(), filepath.Join(impl.root(), impl.binary()))
	if err != nil {
		return "", fmt.Errorf("sandbox: %s binary: %w", impl.name(), err)
	}
	final := filepath.Join(parent, key)
	ready := func() bool { _, err := os.Stat(filepath.Join(final, "data")); return err == nil }
	if ready() {
		return filepath.Join(final, "data"), nil
	}
	err = withFlock(filepath.Join(parent, ".lock"), func() error {
		if ready() {
			return nil
		}
		start := time.Now()
		logf("sandbox: building the %s template %s (once per binary; about 15 s)", impl.name(), final)
		tmp, err := os.MkdirTemp(parent, key+".tmp-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp) // a no-op once renamed into place
		if err := buildTemplate(ctx, impl, newLayout(impl.root(), tmp)); err != nil {
			return err
		}
		if err := os.Rename(tmp, final); err != nil {
			return err
		}
		logf("sandbox: %s template ready in %v", impl.name(), time.Since(start).Round(time.Millisecond))
		pruneTemplates(parent, string(impl.name())+"-", key)
		return nil
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(final, "data"), nil
}

// pruneTemplates removes the flavor's templates made by other binaries or formats. Servers never
// use a template in place, so nothing running depends on them. Called under the lock.
func pruneTemplates(parent, prefix, keep string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); e.IsDir() && strings.HasPrefix(n, prefix) && n != keep {
			os.RemoveAll(filepath.Join(parent, n))
		}
	}
}

func buildTemplate(ctx context.Context, impl flavorImpl, l layout) error {
	if err := l.makeDirs(); err != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	initp, err := startProc(l.root, impl.initCmd(l), l.console)
	if err != nil {
		return err
	}
	if !initp.wait(ictx, 3*time.Minute) {
		initp.kill()
		return fmt.Errorf("sandbox: initialise %s data directory: timed out%s", impl.name(), l.logTail(30))
	}
	if initp.err != nil {
		return fmt.Errorf("sandbox: initialise %s data directory: %v%s", impl.name(), initp.err, l.logTail(30))
	}

	// One networkless start, over the socket, to create the accounts.
	args := append([]string{impl.binary(), "--no-defaults"}, impl.baseArgs(l)...)
	args = append(args, impl.templateArgs(l)...)
	p, err := startProc(l.root, args, l.console)
	if err != nil {
		return err
	}
	defer p.kill()
	conn, err := waitReady(ictx, p, l, func(ctx context.Context) (*client.Conn, error) {
		return connect(ctx, "unix", l.socket, rootUser, "")
	})
	if err != nil {
		return err
	}
	err = createAccounts(conn, impl)
	conn.Close()
	if err != nil {
		return fmt.Errorf("sandbox: %s template accounts: %w", impl.name(), err)
	}
	if clean, err := p.stop(ictx, 2*time.Minute); err != nil || !clean {
		return fmt.Errorf("sandbox: %s template server did not shut down cleanly (err %v)%s", impl.name(), err, l.logTail(30))
	}
	// Keep only the data directory; each copy makes its own logs and, for MySQL, its own
	// server_uuid (auto.cnf).
	for _, f := range []string{l.errorLog, l.console, l.pidFile, filepath.Join(l.dataDir, "auto.cnf")} {
		os.Remove(f)
	}
	os.RemoveAll(l.binlogDir)
	os.RemoveAll(l.tmpDir)
	return nil
}

func createAccounts(conn *client.Conn, impl flavorImpl) error {
	// Anonymous accounts would shadow 'repl'@'%' for local connections. The template server runs
	// without skip-name-resolve, so accounts named by host name can still be dropped.
	r, err := conn.Execute("SELECT user, host FROM mysql.user WHERE user = '' OR user = " + quote(rootUser))
	if err != nil {
		return err
	}
	var rootHosts, stmts []string
	for i := range r.Values {
		u, _ := r.GetString(i, 0)
		h, _ := r.GetString(i, 1)
		switch u {
		case rootUser:
			switch h {
			case "localhost", "127.0.0.1", "::1", "%":
				rootHosts = append(rootHosts, h)
			default: // the build machine's host name: meaningless on another machine
				stmts = append(stmts, "DROP USER "+quote(rootUser)+"@"+quote(h))
			}
		case "":
			stmts = append(stmts, "DROP USER ''@"+quote(h))
		}
	}
	r.Close()
	stmts = append(stmts, impl.accountSQL(rootHosts)...)
	for _, q := range stmts {
		if _, err := conn.Execute(q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// copyTree copies the template data directory to dst, which must not exist.
func copyTree(src, dst string) error {
	out, err := exec.Command("cp", "-a", "--reflink=auto", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sandbox: cp -a %s %s: %v: %s", src, dst, err, out)
	}
	return nil
}
