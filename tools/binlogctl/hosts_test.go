package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// TestHostsTable: the hosts table names each host's part in the catalog.
func TestHostsTable(t *testing.T) {
	var b bytes.Buffer
	printHosts(&b, []api.HostInfo{
		{ID: 1, RaftAddr: "10.0.0.1:7000", AdminAddr: "10.0.0.1:7070", Catalog: "voter", Shards: 3},
		{ID: 4, RaftAddr: "10.0.0.4:7000", AdminAddr: "10.0.0.4:7070", Catalog: "learner", Shards: 1},
		{ID: 6, RaftAddr: "10.0.0.6:7000"},
	})
	want := "ID  RAFT           ADMIN          CATALOG    SHARDS\n" +
		"1   10.0.0.1:7000  10.0.0.1:7070  voter      3\n" +
		"4   10.0.0.4:7000  10.0.0.4:7070  learner    1\n" +
		"6   10.0.0.6:7000  -              not in it  0\n"
	if b.String() != want {
		t.Errorf("hosts table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestHostsAddRefusals: hosts add checks its arguments before any call,
// naming what to fix.
func TestHostsAddRefusals(t *testing.T) {
	f := newFakeAdmin(t, nil)
	for _, x := range []struct {
		args []string
		want string
	}{
		{[]string{"hosts", "add", "0", "--raft-addr", "h:1", "--admin-addr", "h:2"}, "a host id in 1..1023"},
		{[]string{"hosts", "add", "1024", "--raft-addr", "h:1", "--admin-addr", "h:2"}, "a host id in 1..1023"},
		{[]string{"hosts", "add", "4", "--admin-addr", "h:2"}, "--raft-addr"},
		{[]string{"hosts", "add", "4", "--raft-addr", "h:1", "--admin-addr", ":2"}, "--admin-addr"},
		{[]string{"hosts", "add"}, "hosts add ID"},
	} {
		code, out, reqs, _ := f.run(x.args...)
		if code != 2 || !strings.Contains(out, x.want) || len(reqs) != 0 {
			t.Errorf("binlogctl %s: exit %d, requests %q:\n%s\nwant exit 2 naming %q", strings.Join(x.args, " "), code, reqs, out, x.want)
		}
	}
}
