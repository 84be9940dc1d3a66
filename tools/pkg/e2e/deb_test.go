package e2e

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/binlogsvr/binlogsvr/tools/fleet"
)

const unitPath = "/lib/systemd/system/binlogsvr.service"

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// buildDeb builds release binaries and the package from them, as make deb
// does, into a temporary directory.
func buildDeb(t *testing.T) string {
	t.Helper()
	root, err := fleet.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "./binlogsvr/cmd/binlogsvr", "./tools/binlogctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := strings.TrimSpace(run(t, "bash", filepath.Join(root, "tools/pkg/build-deb.sh"), dir, filepath.Join(dir, "dist"), "0.0.0+e2e"))
	if filepath.Base(out) != "binlogsvr_0.0.0+e2e_amd64.deb" {
		t.Fatalf("build-deb.sh wrote %q", out)
	}
	return out
}

// TestDebInstall installs the package with dpkg -i, checks what it put on
// the machine (the unit, verified by systemd-analyze; the user; the
// secrets file's mode; the binaries and their man pages), then purges it.
func TestDebInstall(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("dpkg -i needs root")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run make peers (tools/sandbox/install.sh)", tool)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "binlogsvr").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Skip("a binlogsvr package is installed on this machine already: not touching it")
	}
	deb := buildDeb(t)
	_, userErr := user.Lookup("binlogsvr")
	userExisted := userErr == nil
	_, stateErr := os.Stat("/var/lib/binlogsvr")
	stateExisted := stateErr == nil
	// NB: registered before dpkg -i, so a failure half way still leaves
	// the machine as it was.
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "binlogsvr").CombinedOutput(); err != nil {
			t.Errorf("dpkg --purge binlogsvr: %v\n%s", err, out)
		}
		if !userExisted {
			if out, err := exec.Command("userdel", "binlogsvr").CombinedOutput(); err != nil {
				t.Errorf("userdel binlogsvr: %v\n%s", err, out)
			}
		}
		if !stateExisted {
			os.RemoveAll("/var/lib/binlogsvr")
		}
	})
	run(t, "dpkg", "-i", deb)

	// systemd-analyze verify exits 0 on unknown keys and bad values (it
	// only warns), so any output about the unit fails the test.
	out, err := exec.Command("systemd-analyze", "verify", unitPath).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	}
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "User=binlogsvr", "StateDirectory=binlogsvr", "EnvironmentFile=/etc/binlogsvr/env",
		"Restart=on-failure", "RestartPreventExitStatus=76 78", "WatchdogSec=", "ExecStart=/usr/bin/binlogsvr --config /etc/binlogsvr/binlogsvr.toml"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("installed unit lacks %q", want)
		}
	}
	if _, err := user.Lookup("binlogsvr"); err != nil {
		t.Errorf("no binlogsvr user after install: %v", err)
	}
	st, err := os.Stat("/etc/binlogsvr/env")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("/etc/binlogsvr/env mode %v, want 0640 (it holds passwords)", st.Mode().Perm())
	}
	if g := run(t, "stat", "-c", "%U:%G", "/etc/binlogsvr/env"); strings.TrimSpace(g) != "root:binlogsvr" {
		t.Errorf("/etc/binlogsvr/env owned by %s, want root:binlogsvr", g)
	}
	conf := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "binlogsvr")
	for _, c := range []string{"/etc/binlogsvr/binlogsvr.toml", "/etc/binlogsvr/env"} {
		if !strings.Contains(conf, c) {
			t.Errorf("%s is not a conffile (an upgrade would overwrite the operator's edits): %q", c, conf)
		}
	}

	// The installed binaries: --help, and the shipped (commented) config
	// file is one the daemon reads.
	for _, b := range []string{"binlogsvr", "binlogctl"} {
		if h := run(t, "/usr/bin/"+b, "--help"); !strings.Contains(h, "Usage: "+b) {
			t.Errorf("%s --help: %s", b, h)
		}
		checkManPage(t, b)
	}
	if out := run(t, "/usr/bin/binlogsvr", "--config", "/etc/binlogsvr/binlogsvr.toml", "--print-config"); !strings.Contains(out, "# defaults:") {
		t.Errorf("--print-config with the shipped config file: %s", out)
	}
}

// checkManPage reads the installed man page: with man(1) where it is
// installed, else its roff source.
func checkManPage(t *testing.T, name string) {
	t.Helper()
	p := "/usr/share/man/man1/" + name + ".1.gz"
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("man page: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	src, err := io.ReadAll(zr)
	if err != nil || !bytes.HasPrefix(src, []byte(".TH ")) || !bytes.Contains(src, []byte("Usage: "+name)) {
		t.Fatalf("%s: not a man page of %s --help (%v)", p, name, err)
	}
	if _, err := exec.LookPath("man"); err == nil {
		out, err := exec.Command("man", "-P", "cat", "-l", p).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage: "+name) || strings.Contains(string(out), "troff:") {
			t.Errorf("man -l %s: %v\n%s", p, err, out)
		}
	}
}
