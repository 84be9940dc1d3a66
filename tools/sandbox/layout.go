package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// layout is one server directory. Fields are host paths; in translates them to the paths the
// server sees (they differ only for a chrooted server).
type layout struct {
	root      string // host directory that is "/" for the server; "" without a chroot
	dir       string // the sandbox directory (sbx-*)
	dataDir   string
	binlogDir string
	tmpDir    string
	socket    string
	pidFile   string
	errorLog  string
	console   string // the server's stdout and stderr: errors from before the error log opens
}

func newLayout(root, dir string) layout {
	return layout{
		root:      root,
		dir:       dir,
		dataDir:   filepath.Join(dir, "data"),
		binlogDir: filepath.Join(dir, "binlog"),
		tmpDir:    filepath.Join(dir, "tmp"),
		socket:    filepath.Join(dir, "mysqld.sock"),
		pidFile:   filepath.Join(dir, "mysqld.pid"),
		errorLog:  filepath.Join(dir, "error.log"),
		console:   filepath.Join(dir, "console.log"),
	}
}

// in is hostPath as the server sees it.
func (l layout) in(hostPath string) string {
	if l.root == "" {
		return hostPath
	}
	return "/" + strings.TrimPrefix(strings.TrimPrefix(hostPath, l.root), "/")
}

// makeDirs creates the directories other than dataDir (which the init or the template copy makes).
func (l layout) makeDirs() error {
	for _, d := range []string{l.binlogDir, l.tmpDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	return nil
}

// inside reports whether dir is inside root (both cleaned absolute paths).
func inside(root, dir string) bool {
	rel, err := filepath.Rel(root, dir)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// logTail returns the last lines of the server's error log and console output, for error messages.
func (l layout) logTail(lines int) string {
	var b strings.Builder
	for _, p := range []string{l.errorLog, l.console} {
		data, err := os.ReadFile(p)
		if err != nil || len(strings.TrimSpace(string(data))) == 0 {
			continue
		}
		all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		fmt.Fprintf(&b, "\n--- last %d lines of %s ---\n%s", len(all), p, strings.Join(all, "\n"))
	}
	if b.Len() == 0 {
		return "\n(no server log output)"
	}
	return b.String()
}
