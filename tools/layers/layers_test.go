package layers

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestCheckRefuses: the rule refuses what it must (so the graph test can
// fail), and allows what the module does.
func TestCheckRefuses(t *testing.T) {
	for _, c := range []struct {
		from, to string
		bad      bool
	}{
		{"failover", "semisync", true},       // sideways
		{"semisync", "dump", true},           // sideways
		{"dump", "tools/sandbox", true},      // upward: test harnesses live in tools/
		{"failover", "binlogsvr", true},      // upward: benchmarks live in tools/bench
		{"logger", "learner", true},          // upward
		{"binlogsvr/api", "logger", true},    // the API must stay a leaf
		{"binlogsvr", "tools/fleet", true},   // the daemon never imports tools
		{"newpkg", "logger", true},           // not placed
		{"logger", "newpkg", true},           // not placed
		{"failover", "logger/binlog", false}, // down
		{"logger", "binlogsvr/api", false},   // down to the leaf
		{"logger", "logger/binlog", false},   // same unit
		{"binlogsvr/cmd/binlogsvr", "binlogsvr", false},
		{"tools/bench", "tools/bench/dumpbench", false},
		{"tools/binlogctl", "binlogsvr/api", false},
	} {
		why := Check(Layers, c.from, c.to)
		if (why != "") != c.bad {
			t.Errorf("%s -> %s: %q; want refused %v", c.from, c.to, why, c.bad)
		}
	}
}

// goList runs go list on the module's packages and returns its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var lines []string
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestImportsPointDown checks every non-test import between the module's
// packages, in the release build and in the debug build.
func TestImportsPointDown(t *testing.T) {
	for _, tags := range [][]string{nil, {"-tags", "binlogsvr_debug"}} {
		args := append(append([]string{}, tags...), "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, Module+"/...")
		n := 0
		for _, l := range goList(t, args...) {
			f := strings.Fields(l)
			from := rel(f[0])
			if _, ok := Place(Layers, from); !ok {
				t.Errorf("%s is in no layer (add it to layers.Layers)", from)
			}
			for _, imp := range f[1:] {
				if !strings.HasPrefix(imp, Module+"/") {
					continue
				}
				n++
				if why := Check(Layers, from, rel(imp)); why != "" {
					t.Errorf("%v: %s", tags, why)
				}
			}
		}
		if n < 50 {
			t.Fatalf("%v: only %d imports between the module's packages: go list read the wrong thing", tags, n)
		}
	}
}

// TestNoDragonboatInClients: binlogctl and binlogsvr/api link neither
// dragonboat nor Pebble, and binlogsvr/api only the standard library.
func TestNoDragonboatInClients(t *testing.T) {
	for _, pkg := range []string{"tools/binlogctl", "binlogsvr/api"} {
		for _, d := range goList(t, "-deps", Module+"/"+pkg) {
			if strings.Contains(d, "dragonboat") || strings.Contains(d, "pebble") {
				t.Errorf("%s links %s", pkg, d)
			}
		}
	}
	for _, l := range goList(t, "-deps", "-f", "{{.ImportPath}} {{.Standard}}", Module+"/binlogsvr/api") {
		if f := strings.Fields(l); f[1] != "true" && f[0] != Module+"/binlogsvr/api" {
			t.Errorf("binlogsvr/api imports %s, not in the standard library", f[0])
		}
	}
}

// TestReleaseHasNoSyntheticAppends: the release binlogsvr does not link
// binlogtest (what /debug/append makes its transactions with); the debug
// build does, so the check sees what it looks for.
func TestReleaseHasNoSyntheticAppends(t *testing.T) {
	const synth = Module + "/logger/binlog/binlogtest"
	has := func(tags ...string) bool {
		for _, d := range goList(t, append(append([]string{}, tags...), "-deps", Module+"/binlogsvr/cmd/binlogsvr")...) {
			if d == synth {
				return true
			}
		}
		return false
	}
	if has() {
		t.Errorf("the release binlogsvr links %s (the debug endpoints belong behind -tags binlogsvr_debug)", synth)
	}
	if !has("-tags", "binlogsvr_debug") {
		t.Errorf("the debug binlogsvr does not link %s: this test no longer looks at the right package", synth)
	}
}

func rel(p string) string { return strings.TrimPrefix(p, Module+"/") }
