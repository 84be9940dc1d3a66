package layers

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The unit suite (make unit: the Makefile's UNIT_PKGS, every package the
// E2E_RE pattern leaves) runs pure and in-process tests only: no MariaDB
// or MySQL, no binlogsvr process. Those are started by the harnesses
// below; a unit package's tests must not reach them.
var serverHarnesses = []string{"tools/sandbox", "tools/sandbox/sandboxtest", "tools/fleet"}

// harnessVia lists the unit packages whose tests import a package that
// links a server harness, but call only its in-process parts, with why.
// A new entry is a decision: read what the tests call first.
var harnessVia = map[[2]string]string{
	{"dump", "tools/dumptest"}: "dumptest.Serve runs the dump server on an in-process log; its real-source feeders are dump/e2e's",
}

// unitPackage is what the guard knows of one package.
type unitPackage struct {
	hasTests    bool
	deps        []string // non-test, transitive (module-relative for the module's)
	testImports []string // direct imports of its _test.go files
}

// harnessReach returns why pkg's tests may start a real server ("" when
// they cannot): pkg or its direct test imports link a server harness,
// other than through an edge of via.
func harnessReach(pkgs map[string]unitPackage, pkg string, via map[[2]string]string) []string {
	harness := map[string]bool{}
	for _, h := range serverHarnesses {
		harness[h] = true
	}
	links := func(p string) string {
		for _, d := range pkgs[p].deps {
			if harness[d] {
				return d
			}
		}
		return ""
	}
	var why []string
	if h := links(pkg); h != "" {
		why = append(why, pkg+" itself links "+h)
	}
	for _, imp := range pkgs[pkg].testImports {
		if harness[imp] {
			why = append(why, "its tests import "+imp)
			continue
		}
		if _, ok := pkgs[imp]; !ok || imp == pkg {
			continue
		}
		if h := links(imp); h != "" {
			if _, ok := via[[2]string{pkg, imp}]; !ok {
				why = append(why, "its tests import "+imp+", which links "+h)
			}
		}
	}
	return why
}

// unitPackages returns the module's packages and the unit suite's, as
// the Makefile selects them.
func unitPackages(t *testing.T) (map[string]unitPackage, []string) {
	t.Helper()
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^E2E_RE\s*:?=\s*(.+)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile has no E2E_RE: this test no longer reads the unit suite's packages")
	}
	e2e, err := regexp.Compile(strings.ReplaceAll(strings.TrimSpace(string(m[1])), "$$", "$"))
	if err != nil {
		t.Fatalf("the Makefile's E2E_RE: %v", err)
	}
	pkgs := map[string]unitPackage{}
	sep := "\x1f"
	for _, l := range goList(t, "-f", `{{.ImportPath}}`+sep+`{{len .TestGoFiles}}{{len .XTestGoFiles}}`+sep+
		`{{join .Deps " "}}`+sep+`{{join .TestImports " "}} {{join .XTestImports " "}}`, Module+"/...") {
		f := strings.Split(l, sep)
		if len(f) != 4 {
			t.Fatalf("go list: unexpected line %q", l)
		}
		relAll := func(s string) []string {
			var out []string
			for _, p := range strings.Fields(s) {
				out = append(out, rel(p))
			}
			return out
		}
		pkgs[rel(f[0])] = unitPackage{hasTests: f[1] != "00", deps: relAll(f[2]), testImports: relAll(f[3])}
	}
	var unit []string
	for p := range pkgs {
		if !e2e.MatchString(Module + "/" + p) {
			unit = append(unit, p)
		}
	}
	sort.Strings(unit)
	return pkgs, unit
}

// TestUnitSuiteStartsNoServer: no package of make unit links the
// harnesses that start MariaDB, MySQL or binlogsvr processes in its tests.
func TestUnitSuiteStartsNoServer(t *testing.T) {
	pkgs, unit := unitPackages(t)
	in := map[string]bool{}
	for _, p := range unit {
		in[p] = true
	}
	// NB: the selection itself, so that a Makefile change cannot make
	// this test pass by selecting nothing.
	for _, p := range []string{"semisync", "failover", "logger", "dump", "tools/layers"} {
		if !in[p] {
			t.Fatalf("the unit suite lacks %s: the Makefile's E2E_RE is read wrong (unit: %v)", p, unit)
		}
	}
	for _, p := range []string{"semisync/e2e", "failover/e2e", "tools/sandbox", "tools/netsim/chaos", "tools/bench/dumpbench"} {
		if _, ok := pkgs[p]; ok && in[p] {
			t.Fatalf("the unit suite holds %s: the Makefile's E2E_RE is read wrong", p)
		}
	}
	for _, p := range unit {
		if !pkgs[p].hasTests {
			continue
		}
		for _, why := range harnessReach(pkgs, p, harnessVia) {
			t.Errorf("%s is in make unit but may start real servers: %s (move those tests to an e2e package, or list the edge in harnessVia with why)", p, why)
		}
	}
	for edge := range harnessVia {
		if !in[edge[0]] {
			t.Errorf("harnessVia lists %v, but %s is not in the unit suite", edge, edge[0])
		}
	}
}

// TestHarnessReachRefuses: the check refuses what it must (so the guard
// can fail).
func TestHarnessReachRefuses(t *testing.T) {
	pkgs := map[string]unitPackage{
		"semisync":       {hasTests: true, testImports: []string{"tools/sandbox"}},
		"failover":       {hasTests: true, testImports: []string{"tools/helper"}},
		"tools/helper":   {deps: []string{"logger", "tools/fleet"}},
		"dump":           {hasTests: true, testImports: []string{"tools/dumptest", "logger"}},
		"tools/dumptest": {deps: []string{"tools/sandbox"}},
		"logger":         {hasTests: true, testImports: []string{"logger/loggertest"}},
		"learner":        {hasTests: true, deps: []string{"tools/sandbox/sandboxtest"}},
	}
	via := map[[2]string]string{{"dump", "tools/dumptest"}: "in-process only"}
	for pkg, refused := range map[string]bool{"semisync": true, "failover": true, "dump": false, "logger": false, "learner": true} {
		if why := harnessReach(pkgs, pkg, via); (len(why) > 0) != refused {
			t.Errorf("%s: %q; want refused %v", pkg, why, refused)
		}
	}
	if why := harnessReach(pkgs, "dump", nil); len(why) == 0 {
		t.Error("dump through tools/dumptest without harnessVia: not refused")
	}
}
