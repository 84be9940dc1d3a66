package layers

import (
	"fmt"
	"strings"
)

// Module is the module's import path.
const Module = "github.com/binlogsvr/binlogsvr"

// Layer places the packages under one path prefix (relative to Module):
// Level orders the layers (an import must point to a lower level), Unit
// names the packages that may import each other freely.
type Layer struct {
	Prefix string
	Level  int
	Unit   string
}

// Layers is the module's table; the longest matching prefix places a
// package.
var Layers = []Layer{
	{"binlogsvr/api", 0, "api"},
	{"logger", 1, "logger"},
	{"semisync", 2, "semisync"},
	{"dump", 2, "dump"},
	{"learner", 2, "learner"},
	{"failover", 2, "failover"},
	{"binlogsvr", 3, "binlogsvr"},
	{"tools", 4, "tools"},
}

// Place returns the layer of a package of the module (its path relative to
// Module), and false if the table does not place it.
func Place(table []Layer, pkg string) (Layer, bool) {
	var best Layer
	found := false
	for _, l := range table {
		if (pkg == l.Prefix || strings.HasPrefix(pkg, l.Prefix+"/")) && (!found || len(l.Prefix) > len(best.Prefix)) {
			best, found = l, true
		}
	}
	return best, found
}

// Check returns why the import from → to (paths relative to Module)
// breaks the rule, or "" if it does not.
func Check(table []Layer, from, to string) string {
	lf, ok := Place(table, from)
	if !ok {
		return fmt.Sprintf("%s is in no layer (add it to layers.Layers)", from)
	}
	lt, ok := Place(table, to)
	if !ok {
		return fmt.Sprintf("%s is in no layer (add it to layers.Layers)", to)
	}
	switch {
	case lf.Unit == lt.Unit, lt.Level < lf.Level:
		return ""
	case lt.Level == lf.Level:
		return fmt.Sprintf("%s imports %s: sideways, between two packages of layer %d (move what they share down)", from, to, lf.Level)
	default:
		return fmt.Sprintf("%s imports %s: upward, from layer %d to layer %d", from, to, lf.Level, lt.Level)
	}
}
