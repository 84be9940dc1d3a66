package failover

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// RejoinReport is the rejoin check of an old source.
type RejoinReport = api.RejoinReport

// RejoinCheck compares a server's executed GTIDs with the log.
func (m *Manager) RejoinCheck(ctx context.Context, addr string) (RejoinReport, error) {
	rep := RejoinReport{Server: addr}
	st, err := m.deps.Log.State()
	if err != nil {
		return rep, fmt.Errorf("failover: reading the log's state: %w", err)
	}
	rep.LogGTIDs = st.GTIDs
	if addr == st.Source.Addr && !st.Source.Fenced {
		rep.IsSource = true
		rep.Advice = "it is the log's current source; nothing to rejoin"
		return rep, nil
	}
	c, err := m.recordedServer(addr)
	if err != nil {
		return rep, err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	s, err := m.connectAdmin(cctx, addr, c)
	if err != nil {
		return rep, err
	}
	defer s.Close()
	info, err := s.Info(cctx)
	if err != nil {
		return rep, err
	}
	rep.Flavor, rep.ServerID, rep.ServerGTIDs = info.Flavor, info.ServerID, info.GTIDs
	if st.Flavor != "" && info.Flavor != st.Flavor {
		return rep, fmt.Errorf("failover: %s is %s, the log holds %s", addr, info.Flavor, st.Flavor)
	}
	// NB: read the GTIDs of its binlog back to the first one the log
	// holds. MySQL: a commit waiting for its semi-sync ACK (AFTER_SYNC) is
	// in the binlog but not yet in gtid_executed, and commits once the
	// wait ends (semi-sync off, a timeout): it is unacknowledged all the
	// same. MariaDB: its positions hide a diverged history (same domain,
	// another server's seq).
	g, err := s.BinlogGTIDs(cctx, func(g string) bool { in, err := m.deps.Log.HasGTID(g); return err == nil && in })
	if err != nil {
		return rep, err
	}
	held := strings.Join(append(g, splitList(info.Held)...), ",")
	if f, err := flavorNamed(info.Flavor); err == nil && f.CurrentPosHeld() {
		// NB: and its gtid_current_pos: after RESET MASTER it is
		// gtid_slave_pos, where it would start replicating from; a GTID
		// there that the log lacks is as unacknowledged as one in the binlog.
		held = strings.Join(append(splitList(held), splitList(info.GTIDs)...), ",")
	}
	start, err := m.deps.Log.StartGTIDs()
	if err != nil {
		return rep, err
	}
	extra, err := Extra(st.Flavor, st.GTIDs, start, held, m.deps.Log.HasGTID)
	if err != nil {
		return rep, err
	}
	rep.Unacknowledged = dedupe(extra)
	rep.Safe = len(rep.Unacknowledged) == 0
	if !rep.Safe {
		if rep.Transactions, err = countGTIDs(info.Flavor, rep.Unacknowledged); err != nil {
			return rep, err
		}
		if rep.Keep, err = keepGTIDs(info.Flavor, held, rep.Unacknowledged); err != nil {
			return rep, err
		}
	}
	rep.Advice = rejoinAdvice(rep)
	return rep, nil
}

// recordedServer returns the candidate record of addr if the log holds
// one (a recorded candidate), or a bare one if addr is a source the log
// has recorded (its current source, or one named by a failover record or
// an audit record). Any other address is refused with ErrUnknownServer:
// the fleet logs in with its admin account only to servers the log
// records, never to one an API caller names (request forgery).
func (m *Manager) recordedServer(addr string) (Candidate, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return Candidate{}, fmt.Errorf("%w: no server given (want host:port)", ErrUnknownServer)
	}
	_, ok, err := m.deps.Log.Meta(MetaCandidatePrefix + addr)
	if err != nil {
		return Candidate{}, err
	}
	if ok {
		return m.candidate(addr)
	}
	known, err := m.recordedSources()
	if err != nil {
		return Candidate{}, err
	}
	if known[strings.ToLower(addr)] {
		return Candidate{Addr: addr}, nil
	}
	return Candidate{}, fmt.Errorf("%w: %s is neither a source the log has recorded nor a recorded candidate; the fleet logs in only to those "+
		"(binlogctl history lists the sources; add a candidate with binlogctl candidates add)", ErrUnknownServer, addr)
}

// recordedSources is the set (lower-cased host:port) of the sources the
// log records: the current one, those of the failover's operations and
// those of its audit records.
func (m *Manager) recordedSources() (map[string]bool, error) {
	out := map[string]bool{}
	add := func(a string) {
		if a = strings.TrimSpace(recordAddr(a)); a != "" {
			out[strings.ToLower(a)] = true
		}
	}
	st, err := m.deps.Log.State()
	if err != nil {
		return nil, err
	}
	add(st.Source.Addr)
	for _, key := range []string{MetaOperation, MetaLast} {
		b, ok, err := m.deps.Log.Meta(key)
		if err != nil {
			return nil, err
		}
		var op Operation
		if ok && json.Unmarshal(b, &op) == nil {
			add(op.OldSource.Addr)
			add(op.NewSource.Addr)
		}
	}
	rs, err := m.History()
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if r.Kind == KindFailover || r.Kind == KindSwitchover {
			add(r.OldSource)
			add(r.NewSource)
		}
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func dedupe(l []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, g := range l {
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out
}

// rejoinAdvice says what to do next. Pure.
func rejoinAdvice(r RejoinReport) string {
	if r.Safe {
		return "nothing to discard: binlogctl rejoin " + r.Server + " makes it a read-only replica of the fleet"
	}
	f, err := flavorNamed(r.Flavor)
	if err != nil {
		f = binlog.MySQL() // NB: advice in MySQL's words unless the server is known
	}
	return f.DiscardAdvice(r.Transactions, r.Unacknowledged, r.Keep)
}

// countGTIDs counts the transactions of a list of GTIDs (MySQL: of
// set elements). Pure.
func countGTIDs(flavor string, list []string) (uint64, error) {
	f, err := flavorNamed(flavor)
	if err != nil {
		return 0, err
	}
	return f.CountGTIDs(list)
}

// keepGTIDs is the GTID state held without the extra GTIDs: MySQL the set
// held minus extra; MariaDB, per domain, the highest GTID held that is not
// extra (the position before the first extra one). Pure.
func keepGTIDs(flavor, held string, extra []string) (string, error) {
	f, err := flavorNamed(flavor)
	if err != nil {
		return "", err
	}
	return f.KeepGTIDs(held, extra)
}

// Rejoin attaches an old source as a read-only replica of the fleet, only
// when the rejoin check finds nothing to discard.
func (m *Manager) Rejoin(ctx context.Context, addr string) (RejoinReport, error) {
	rep, err := m.RejoinCheck(ctx, addr)
	if err != nil {
		return rep, err
	}
	if rep.IsSource {
		return rep, fmt.Errorf("failover: %s is the log's current source", addr)
	}
	if !rep.Safe {
		return rep, fmt.Errorf("%w: %s: %s", ErrErrant, addr, rep.Advice)
	}
	if m.deps.FleetAddr == "" {
		return rep, fmt.Errorf("failover: no fleet dump address to replicate from (--failover-fleet-addr or --dump-addr)")
	}
	c, err := m.recordedServer(addr)
	if err != nil {
		return rep, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := m.connectAdmin(cctx, addr, c)
	if err != nil {
		return rep, err
	}
	defer s.Close()
	if err := s.SetReadOnly(cctx, true); err != nil {
		return rep, err
	}
	if err := s.DisableSemiSyncSource(cctx); err != nil {
		return rep, err
	}
	if err := s.ReplicateFrom(cctx, m.deps.FleetAddr, m.deps.FleetCred, true); err != nil {
		return rep, err
	}
	rep.Rejoined = true
	rep.Advice = "read-only replica of the fleet at " + m.deps.FleetAddr
	st, err := m.deps.Log.State()
	if err != nil {
		return rep, fmt.Errorf("failover: %s rejoined, but the log is closed: no audit record: %w", addr, err)
	}
	m.writeRecord(ctx, Record{Kind: "rejoin", Step: "rejoined", Outcome: "ok", Epoch: st.Epoch, OldSource: addr, GTIDs: rep.ServerGTIDs, Message: rep.Advice})
	return rep, nil
}
