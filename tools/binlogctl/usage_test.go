package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// ctl runs binlogctl against an admin address where nothing listens: a
// command that gets past its arguments fails to reach it (exit 1).
func ctl(args ...string) (code int, out string) {
	var o, e bytes.Buffer
	code = run(append([]string{"--insecure", "--admin", "127.0.0.1:1", "--timeout", "2s"}, args...), &o, &e)
	return code, o.String() + e.String()
}

// usageLine is one command line of binlogctl --help, split into what a
// command accepts.
type usageLine struct {
	synopsis string
	words    []string          // the command and its literal subcommands
	args     []string          // required positional placeholders (ID, FILE, ...)
	flags    map[string]string // required flags and their placeholder
	optional []string          // every flag named in brackets
	alts     bool              // a required choice of subcommands (a|b|c)
}

func parseLine(s string) usageLine {
	u := usageLine{synopsis: s, flags: map[string]string{}}
	toks := strings.Fields(s)
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case strings.HasPrefix(t, "["):
			for _, f := range strings.FieldsFunc(t, func(r rune) bool { return r == '[' || r == ']' || r == '|' }) {
				if strings.HasPrefix(f, "--") {
					u.optional = append(u.optional, f)
				}
			}
			if !strings.HasSuffix(t, "]") && i+1 < len(toks) { // "[--to ADDR]"
				i++
			}
		case strings.HasPrefix(t, "--"):
			u.flags[t] = ""
			if i+1 < len(toks) && !strings.HasPrefix(toks[i+1], "-") && !strings.HasPrefix(toks[i+1], "[") {
				u.flags[t] = toks[i+1]
				i++
			}
		case strings.Contains(t, "|"):
			u.alts = true
		case t == strings.ToLower(t) && len(u.args) == 0:
			u.words = append(u.words, t)
		default:
			u.args = append(u.args, t)
		}
	}
	return u
}

// dummy is a value for a placeholder.
func dummy(p string) string {
	switch p {
	case "ID", "N":
		return "7"
	case "FILE":
		return "binlog.000002"
	}
	return "127.0.0.1:1" // HOST:PORT, H:P, ADDR
}

// TestUsageMatchesCommands checks every command line of binlogctl --help
// against what the command accepts: a command whose help shows required
// arguments refuses to run without them (exit 2) and quotes the same usage
// line; one whose arguments are all optional runs without them (it gets as
// far as the admin API); a required flag left empty is refused the same
// way; every flag the line names is one the command takes (its --help
// lists it).
func TestUsageMatchesCommands(t *testing.T) {
	lines := synopses()
	if len(lines) < 15 {
		t.Fatalf("parsed %d command lines from the usage: %q", len(lines), lines)
	}
	seen := map[string]bool{}
	for _, s := range lines {
		u := parseLine(s)
		name := u.words[0]
		seen[name] = true
		if _, ok := commands()[name]; !ok {
			t.Errorf("%q: binlogctl has no command %q", s, name)
			continue
		}
		want := "usage: binlogctl " + s
		required := len(u.args) > 0 || u.alts
		code, out := ctl(u.words...)
		switch {
		case required && (code != 2 || !strings.Contains(out, want)):
			t.Errorf("binlogctl %s (no arguments): exit %d, want 2 and %q:\n%s", strings.Join(u.words, " "), code, want, out)
		case !required && len(u.flags) == 0 && code == 2:
			t.Errorf("%q shows no required argument, but binlogctl %s refuses to run without one:\n%s", s, strings.Join(u.words, " "), out)
		case !required && len(u.flags) == 0 && !strings.Contains(out, "cannot reach the admin API"):
			t.Errorf("binlogctl %s did not get as far as the admin API:\n%s", strings.Join(u.words, " "), out)
		}
		full := append([]string(nil), u.words...)
		for _, a := range u.args {
			full = append(full, dummy(a))
		}
		for f := range u.flags {
			args := append(append([]string(nil), full...), f+"=")
			if code, out := ctl(args...); code != 2 || !strings.Contains(out, want) {
				t.Errorf("binlogctl %s: exit %d, want 2 and %q:\n%s", strings.Join(args, " "), code, want, out)
			}
		}
		if u.alts {
			continue // NB: certs: its --help is the list of its subcommands
		}
		code, out = ctl(append(append([]string(nil), u.words...), "--help")...)
		if code != 0 {
			t.Errorf("binlogctl %s --help: exit %d:\n%s", strings.Join(u.words, " "), code, out)
		}
		var named []string
		for f := range u.flags {
			named = append(named, f)
		}
		for _, f := range append(named, u.optional...) {
			if !strings.Contains(out, f+" ") {
				t.Errorf("%q names %s, which binlogctl %s --help does not list:\n%s", s, f, strings.Join(u.words, " "), out)
			}
		}
	}
	for name := range commands() {
		if !seen[name] {
			t.Errorf("command %q is missing from binlogctl --help", name)
		}
	}
}

// TestPurgeExitCodes: binlogctl purge exits 3 when holds kept files it
// was asked to purge (partly purged, or refused), and prints what held
// them; 0 when everything asked went; 1 when the member failed.
func TestPurgeExitCodes(t *testing.T) {
	held := []api.Hold{{File: 2, Name: "binlog.000002", By: "replica server_id 3 (127.0.0.1:5000) of member 1", Why: "it reads binlog.000002:4"}}
	for _, tc := range []struct {
		name   string
		status int
		answer any
		code   int
		out    string
	}{
		{"partial", http.StatusOK, api.PurgePlan{Requested: 3, UpTo: 2, Holds: held, Done: true, FirstFile: "binlog.000002",
			Message: "purged below binlog.000002 only: binlog.000002 is held by replica server_id 3"}, 3, "held: binlog.000002 by replica server_id 3"},
		{"refused", http.StatusConflict, struct {
			Error string `json:"error"`
			api.PurgePlan
		}{"purge up to binlog.000003 refused: held", api.PurgePlan{Requested: 3, UpTo: 1, Holds: held, Message: "nothing purged"}}, 3, "409 Conflict"},
		{"whole", http.StatusOK, api.PurgePlan{Requested: 3, UpTo: 3, Done: true, FirstFile: "binlog.000003", Message: "purged the files below binlog.000003 on every member"}, 0, "on every member"},
		{"failed", http.StatusServiceUnavailable, map[string]string{"error": "no quorum"}, 1, "no quorum"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path != "/purge" || req.FormValue("to") != "binlog.000003" {
				http.Error(w, "unexpected "+req.URL.String(), http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			_ = json.NewEncoder(w).Encode(tc.answer)
		}))
		var o, e bytes.Buffer
		code := run([]string{"--insecure", "--admin", strings.TrimPrefix(srv.URL, "http://"), "purge", "binlog.000003"}, &o, &e)
		srv.Close()
		if code != tc.code || !strings.Contains(o.String()+e.String(), tc.out) {
			t.Errorf("%s: exit %d, want %d and %q:\n%s%s", tc.name, code, tc.code, tc.out, o.String(), e.String())
		}
	}
}
