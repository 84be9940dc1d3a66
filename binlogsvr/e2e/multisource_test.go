package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// startHosts starts a fleet of hosts of several sources (o.Catalog) in
// dir/fleet, stopped at the end of the test (their log tails shown, and
// copied to $BINLOGSVR_TEST_KEEP_LOGS, when it fails), and returns it
// with a function that runs binlogctl against one host.
func startHosts(t *testing.T, dir string, o fleet.Options) (*fleet.Fleet, func(host uint64, args ...string) (string, error)) {
	t.Helper()
	o.Dir, o.Catalog = filepath.Join(dir, "fleet"), true
	f, err := fleet.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(f.LogTails(80))
			if d := os.Getenv("BINLOGSVR_TEST_KEEP_LOGS"); d != "" {
				for _, m := range f.Members {
					_ = exec.Command("cp", m.LogPath, filepath.Join(d, filepath.Base(m.LogPath))).Run()
				}
			}
		}
		f.Close()
	})
	bin, err := fleet.Tool(dir, "binlogctl")
	if err != nil {
		t.Fatal(err)
	}
	return f, func(host uint64, args ...string) (string, error) {
		out, err := exec.Command(bin, append(append(f.CtlArgs(), "--admin", f.Member(host).AdminAddr, "--timeout", "2m"), args...)...).CombinedOutput()
		return string(out), err
	}
}

// msSource is one source cluster of TestMultiSource: a semi-sync source
// and a replica that reads the fleet's copy of it.
type msSource struct {
	name    string
	src     *sandbox.Server
	replica *sandbox.Server
	dump    map[uint64]string // host id → its dump address for this source
	rows    int
}

// TestMultiSource: three host processes serve three real sources (MariaDB
// and MySQL) from one catalog. Every source's commits are acknowledged, a
// replica of each replicates from the fleet, kill -9 of one host leaves
// every source acknowledging, and a switchover of one source moves its
// epoch only.
func TestMultiSource(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var srcs []*msSource
	for _, x := range []struct {
		name   string
		flavor sandbox.Flavor
	}{{"orders", sandbox.MariaDB}, {"billing", sandbox.MySQL}, {"users", sandbox.MariaDB}} {
		s := &msSource{name: x.name, dump: map[uint64]string{}}
		// NB: a semi-sync timeout of 10 minutes: a commit that returns
		// within the test was acknowledged by the fleet.
		s.src = sandboxtest.Start(t, sandbox.Options{Flavor: x.flavor, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute})
		s.replica = sandboxtest.Start(t, sandbox.Options{Flavor: x.flavor})
		srcs = append(srcs, s)
	}
	user, pass := srcs[0].src.ReplUser()
	rootUser, rootPass := srcs[0].src.RootUser()
	ctx := context.Background()
	f, ctl := startHosts(t, dir, fleet.Options{Members: 3, SourcePassword: pass,
		ExtraArgs: []string{"--source-user", user, "--source-heartbeat", "500ms",
			"--dump-user", dumptest.DumpUser, "--dump-password-file", write("dump.pw", dumptest.DumpPassword),
			"--failover-admin-user", rootUser, "--failover-admin-password-file", write("admin.pw", rootPass),
			"--failover-lease", "3s", "--failover-probe-interval", "250ms", "--failover-probe-timeout", "500ms"}})

	// Each source is added through a different host, with a dump address
	// on every host.
	for i, s := range srcs {
		var dumps []string
		for _, m := range f.Members {
			addr, err := fleet.FreeAddrOn(strings.Split(m.AdminAddr, ":")[0])
			if err != nil {
				t.Fatal(err)
			}
			s.dump[m.ID] = addr
			dumps = append(dumps, fmt.Sprintf("%d=%s", m.ID, addr))
		}
		q := url.Values{"name": {s.name}, "source": {s.src.Addr()}, "hosts": {"1,2,3"}, "dump_addr": {strings.Join(dumps, ",")},
			"failover": {"--failover-candidate=" + s.replica.Addr()}}
		if s.name == "billing" {
			q.Set("retention", "--retain-files=50\n--retain-age=240h") // NB: its own, over the hosts' (none)
		}
		var ch api.SourceChange
		if err := fleet.Poll(ctx, wait, func() error { return f.Post(ctx, uint64(i%3+1), "/sources?"+q.Encode(), &ch) }); err != nil {
			t.Fatalf("adding source %s: %v", s.name, err)
		}
		t.Logf("sources add %s: %s", s.name, ch.Message)
	}
	sources := func(host uint64) map[string]api.SourceInfo {
		var l []api.SourceInfo
		if err := f.Get(ctx, host, "/sources", &l); err != nil {
			return nil
		}
		out := map[string]api.SourceInfo{}
		for _, si := range l {
			out[si.Name] = si
		}
		return out
	}
	waitSources := func(host uint64, want func(api.SourceInfo) error) map[string]api.SourceInfo {
		t.Helper()
		var got map[string]api.SourceInfo
		err := fleet.Poll(ctx, wait, func() error {
			got = sources(host)
			for _, s := range srcs {
				si, ok := got[s.name]
				if !ok {
					return fmt.Errorf("source %s not listed: %+v", s.name, got)
				}
				if err := want(si); err != nil {
					return fmt.Errorf("source %s: %v (%+v)", s.name, err, si)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("GET /sources on host %d: %v", host, err)
		}
		return got
	}
	// Bad input is refused with the fix named: a host that never
	// registered, a source's failover flag that is a host's.
	if out, err := ctl(1, "sources", "add", "bad", "--source", "127.0.0.1:1", "--hosts", "1,2,9"); err == nil || !strings.Contains(out, "host 9 has not registered") {
		t.Errorf("sources add on an unknown host: %v\n%s", err, out)
	}
	if out, err := ctl(1, "sources", "add", "bad", "--source", "127.0.0.1:1", "--failover", "pre-hook=/bin/true"); err == nil || !strings.Contains(out, "is a host's flag") {
		t.Errorf("sources add with a hook: %v\n%s", err, out)
	}

	listed, err := ctl(3, "sources")
	if err != nil {
		t.Fatalf("binlogctl sources: %v\n%s", err, listed)
	}
	t.Logf("binlogctl sources:\n%s", listed)
	for _, s := range srcs {
		if !strings.Contains(listed, s.name) {
			t.Errorf("binlogctl sources does not list %s", s.name)
		}
	}
	streaming := func(si api.SourceInfo) error {
		if si.Ingest != "streaming" || si.Leader == 0 {
			return fmt.Errorf("ingest %q leader %d error %q", si.Ingest, si.Leader, si.Error)
		}
		return nil
	}
	got := waitSources(2, streaming)
	shards := map[uint64]bool{}
	for _, s := range srcs {
		si := got[s.name]
		if si.Epoch != 1 || si.SourceAddr != s.src.Addr() || len(si.Loggers) != 3 {
			t.Fatalf("source %s: %+v", s.name, si)
		}
		shards[si.ShardID] = true
	}
	if len(shards) != 3 {
		t.Fatalf("three sources on %d shards", len(shards))
	}

	// The host killed below leads orders; the replicas read from another.
	victim := got["orders"].Leader
	reader := victim%3 + 1
	other := reader%3 + 1
	t.Logf("orders' leader is host %d (killed below); the replicas read through host %d", victim, reader)

	// Every source's commits are acknowledged (they return: semi-sync
	// waits 10 minutes), and a replica of each replicates from the fleet.
	writeRows := func(s *msSource, n int, within time.Duration) {
		t.Helper()
		for i := 0; i < n; i++ {
			wctx, cancel := context.WithTimeout(ctx, within)
			_, err := s.src.Exec(wctx, fmt.Sprintf("INSERT INTO test.t VALUES (%d, '%s')", s.rows+1, s.name))
			cancel()
			if err != nil {
				t.Fatalf("source %s: commit %d not acknowledged within %v: %v", s.name, s.rows+1, within, err)
			}
			s.rows++
		}
	}
	for _, s := range srcs {
		dumptest.Exec(t, s.src, "CREATE DATABASE IF NOT EXISTS test", "CREATE TABLE test.t (n INT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB")
		writeRows(s, 50, 30*time.Second)
		dumptest.PointReplica(t, s.replica, s.dump[reader], dumptest.ByGTID)
	}
	for _, s := range srcs {
		dumptest.WaitReplicated(t, s.src, s.replica, wait)
		dumptest.SameData(t, s.src, s.replica, []string{"test.t"})
	}
	t.Logf("three sources, 50 acknowledged commits each, each replicated by its replica through host %d", reader)

	// Per-source metrics carry the source's name.
	var metrics string
	if err := f.Get(ctx, reader, "/metrics", &metrics); err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs {
		if want := fmt.Sprintf(`binlogsvr_logger_epoch{source=%q} 1`, s.name); !strings.Contains(metrics, want) {
			t.Errorf("host %d's /metrics lacks %s", reader, want)
		}
	}

	// billing's own retention applies on its members, orders keeps the
	// hosts' (none).
	for name, want := range map[string]int{"billing": 50, "orders": 0} {
		var self struct {
			Retention api.Retention `json:"retention"`
		}
		if err := f.Get(ctx, reader, "/sources/"+name+"/members/self", &self); err != nil {
			t.Fatal(err)
		}
		if self.Retention.Files != want {
			t.Errorf("source %s on host %d retains %d files; want %d", name, reader, self.Retention.Files, want)
		}
	}

	// kill -9 of orders' leader: every source keeps acknowledging.
	if err := f.Kill(victim); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, s := range srcs {
		wg.Add(1)
		go func() { defer wg.Done(); writeRows(s, 50, 30*time.Second) }()
	}
	wg.Wait()
	t.Logf("host %d killed: 50 more commits on each source acknowledged in %v", victim, time.Since(t0))
	got = waitSources(reader, streaming)
	if got["orders"].Leader == victim {
		t.Errorf("orders still led by the killed host %d", victim)
	}
	for _, s := range srcs {
		dumptest.WaitReplicated(t, s.src, s.replica, wait)
	}

	// A switchover of orders moves its epoch; the others keep theirs.
	orders := srcs[0]
	if out, err := ctl(other, "--source-name", "orders", "promote", "--to", orders.replica.Addr()); err != nil {
		t.Fatalf("binlogctl --source-name orders promote --to %s: %v\n%s", orders.replica.Addr(), err, out)
	}
	got = waitSources(other, func(si api.SourceInfo) error {
		want, addr := uint64(1), srcs[0].src.Addr()
		for _, s := range srcs {
			if s.name == si.Name {
				addr = s.src.Addr()
			}
		}
		if si.Name == "orders" {
			// NB: a switchover fences (an epoch) and names the new source
			// (the next).
			if si.Epoch < 2 || si.SourceAddr != orders.replica.Addr() {
				return fmt.Errorf("epoch %d source %s, want a later epoch on %s", si.Epoch, si.SourceAddr, orders.replica.Addr())
			}
			return streaming(si)
		}
		if si.Epoch != want || si.SourceAddr != addr {
			return fmt.Errorf("epoch %d source %s, want %d %s", si.Epoch, si.SourceAddr, want, addr)
		}
		return streaming(si)
	})
	t.Logf("after the switchover of orders: orders epoch %d, billing %d, users %d", got["orders"].Epoch, got["billing"].Epoch, got["users"].Epoch)
	orders.src, orders.replica = orders.replica, orders.src
	writeRows(orders, 20, 30*time.Second)
	for _, s := range srcs[1:] {
		writeRows(s, 20, 30*time.Second)
	}

	// kill -9 of billing's source (MySQL): the fleet fails billing over to
	// its replica on its own (the lease), every acknowledged commit is
	// there, and the other sources keep their epochs.
	billing := srcs[1]
	ordersEpoch := got["orders"].Epoch
	if err := billing.src.Kill(); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	got = waitSources(other, func(si api.SourceInfo) error {
		switch si.Name {
		case "billing":
			if si.Epoch < 2 || si.SourceAddr != billing.replica.Addr() {
				return fmt.Errorf("epoch %d source %s, want a later epoch on %s", si.Epoch, si.SourceAddr, billing.replica.Addr())
			}
		case "orders":
			if si.Epoch != ordersEpoch {
				return fmt.Errorf("epoch %d, want %d", si.Epoch, ordersEpoch)
			}
		default:
			if si.Epoch != 1 {
				return fmt.Errorf("epoch %d, want 1", si.Epoch)
			}
		}
		return streaming(si)
	})
	t.Logf("billing's source killed: failed over to %s in %v (epoch %d); orders epoch %d, users %d",
		billing.replica.Addr(), time.Since(t1).Round(time.Millisecond), got["billing"].Epoch, got["orders"].Epoch, got["users"].Epoch)
	var n int64
	row, err := billing.replica.Exec(ctx, "SELECT COUNT(*) FROM test.t")
	if err != nil {
		t.Fatal(err)
	}
	if n, err = row.GetInt(0, 0); err != nil || n < int64(billing.rows) {
		t.Fatalf("billing's new source holds %d rows of %d acknowledged: %v", n, billing.rows, err)
	}
	billing.src, billing.replica = billing.replica, billing.src
	writeRows(billing, 10, 30*time.Second)

	// The killed host comes back and catches up on every source.
	if err := f.Restart(victim); err != nil {
		t.Fatal(err)
	}
	waitSources(victim, streaming)
	if err := fleet.Poll(ctx, wait, func() error {
		for _, s := range srcs {
			var st binlogsvr.Status
			if err := f.Get(ctx, victim, "/sources/"+s.name+"/status?local=1", &st); err != nil {
				return err
			}
			var lst binlogsvr.Status
			if err := f.Get(ctx, reader, "/sources/"+s.name+"/status?local=1", &lst); err != nil {
				return err
			}
			if st.GTIDExecuted != lst.GTIDExecuted || st.Transactions == 0 {
				return fmt.Errorf("source %s: host %d at %q, host %d at %q", s.name, victim, st.GTIDExecuted, reader, lst.GTIDExecuted)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("host %d did not catch up: %v", victim, err)
	}

	// The root paths name the only source; with three, they say which flag
	// to give.
	if out, err := ctl(reader, "status"); err == nil || !strings.Contains(out, "--source-name") {
		t.Errorf("binlogctl status on a host of three sources: %v\n%s\nwant an error naming --source-name", err, out)
	}
	if out, err := ctl(reader, "--source-name", "billing", "status"); err != nil || !strings.Contains(out, srcs[1].src.Addr()) {
		t.Errorf("binlogctl --source-name billing status: %v\n%s", err, out)
	}

	// Removing users is refused while its replica reads, then forced: its
	// hosts stop it and delete its data; the others go on.
	shard := sources(victim)["users"].ShardID
	if out, err := ctl(victim, "sources", "remove", "users"); err == nil || !strings.Contains(out, "replicas reading") {
		t.Errorf("sources remove users while its replica reads: %v\n%s", err, out)
	}
	if out, err := ctl(victim, "sources", "remove", "users", "--force"); err != nil {
		t.Fatalf("sources remove users --force: %v\n%s", err, out)
	}
	if err := fleet.Poll(ctx, wait, func() error {
		if _, ok := sources(other)["users"]; ok {
			return fmt.Errorf("users still listed")
		}
		for _, m := range f.Members {
			dirs, _ := filepath.Glob(filepath.Join(m.DataDir, "binlog", fmt.Sprintf("shard-%d-replica-*", shard)))
			if len(dirs) > 0 {
				return fmt.Errorf("host %d still holds %v", m.ID, dirs)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("after removing users: %v", err)
	}
	if shard == 0 {
		t.Fatal("users had no shard")
	}
	writeRows(srcs[1], 10, 30*time.Second)
}

// TestMultiSourceLearner: five hosts, the catalog on three; hosts 4 and 5
// are outside it, added with binlogctl hosts add. A source placed with a
// learner on host 4: the host of its shard's leader adds the learner,
// which catches up and serves a replica and holds no vote; then one of
// its loggers moves to host 5 online.
func TestMultiSourceLearner(t *testing.T) {
	dir := t.TempDir()
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true, SemiSyncTimeout: 10 * time.Minute})
	replica := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB})
	user, pass := src.ReplUser()
	pw := filepath.Join(dir, "dump.pw")
	if err := os.WriteFile(pw, []byte(dumptest.DumpPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f, ctl := startHosts(t, dir, fleet.Options{Members: 5, CatalogVoters: 3, SourcePassword: pass,
		ExtraArgs: []string{"--source-user", user, "--source-heartbeat", "500ms", "--dump-user", dumptest.DumpUser, "--dump-password-file", pw}})
	ctlBin, err := fleet.Tool(dir, "binlogctl")
	if err != nil {
		t.Fatal(err)
	}
	// Hosts 4 and 5 run but wait outside the catalog until added.
	for _, id := range []uint64{4, 5} {
		m := f.Member(id)
		var out string
		if err := fleet.Poll(ctx, wait, func() error {
			out, err = ctl(2, "hosts", "add", fmt.Sprint(id), "--raft-addr", m.RaftAddr, "--admin-addr", m.AdminAddr)
			return err
		}); err != nil {
			t.Fatalf("binlogctl hosts add %d: %v\n%s", id, err, out)
		}
	}
	if err := fleet.Poll(ctx, wait, func() error {
		var hs []api.HostInfo
		if err := f.Get(ctx, 4, "/hosts", &hs); err != nil {
			return err
		}
		var roles []string
		for _, h := range hs {
			roles = append(roles, fmt.Sprintf("%d:%s", h.ID, h.Catalog))
		}
		if got := strings.Join(roles, " "); got != "1:voter 2:voter 3:voter 4:learner 5:learner" {
			return fmt.Errorf("hosts %s", got)
		}
		return nil
	}); err != nil {
		t.Fatalf("GET /hosts on host 4: %v", err)
	}
	hosts, _ := ctl(5, "hosts")
	t.Logf("binlogctl hosts:\n%s", hosts)
	dump, err := fleet.FreeAddrOn(strings.Split(f.Member(4).AdminAddr, ":")[0])
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"name": {"solo"}, "source": {src.Addr()}, "hosts": {"1,2,3"}, "learners": {"4"}, "dump_addr": {"4=" + dump}}
	if err := fleet.Poll(ctx, wait, func() error { return f.Post(ctx, 5, "/sources?"+q.Encode(), nil) }); err != nil {
		t.Fatalf("adding solo: %v", err)
	}
	dumptest.Exec(t, src, "CREATE DATABASE IF NOT EXISTS test", "CREATE TABLE test.t (n INT PRIMARY KEY) ENGINE=InnoDB")
	for i := 1; i <= 30; i++ {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := src.Exec(wctx, fmt.Sprintf("INSERT INTO test.t VALUES (%d)", i))
		cancel()
		if err != nil {
			t.Fatalf("commit %d not acknowledged: %v", i, err)
		}
	}
	var st binlogsvr.Status
	if err := fleet.Poll(ctx, wait, func() error {
		if err := f.Get(ctx, 4, "/sources/solo/status?local=1", &st); err != nil {
			return err
		}
		if st.Role != "learner" || st.Transactions < 30 {
			return fmt.Errorf("host 4: role %s, %d transactions", st.Role, st.Transactions)
		}
		return nil
	}); err != nil {
		t.Fatalf("the learner host: %v", err)
	}
	var ms binlogsvr.MembersStatus
	if err := f.Get(ctx, 1, "/sources/solo/members?refresh=1", &ms); err != nil {
		t.Fatal(err)
	}
	var learners, loggers int
	for _, m := range ms.View.Members {
		switch m.Role {
		case "learner":
			learners++
		case "logger":
			loggers++
		}
	}
	if learners != 1 || loggers != 3 {
		t.Fatalf("solo's members: %d loggers, %d learners; want 3 and 1: %+v", loggers, learners, ms.View.Members)
	}
	dumptest.PointReplica(t, replica, dump, dumptest.ByGTID)
	dumptest.WaitReplicated(t, src, replica, wait)
	dumptest.SameData(t, src, replica, []string{"test.t"})
	t.Logf("solo: 3 loggers and a learner on host 4 (%d transactions), which serves a replica", st.Transactions)

	// Move solo's logger from host 3 to host 5, online, while its source
	// commits: host 5 ends a logger with every transaction, host 3 holds
	// none of its data.
	dump5, err := fleet.FreeAddrOn(strings.Split(f.Member(5).AdminAddr, ":")[0])
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var writeErr error
	go func() {
		defer close(done)
		for i := 31; i <= 90; i++ {
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := src.Exec(wctx, fmt.Sprintf("INSERT INTO test.t VALUES (%d)", i))
			cancel()
			if err != nil {
				writeErr = fmt.Errorf("commit %d during the move not acknowledged: %v", i, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	// NB: binlogctl --wait follows the move to its end (exit 0).
	moveOut, moveErr := exec.Command(ctlBin, append(append(f.CtlArgs(), "--admin", f.Member(2).AdminAddr),
		"sources", "move", "solo", "--from", "3", "--to", "5", "--dump-addr", dump5, "--wait", "--timeout-move", "2m")...).CombinedOutput()
	if moveErr != nil {
		t.Fatalf("binlogctl sources move solo --from 3 --to 5 --wait: %v\n%s", moveErr, moveOut)
	}
	t.Logf("binlogctl sources move --wait:\n%s", moveOut)
	var steps []string
	if err := fleet.Poll(ctx, wait, func() error {
		var l []api.SourceInfo
		if err := f.Get(ctx, 1, "/sources", &l); err != nil {
			return err
		}
		si := l[0]
		if si.Move != nil {
			if len(steps) == 0 || steps[len(steps)-1] != si.Move.Step {
				steps = append(steps, si.Move.Step)
			}
			return fmt.Errorf("move at %s (%s)", si.Move.Step, si.Move.Error)
		}
		if fmt.Sprint(si.Loggers) != "[1 2 5]" || si.DumpAddrs[5] != dump5 || si.DumpAddrs[3] != "" {
			return fmt.Errorf("loggers %v dump addrs %v", si.Loggers, si.DumpAddrs)
		}
		return nil
	}); err != nil {
		t.Fatalf("the move did not end: %v (steps seen %v)", err, steps)
	}
	<-done
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	t.Logf("moved solo's logger from host 3 to host 5 (steps seen: %v) while 60 commits were acknowledged", steps)
	if err := fleet.Poll(ctx, wait, func() error {
		var s5, s1 binlogsvr.Status
		if err := f.Get(ctx, 5, "/sources/solo/status?local=1", &s5); err != nil {
			return err
		}
		if err := f.Get(ctx, 1, "/sources/solo/status?local=1", &s1); err != nil {
			return err
		}
		if s5.Role != "logger" || s5.GTIDExecuted != s1.GTIDExecuted {
			return fmt.Errorf("host 5: %s at %q; host 1 at %q", s5.Role, s5.GTIDExecuted, s1.GTIDExecuted)
		}
		dirs, _ := filepath.Glob(filepath.Join(f.Member(3).DataDir, "binlog", "shard-*"))
		if len(dirs) > 0 {
			return fmt.Errorf("host 3 still holds %v", dirs)
		}
		return nil
	}); err != nil {
		t.Fatalf("after the move: %v", err)
	}
	ms = binlogsvr.MembersStatus{}
	if err := f.Get(ctx, 5, "/sources/solo/members?refresh=1", &ms); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms.View.Members {
		if m.ID == 3 {
			t.Errorf("host 3's replica is still a member: %+v", m)
		}
	}

	// Host 5 serves solo's replicas at the address the move gave it.
	r5 := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB})
	dumptest.PointReplica(t, r5, dump5, dumptest.ByGTID)
	dumptest.WaitReplicated(t, src, r5, wait)

	// Host 3, whose replica the move removed, restarts (its removal stays
	// with that shard's data, not the host) and answers for solo by
	// passing calls to a host that runs it, which passes a leader's call
	// on to the leader.
	if err := f.Stop(3); err != nil {
		t.Fatal(err)
	}
	if err := f.Restart(3); err != nil {
		t.Fatal(err)
	}
	var rot map[string]any
	if err := fleet.Poll(ctx, wait, func() error { return f.Post(ctx, 3, "/sources/solo/rotate", &rot) }); err != nil {
		t.Fatalf("POST /sources/solo/rotate on host 3 (which no longer runs solo): %v", err)
	}
	t.Logf("rotate of solo through host 3: %v", rot)

	// A logger that was there before the move restarts: it starts solo
	// from its own data (its loggers changed since it was bootstrapped).
	if err := f.Stop(1); err != nil {
		t.Fatal(err)
	}
	if err := f.Restart(1); err != nil {
		t.Fatal(err)
	}
	for i := 91; i <= 95; i++ {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := src.Exec(wctx, fmt.Sprintf("INSERT INTO test.t VALUES (%d)", i))
		cancel()
		if err != nil {
			t.Fatalf("commit %d after host 1's restart: %v", i, err)
		}
	}
	if err := fleet.Poll(ctx, wait, func() error {
		var s1, s5 binlogsvr.Status
		if err := f.Get(ctx, 1, "/sources/solo/status?local=1", &s1); err != nil {
			return err
		}
		if err := f.Get(ctx, 5, "/sources/solo/status?local=1", &s5); err != nil {
			return err
		}
		if s1.GTIDExecuted != s5.GTIDExecuted {
			return fmt.Errorf("host 1 at %q, host 5 at %q", s1.GTIDExecuted, s5.GTIDExecuted)
		}
		return nil
	}); err != nil {
		t.Fatalf("host 1 after its restart: %v", err)
	}

	// The fleet-wide calls are in the catalog's audit trail.
	out, err := exec.Command(ctlBin, append(append(f.CtlArgs(), "--admin", f.Member(4).AdminAddr), "sources", "--json")...).CombinedOutput()
	if err != nil {
		t.Fatalf("binlogctl sources --json: %v\n%s", err, out)
	}
	var trail []api.AuditRecord
	if err := f.Get(ctx, 4, "/sources/history", &trail); err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, a := range trail {
		calls = append(calls, fmt.Sprintf("%s by %s: %d", a.Call, a.By, a.Status))
	}
	joined := strings.Join(calls, "\n")
	if !strings.Contains(joined, "POST /sources") || !strings.Contains(joined, "POST /sources/solo/move") || !strings.Contains(joined, "POST /hosts") {
		t.Errorf("the fleet's audit trail lacks the hosts added, the source added or the move:\n%s", joined)
	}
	if strings.Contains(joined, "GET ") {
		t.Errorf("the fleet's audit trail holds reads:\n%s", joined)
	}
	t.Logf("the fleet's audit trail:\n%s", joined)
}
