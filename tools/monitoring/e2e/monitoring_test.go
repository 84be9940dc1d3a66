package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

const wait = 90 * time.Second

func monitoringDir(t *testing.T) string {
	t.Helper()
	root, err := fleet.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "tools", "monitoring")
}

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the prometheus package (make peers)", name)
	}
	return p
}

// TestPromtool: the rules are valid and their unit tests pass.
func TestPromtool(t *testing.T) {
	promtool := tool(t, "promtool")
	dir := monitoringDir(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// metricRE finds the binlogsvr metric names in PromQL expressions.
var metricRE = regexp.MustCompile(`\bbinlogsvr_[a-z0-9_]+`)

// referenced returns the binlogsvr metric names the dashboard's and the
// alerts' expressions use, each with where it is used.
func referenced(t *testing.T) map[string]string {
	t.Helper()
	dir := monitoringDir(t)
	refs := map[string]string{}
	b, err := os.ReadFile(filepath.Join(dir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range metricRE.FindAllString(tg.Expr, -1) {
				refs[m] = "dashboard panel " + p.Title
			}
		}
	}
	a, err := os.ReadFile(filepath.Join(dir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(a), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range metricRE.FindAllString(line, -1) {
			refs[m] = "alerts.yml"
		}
	}
	if len(refs) < 10 {
		t.Fatalf("only %d metrics referenced: the parsing is broken", len(refs))
	}
	return refs
}

// onlyWithClients are metrics a member exposes only while a replica or CDC
// client is connected (one series per client, no series without one), or
// from the first dump error or refused login (one series per reason).
var onlyWithClients = map[string]bool{
	"binlogsvr_dump_lag_seconds":          true,
	"binlogsvr_dump_sent_bytes_total":     true,
	"binlogsvr_dump_sent_events_total":    true,
	"binlogsvr_dump_heartbeats_total":     true,
	"binlogsvr_dump_semisync_acks_total":  true,
	"binlogsvr_dump_errors_total":         true,
	"binlogsvr_dump_logins_refused_total": true,
}

// exposed returns the metric names (histograms and counters by their base
// names and sample names) in a /metrics body.
func exposed(body string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

func startFleet(t *testing.T) (*fleet.Fleet, *sandbox.Server) {
	t.Helper()
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true})
	user, pass := src.ReplUser()
	ctx := context.Background()
	f, err := fleet.StartEach(ctx, fleet.Options{Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass},
		func(uint64) fleet.MemberSpec { return fleet.MemberSpec{Serve: true} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			t.Logf("%s", f.LogTails(30))
		}
	})
	if _, err := f.WaitStreaming(ctx, wait); err != nil {
		t.Fatalf("the fleet does not stream from its source: %v", err)
	}
	return f, src
}

// scrape fetches a member's /metrics with the fleet's read token, as
// Prometheus does.
func scrape(ctx context.Context, f *fleet.Fleet, id uint64) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL(id, "/metrics"), nil)
	if err != nil {
		return "", err
	}
	resp, err := f.HTTPWithToken(f.PKI.ReadToken).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s: %s", resp.Status, b)
	}
	return string(b), err
}

// rulesFile returns alerts.yml.
func rulesFile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir(t), "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// shortFor returns rules with alert's "for:" set to d: the test copy a
// test can wait for.
func shortFor(t *testing.T, rules, alert, d string) string {
	t.Helper()
	s := rules
	i := strings.Index(s, "- alert: "+alert+"\n")
	if i < 0 {
		t.Fatalf("alerts.yml has no %s", alert)
	}
	j := strings.Index(s[i:], "for: ")
	k := strings.Index(s[i+j:], "\n")
	return s[:i+j] + "for: " + d + s[i+j+k:]
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func alerts(ctx context.Context, base string) ([]promAlert, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/alerts", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Alerts []promAlert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("/api/v1/alerts: status %q", r.Status)
	}
	return r.Data.Alerts, nil
}

// targetsUp waits until Prometheus scrapes every target successfully.
func targetsUp(ctx context.Context, base string, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/targets?state=active", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			ActiveTargets []struct {
				ScrapeURL string `json:"scrapeUrl"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return err
	}
	up := 0
	var bad []string
	for _, tg := range r.Data.ActiveTargets {
		if tg.Health == "up" {
			up++
		} else {
			bad = append(bad, fmt.Sprintf("%s %s %s", tg.ScrapeURL, tg.Health, tg.LastError))
		}
	}
	if up != n {
		return fmt.Errorf("%d of %d targets up: %v", up, n, bad)
	}
	return nil
}

// startPrometheus runs a real Prometheus on loopback that scrapes the
// fleet every second with the test copy of the rules; it is stopped (by
// its PID) when the test ends.
func startPrometheus(t *testing.T, f *fleet.Fleet, rules string) string {
	t.Helper()
	bin := tool(t, "prometheus")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "read.token")
	if err := os.WriteFile(tokenFile, []byte(f.PKI.ReadToken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, m := range f.Members {
		targets = append(targets, fmt.Sprintf("%q", m.AdminAddr))
	}
	// NB: the scrape configuration the README documents: HTTPS verified
	// against the fleet's CA, a read token.
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: binlogsvr
    scheme: https
    tls_config:
      ca_file: %s
    authorization:
      credentials_file: %s
    static_configs:
      - targets: [%s]
`, f.PKI.CA, tokenFile, strings.Join(targets, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := fleet.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config.file", filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", addr, "--log.level", "warn")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // NB: never outlive the test
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	return "http://" + addr
}

// TestFleetMonitoring starts a fleet in front of a real MariaDB source,
// checks that every metric the dashboard and the alerts use is one its
// members expose, has a real Prometheus scrape it, then kills a member
// with SIGKILL and waits until Prometheus fires BinlogsvrMemberDown for
// it, with no BinlogsvrNoLeader (two members keep the quorum); then turns
// semi-sync off on the source and waits for BinlogsvrSourceAsync.
func TestFleetMonitoring(t *testing.T) {
	tool(t, "prometheus")
	f, src := startFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// A few semi-sync commits, so that the ACK histograms have series.
	for _, q := range []string{"CREATE DATABASE mon", "CREATE TABLE mon.t (id INT PRIMARY KEY)", "INSERT INTO mon.t VALUES (1)", "INSERT INTO mon.t VALUES (2)"} {
		if _, err := src.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	names := map[string]bool{}
	err := fleet.Poll(ctx, wait, func() error {
		for _, m := range f.Members {
			body, err := scrape(ctx, f, m.ID)
			if err != nil {
				return fmt.Errorf("member %d: %w", m.ID, err)
			}
			for n := range exposed(body) {
				names[n] = true
			}
		}
		if !names["binlogsvr_semisync_ack_stage_seconds_bucket"] {
			return fmt.Errorf("no ACK sent yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for m, where := range referenced(t) {
		if !names[m] && !onlyWithClients[m] {
			missing = append(missing, m+" ("+where+")")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("metrics the monitoring uses that no member exposes:\n  %s", strings.Join(missing, "\n  "))
	}

	rules := shortFor(t, rulesFile(t), "BinlogsvrMemberDown", "5s")
	rules = shortFor(t, rules, "BinlogsvrSourceAsync", "3s")
	prom := startPrometheus(t, f, rules)
	if err := fleet.Poll(ctx, wait, func() error { return targetsUp(ctx, prom, len(f.Members)) }); err != nil {
		t.Fatalf("prometheus does not scrape the fleet: %v", err)
	}
	// NB: a settled fleet fires nothing but the alerts that need history.
	firing := func() (map[string][]map[string]string, error) {
		as, err := alerts(ctx, prom)
		if err != nil {
			return nil, err
		}
		out := map[string][]map[string]string{}
		for _, a := range as {
			if a.State == "firing" {
				out[a.Labels["alertname"]] = append(out[a.Labels["alertname"]], a.Labels)
			}
		}
		return out, nil
	}
	time.Sleep(3 * time.Second) // a few evaluations of the rules on a healthy fleet
	if fs, err := firing(); err != nil {
		t.Fatal(err)
	} else if len(fs) > 0 {
		t.Fatalf("alerts firing on a healthy fleet: %v", fs)
	}

	victim := f.Member(3)
	if l, err := f.Leader(ctx, wait); err == nil && l == victim.ID {
		victim = f.Member(2)
	}
	start := time.Now()
	if err := f.Kill(victim.ID); err != nil {
		t.Fatal(err)
	}
	err = fleet.Poll(ctx, wait, func() error {
		fs, err := firing()
		if err != nil {
			return err
		}
		for _, l := range fs["BinlogsvrMemberDown"] {
			if l["instance"] == victim.AdminAddr && l["severity"] == "warning" && l["job"] == "binlogsvr" {
				return nil
			}
		}
		return fmt.Errorf("BinlogsvrMemberDown not firing for %s; firing: %v", victim.AdminAddr, fs)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BinlogsvrMemberDown fired %s after kill -9 of member %d", time.Since(start).Round(100*time.Millisecond), victim.ID)
	fs, err := firing()
	if err != nil {
		t.Fatal(err)
	}
	if len(fs["BinlogsvrNoLeader"]) > 0 {
		t.Errorf("BinlogsvrNoLeader fired with two of three members up: %v", fs)
	}
	if len(fs["BinlogsvrSourceAsync"]) > 0 {
		t.Fatalf("BinlogsvrSourceAsync fired while the source waits for the fleet: %v", fs)
	}

	// The source stops waiting for the fleet: the fleet keeps streaming
	// (asynchronously), and the critical alert fires.
	if _, err := src.Exec(ctx, "SET GLOBAL rpl_semi_sync_master_enabled = OFF"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	err = fleet.Poll(ctx, wait, func() error {
		fs, err := firing()
		if err != nil {
			return err
		}
		if len(fs["BinlogsvrSourceAsync"]) == 1 && fs["BinlogsvrSourceAsync"][0]["severity"] == "critical" {
			return nil
		}
		return fmt.Errorf("BinlogsvrSourceAsync not firing; firing: %v", fs)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BinlogsvrSourceAsync fired %s after semi-sync was turned off on the source", time.Since(start).Round(100*time.Millisecond))
}
