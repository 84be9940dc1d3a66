package failover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/logger/binlog/binlogtest"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
)

// The tests in this file run Manager.Run and Manager.Do over an in-process
// log (NodeLog on a one-member group) and fakeSQL servers logged in to
// with SQLConnector: the operator's failover and switchover end to end,
// and their error paths.

// fleet is a Manager on the leader of a one-member log group whose source
// is old (MariaDB, 0-1-1..10), with candidates a, behind and gone.
type fleet struct {
	m              *Manager
	node           *logger.Node
	old, a, behind *fakeSQL
	goneAddr       string
	stop           func()
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{old: newFakeSQL(t, "mariadb"), a: newFakeSQL(t, "mariadb"), behind: newFakeSQL(t, "mariadb")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.goneAddr = ln.Addr().String()
	ln.Close() // NB: nothing listens there: an unreachable candidate
	f.old.locked(func() {
		f.old.vars["server_id"], f.old.vars["gtid_current_pos"], f.old.vars["gtid_binlog_state"] = "1", "0-1-10", "0-1-10"
		f.old.vars["rpl_semi_sync_master_enabled"] = "ON"
		f.old.sessions = []Session{{ID: 500, User: "app", Command: "Query", State: "Waiting for semi-sync ACK from slave", Info: "COMMIT"}}
	})
	for s, pos := range map[*fakeSQL]string{f.a: "0-1-10", f.behind: "0-1-8"} {
		s.locked(func() {
			s.vars["server_id"], s.vars["gtid_current_pos"], s.vars["gtid_binlog_state"], s.vars["read_only"] = "2", pos, pos, "ON"
			s.replica = &fakeReplica{opts: map[string]string{"MASTER_HOST": "127.0.0.1", "MASTER_PORT": "3306"}, running: true}
		})
	}
	f.behind.locked(func() { f.behind.vars["server_id"] = "3" })

	c := loggertest.New(t, 1, loggertest.Options{})
	f.node = c.Leader(15 * time.Second)
	ctx := context.Background()
	if res, err := f.node.Propose(ctx, &logger.SetSource{ExpectedEpoch: 0, NewEpoch: 1,
		Source: logger.Source{Addr: f.old.addr(), ServerID: 1, Flavor: "mariadb"}, StartGTIDs: "0-1-5"}); err != nil || !res.Code.Stored() {
		t.Fatalf("seeding the log: %v %v", res.Code, err)
	}
	// The log holds 0-1-6..10, as the ingest stored them.
	app := &logger.Append{Epoch: 1, Source: f.old.addr(), FDE: binlogtest.FDE(binlog.MariaDB(), 1)}
	pos := uint32(256)
	for i := 6; i <= 10; i++ {
		g := fmt.Sprintf("0-1-%d", i)
		raw, end := binlogtest.Txn(binlog.MariaDB(), g, 1, pos, 300)
		app.Txns = append(app.Txns, logger.Txn{GTID: g, SourceFile: "m-bin.000001", SourceEnd: uint64(end), Events: raw})
		pos = end
	}
	if res, err := f.node.Propose(ctx, app); err != nil || !res.Code.Stored() {
		t.Fatalf("appending to the log: %v %v %s", res.Code, err, res.Message)
	}
	cfg := DefaultConfig()
	cfg.Auto = false
	cfg.AdminUser, cfg.AdminPassword = "admin", "admin-pw"
	cfg.ProbeInterval = 50 * time.Millisecond
	cfg.CatchUpTimeout = 2 * time.Second
	cfg.Candidates = []string{f.a.addr() + ",priority=1", f.behind.addr() + ",priority=5", f.goneAddr + ",priority=9"}
	m, err := New(cfg, Deps{Log: NodeLog(f.node), Connect: SQLConnector(dialFake), FleetAddr: "fleet.example:3306", SourceCred: admin,
		FleetCred: Credentials{User: "fleet", Password: "fleet-pw"},
		Ingest: func() IngestView {
			// The ingest follows the log's source at once.
			st := f.node.Reader().State()
			return IngestView{Streaming: !st.Source.Fenced, Source: st.Source.Addr, LastAck: time.Now(), LastEvent: time.Now()}
		}})
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(rctx) }()
	f.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Manager.Run: %v", err)
		}
	}
	t.Cleanup(f.stop)
	// The candidates are stored once Run leads.
	c.Eventually(5*time.Second, "the candidates stored", func() error {
		l, err := m.ListCandidates()
		if err == nil && len(l) != 3 {
			err = errors.New("not yet")
		}
		return err
	})
	return f
}

func (f *fleet) state(t *testing.T) logger.State {
	t.Helper()
	return f.node.Reader().State()
}

func TestManagerFailoverByHand(t *testing.T) {
	f := newFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The source answers: without --force its lease holds.
	if _, err := f.m.Do(ctx, Request{Kind: KindFailover, Reason: "test"}); err == nil || !strings.Contains(err.Error(), "lease") {
		t.Fatalf("a failover while the source holds its lease: %v", err)
	}
	op, err := f.m.Do(ctx, Request{Kind: KindFailover, Force: true, Reason: "test"})
	if err != nil {
		t.Fatalf("failover: %v (op %+v)", err, op)
	}
	// a is chosen: behind misses transactions, gone does not answer.
	if op.Step != StepDone || op.Target != f.a.addr() || op.FenceEpoch != 2 || op.NewEpoch != 3 {
		t.Fatalf("operation %+v: want done, a promoted at epoch 3 after the fence at 2", op)
	}
	st := f.state(t)
	if st.Epoch != 3 || st.Source.Addr != f.a.addr() || st.Source.ServerID != 2 || st.Source.Fenced {
		t.Fatalf("log state %+v: want epoch 3, source a (server_id 2)", st)
	}
	// The old source is fenced on the server: read-only, its waiting
	// client's session ended, its semi-sync held.
	if f.old.get("read_only") != "ON" || f.old.get("rpl_semi_sync_master_timeout") != "3600000" {
		t.Errorf("old source: read_only=%s semi-sync timeout=%s; want ON and an hour", f.old.get("read_only"), f.old.get("rpl_semi_sync_master_timeout"))
	}
	f.old.locked(func() {
		if len(f.old.sessions) != 0 {
			t.Errorf("old source: sessions %+v left after the fence", f.old.sessions)
		}
	})
	// The new source: no longer a replica, semi-sync on, writable.
	f.a.locked(func() {
		if f.a.replica != nil || f.a.vars["read_only"] != "OFF" || f.a.vars["rpl_semi_sync_master_enabled"] != "ON" {
			t.Errorf("promoted a: replica %+v read_only=%s semi-sync=%s", f.a.replica, f.a.vars["read_only"], f.a.vars["rpl_semi_sync_master_enabled"])
		}
	})
	// The candidate behind was left alone.
	if f.behind.get("read_only") != "ON" {
		t.Errorf("the candidate behind was made writable")
	}
	steps := map[string]bool{}
	h, err := f.m.History()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range h {
		steps[r.Step] = true
	}
	for _, s := range []string{StepStarted, StepFenced, StepChosen, StepCaughtUp, StepPromoted, StepResumed, StepDone} {
		if !steps[s] {
			t.Errorf("history %+v lacks step %s", h, s)
		}
	}
	if last := f.m.Status().Last; last == nil || last.ID != op.ID {
		t.Errorf("status.Last = %+v, want %s", last, op.ID)
	}
	// Every candidate as observed now: a is the source; gone is unreachable.
	cs, err := f.m.Candidates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		switch c.Addr {
		case f.a.addr():
			if !c.IsSource {
				t.Errorf("candidate a %+v: want it named the source", c)
			}
		case f.goneAddr:
			if c.Reachable || c.Error == "" {
				t.Errorf("candidate gone %+v: want unreachable", c)
			}
		}
	}
}

func TestManagerSwitchover(t *testing.T) {
	f := newFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := f.m.Do(ctx, Request{Kind: KindSwitchover}); err == nil || !strings.Contains(err.Error(), "needs a target") {
		t.Fatalf("a switchover without a target: %v", err)
	}
	// An unreachable target is refused before anything changes.
	if _, err := f.m.Do(ctx, Request{Kind: KindSwitchover, To: f.goneAddr}); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("a switchover to an unreachable candidate: %v", err)
	}
	if st := f.state(t); st.Epoch != 1 || f.old.get("read_only") != "OFF" {
		t.Fatalf("a refused switchover changed something: epoch %d, old read_only=%s", st.Epoch, f.old.get("read_only"))
	}
	op, err := f.m.Do(ctx, Request{Kind: KindSwitchover, To: f.a.addr(), Reason: "maintenance"})
	if err != nil {
		t.Fatalf("switchover: %v (op %+v)", err, op)
	}
	if op.Step != StepDone || op.Target != f.a.addr() {
		t.Fatalf("operation %+v: want done with a promoted", op)
	}
	if st := f.state(t); st.Epoch != 3 || st.Source.Addr != f.a.addr() {
		t.Fatalf("log state %+v: want epoch 3 with source a", st)
	}
	// The old source was drained (read-only), not killed: a switchover
	// leaves its clients' sessions; it now replicates from the fleet, its
	// semi-sync source side off.
	f.old.locked(func() {
		o := f.old
		if o.vars["read_only"] != "ON" || len(o.sessions) != 1 || o.vars["rpl_semi_sync_master_enabled"] != "OFF" {
			t.Errorf("old source: read_only=%s sessions=%v semi-sync=%s", o.vars["read_only"], o.sessions, o.vars["rpl_semi_sync_master_enabled"])
		}
		if o.replica == nil || !o.replica.running || o.replica.opts["MASTER_HOST"] != "fleet.example" || o.replica.opts["MASTER_USER"] != "fleet" {
			t.Errorf("old source's replication: %+v, want it replicating from fleet.example", o.replica)
		}
	})
	h, err := f.m.History()
	if err != nil {
		t.Fatal(err)
	}
	var said bool
	for _, r := range h {
		said = said || r.Step == StepResumed && strings.Contains(r.Message, "replicates from the fleet at fleet.example:3306")
	}
	if !said {
		t.Errorf("history %+v: want the old source's re-pointing in the resumed step", h)
	}
}

// A failover whose only eligible candidate fails at the catch-up goes back
// to choosing; with none left, and an old source that refuses its fence
// and holds a transaction the log lacks, the source stays fenced and its
// fence pending; once the candidate qualifies, Run promotes it.
func TestManagerFailoverCandidateFails(t *testing.T) {
	f := newFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// a's replication broke: its SQL thread stopped with an error and it
	// cannot be restarted.
	f.a.locked(func() {
		f.a.vars["gtid_current_pos"] = "0-1-9"
		f.a.replica.running, f.a.replica.lastErr = false, "Error 1062: Duplicate entry"
		f.a.fail["START SLAVE"] = "Slave SQL thread failed"
	})
	f.old.locked(func() {
		f.old.fail["SET GLOBAL read_only"] = "Lock wait timeout exceeded"
		f.old.vars["gtid_current_pos"], f.old.vars["gtid_binlog_state"] = "0-1-11", "0-1-11" // never ACKed
	})
	_, err := f.m.Do(ctx, Request{Kind: KindFailover, Force: true, To: f.a.addr()})
	if err == nil {
		t.Fatal("a failover to a candidate that cannot catch up: no error")
	}
	st := f.state(t)
	if st.Epoch != 2 || !st.Source.Fenced {
		t.Fatalf("log state %+v: want the old source fenced at epoch 2", st)
	}
	h, err := f.m.History()
	if err != nil {
		t.Fatal(err)
	}
	var sawCatchUpFail bool
	for _, r := range h {
		if r.Step == "catch-up" && r.Outcome == "failed" && strings.Contains(r.Message, "Duplicate entry") {
			sawCatchUpFail = true
		}
	}
	if !sawCatchUpFail {
		t.Errorf("history %+v: want the catch-up failure with a's replication error", h)
	}
	// The old source refused read_only: its fence stays pending.
	if pf, err := f.m.PendingFences(); err != nil || len(pf) == 0 || pf[0].Addr != f.old.addr() {
		t.Errorf("pending fences %+v: want the old source's", pf)
	}
	// a repairs its replication and catches up: Run resumes the recorded
	// operation and promotes it.
	f.a.locked(func() {
		f.a.vars["gtid_current_pos"] = "0-1-10"
		f.a.replica.running, f.a.replica.lastErr = true, ""
		delete(f.a.fail, "START SLAVE")
	})
	deadline := time.Now().Add(15 * time.Second)
	for st := f.state(t); st.Epoch != 3; st = f.state(t) {
		if time.Now().After(deadline) {
			t.Fatalf("log state %+v: the recorded failover was not resumed to promote a; status %+v", st, f.m.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := f.state(t); st.Source.Addr != f.a.addr() {
		t.Fatalf("log source %+v, want a", st.Source)
	}
}
