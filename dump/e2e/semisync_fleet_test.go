package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// commitLatencies runs n autocommit inserts one after another on a
// semi-sync source and returns their latencies, sorted: each waits for
// the fleet's ACK (AFTER_SYNC), so they are the fleet's ACK latency as
// the source sees it.
func commitLatencies(t *testing.T, src *sandbox.Server, table string, from, n int) []time.Duration {
	t.Helper()
	ctx := context.Background()
	out := make([]time.Duration, 0, n)
	for i := from; i < from+n; i++ {
		t0 := time.Now()
		if _, err := src.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES (%d, 'v%d')", table, i, i)); err != nil {
			t.Fatal(err)
		}
		out = append(out, time.Since(t0))
		time.Sleep(20 * time.Millisecond)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func quantiles(d []time.Duration) string {
	return fmt.Sprintf("p50 %v, p90 %v, max %v", d[len(d)/2].Round(10*time.Microsecond), d[len(d)*9/10].Round(10*time.Microsecond), d[len(d)-1].Round(10*time.Microsecond))
}

// ctlStatus runs binlogctl status (--json when asJSON) against member id.
func ctlStatus(t *testing.T, f *fleet.Fleet, bin string, id uint64, asJSON bool) []byte {
	t.Helper()
	args := append(f.CtlArgs(), "--admin", f.Member(id).AdminAddr, "status")
	if asJSON {
		args = append(args, "--json")
	}
	var out []byte
	err := fleet.Poll(context.Background(), 30*time.Second, func() error {
		var err error
		out, err = exec.Command(bin, args...).Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%v: %s", err, ee.Stderr)
		}
		return err
	})
	if err != nil {
		t.Fatalf("binlogctl status: %v", err)
	}
	return out
}

// TestSemiSyncReplicaOfFleet: a MySQL 9.7 (MariaDB 10.11) replica with
// the semi-sync replica plugin on replicates from a member of a real fleet
// (three binlogsvr processes in front of a semi-sync source); binlogctl
// status shows its ACKs (ack_file, ack_pos, ack_time) reach the log's end
// and advance with new commits, and so does the member's metric; the
// source never falls back to async, and its commit latency (the fleet's
// own ACK) is logged before and after the replica attaches.
func TestSemiSyncReplicaOfFleet(t *testing.T) {
	t.Parallel()
	for _, flav := range []sandbox.Flavor{sandbox.MySQL, sandbox.MariaDB} {
		t.Run(string(flav), func(t *testing.T) {
			t.Parallel()
			semiSyncReplicaOfFleet(t, flav)
		})
	}
}

func semiSyncReplicaOfFleet(t *testing.T, flav sandbox.Flavor) {
	ctx := context.Background()
	srcVar := func(name string) string {
		if flav == sandbox.MariaDB {
			return "Rpl_semi_sync_master_" + name
		}
		return "Rpl_semi_sync_source_" + name
	}
	src := sandboxtest.Start(t, sandbox.Options{Flavor: flav, SemiSyncSource: true, SemiSyncTimeout: 2 * time.Minute})
	user, pass := src.ReplUser()
	f, err := fleet.StartEach(ctx, fleet.Options{Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass,
		ExtraArgs: []string{"--source-heartbeat", "500ms"}}, func(uint64) fleet.MemberSpec { return fleet.MemberSpec{Serve: true} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(f.LogTails(40))
		}
		f.Close()
	})
	err = fleet.Poll(ctx, 2*time.Minute, func() error {
		if _, err := f.WaitStreaming(ctx, time.Minute); err != nil {
			return err
		}
		if v := globalStatus(t, src, srcVar("clients")); v == "" || v == "0" {
			return fmt.Errorf("the source counts %q semi-sync clients", v)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the fleet does not stream from the source: %v", err)
	}
	bin, err := fleet.Tool(t.TempDir(), "binlogctl")
	if err != nil {
		t.Fatal(err)
	}
	dumptest.Exec(t, src, "CREATE DATABASE s", "CREATE TABLE s.t (id INT PRIMARY KEY, v VARCHAR(32))")
	noTx := globalStatus(t, src, srcVar("no_tx"))

	const n = 40
	before := commitLatencies(t, src, "s.t", 0, n)

	leader, err := f.Leader(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	replica := sandboxtest.Start(t, sandbox.Options{Flavor: flav, SemiSyncReplica: true})
	dumptest.PointReplica(t, replica, f.Member(leader).DumpAddr, dumptest.ByGTID)
	dumptest.WaitReplicated(t, src, replica, 2*time.Minute)
	if v := globalStatus(t, replica, semiStatusVar(flav)); v != "ON" {
		t.Fatalf("%s on the replica is %q: it does not replicate with semi-sync", semiStatusVar(flav), v)
	}

	// The replica's entry in binlogctl status --json once its ACK reached
	// the end of the member's log.
	acked := func(what string) api.DumpClientStatus {
		t.Helper()
		var c api.DumpClientStatus
		err := fleet.Poll(ctx, time.Minute, func() error {
			var st api.Status
			if err := json.Unmarshal(ctlStatus(t, f, bin, leader, true), &st); err != nil {
				return err
			}
			for _, d := range st.DumpClients {
				if d.ServerID == replica.ServerID() && d.Dumping {
					c = d
					if d.SemiSync && d.AckFile == st.LastFile && d.AckPos == st.LastPosition {
						return nil
					}
					return fmt.Errorf("semi_sync %v, ack %s:%d, the log ends at %s:%d", d.SemiSync, d.AckFile, d.AckPos, st.LastFile, st.LastPosition)
				}
			}
			return fmt.Errorf("the replica (server id %d) is not among the dump clients %+v", replica.ServerID(), st.DumpClients)
		})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return c
	}
	first := acked("after the replica caught up")

	after := commitLatencies(t, src, "s.t", n, n)
	dumptest.WaitReplicated(t, src, replica, time.Minute)
	last := acked("after the commits with the replica attached")
	if last.Acks < first.Acks+n || last.AckPos == first.AckPos && last.AckFile == first.AckFile || !last.AckTime.After(first.AckTime) {
		t.Errorf("the ACKs did not advance with %d commits: %d at %s:%d (%v), then %d at %s:%d (%v)", n,
			first.Acks, first.AckFile, first.AckPos, first.AckTime, last.Acks, last.AckFile, last.AckPos, last.AckTime)
	}
	dumptest.SameData(t, src, replica, []string{"s.t"})
	if v := ioRunning(t, replica); v != "Yes" {
		t.Errorf("the replica's IO thread: %q, want Yes", v)
	}
	if v := globalStatus(t, src, srcVar("no_tx")); v != noTx {
		t.Errorf("the source committed without the fleet's ACK (%s %s, was %s)", srcVar("no_tx"), v, noTx)
	}
	if v := globalStatus(t, src, srcVar("status")); v != "ON" {
		t.Errorf("%s %q: the source fell back to async", srcVar("status"), v)
	}
	// The operator's table names what the replica acknowledged.
	text := string(ctlStatus(t, f, bin, leader, false))
	if !strings.Contains(text, "ACKED") || !strings.Contains(text, last.AckFile+":") {
		t.Errorf("binlogctl status does not show the replica's ACK %s:%d:\n%s", last.AckFile, last.AckPos, text)
	}
	// And so does the member's metric, per client.
	resp, err := f.HTTP().Get(f.URL(leader, "/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	series := fmt.Sprintf(`binlogsvr_dump_semisync_acks_total{client="%d",server_id="%d"} `, last.ID, replica.ServerID())
	var got float64
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, series); ok {
			got, _ = strconv.ParseFloat(v, 64)
		}
	}
	if got < float64(last.Acks) {
		t.Errorf("metric %s= %v, want at least %d", series, got, last.Acks)
	}
	t.Logf("%s: source commit latency (the fleet's ACK) over %d commits: without the semi-sync replica %s; with it %s", flav, n, quantiles(before), quantiles(after))
	t.Logf("the replica's ACKs: %d at %s:%d, the last %.2f ms after its event was written (%s since the first: %d ACKs at %s:%d)",
		last.Acks, last.AckFile, last.AckPos, last.AckLatencySeconds*1000, last.AckTime.Sub(first.AckTime).Round(time.Millisecond),
		first.Acks, first.AckFile, first.AckPos)
}
