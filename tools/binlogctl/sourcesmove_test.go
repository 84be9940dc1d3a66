package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// TestSourcesMove: the path (the name escaped as a path segment) and the
// form sources move posts, only the fields set, and the message printed.
func TestSourcesMove(t *testing.T) {
	f := newFakeAdmin(t, func(req *http.Request) (int, any) {
		return http.StatusOK, api.SourceChange{Message: "source orders: moving its logger from host 3 to host 5", Version: 11}
	})
	code, out, reqs, forms := f.run("sources", "move", "orders", "--from", "3", "--to", "5", "--dump-addr", "10.0.0.5:3307")
	if code != 0 || !slices.Equal(reqs, []string{"POST /sources/orders/move"}) || !strings.Contains(out, "moving its logger from host 3 to host 5") {
		t.Fatalf("exit %d, requests %q:\n%s", code, reqs, out)
	}
	if want := (url.Values{"from": {"3"}, "to": {"5"}, "dump_addr": {"10.0.0.5:3307"}}); !formsEqual(forms[0], want) {
		t.Errorf("form %v, want %v", forms[0], want)
	}
	// No --dump-addr: no dump_addr field (the daemon's "" for none).
	_, out, _, forms = f.run("sources", "move", "orders", "--to=5", "--from=3")
	if want := (url.Values{"from": {"3"}, "to": {"5"}}); len(forms) != 1 || !formsEqual(forms[0], want) {
		t.Errorf("forms %v, want %v:\n%s", forms, want, out)
	}
	// The path escapes the name: a name validSourceName would refuse cannot
	// get this far, so movePath is checked on its own.
	if got := movePath("a/b c?"); got != "/sources/a%2Fb%20c%3F/move" {
		t.Errorf("movePath: %s", got)
	}
}

// TestSourcesMoveRefused: what sources move checks locally is a usage
// error naming the flag, and nothing is sent.
func TestSourcesMoveRefused(t *testing.T) {
	f := newFakeAdmin(t, nil)
	base := []string{"sources", "move", "orders"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sources", "move", "Orders", "--from", "3", "--to", "5"}, "NAME \"Orders\": a source name is a DNS label"},
		{[]string{"sources", "move", "db/1", "--from", "3", "--to", "5"}, "DNS label"},
		{[]string{"sources", "move", "--from", "3", "--to", "5"}, "usage: binlogctl sources move NAME"},
		{append(base, "--to", "5"), "--from HOST_ID is required"},
		{append(base, "--from", "3"), "--to HOST_ID is required"},
		{append(base, "--from", "0", "--to", "5"), "--from \"0\": a host id is a positive integer"},
		{append(base, "--from", "-3", "--to", "5"), "--from \"-3\": a host id is a positive integer"},
		{append(base, "--from", "3", "--to", "x"), "--to \"x\": a host id is a positive integer"},
		{append(base, "--from", "3", "--to", "3"), "--from and --to are both host 3"},
		{append(base, "--from", "3", "--to", "5", "--dump-addr", "10.0.0.5"), "--dump-addr: want HOST:PORT"},
		{append(base, "--from", "3", "--to", "5", "--dump-addr", "10.0.0.5:0"), "--dump-addr: \"10.0.0.5:0\": the port must be 1 to 65535"},
		{append(base, "--from", "3", "--to", "5", "--timeout-move", "1m"), "--timeout-move bounds --wait"},
		{append(base, "--from", "3", "--to", "5", "--wait", "--timeout-move", "0s"), "--timeout-move 0s: want a positive duration"},
	} {
		code, out, reqs, _ := f.run(tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) || !strings.Contains(out, "usage: binlogctl sources move NAME --from H --to H") || len(reqs) != 0 {
			t.Errorf("binlogctl %s: exit %d, requests %q; want 2 and %q:\n%s", strings.Join(tc.args, " "), code, reqs, tc.want, out)
		}
	}
}

// moveFake is an admin API where a move of orders from host 3 to host 5
// goes through the GET /sources answers in steps, one per read; the last
// one is repeated.
func moveFake(t *testing.T, steps []api.SourceInfo) *fakeAdmin {
	var mu sync.Mutex
	n := 0
	return newFakeAdmin(t, func(req *http.Request) (int, any) {
		if req.Method == http.MethodPost {
			return http.StatusOK, api.SourceChange{Message: "source orders: moving its logger from host 3 to host 5"}
		}
		mu.Lock()
		defer mu.Unlock()
		s := steps[min(n, len(steps)-1)]
		n++
		return http.StatusOK, []api.SourceInfo{{Name: "billing", Loggers: []uint64{1, 2, 3}}, s}
	})
}

func shortPoll(t *testing.T) {
	old := movePoll
	movePoll = 10 * time.Millisecond
	t.Cleanup(func() { movePoll = old })
}

// TestSourcesMoveWait: --wait prints a line per step (and a step's error
// once, while it persists) and ends with exit 0 once the source shows no
// move and runs on host 5, not 3.
func TestSourcesMoveWait(t *testing.T) {
	shortPoll(t)
	mv := func(step, err string, hosts ...uint64) api.SourceInfo {
		s := api.SourceInfo{Name: "orders", Loggers: []uint64{1, 2, 3}, Learners: hosts}
		if step != "" {
			s.Move = &api.SourceMove{From: 3, To: 5, Step: step, Error: err}
		}
		return s
	}
	done := api.SourceInfo{Name: "orders", Loggers: []uint64{1, 2, 5}}
	f := moveFake(t, []api.SourceInfo{
		mv("", ""), // the host asked has not seen the move begin
		mv("begun", ""), mv("begun", ""),
		mv("learner", "", 5), mv("learner", "host 5 does not answer", 5), mv("learner", "host 5 does not answer", 5), mv("learner", "", 5),
		{Name: "orders", Loggers: []uint64{1, 2, 3, 5}, Move: &api.SourceMove{From: 3, To: 5, Step: "promoted"}},
		{Name: "orders", Loggers: []uint64{1, 2, 5}, Move: &api.SourceMove{From: 3, To: 5, Step: "removed"}},
		done,
	})
	code, out, reqs, _ := f.run("sources", "move", "orders", "--from", "3", "--to", "5", "--wait", "--timeout-move", "30s")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	want := "source orders: moving its logger from host 3 to host 5\n" +
		"waiting up to 30s for the move (Ctrl-C stops the wait, not the move)\n" +
		"no move shown yet (hosts 1,2,3)\n" +
		"step begun: moving the logger of host 3 to host 5\n" +
		"step learner: host 5 added as a learner, catching up\n" +
		"step learner failed: host 5 does not answer (retrying)\n" +
		"step promoted: host 5 promoted to a logger, removing host 3\n" +
		"step removed: host 3 removed\n" +
		"done: source orders runs on hosts 1,2,5\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if len(reqs) != 11 || reqs[0] != "POST /sources/orders/move" || slices.ContainsFunc(reqs[1:], func(r string) bool { return r != "GET /sources" }) {
		t.Errorf("requests %q", reqs)
	}
}

// TestSourcesMoveWaitTimeout: a move stuck on a failing step ends the
// wait at --timeout-move with exit 1, naming the last step and its error;
// a read that fails meanwhile is reported and retried.
func TestSourcesMoveWaitTimeout(t *testing.T) {
	shortPoll(t)
	var mu sync.Mutex
	n := 0
	f := newFakeAdmin(t, func(req *http.Request) (int, any) {
		if req.Method == http.MethodPost {
			return http.StatusOK, api.SourceChange{Message: "moving"}
		}
		mu.Lock()
		defer mu.Unlock()
		if n++; n == 2 {
			return http.StatusServiceUnavailable, map[string]string{"error": "no catalog leader"}
		}
		return http.StatusOK, []api.SourceInfo{{Name: "orders", Loggers: []uint64{1, 2, 3}, Learners: []uint64{5},
			Move: &api.SourceMove{From: 3, To: 5, Step: "learner", Error: "host 5 does not answer"}}}
	})
	start := time.Now()
	code, out, _, _ := f.run("sources", "move", "orders", "--from", "3", "--to", "5", "--wait", "--timeout-move", "300ms")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v with --timeout-move 300ms", took)
	}
	for _, w := range []string{
		"step learner: host 5 added as a learner, catching up\nstep learner failed: host 5 does not answer (retrying)\n",
		"reading GET /sources: 503 Service Unavailable: no catalog leader (retrying)\nstep learner failed: host 5 does not answer (retrying)\n",
		"binlogctl: the move of source orders from host 3 to host 5 is not done after 300ms: last step learner, last error: host 5 does not answer (it goes on in the background",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if code != 1 || strings.Count(out, "step learner:") != 1 || strings.Count(out, "step learner failed") != 2 {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// TestSourcesMoveGone: a source gone from GET /sources ends the wait at
// once with exit 1.
func TestSourcesMoveGone(t *testing.T) {
	shortPoll(t)
	f := moveFake(t, []api.SourceInfo{{Name: "other"}})
	code, out, _, _ := f.run("sources", "move", "orders", "--from", "3", "--to", "5", "--wait")
	if code != 1 || !strings.Contains(out, "source orders is gone from GET /sources") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// TestSourcesHistory: the table, oldest first whatever the answer's
// order, times in UTC to the second; --json as is; an empty trail said.
func TestSourcesHistory(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	rs := []api.AuditRecord{
		{Time: time.Date(2025, 3, 1, 11, 5, 7, 900e6, cet), Host: 2, Call: "POST /sources/orders/move?from=3&to=5", By: "certificate alice",
			Role: "operate", Status: 200, Message: "source orders: moving its logger from host 3 to host 5"},
		{Time: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC), Host: 1, Call: "POST /sources?name=orders&source=db2%3A3306", By: "token ops",
			Role: "operate", Status: 200, Message: "source orders added (shard 3)"},
		{Time: time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC), Host: 3, Call: "DELETE /sources/billing", By: "token ci", Role: "read", Status: 403},
	}
	f := newFakeAdmin(t, func(*http.Request) (int, any) { return http.StatusOK, rs })
	code, out, reqs, _ := f.run("sources", "history")
	want := "" +
		"TIME                  HOST  BY                 ROLE     STATUS  CALL                                         MESSAGE\n" +
		"2025-03-01T09:00:00Z  1     token ops          operate  200     POST /sources?name=orders&source=db2%3A3306  source orders added (shard 3)\n" +
		"2025-03-01T09:30:00Z  3     token ci           read     403     DELETE /sources/billing                      -\n" +
		"2025-03-01T10:05:07Z  2     certificate alice  operate  200     POST /sources/orders/move?from=3&to=5        source orders: moving its logger from host 3 to host 5\n"
	if code != 0 || !slices.Equal(reqs, []string{"GET /sources/history"}) || out != want {
		t.Errorf("exit %d, requests %q: got\n%s\nwant\n%s", code, reqs, out, want)
	}
	code, out, _, _ = f.run("sources", "history", "--json")
	var got []api.AuditRecord
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || len(got) != 3 || got[0].Host != 2 {
		t.Errorf("binlogctl sources history --json: exit %d:\n%s", code, out)
	}
	var b bytes.Buffer
	printAudit(&b, nil)
	if b.String() != "no fleet-wide admin call recorded\n" {
		t.Errorf("empty trail: %q", b.String())
	}
}

// TestPrintSourcesMove: the MOVE column shows only while some source has
// a move; a move's error joins the source's own in ERROR.
func TestPrintSourcesMove(t *testing.T) {
	var b bytes.Buffer
	printSources(&b, []api.SourceInfo{
		{Name: "orders", SourceAddr: "db2:3306", ShardID: 3, State: "active", Loggers: []uint64{1, 2, 3}, Learners: []uint64{5},
			Move: &api.SourceMove{From: 3, To: 5, Step: "learner", Error: "host 5 does not answer"}},
		{Name: "billing", SourceAddr: "db1:3306", ShardID: 2, State: "active", Loggers: []uint64{1, 2, 3}},
		{Name: "audit", SourceAddr: "db3:3306", ShardID: 4, State: "active", Loggers: []uint64{1, 2, 4},
			Move: &api.SourceMove{From: 4, To: 3, Step: "begun"}, Error: "host 1 does not answer"},
		{Name: "users", SourceAddr: "db4:3306", ShardID: 5, State: "active", Loggers: []uint64{2, 3, 4},
			Move: &api.SourceMove{From: 2, To: 1, Step: "promoted", Error: "no quorum"}, Error: "host 1 does not answer"},
	})
	want := "" +
		"NAME     SOURCE    SHARD  STATE   EPOCH  LEADER  LAG  INGEST  HOSTS     MOVE           ERROR\n" +
		"audit    db3:3306  4      active  0      -       -    -       1,2,4     4->3 begun     host 1 does not answer\n" +
		"billing  db1:3306  2      active  0      -       -    -       1,2,3     -              -\n" +
		"orders   db2:3306  3      active  0      -       -    -       1,2,3 +5  3->5 learner   move: host 5 does not answer\n" +
		"users    db4:3306  5      active  0      -       -    -       2,3,4     2->1 promoted  host 1 does not answer; move: no quorum\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	printSources(&b, []api.SourceInfo{{Name: "billing", SourceAddr: "db1:3306", ShardID: 2, State: "active", Loggers: []uint64{1, 2, 3}}})
	if strings.Contains(b.String(), "MOVE") {
		t.Errorf("MOVE column without a move:\n%s", b.String())
	}
}
