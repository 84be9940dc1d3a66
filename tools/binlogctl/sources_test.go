package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// fakeAdmin is an admin API that records each request and answers with
// answer(req) (status, JSON body).
type fakeAdmin struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []string // "METHOD PATH[?QUERY]"
	forms  []url.Values
	answer func(req *http.Request) (int, any)
}

func newFakeAdmin(t *testing.T, answer func(req *http.Request) (int, any)) *fakeAdmin {
	f := &fakeAdmin{answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_ = req.ParseForm()
		f.mu.Lock()
		r := req.Method + " " + req.URL.Path
		if req.URL.RawQuery != "" {
			r += "?" + req.URL.RawQuery
		}
		f.reqs = append(f.reqs, r)
		f.forms = append(f.forms, req.PostForm)
		f.mu.Unlock()
		code, v := http.StatusOK, any(nil)
		if f.answer != nil {
			code, v = f.answer(req)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// run runs binlogctl against the fake, returns the exit code, the output
// and the requests it made (and forgets them).
func (f *fakeAdmin) run(args ...string) (int, string, []string, []url.Values) {
	var o, e bytes.Buffer
	code := run(append([]string{"--insecure", "--admin", strings.TrimPrefix(f.srv.URL, "http://"), "--timeout", "5s"}, args...), &o, &e)
	f.mu.Lock()
	defer f.mu.Unlock()
	reqs, forms := f.reqs, f.forms
	f.reqs, f.forms = nil, nil
	return code, o.String() + e.String(), reqs, forms
}

// TestSourceNamePrefix: with --source-name every per-source command calls
// the same paths as without it, under /sources/NAME; sources (and its
// subcommands) never do. Every command of binlogctl has a case here, so a
// new one cannot forget the prefix unnoticed.
func TestSourceNamePrefix(t *testing.T) {
	perSource := [][]string{
		{"status"},
		{"members"},
		{"add-learner", "4", "--raft-addr", "127.0.0.1:7000"},
		{"promote", "4"},
		{"promote", "--to", "127.0.0.1:3307", "--wait", "1s"},
		{"demote", "4"},
		{"remove", "4"},
		{"transfer-leader", "2"},
		{"weight", "2", "10"},
		{"purge", "binlog.000002"},
		{"rotate"},
		{"failover", "--wait", "1s"},
		{"failover", "status"},
		{"failover", "forget-fence", "127.0.0.1:3306"},
		{"history"},
		{"candidates"},
		{"candidates", "add", "127.0.0.1:3307"},
		{"candidates", "remove", "127.0.0.1:3307"},
		{"rejoin-check", "127.0.0.1:3306"},
		{"rejoin", "127.0.0.1:3306"},
	}
	fleet := [][]string{
		{"sources"},
		{"sources", "add", "db-2", "--source", "127.0.0.1:3306"},
		{"sources", "remove", "db-2"},
		{"sources", "move", "db-2", "--from", "3", "--to", "5"},
		{"sources", "history"},
		{"hosts"},
		{"hosts", "add", "4", "--raft-addr", "127.0.0.1:7004", "--admin-addr", "127.0.0.1:7074"},
	}
	covered := map[string]bool{"certs": true} // NB: certs calls no API
	f := newFakeAdmin(t, nil)
	for _, args := range perSource {
		covered[args[0]] = true
		_, out, plain, _ := f.run(args...)
		if len(plain) == 0 {
			t.Errorf("binlogctl %s made no request:\n%s", strings.Join(args, " "), out)
			continue
		}
		_, out, named, _ := f.run(append([]string{"--source-name", "db-1"}, args...)...)
		var want []string
		for _, r := range plain {
			m, p, _ := strings.Cut(r, " ")
			want = append(want, m+" /sources/db-1"+p)
		}
		if !slices.Equal(named, want) {
			t.Errorf("binlogctl --source-name db-1 %s called %q, want %q:\n%s", strings.Join(args, " "), named, want, out)
		}
	}
	for _, args := range fleet {
		covered[args[0]] = true
		_, out, named, _ := f.run(append([]string{"--source-name", "db-1"}, args...)...)
		for _, r := range named {
			if strings.Contains(r, "db-1") {
				t.Errorf("binlogctl --source-name db-1 %s called %s: sources is fleet-wide:\n%s", strings.Join(args, " "), r, out)
			}
		}
		if len(named) == 0 {
			t.Errorf("binlogctl %s made no request:\n%s", strings.Join(args, " "), out)
		}
	}
	for name := range commands() {
		if !covered[name] {
			t.Errorf("command %q has no case in TestSourceNamePrefix", name)
		}
	}
	// $BINLOGCTL_SOURCE is the flag's default.
	t.Setenv("BINLOGCTL_SOURCE", "db-3")
	if _, out, reqs, _ := f.run("rotate"); !slices.Equal(reqs, []string{"POST /sources/db-3/rotate"}) {
		t.Errorf("BINLOGCTL_SOURCE=db-3 binlogctl rotate called %q:\n%s", reqs, out)
	}
}

// TestSourceName: a bad --source-name is a usage error naming the rule,
// and no request goes out.
func TestSourceName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"db-1", true}, {"orders2", true}, {strings.Repeat("a", 63), true},
		{"", false}, {strings.Repeat("a", 64), false}, {"1db", false}, {"-db", false}, {"db-", false},
		{"Db", false}, {"db_1", false}, {"db.1", false}, {"db/1", false}, {"db 1", false}, {"dé", false},
	} {
		if err := validSourceName(tc.name); (err == nil) != tc.ok {
			t.Errorf("validSourceName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	f := newFakeAdmin(t, nil)
	code, out, reqs, _ := f.run("--source-name", "DB/1", "status")
	if code != 2 || !strings.Contains(out, "--source-name") || !strings.Contains(out, "DNS label") || len(reqs) != 0 {
		t.Errorf("binlogctl --source-name DB/1 status: exit %d, requests %q:\n%s", code, reqs, out)
	}
}

// TestRootPathSeveralSources: a root path on a host of several sources
// answers 409 naming --source-name; binlogctl prints it and exits 1.
func TestRootPathSeveralSources(t *testing.T) {
	f := newFakeAdmin(t, func(*http.Request) (int, any) {
		return http.StatusConflict, map[string]string{"error": "several sources: give --source-name"}
	})
	code, out, _, _ := f.run("members")
	if code != 1 || !strings.Contains(out, "409 Conflict: several sources: give --source-name (binlogctl sources lists them)") {
		t.Errorf("binlogctl members: exit %d:\n%s", code, out)
	}
}

// TestPrintSources: the table, sorted by name, with the leader's "-", the
// lag in human sizes ("-" when no ingest was read), learners after '+',
// and the error last.
func TestPrintSources(t *testing.T) {
	var b bytes.Buffer
	printSources(&b, []api.SourceInfo{
		{Name: "orders", SourceAddr: "db2:3306", ShardID: 3, State: "starting", Loggers: []uint64{5, 3, 4}},
		{Name: "billing", SourceAddr: "db1:3306", ShardID: 2, State: "active", Loggers: []uint64{1, 2, 3}, Learners: []uint64{4},
			Epoch: 7, Leader: 2, LagSeconds: 1.5, LagBytes: 3 << 20, Ingest: "streaming"},
		{Name: "audit", SourceAddr: "db3:3306", ShardID: 4, State: "active", Loggers: []uint64{1, 2, 3}, Learners: []uint64{5, 4},
			Epoch: 1, Error: "host 1 does not answer"},
	})
	want := "" +
		"NAME     SOURCE    SHARD  STATE     EPOCH  LEADER  LAG             INGEST     HOSTS       ERROR\n" +
		"audit    db3:3306  4      active    1      -       -               -          1,2,3 +4,5  host 1 does not answer\n" +
		"billing  db1:3306  2      active    7      2       1.5s / 3.0 MiB  streaming  1,2,3 +4    -\n" +
		"orders   db2:3306  3      starting  0      -       -               -          3,4,5       -\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	printSources(&b, nil)
	if !strings.Contains(b.String(), "no source yet") {
		t.Errorf("empty list: %q", b.String())
	}
}

// TestSourcesCommand: binlogctl sources prints GET /sources as a table,
// or as is with --json.
func TestSourcesCommand(t *testing.T) {
	ss := []api.SourceInfo{{Name: "b", SourceAddr: "db2:3306", ShardID: 2, State: "active", Loggers: []uint64{1, 2, 3}},
		{Name: "a", SourceAddr: "db1:3306", ShardID: 1, State: "active", Loggers: []uint64{1, 2, 3}, Leader: 1}}
	f := newFakeAdmin(t, func(*http.Request) (int, any) { return http.StatusOK, ss })
	code, out, reqs, _ := f.run("sources")
	if code != 0 || !slices.Equal(reqs, []string{"GET /sources"}) || strings.Index(out, "\na ") > strings.Index(out, "\nb ") {
		t.Errorf("binlogctl sources: exit %d, requests %q:\n%s", code, reqs, out)
	}
	code, out, _, _ = f.run("sources", "--json")
	var got []api.SourceInfo
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || len(got) != 2 || got[0].Name != "b" {
		t.Errorf("binlogctl sources --json: exit %d:\n%s", code, out)
	}
}

// TestSourcesAdd: the form sources add posts, the failover flags one per
// line, and what it prints.
func TestSourcesAdd(t *testing.T) {
	f := newFakeAdmin(t, func(req *http.Request) (int, any) {
		return http.StatusOK, api.SourceChange{Message: "source orders added (shard 3)", Version: 9,
			Source: api.SourceInfo{Name: req.PostFormValue("name"), SourceAddr: req.PostFormValue("source"), ShardID: 3, State: "starting",
				Loggers: []uint64{1, 2, 3}, Learners: []uint64{4}}}
	})
	code, out, reqs, forms := f.run("sources", "add", "orders", "--source", "db2:3306", "--hosts", "1,2,3", "--learners", "4",
		"--dump-addr", "1=:3310,2=10.0.0.2:3310", "--dump-addr", "4=10.0.0.4:3310",
		"--failover", "lease=5s", "--failover", "--failover-candidate=db3:3306,priority=2", "--failover", "failover-auto=false",
		"--retain", "files=50", "--retain", "--retain-age=240h")
	if code != 0 || !slices.Equal(reqs, []string{"POST /sources"}) {
		t.Fatalf("exit %d, requests %q:\n%s", code, reqs, out)
	}
	want := url.Values{"name": {"orders"}, "source": {"db2:3306"}, "hosts": {"1,2,3"}, "learners": {"4"},
		"dump_addr": {"1=:3310,2=10.0.0.2:3310,4=10.0.0.4:3310"},
		"failover":  {"--failover-lease=5s\n--failover-candidate=db3:3306,priority=2\n--failover-auto=false"},
		"retention": {"--retain-files=50\n--retain-age=240h"}}
	if got := forms[0]; !formsEqual(got, want) {
		t.Errorf("form %v, want %v", got, want)
	}
	for _, w := range []string{"source orders added (shard 3)", "orders  db2:3306", "1,2,3 +4"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// A retention flag binlogsvr does not have is refused here.
	if code, out, reqs, _ := f.run("sources", "add", "orders", "--source", "db2:3306", "--retain", "forever=1"); code != 2 || len(reqs) != 0 || !strings.Contains(out, "--retain") {
		t.Errorf("--retain forever=1: exit %d, requests %q:\n%s", code, reqs, out)
	}
	// Only what the user set goes: no hosts, loggers 5.
	_, out, _, forms = f.run("sources", "add", "orders", "--source", "db2:3306", "--loggers", "5")
	if want := (url.Values{"name": {"orders"}, "source": {"db2:3306"}, "loggers": {"5"}}); len(forms) != 1 || !formsEqual(forms[0], want) {
		t.Errorf("forms %v, want %v:\n%s", forms, want, out)
	}
}

func formsEqual(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestSourcesAddRefused: what sources add can check locally is a usage
// error naming the flag, and nothing is sent.
func TestSourcesAddRefused(t *testing.T) {
	f := newFakeAdmin(t, nil)
	base := []string{"sources", "add", "orders", "--source", "db2:3306"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sources", "add", "Orders", "--source", "db2:3306"}, "DNS label"},
		{[]string{"sources", "add", "orders"}, "--source HOST:PORT is required"},
		{[]string{"sources", "add", "orders", "--source", "db2"}, "--source: want HOST:PORT"},
		{[]string{"sources", "add", "orders", "--source", ":3306"}, "--source: \":3306\" has no host"},
		{[]string{"sources", "add", "orders", "--source", "db2:0"}, "the port must be 1 to 65535"},
		{append(base, "--hosts", "1,2"), "--hosts: 3 or 5 loggers, not 2"},
		{append(base, "--hosts", "1,2,x"), "--hosts \"1,2,x\": host id \"x\" is not a positive integer"},
		{append(base, "--hosts", "1,2,0"), "host id \"0\" is not a positive integer"},
		{append(base, "--hosts", "1,2,2"), "--hosts \"1,2,2\": host 2 is listed twice"},
		{append(base, "--hosts", "1,2,3", "--loggers", "3"), "--hosts and --loggers: give one"},
		{append(base, "--loggers", "4"), "--loggers: 3 or 5, not 4"},
		{append(base, "--hosts", "1,2,3", "--learners", "3"), "--learners: host 3 is in --hosts too"},
		{append(base, "--dump-addr", "db1:3310"), "--dump-addr \"db1:3310\": want HOST_ID=HOST:PORT"},
		{append(base, "--dump-addr", "1=:3310,1=:3311"), "--dump-addr: host 1 is given twice"},
		{append(base, "--dump-addr", "1=:99999"), "the port must be 1 to 65535"},
		{append(base, "--hosts", "1,2,3", "--dump-addr", "7=:3310"), "host 7 is in neither --hosts nor --learners"},
		{append(base, "--failover", "lease"), "--failover \"lease\": want NAME=VALUE"},
	} {
		code, out, reqs, _ := f.run(tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) || !strings.Contains(out, "usage: binlogctl sources add NAME") || len(reqs) != 0 {
			t.Errorf("binlogctl %s: exit %d, requests %q; want 2 and %q:\n%s", strings.Join(tc.args, " "), code, reqs, tc.want, out)
		}
	}
}

// TestSourcesRemove: DELETE /sources/NAME, ?force=1 with --force, the
// message printed; a refusal (409) printed with the member's reason and
// --force named, exit 1.
func TestSourcesRemove(t *testing.T) {
	f := newFakeAdmin(t, func(req *http.Request) (int, any) {
		if req.URL.Query().Get("force") == "" {
			return http.StatusConflict, map[string]string{"error": "source orders: 2 replicas are registered"}
		}
		return http.StatusOK, api.SourceChange{Message: "source orders removing: its hosts stop it and delete its data", Version: 10}
	})
	code, out, reqs, _ := f.run("sources", "remove", "orders", "--force")
	if code != 0 || !slices.Equal(reqs, []string{"DELETE /sources/orders?force=1"}) || !strings.Contains(out, "source orders removing") {
		t.Errorf("sources remove --force: exit %d, requests %q:\n%s", code, reqs, out)
	}
	code, out, reqs, _ = f.run("sources", "remove", "orders")
	if code != 1 || !slices.Equal(reqs, []string{"DELETE /sources/orders"}) ||
		!strings.Contains(out, "409 Conflict: source orders: 2 replicas are registered") || !strings.Contains(out, "remove orders --force") {
		t.Errorf("sources remove (refused): exit %d, requests %q:\n%s", code, reqs, out)
	}
	if code, out, reqs, _ := f.run("sources", "remove", "Orders"); code != 2 || !strings.Contains(out, "DNS label") || len(reqs) != 0 {
		t.Errorf("sources remove Orders: exit %d, requests %q:\n%s", code, reqs, out)
	}
}

// TestWatchFormsPrefix: the --watch forms call the same paths under
// /sources/NAME (sources --watch: none). Each watch is ended as Ctrl-C
// would: SIGINT, sent once a request shows its handler is in place.
func TestWatchFormsPrefix(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status"}, "GET /sources/db-1/status"},
		{[]string{"members"}, "GET /sources/db-1/members?refresh=1"},
		{[]string{"failover", "status"}, "GET /sources/db-1/failover/status"},
		{[]string{"sources"}, "GET /sources"},
	} {
		f := newFakeAdmin(t, nil)
		seen := make(chan struct{}, 100)
		f.answer = func(*http.Request) (int, any) { seen <- struct{}{}; return http.StatusOK, nil }
		done := make(chan []string, 1)
		go func() {
			_, _, reqs, _ := f.run(append(append([]string{"--source-name", "db-1"}, tc.args...), "--watch", "--interval", "100ms")...)
			done <- reqs
		}()
		for range 2 {
			select {
			case <-seen:
			case <-time.After(10 * time.Second):
				t.Fatalf("binlogctl %s --watch made no request", strings.Join(tc.args, " "))
			}
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		var reqs []string
		select {
		case reqs = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("binlogctl %s --watch did not end on SIGINT", strings.Join(tc.args, " "))
		}
		if len(reqs) < 2 || reqs[0] != tc.want {
			t.Errorf("binlogctl --source-name db-1 %s --watch called %q, want %s first", strings.Join(tc.args, " "), reqs, tc.want)
		}
		for _, r := range reqs {
			if strings.HasPrefix(tc.want, "GET /sources/db-1") != strings.HasPrefix(r, "GET /sources/db-1/") {
				t.Errorf("binlogctl --source-name db-1 %s --watch called %s", strings.Join(tc.args, " "), r)
			}
		}
	}
}
