package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"
)

// The config file (--config FILE) is TOML whose keys are the flags' names
// without "--": `source = "db1:3306"`, `failover-candidate = ["r1:3306",
// "r2:3306,priority=5"]`, `failover-lease = "3s"`, `insecure = false`. A
// flag given on the command line wins over the file. Passwords are never
// in it: they come from the environment or from the *-password-file
// flags' files, as on the command line.

// Flags of the command itself, never in a config file.
var configSelf = map[string]bool{"config": true, "print-config": true, "help": true}

// applyConfigFile sets every flag the file names and the command line did
// not set.
func applyConfigFile(fs *pflag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var kv map[string]any
	if err := toml.Unmarshal(b, &kv); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return fmt.Errorf("--config %s: line %d, column %d: %v", path, row, col, de)
		}
		return fmt.Errorf("--config %s: %w", path, err)
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if secretKey(k) {
			return fmt.Errorf("--config %s: %q: passwords are never in the config file; give them in the environment or in a file named by the matching *-password-file key", path, k)
		}
		f := fs.Lookup(k)
		if f == nil || configSelf[k] {
			return fmt.Errorf("--config %s: unknown key %q (the keys are the flags' names without \"--\"; binlogsvr --help lists them)", path, k)
		}
		if f.Changed {
			continue // NB: the command line wins
		}
		vals, err := configValues(kv[k])
		if err != nil {
			return fmt.Errorf("--config %s: %q: %w", path, k, err)
		}
		for _, v := range vals {
			if err := fs.Set(k, v); err != nil {
				return fmt.Errorf("--config %s: %q = %q: %w", path, k, v, err)
			}
		}
	}
	return nil
}

// configValues turns a TOML value into the flag values it stands for: one
// for a scalar, one per element for an array (repeatable flags).
func configValues(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case bool:
		return []string{strconv.FormatBool(x)}, nil
	case int64:
		return []string{strconv.FormatInt(x, 10)}, nil
	case float64:
		return []string{strconv.FormatFloat(x, 'f', -1, 64)}, nil
	case []any:
		var out []string
		for _, e := range x {
			s, err := configValues(e)
			if err != nil {
				return nil, err
			}
			if len(s) != 1 {
				return nil, errors.New("an array of arrays")
			}
			out = append(out, s[0])
		}
		return out, nil
	}
	return nil, fmt.Errorf("a %T: use a string, a number, a boolean or an array of them", v)
}

// secretKey reports whether a key would carry a secret itself (a password
// or a token), not the name of a file holding it.
func secretKey(k string) bool {
	if strings.HasSuffix(k, "-file") {
		return false
	}
	for _, w := range []string{"password", "secret", "token"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// printConfig writes the effective configuration as a config file: the
// flags the command line or the file set, then every other flag at its
// default, commented out (so the output is itself a valid config file).
func printConfig(w io.Writer, fs *pflag.FlagSet) error {
	var set, defaults []string
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if configSelf[f.Name] || err != nil {
			return
		}
		var v any = f.Value.String()
		switch f.Value.Type() {
		case "bool":
			v, _ = strconv.ParseBool(f.Value.String())
		case "int", "int32", "int64", "uint", "uint32", "uint64":
			if n, perr := strconv.ParseInt(f.Value.String(), 10, 64); perr == nil {
				v = n
			}
		case "stringArray", "stringSlice":
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				v = append([]string{}, sv.GetSlice()...)
			}
		}
		if secretKey(f.Name) {
			v = "(masked)" // NB: no such flag today; a future one must not leak here
		}
		b, merr := toml.Marshal(map[string]any{f.Name: v})
		if merr != nil {
			err = merr
			return
		}
		line := strings.TrimSpace(string(b))
		if f.Changed {
			set = append(set, line)
		} else {
			defaults = append(defaults, "# "+line)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "# binlogsvr --print-config: the effective configuration")
	fmt.Fprintln(w, "# set by the command line or --config:")
	for _, l := range set {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w, "# defaults:")
	for _, l := range defaults {
		fmt.Fprintln(w, l)
	}
	return nil
}
