package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
	"github.com/binlogsvr/binlogsvr/semisync"
	"github.com/binlogsvr/binlogsvr/tools/dumptest"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
)

// TestPartition: the source is cut off from the fleet (a
// proxy between them is cut) while clients keep writing to it directly.
// No commit issued after the cut returns success; the fleet's lease runs
// out and it fails over to a replica; the old source, which did not answer
// the failover's fence, is fenced once the partition heals (a deferred
// fence), and no commit returns success during that fence either; then no
// fleet member reaches it any more, the log holds none of its post-cut
// GTIDs, and binlogctl rejoin-check lists them as unacknowledged.
func TestPartition(t *testing.T) {
	for _, tc := range []struct {
		flavor sandbox.Flavor
		mode   cutMode
	}{{sandbox.MariaDB, blackhole}, {sandbox.MySQL, refuse}} {
		t.Run(string(tc.flavor), func(t *testing.T) { partitionOnce(t, tc.flavor, tc.mode) })
	}
}

func partitionOnce(t *testing.T, flavor sandbox.Flavor, mode cutMode) {
	var p *proxy
	r := newRig(t, flavor, rigOptions{replicas: 2, sourceVia: func(addr string) string {
		p = startProxy(t, addr)
		return p.addr()
	}})
	old := p.addr() // the source as the log names it
	w := startWriters(t, r.src, 8, 3*time.Second)
	defer w.stop()
	if err := fleet.Poll(context.Background(), wait, func() error {
		if n := w.succeeded(); n < 200 {
			return fmt.Errorf("%d commits", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	p.cut(mode)
	cutAt := time.Now()
	sw := watchServer(t, r.src, cutAt)
	defer func() { sw.stop(); t.Logf("the old source, from the cut (read_only, semi-sync status):\n%s", sw) }()
	// NB: read after the cut: what the old source binlogs from now on can
	// never reach the fleet.
	origin, atCut := r.binlogged(r.src)
	t.Logf("cut the source off the fleet after %d acknowledged commits; it had binlogged %d of its own transactions", w.succeeded(), len(atCut))

	newSrc := r.waitNewSource(old, wait)
	t.Logf("failed over to %s %v after the cut", newSrc, time.Since(cutAt).Round(time.Millisecond))
	if newSrc == r.src.Addr() {
		t.Fatalf("the new source %s is the old one", newSrc)
	}

	// The fleet could not fence the old source at the failover (cut off):
	// it is a pending fence, and the leader fences it as soon as it
	// answers again, through the healed proxy. No client commit may
	// return success during that fence either.
	p.heal()
	healAt := time.Now()
	fencedAt := r.waitFenced(old)
	t.Logf("the old source was fenced %v after the heal (%d connections through the healed proxy); its sessions: %v",
		fencedAt.Sub(healAt).Round(time.Millisecond), p.forwardedSince(healAt), r.sessionStates(r.src))
	if ro, err := sourceReadOnly(r.src); err != nil || !ro {
		t.Errorf("the old source is not read-only after its fence (%v)", err)
	}
	// NB: long enough for many lease probes and ingest retries, and for a
	// commit attempt by every writer.
	time.Sleep(5 * time.Second)
	if n := p.forwardedSince(fencedAt); n != 0 {
		t.Errorf("%d connections reached the old source through the healed proxy after its fence: a fleet member still pulls from or probes it", n)
	}
	r.checkNoFleetSession(r.src)
	st, err := r.status()
	if err != nil || st.Source != newSrc || st.Ingest == nil || st.Ingest.Source != newSrc {
		t.Errorf("after the heal: source %q, ingest %+v (%v); want both %s", st.Source, st.Ingest, err, newSrc)
	}
	_, atFence := r.binlogged(r.src)
	t.Logf("now the old source's sessions: %v; %s; it binlogged %d transactions after the cut (the unacknowledged ones its fence ended)",
		r.sessionStates(r.src), r.semiSyncState(r.src), len(atFence)-len(atCut))
	w.stop()

	// No commit issued after the cut returned success.
	s := w.summary(cutAt, healAt)
	t.Logf("commits: %d acknowledged before the cut, %d in flight at the cut (%d of them acknowledged), %d issued after the cut "+
		"(%d acknowledged), %d issued after the heal; those issued after the cut: %v",
		s.before, s.inFlight, s.inFlightOK, s.after, s.afterOK, s.afterHeal, s.errs)
	for _, a := range s.bad {
		t.Errorf("commit (client %d, n %d) issued %v after the cut returned success at %v", a.c, a.n, a.start.Sub(cutAt), a.end.Sub(cutAt))
	}
	if s.after == 0 || s.afterHeal == 0 {
		t.Fatalf("no commit was issued after the cut (%d) or after the heal (%d)", s.after, s.afterHeal)
	}

	// The log holds none of what the old source binlogged after the cut,
	// and binlogctl rejoin-check lists exactly the old source's
	// transactions the log lacks: those, and any in flight at the cut that
	// never reached the fleet.
	_, atEnd := r.binlogged(r.src)
	var post []string
	for g := range atEnd {
		if !atCut[g] {
			post = append(post, g)
		}
	}
	sort.Strings(post)
	want := maps.Clone(atEnd)
	var first uint64 // the first of the old source's GTIDs in the log
	for _, m := range r.f.Members {
		have := r.logGTIDs(m.ID)
		var in []string
		for _, g := range post {
			if have[g] {
				in = append(in, g)
			}
		}
		if len(in) > 0 {
			t.Errorf("member %d's log holds %d of the old source's post-cut transactions: %v", m.ID, len(in), in)
		}
		ofOld := 0
		for g := range have {
			if o, n, ok := splitGTID(flavor, g); ok && o == origin {
				ofOld++
				delete(want, g)
				if first == 0 || n < first {
					first = n
				}
			}
		}
		t.Logf("member %d's log holds %d transactions, %d of the old source's %d; none of the %d it binlogged after the cut (%v)",
			m.ID, len(have), ofOld, len(atEnd), len(post), post)
	}
	// NB: rejoin-check reads the old source once it is down and restarted
	// (as TestRejoin does): crash recovery commits what its binlog holds. While
	// it runs, its commits that wait for an ACK are in its binlog but not
	// in MySQL's gtid_executed, and MariaDB blocks reading its binlog.
	if err := r.src.Kill(); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	err = r.src.Restart(rctx)
	rcancel()
	if err != nil {
		t.Fatal(err)
	}
	for g := range want {
		if _, n, _ := splitGTID(flavor, g); n < first {
			delete(want, g) // NB: from before the fleet began
		}
	}
	out, _ := r.ctl("rejoin-check", "--json", old)
	var rep failover.RejoinReport
	// NB: the report, then (exit status 1) why it is not safe.
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&rep); err != nil {
		t.Fatalf("binlogctl rejoin-check --json %s: %v\n%s", old, err, out)
	}
	listed := map[string]bool{}
	for _, g := range expandList(flavor, strings.Join(rep.Unacknowledged, ",")) {
		for n := g.lo; n <= g.hi && n-g.lo < 1e6; n++ {
			listed[fmt.Sprintf("%s%s%d", g.origin, sep(flavor), n)] = true
		}
	}
	if !maps.Equal(listed, want) || rep.Safe || len(want) < len(post) {
		t.Errorf("rejoin-check %s lists %v (safe %v); want the %d the log lacks: %v", old, rep.Unacknowledged, rep.Safe, len(want), sortedKeys(want))
	}
	t.Logf("binlogctl rejoin-check %s: %d unacknowledged (%v); advice: %s", old, len(listed), rep.Unacknowledged, rep.Advice)

	// Zero loss: every acknowledged commit is on the new source, nothing
	// issued after the cut is, and the other replica is checksum-equal.
	ns := r.byAddr(newSrc)
	rows := tableRows(t, ns)
	lost := 0
	for _, a := range w.all() {
		k := [2]int{a.c, a.n}
		switch {
		case a.ok && !rows[k]:
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged commit (client %d, n %d) is not on the new source %s", a.c, a.n, newSrc)
			}
		case !a.start.Before(cutAt) && rows[k]:
			t.Errorf("commit (client %d, n %d) issued after the cut is on the new source %s", a.c, a.n, newSrc)
		}
	}
	if lost > 0 {
		t.Fatalf("%d acknowledged commits lost", lost)
	}
	t.Logf("all %d acknowledged commits are on the new source (%d rows there)", s.before+s.inFlightOK, len(rows))
	for _, rep := range r.replicas {
		if rep != ns {
			dumptest.WaitReplicated(t, ns, rep, wait)
			dumptest.SameData(t, ns, rep, []string{"test.acked"})
		}
	}
	h, _ := r.ctl("history")
	t.Logf("binlogctl history:\n%s", h)
}

// attempt is one commit a writer issued.
type attempt struct {
	c, n       int
	start, end time.Time // end: zero while it waits
	ok         bool
	err        string
}

// writers are clients that keep committing to one server directly (not
// through the fleet's view of the source), each commit bounded by a
// timeout after which the client gives up, reconnects and goes on.
type writers struct {
	wg     sync.WaitGroup
	cancel context.CancelFunc
	once   sync.Once
	mu     sync.Mutex
	tried  []*attempt
}

func startWriters(t *testing.T, s *sandbox.Server, clients int, timeout time.Duration) *writers {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{cancel: cancel}
	addr := s.Addr()
	for c := 0; c < clients; c++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			var conn *client.Conn
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for n := 0; ctx.Err() == nil; n++ {
				if conn == nil {
					dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
					cn, err := semisync.Dial(dctx, addr, "app", "app-pw")
					dcancel()
					if err != nil {
						time.Sleep(50 * time.Millisecond)
						n--
						continue
					}
					conn = cn
				}
				a := &attempt{c: c, n: n, start: time.Now()}
				w.mu.Lock()
				w.tried = append(w.tried, a)
				w.mu.Unlock()
				cn := conn // NB: the AfterFunc may run after conn is reset
				stop := context.AfterFunc(ctx, func() { _ = cn.SetDeadline(time.Now()) })
				_ = conn.SetDeadline(time.Now().Add(timeout))
				_, err := conn.Execute(fmt.Sprintf("INSERT INTO test.acked (c, n, v) VALUES (%d, %d, 'writer %d commit %d')", c, n, c, n))
				stop()
				w.mu.Lock()
				a.end, a.ok = time.Now(), err == nil
				if err != nil {
					a.err = err.Error()
				}
				w.mu.Unlock()
				if err != nil {
					conn.Close()
					conn = nil
				}
			}
		}()
	}
	return w
}

// stop ends every client (a waiting commit is abandoned) and waits.
func (w *writers) stop() {
	w.once.Do(func() {
		w.cancel()
		w.wg.Wait()
	})
}

func (w *writers) succeeded() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.tried {
		if a.ok {
			n++
		}
	}
	return n
}

func (w *writers) all() []attempt {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]attempt, len(w.tried))
	for i, a := range w.tried {
		out[i] = *a
	}
	return out
}

type writeSummary struct {
	before, inFlight, inFlightOK, after, afterOK, afterHeal int
	bad                                                     []attempt      // issued after the cut, yet acknowledged
	errs                                                    map[string]int // how those issued after the cut ended
}

func (w *writers) summary(cut, heal time.Time) writeSummary {
	s := writeSummary{errs: map[string]int{}}
	for _, a := range w.all() {
		switch {
		case a.start.Before(cut) && a.ok && a.end.Before(cut):
			s.before++
		case a.start.Before(cut):
			s.inFlight++
			if a.ok {
				s.inFlightOK++
			}
		default:
			s.after++
			if !a.start.Before(heal) {
				s.afterHeal++
			}
			switch {
			case a.ok:
				s.afterOK++
				s.bad = append(s.bad, a)
				s.errs["acknowledged"]++
			case a.end.IsZero():
				s.errs["waiting"]++
			default:
				s.errs[errKind(a.err)]++
			}
		}
	}
	return s
}

// binlogged returns the origin of s's own GTIDs (MySQL: its server_uuid;
// MariaDB: "0-<server_id>") and the GTIDs of that origin in its binlog
// files. NB: not MySQL's @@gtid_executed: a transaction is added to it only
// once it commits, after its ACK (AFTER_SYNC).
func (r *rig) binlogged(s *sandbox.Server) (string, map[string]bool) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := "SELECT @@GLOBAL.server_uuid"
	if r.flavor == sandbox.MariaDB {
		q = "SELECT CONCAT('0-', @@GLOBAL.server_id)"
	}
	res, err := s.Exec(ctx, q)
	if err != nil {
		r.t.Fatal(err)
	}
	origin, _ := res.GetString(0, 0)
	origin = strings.ToLower(strings.Clone(origin))
	out := map[string]bool{}
	if r.flavor == sandbox.MariaDB {
		// NB: MariaDB blocks SHOW BINARY LOGS while a commit group waits for
		// its ACK; its binlog state is the last seq of each (domain,
		// server), and a source's own seqs have no gaps.
		res, err := s.Exec(ctx, "SELECT @@GLOBAL.gtid_binlog_state")
		if err != nil {
			r.t.Fatal(err)
		}
		st, _ := res.GetString(0, 0)
		for _, g := range expandList(r.flavor, st) {
			if g.origin == origin {
				for n := uint64(1); n <= g.hi; n++ {
					out[fmt.Sprintf("%s-%d", origin, n)] = true
				}
			}
		}
		return origin, out
	}
	res, err = s.Exec(ctx, "SHOW BINARY LOGS")
	if err != nil {
		r.t.Fatal(err)
	}
	var files []string
	for i := 0; i < res.RowNumber(); i++ {
		f, _ := res.GetString(i, 0)
		files = append(files, strings.Clone(f))
	}
	for _, f := range files {
		res, err := s.Exec(ctx, "SHOW BINLOG EVENTS IN '"+f+"'")
		if err != nil {
			r.t.Fatal(err)
		}
		for i := 0; i < res.RowNumber(); i++ {
			typ, _ := res.GetStringByName(i, "Event_type")
			info, _ := res.GetStringByName(i, "Info")
			if typ != "Gtid" {
				continue
			}
			if m := gtidInInfo.FindString(info); m != "" {
				if o, _, ok := splitGTID(r.flavor, m); ok && o == origin {
					out[strings.ToLower(m)] = true
				}
			}
		}
	}
	return origin, out
}

// gtidInInfo finds the GTID in SHOW BINLOG EVENTS' Info of a Gtid event
// (MySQL "SET @@SESSION.GTID_NEXT= 'uuid:N'", MariaDB "BEGIN GTID d-s-n").
var gtidInInfo = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}(:[A-Za-z_][A-Za-z0-9_]*)?:[0-9]+|[0-9]+-[0-9]+-[0-9]+`)

func sep(flavor sandbox.Flavor) string {
	if flavor == sandbox.MariaDB {
		return "-"
	}
	return ":"
}

func sortedKeys(m map[string]bool) []string {
	out := slices.Collect(maps.Keys(m))
	sort.Strings(out)
	return out
}

// waitFenced waits until the leader's deferred fence of old is done (an
// audit record fence/fenced, no pending fence) and returns when it first
// saw the record: the fence's connections were all before.
func (r *rig) waitFenced(old string) time.Time {
	r.t.Helper()
	var at time.Time
	if err := fleet.Poll(context.Background(), 30*time.Second, func() error {
		st, err := r.failoverStatus()
		if err != nil {
			return err
		}
		if at.IsZero() {
			rs, err := r.history()
			if err != nil {
				return err
			}
			for _, x := range rs {
				if x.Kind == failover.KindFence && x.OldSource == old && x.Step == "fenced" && x.Outcome == "ok" {
					at = time.Now()
					r.t.Logf("audit: %s", x.Message)
				}
			}
			if at.IsZero() {
				return fmt.Errorf("no fence record for %s", old)
			}
		}
		for _, p := range st.PendingFences {
			if p.Addr == old {
				return fmt.Errorf("pending fence %+v", p)
			}
		}
		return nil
	}); err != nil {
		r.t.Fatalf("the old source %s was not fenced: %v", old, err)
	}
	return at
}

// semiSyncState reports whether s's semi-sync source side is on and how
// many commits it let through without an ACK.
func (r *rig) semiSyncState(s *sandbox.Server) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.Exec(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_source_status', "+
		"'Rpl_semi_sync_master_no_tx', 'Rpl_semi_sync_source_no_tx', 'Rpl_semi_sync_master_yes_tx', 'Rpl_semi_sync_source_yes_tx')")
	if err != nil {
		return err.Error()
	}
	var parts []string
	for i := 0; i < res.RowNumber(); i++ {
		k, _ := res.GetString(i, 0)
		v, _ := res.GetString(i, 1)
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}

// gtidRange is a run of one origin's GTIDs.
type gtidRange struct {
	origin string
	lo, hi uint64
}

// expandList reads a MySQL GTID set ("uuid:1-5:7,uuid2:1-3") or a MariaDB
// GTID list ("0-1-8,0-2-3") as ranges.
func expandList(flavor sandbox.Flavor, s string) []gtidRange {
	var out []gtidRange
	for _, e := range strings.Split(strings.ReplaceAll(s, "\n", ""), ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if flavor == sandbox.MariaDB {
			if o, n, ok := splitGTID(flavor, e); ok {
				out = append(out, gtidRange{o, n, n})
			}
			continue
		}
		parts := strings.Split(e, ":")
		for _, iv := range parts[1:] {
			lo, hi, isRange := strings.Cut(iv, "-")
			a, err1 := strconv.ParseUint(lo, 10, 64)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.ParseUint(hi, 10, 64)
			}
			if err1 == nil && err2 == nil {
				out = append(out, gtidRange{strings.ToLower(parts[0]), a, b})
			}
		}
	}
	return out
}

// splitGTID splits one GTID into its origin (MySQL uuid; MariaDB
// "domain-server") and number.
func splitGTID(flavor sandbox.Flavor, g string) (string, uint64, bool) {
	if flavor == sandbox.MariaDB {
		i := strings.LastIndexByte(g, '-')
		if i < 0 {
			return "", 0, false
		}
		n, err := strconv.ParseUint(g[i+1:], 10, 64)
		return g[:i], n, err == nil
	}
	i := strings.LastIndexByte(g, ':')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(g[i+1:], 10, 64)
	return strings.ToLower(g[:i]), n, err == nil
}

// logGTIDs reads every binlog file of member id's log (GET /binlogs/NAME)
// and returns the GTIDs of its transactions.
func (r *rig) logGTIDs(id uint64) map[string]bool {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fl, err := binlog.FlavorByName(string(r.flavor))
	if err != nil {
		r.t.Fatal(err)
	}
	files, err := r.f.Files(ctx, id)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range files {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.f.URL(id, "/binlogs/"+f.Name), nil)
		resp, err := r.f.HTTP().Do(req)
		if err != nil {
			r.t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(b) < len(binlog.Magic) {
			r.t.Fatalf("member %d: %s: %v %s", id, f.Name, err, resp.Status)
		}
		evs, err := binlog.SplitEvents(b[len(binlog.Magic):])
		if err != nil || len(evs) == 0 {
			r.t.Fatalf("member %d: %s: %v", id, f.Name, err)
		}
		alg, err := binlog.FDEChecksumAlg(evs[0])
		if err != nil {
			r.t.Fatalf("member %d: %s: %v", id, f.Name, err)
		}
		for _, ev := range evs[1:] {
			g, ok, err := fl.GTIDOfEvent(ev, alg)
			if err != nil {
				r.t.Fatalf("member %d: %s: %v", id, f.Name, err)
			}
			if ok {
				out[g] = true
			}
		}
	}
	return out
}

// checkNoFleetSession checks that no binlog dump thread and no semi-sync
// replica is attached to s (polled: a dump thread cut off by the proxy
// notices on its next write).
func (r *rig) checkNoFleetSession(s *sandbox.Server) {
	r.t.Helper()
	err := fleet.Poll(context.Background(), 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := s.Exec(ctx, "SHOW PROCESSLIST")
		if err != nil {
			return err
		}
		for i := 0; i < res.RowNumber(); i++ {
			cmd, _ := res.GetStringByName(i, "Command")
			host, _ := res.GetStringByName(i, "Host")
			if strings.HasPrefix(cmd, "Binlog Dump") {
				return fmt.Errorf("a binlog dump thread for %s", host)
			}
		}
		res, err = s.Exec(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_clients', 'Rpl_semi_sync_source_clients')")
		if err != nil {
			return err
		}
		if res.RowNumber() == 0 {
			return fmt.Errorf("no semi-sync status")
		}
		if v, _ := res.GetString(0, 1); v != "0" {
			return fmt.Errorf("%s semi-sync replicas", v)
		}
		return nil
	})
	if err != nil {
		r.t.Errorf("the old source %s still serves the fleet: %v", s.Addr(), err)
	}
}

// tableRows returns the (c, n) keys of test.acked on s.
func tableRows(t *testing.T, s *sandbox.Server) map[[2]int]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := s.Exec(ctx, "SELECT c, n FROM test.acked")
	if err != nil {
		t.Fatal(err)
	}
	have := map[[2]int]bool{}
	for i := 0; i < res.RowNumber(); i++ {
		c, _ := res.GetInt(i, 0)
		n, _ := res.GetInt(i, 1)
		have[[2]int{int(c), int(n)}] = true
	}
	return have
}

// errKind shortens a client error for a summary.
func errKind(e string) string {
	switch {
	case strings.Contains(e, "timeout"):
		return "timed out"
	case strings.Contains(e, "read-only") || strings.Contains(e, "read_only"):
		return "read-only"
	case strings.Contains(e, "EOF") || strings.Contains(e, "closed") || strings.Contains(e, "reset"):
		return "connection closed"
	}
	if len(e) > 60 {
		e = e[:60]
	}
	return e
}

// sessionStates counts the states of s's client sessions.
func (r *rig) sessionStates(s *sandbox.Server) map[string]int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.Exec(ctx, "SHOW PROCESSLIST")
	if err != nil {
		return map[string]int{err.Error(): 1}
	}
	out := map[string]int{}
	for i := 0; i < res.RowNumber(); i++ {
		u, _ := res.GetStringByName(i, "User")
		st, _ := res.GetStringByName(i, "State")
		if u == "app" {
			out[strings.Clone(st)]++
		}
	}
	return out
}
