package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "binlogsvr.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The file sets flags by their names; the command line wins; repeatable
// flags take arrays; the result is what --print-config prints, and that
// output is itself a config file giving the same configuration.
func TestConfigFile(t *testing.T) {
	p := writeConfig(t, `
# a member of the fleet
source = "db1:3306"
source-user = "repl"
source-start = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-20"
failover-lease = "5s"
failover-candidate = ["r1:3306,priority=5", "r2:3306"]
dump-max-clients = 200
insecure = true
admin-addr = "127.0.0.1:7071"
`)
	cfg, done, err := parseArgs([]string{"--config", p, "--admin-addr", "127.0.0.1:9999"}, nil)
	if err != nil || done {
		t.Fatal(done, err)
	}
	if cfg.Source != "db1:3306" || cfg.Failover.Lease != 5*time.Second || cfg.Dump.MaxClients != 200 || !cfg.Insecure {
		t.Fatalf("from the file: source %q lease %v max clients %d insecure %v", cfg.Source, cfg.Failover.Lease, cfg.Dump.MaxClients, cfg.Insecure)
	}
	if got := strings.Join(cfg.Failover.Candidates, " "); got != "r1:3306,priority=5 r2:3306" {
		t.Fatalf("candidates %q", got)
	}
	if cfg.SourceStart != "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-20" {
		t.Fatalf("source-start from the file: %q", cfg.SourceStart)
	}
	if cfg.AdminAddr != "127.0.0.1:9999" {
		t.Fatalf("the command line must win: admin addr %q", cfg.AdminAddr)
	}

	var out bytes.Buffer
	if _, done, err := parseArgs([]string{"--config", p, "--admin-addr", "127.0.0.1:9999", "--print-config"}, &out); err != nil || !done {
		t.Fatal(done, err)
	}
	var printed map[string]any
	if err := toml.Unmarshal(out.Bytes(), &printed); err != nil {
		t.Fatalf("--print-config is not TOML: %v\n%s", err, out.String())
	}
	if printed["source"] != "db1:3306" || printed["admin-addr"] != "127.0.0.1:9999" || printed["dump-max-clients"] != int64(200) || printed["insecure"] != true {
		t.Fatalf("--print-config: %v", printed)
	}
	again := writeConfig(t, out.String())
	cfg2, _, err := parseArgs([]string{"--config", again}, nil)
	if err != nil {
		t.Fatalf("--print-config's output as a config file: %v", err)
	}
	if cfg2.Source != cfg.Source || cfg2.SourceStart != cfg.SourceStart || cfg2.AdminAddr != cfg.AdminAddr || cfg2.Failover.Lease != cfg.Failover.Lease ||
		strings.Join(cfg2.Failover.Candidates, " ") != strings.Join(cfg.Failover.Candidates, " ") || cfg2.Dump.MaxClients != cfg.Dump.MaxClients {
		t.Fatalf("round trip: %+v", cfg2)
	}
}

// Bad files get errors naming the key, the line or the fix.
func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{`sourse = "db1:3306"`, `unknown key "sourse"`},
		{`source-password = "x"`, "passwords are never in the config file"},
		{`failover-lease = "soon"`, `"failover-lease" = "soon"`},
		{"source = \"db1\nx", "line 1"},
		{`config = "other.toml"`, `unknown key "config"`},
		{`dump-max-clients = {a = 1}`, "use a string, a number, a boolean or an array"},
	} {
		_, _, err := parseArgs([]string{"--config", writeConfig(t, tc.text)}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want an error naming %q", tc.text, err, tc.want)
		}
	}
	if _, _, err := parseArgs([]string{"--config", "/nonexistent/binlogsvr.toml"}, nil); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("a missing file: %v", err)
	}
	// The files named by *-password-file keys are fine.
	if _, _, err := parseArgs([]string{"--config", writeConfig(t, `dump-password-file = "/etc/binlogsvr/dump.pw"`)}, nil); err != nil {
		t.Errorf("a password file key: %v", err)
	}
}
