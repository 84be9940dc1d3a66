package binlog

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// seamAllowed are the sites outside this package that may name a flavor
// in a comparison, by file (slash path from the module root) and enclosing
// function, each with its reason. Everything else asks a Flavor.
var seamAllowed = map[string]string{
	// Config validation that only names the accepted values; the value is
	// then read with FlavorByName.
	"dump/config.go:Validate": "--dump-flavor validation: lists the accepted names",
}

// flavorWords are the flavor names (any case) a comparison must not use.
var flavorWords = []string{"mysql", "mariadb"}

func isFlavorWord(lit *ast.BasicLit) bool {
	if lit == nil || lit.Kind != token.STRING {
		return false
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return false
	}
	for _, w := range flavorWords {
		if strings.EqualFold(s, w) {
			return true
		}
	}
	return false
}

func flavorLit(e ast.Expr) bool {
	lit, _ := e.(*ast.BasicLit)
	return isFlavorWord(lit)
}

// stringsCalls are the strings functions that test a value against
// another (Contains(v, "mariadb"), EqualFold(f, "mysql"), ...).
var stringsCalls = map[string]bool{
	"Contains": true, "EqualFold": true, "HasPrefix": true, "HasSuffix": true,
	"Index": true, "LastIndex": true, "Compare": true, "ContainsAny": true,
}

// flavorChecks returns the lines of src where a flavor name is compared:
// == or != with a flavor literal, a case clause listing one, or a strings
// call testing against one. Import paths, comments and other strings
// (help text, log messages, "mysql-bin.000001") are not comparisons.
func flavorChecks(fset *token.FileSet, f *ast.File) map[int]string {
	out := map[int]string{}
	var fn string
	visit := func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			fn = n.Name.Name
		case *ast.BinaryExpr:
			if (n.Op == token.EQL || n.Op == token.NEQ) && (flavorLit(n.X) || flavorLit(n.Y)) {
				out[fset.Position(n.Pos()).Line] = fn
			}
		case *ast.CaseClause:
			for _, e := range n.List {
				if flavorLit(e) {
					out[fset.Position(e.Pos()).Line] = fn
				}
			}
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "strings" && stringsCalls[sel.Sel.Name] {
					for _, a := range n.Args {
						if flavorLit(a) {
							out[fset.Position(n.Pos()).Line] = fn
						}
					}
				}
			}
		}
		return true
	}
	ast.Inspect(f, visit)
	return out
}

// TestOneSeam: no non-test Go file of the module outside logger/binlog
// compares flavor names (or sniffs a version for one): the flavor is a
// Flavor, detected once (FlavorOfVersion, FlavorByName), and every
// difference is one of its methods.
func TestOneSeam(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	seen := map[string]bool{}
	n := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, root+string(filepath.Separator)))
		if d.IsDir() {
			switch {
			case path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor" || d.Name() == "bin"):
				return filepath.SkipDir
			case rel == "logger/binlog":
				return filepath.SkipDir // the seam itself, and binlogtest's fixtures of each flavor
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		n++
		for line, fn := range flavorChecks(fset, f) {
			site := rel + ":" + fn
			if _, ok := seamAllowed[site]; ok {
				seen[site] = true
				continue
			}
			t.Errorf("%s:%d (in %s): a flavor name compared outside logger/binlog: ask a binlog.Flavor method instead", rel, line, fn)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("walked %d Go files under %s: the walk is broken", n, root)
	}
	for site := range seamAllowed {
		if !seen[site] {
			t.Errorf("allowed site %s has no flavor check any more: drop it from seamAllowed", site)
		}
	}
}

// TestFlavorChecksFinds: the detector sees the forms it must refuse and
// none of the harmless ones.
func TestFlavorChecksFinds(t *testing.T) {
	src := `package p

import "strings"
import gm "github.com/go-mysql-org/go-mysql/mysql"

var help = "host:port of the MySQL/MariaDB source"

func bad(flav F, v string) {
	if flav.Name() == "mariadb" {
	}
	if "mysql" != flav.Name() {
	}
	switch flav.Name() {
	case "MySQL":
	}
	_ = strings.Contains(strings.ToLower(v), "mariadb")
	_ = strings.Contains(v, "MariaDB")
}

func fine(v string) {
	_ = gm.COM_BINLOG_DUMP
	_ = strings.HasPrefix(v, "mysql-bin.")
	_ = v == "mysql_native_password"
	log("mysql")
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := flavorChecks(fset, f)
	want := map[int]string{9: "bad", 11: "bad", 14: "bad", 16: "bad", 17: "bad"}
	if len(got) != len(want) {
		t.Errorf("found %v, want %v", got, want)
	}
	for l, fn := range want {
		if got[l] != fn {
			t.Errorf("line %d: found %q, want %q (all: %v)", l, got[l], fn, got)
		}
	}
}
