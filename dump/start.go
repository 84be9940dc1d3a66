package dump

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// Log is the part of *logger.Reader the dump server reads. Every method
// returns committed data only and is safe for concurrent use.
type Log interface {
	State() logger.State
	Files() ([]logger.FileMeta, error)
	File(n uint32) (logger.FileMeta, error)
	ReadAt(n uint32, pos uint64, max int) ([]byte, logger.FileMeta, error)
	ReadAtInto(dst []byte, n uint32, pos uint64, max int) ([]byte, logger.FileMeta, error)
	FindGTID(gtid string) (logger.TxnRecord, error)
	Txns(n uint32, pos uint64, fn func(logger.TxnRecord) bool) error
	Changed() <-chan struct{}
}

var _ Log = (*logger.Reader)(nil)

// startPoint is where a dump begins and how it filters.
type startPoint struct {
	File uint32
	Pos  uint64 // 4: the whole file
	// Skip, if set, says whether to leave out the group of a GTID.
	Skip skipper
	// FakeList, if set (MariaDB GTID dumps), is sent as an artificial
	// GTID_LIST just before the first group sent.
	FakeList binlog.Set
}

// skipper decides, group by group, which transactions a GTID dump leaves out.
type skipper interface{ skip(gtid string) bool }

// errNotFound texts, as MySQL and MariaDB word them (clients and operators
// search for them).
const (
	msgNoFile = "Could not find first log file name in binary log index file"
)

// filePosStart resolves COM_BINLOG_DUMP's file and position.
func filePosStart(lg Log, file string, pos uint64) (startPoint, error) {
	var n uint32
	if file == "" {
		files, err := lg.Files()
		if err != nil {
			return startPoint{}, err
		}
		if len(files) == 0 {
			return startPoint{}, startError("%s: the fleet's log has no binlog file yet", msgNoFile)
		}
		n = files[0].Number
	} else {
		var err error
		if n, err = logger.ParseFileName(file); err != nil {
			return startPoint{}, startError("%s: '%s' is not a file of this fleet (its files are named %s)", msgNoFile, file, logger.FileName(1))
		}
	}
	m, err := lg.File(n)
	switch {
	case errors.Is(err, logger.ErrPurged):
		return startPoint{}, startError("%s: '%s' has been purged from this member", msgNoFile, logger.FileName(n))
	case errors.Is(err, logger.ErrNoFile):
		return startPoint{}, startError("%s: '%s' does not exist yet", msgNoFile, logger.FileName(n))
	case err != nil:
		return startPoint{}, err
	}
	if pos < uint64(len(binlog.Magic)) {
		pos = uint64(len(binlog.Magic))
	}
	if pos > m.Size {
		return startPoint{}, startError("Client requested master to start replication from position > file size: '%s' has %d bytes, position %d was asked", m.Name(), m.Size, pos)
	}
	ok, err := isBoundary(lg, m, pos)
	if err != nil {
		return startPoint{}, err
	}
	if !ok {
		return startPoint{}, startError("Client requested master to start replication from position %d of '%s', which is not the start of an event", pos, m.Name())
	}
	return startPoint{File: n, Pos: pos}, nil
}

// isBoundary reports whether pos starts an event of file m (or is its end).
func isBoundary(lg Log, m logger.FileMeta, pos uint64) (bool, error) {
	if pos == uint64(len(binlog.Magic)) || pos == m.HeaderEnd || pos == m.Size {
		return true, nil
	}
	if pos < m.HeaderEnd {
		// the file header event follows the FDE
		hdr, _, err := lg.ReadAt(m.Number, uint64(len(binlog.Magic)), binlog.HeaderLen)
		if err != nil || len(hdr) < binlog.HeaderLen {
			return false, err
		}
		h, err := binlog.ParseHeader(hdr)
		return err == nil && pos == uint64(len(binlog.Magic))+uint64(h.EventSize), nil
	}
	var rec logger.TxnRecord
	found := false
	if err := lg.Txns(m.Number, m.HeaderEnd, func(r logger.TxnRecord) bool {
		if r.Pos > pos {
			return false
		}
		rec, found = r, true
		return true
	}); err != nil {
		return false, err
	}
	if !found {
		return false, nil
	}
	if pos == rec.Pos || pos == rec.End {
		return true, nil
	}
	if pos > rec.End {
		return false, nil // inside the closing Rotate
	}
	b, _, err := lg.ReadAt(m.Number, rec.Pos, int(pos-rec.Pos))
	if err != nil {
		return false, err
	}
	_, err = binlog.SplitEvents(b)
	return err == nil, nil
}

// mariadbGTID is one parsed MariaDB GTID; dump keeps its own small parser
// because it needs the domain, which binlog.Set does not expose.
type mariadbGTID struct {
	domain, server uint32
	seq            uint64
}

func parseMariaDBGTID(s string) (mariadbGTID, bool) {
	p := strings.Split(strings.TrimSpace(s), "-")
	if len(p) != 3 {
		return mariadbGTID{}, false
	}
	d, e1 := strconv.ParseUint(p[0], 10, 32)
	sv, e2 := strconv.ParseUint(p[1], 10, 32)
	q, e3 := strconv.ParseUint(p[2], 10, 64)
	if e1 != nil || e2 != nil || e3 != nil {
		return mariadbGTID{}, false
	}
	return mariadbGTID{uint32(d), uint32(sv), q}, true
}

func (g mariadbGTID) String() string { return fmt.Sprintf("%d-%d-%d", g.domain, g.server, g.seq) }

// mariadbPos parses a MariaDB GTID position into one GTID per domain.
func mariadbPos(s string) (map[uint32]mariadbGTID, error) {
	out := map[uint32]mariadbGTID{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		g, ok := parseMariaDBGTID(part)
		if !ok {
			return nil, fmt.Errorf("%q is not a GTID domain-server-sequence", strings.TrimSpace(part))
		}
		if old, dup := out[g.domain]; dup && old.seq > g.seq {
			continue
		}
		out[g.domain] = g
	}
	return out, nil
}

// mariadbSkip leaves out, per domain, the groups up to and including the
// client's GTID; once a domain passes it, nothing more of it is skipped.
type mariadbSkip struct{ until map[uint32]mariadbGTID }

func (s *mariadbSkip) skip(gtid string) bool {
	g, ok := parseMariaDBGTID(gtid)
	if !ok {
		return false
	}
	u, ok := s.until[g.domain]
	if !ok {
		return false
	}
	if g.seq > u.seq {
		delete(s.until, g.domain)
		return false
	}
	if g.seq == u.seq {
		delete(s.until, g.domain)
	}
	return true
}

// mariadbStart resolves a MariaDB GTID dump (@slave_connect_state).
func mariadbStart(lg Log, state string, strict bool) (startPoint, error) {
	flav := binlog.MariaDB()
	want, err := mariadbPos(state)
	if err != nil {
		return startPoint{}, startError("Failed to parse @slave_connect_state '%s': %v", state, err)
	}
	wantSet, err := flav.ParseSet(canonicalPos(want))
	if err != nil {
		return startPoint{}, startError("Failed to parse @slave_connect_state '%s': %v", state, err)
	}
	st := lg.State()
	have, err := mariadbPos(st.GTIDs)
	if err != nil {
		return startPoint{}, fmt.Errorf("dump: the log's GTID state %q: %v", st.GTIDs, err)
	}
	files, err := lg.Files()
	if err != nil {
		return startPoint{}, err
	}
	if len(files) == 0 {
		return startPoint{}, startError("%s: the fleet's log has no binlog file yet", msgNoFile)
	}
	// The newest file whose GTID_LIST the client's state has reached.
	idx := -1
	for i := len(files) - 1; i >= 0; i-- {
		fs, err := flav.ParseSet(files[i].StartGTIDs)
		if err != nil {
			return startPoint{}, fmt.Errorf("dump: GTID list of %s: %v", files[i].Name(), err)
		}
		if wantSet.ContainsSet(fs) {
			idx = i
			break
		}
	}
	for _, d := range sortedDomains(want) {
		g := want[d]
		h, known := have[d]
		switch {
		case !known && strict:
			return startPoint{}, startError("Error: connecting slave requested to start from GTID %s, which is not in the master's binlog", g)
		case !known:
			delete(want, d) // a domain the log never saw: ignored, as MariaDB does without strict mode
			continue
		case g.seq > h.seq:
			return startPoint{}, aheadError("Error: connecting slave requested to start from GTID %s, which is not in the master's binlog", g)
		}
		if _, err := lg.FindGTID(g.String()); err == nil || startsAt(files, g) {
			continue
		} else if !errors.Is(err, logger.ErrNoGTID) && !errors.Is(err, logger.ErrPurged) {
			return startPoint{}, err
		}
		if idx < 0 {
			break // reported as purged below
		}
		return startPoint{}, startError("Error: connecting slave requested to start from GTID %s, which is not in the master's binlog. Since the master's binlog contains GTIDs with higher sequence numbers, it probably means that the slave has diverged due to executing extra erroneous transactions", g)
	}
	if idx < 0 {
		return startPoint{}, startError("Could not find GTID state requested by slave in any binlog files. Probably the slave state is too old and required binlog files have been purged. (The slave asked for '%s'; the oldest file held, %s, starts after '%s'.)", state, files[0].Name(), files[0].StartGTIDs)
	}
	sp := startPoint{File: files[idx].Number, Pos: uint64(len(binlog.Magic))}
	if len(want) > 0 {
		sp.Skip = &mariadbSkip{until: clonePos(want)}
		fl, _ := flav.ParseSet(canonicalPos(want)) // NB: built from parsed GTIDs, cannot fail
		sp.FakeList = fl
	}
	return sp, nil
}

// startsAt reports whether g is the state some file starts from (its
// transaction may be purged, but a client there needs nothing before).
func startsAt(files []logger.FileMeta, g mariadbGTID) bool {
	for _, f := range files {
		p, err := mariadbPos(f.StartGTIDs)
		if err == nil && p[g.domain] == g {
			return true
		}
	}
	return false
}

func sortedDomains(m map[uint32]mariadbGTID) []uint32 {
	out := make([]uint32, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func canonicalPos(m map[uint32]mariadbGTID) string {
	var parts []string
	for _, d := range sortedDomains(m) {
		parts = append(parts, m[d].String())
	}
	return strings.Join(parts, ",")
}

func clonePos(m map[uint32]mariadbGTID) map[uint32]mariadbGTID {
	out := make(map[uint32]mariadbGTID, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// mysqlSkip leaves out the transactions the client has executed.
type mysqlSkip struct{ have binlog.Set }

func (s *mysqlSkip) skip(gtid string) bool { return s.have.Contains(gtid) }

// mysqlStart resolves COM_BINLOG_DUMP_GTID (a MySQL GTID set).
func mysqlStart(lg Log, encoded []byte) (startPoint, error) {
	flav := binlog.MySQL()
	var have binlog.Set = flav.EmptySet()
	if len(encoded) > 0 {
		var err error
		if have, err = binlog.DecodeMySQLSet(encoded); err != nil {
			return startPoint{}, startError("The replica sent a GTID set that cannot be decoded: %v", err)
		}
	}
	st := lg.State()
	files, err := lg.Files()
	if err != nil {
		return startPoint{}, err
	}
	if len(files) == 0 {
		return startPoint{}, startError("%s: the fleet's log has no binlog file yet", msgNoFile)
	}
	purged, err := flav.ParseSet(files[0].StartGTIDs)
	if err != nil {
		return startPoint{}, fmt.Errorf("dump: Previous_gtids of %s: %v", files[0].Name(), err)
	}
	if !have.ContainsSet(purged) {
		return startPoint{}, startError("Cannot replicate because the source purged required binary logs. Replicate the missing transactions from elsewhere, or provision a new replica from backup. Consider increasing the source's binary log expiration period. The GTID set sent by the replica is '%s', and the source has purged '%s'", have, purged)
	}
	if st.Source.UUID != "" {
		logSet, err := flav.ParseSet(st.GTIDs)
		if err != nil {
			return startPoint{}, fmt.Errorf("dump: the log's GTID state %q: %v", st.GTIDs, err)
		}
		var own []string
		for _, part := range strings.Split(have.String(), ",") {
			if strings.HasPrefix(strings.TrimSpace(part), st.Source.UUID+":") {
				own = append(own, part)
			}
		}
		if ownSet, err := flav.ParseSet(strings.Join(own, ",")); err == nil && !logSet.ContainsSet(ownSet) {
			return startPoint{}, aheadError("Slave has more GTIDs than the master has, using the master's SERVER_UUID. This may indicate that the end of the binary log was truncated or that the last binary log file was lost, e.g., after a power or disk failure when sync_binlog != 1. The master may or may not have rolled back transactions that were already replicated to the slave. Suggest to replicate any transactions that master has rolled back from slave to master, and/or commit empty transactions on master to account for transactions that have been committed on master but are not included in GTID_EXECUTED. (The replica has '%s'; the log has '%s'.)", ownSet, st.GTIDs)
		}
	}
	idx := 0
	for i := len(files) - 1; i >= 0; i-- {
		fs, err := flav.ParseSet(files[i].StartGTIDs)
		if err != nil {
			return startPoint{}, fmt.Errorf("dump: Previous_gtids of %s: %v", files[i].Name(), err)
		}
		if have.ContainsSet(fs) {
			idx = i
			break
		}
	}
	return startPoint{File: files[idx].Number, Pos: uint64(len(binlog.Magic)), Skip: &mysqlSkip{have: have}}, nil
}
