package binlog

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/google/uuid"
)

// GTIDMath is what the failover asks about GTID states beyond Set: how far
// a server is behind the log, what it holds that the log does not, and
// what it keeps without those. MySQL states are GTID sets; MariaDB states
// are lists of GTIDs ("d-s-n,..."), which may hold several per domain (as
// @@gtid_binlog_state has one per domain and server). Every method is
// pure; malformed text is an error wrapping ErrBadSet or ErrBadGTID.
type GTIDMath interface {
	// Missing counts the log's transactions that a server with GTID state
	// have has not applied: MySQL |log − have|; MariaDB the sum over the
	// log's domains of how many sequence numbers have is behind.
	Missing(log, have string) (uint64, error)
	// Extra returns the GTIDs of held that the log does not hold. MySQL:
	// held − log, one element per uuid[:tag]. MariaDB: each GTID of held
	// that lookup does not find, unless it is at or below start (the log's
	// position when it began) in its domain.
	Extra(log, start, held string, lookup func(gtid string) (bool, error)) ([]string, error)
	// CountGTIDs counts the transactions of a list of GTIDs (MySQL: of
	// set elements).
	CountGTIDs(list []string) (uint64, error)
	// KeepGTIDs is the GTID state held without extra: MySQL held − extra;
	// MariaDB, per domain, the highest GTID of held not in extra.
	KeepGTIDs(held string, extra []string) (string, error)
	// SplitTail sorts GTIDs a source holds that the log lacks (extra) into
	// its tail, which an ingest resuming from the log's state log takes,
	// and the rest. MySQL: the tail is the source's own (uuid); MariaDB: a
	// tail GTID is in a domain of log, past log's position there.
	SplitTail(log, uuid string, extra []string) (tail, errant []string, err error)
}

// Subtract returns the GTIDs of a that b lacks, as a new set of a's type.
// MySQL: the set difference. MariaDB (positions, one GTID per domain): a's
// entries whose domain b lacks or holds at a lower sequence number. Sets
// of different types are ErrFlavorMismatch.
func Subtract(a, b mysql.GTIDSet) (mysql.GTIDSet, error) {
	switch a := a.(type) {
	case *mysql.MysqlGTIDSet:
		b, ok := b.(*mysql.MysqlGTIDSet)
		if !ok {
			return nil, fmt.Errorf("%w: %T minus %T", ErrFlavorMismatch, a, b)
		}
		out := mysql.NewMysqlGTIDSet()
		for sid, tags := range *a {
			for tag, ivs := range tags {
				rest := subtractIntervals(ivs, (*b)[sid][tag])
				if len(rest) == 0 {
					continue
				}
				if out[sid] == nil {
					out[sid] = map[mysql.Tag]mysql.IntervalSlice{}
				}
				out[sid][tag] = rest
			}
		}
		return &out, nil
	case *mysql.MariadbGTIDSet:
		b, ok := b.(*mysql.MariadbGTIDSet)
		if !ok {
			return nil, fmt.Errorf("%w: %T minus %T", ErrFlavorMismatch, a, b)
		}
		out := &mysql.MariadbGTIDSet{Sets: map[uint32]*mysql.MariadbGTID{}}
		for d, g := range a.Sets {
			if h, ok := b.Sets[d]; !ok || g.SequenceNumber > h.SequenceNumber {
				out.Sets[d] = g.Clone()
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %T", ErrFlavorMismatch, a)
}

// subtractIntervals returns the GNOs of a not in b; both normalized
// (sorted, disjoint, half-open), and so is the result.
func subtractIntervals(a, b mysql.IntervalSlice) mysql.IntervalSlice {
	rest := slices.Clone(a)
	for _, cut := range b {
		var next mysql.IntervalSlice
		for _, iv := range rest {
			if cut.Stop <= iv.Start || cut.Start >= iv.Stop {
				next = append(next, iv)
				continue
			}
			if iv.Start < cut.Start {
				next = append(next, mysql.Interval{Start: iv.Start, Stop: cut.Start})
			}
			if iv.Stop > cut.Stop {
				next = append(next, mysql.Interval{Start: cut.Stop, Stop: iv.Stop})
			}
		}
		rest = next
	}
	return rest
}

// Count returns the transactions of s: MySQL the number of GTIDs; MariaDB
// the sum of each domain's sequence number (a domain's transactions
// numbered from 1). A nil or other set counts 0.
func Count(s mysql.GTIDSet) uint64 {
	var n uint64
	switch s := s.(type) {
	case *mysql.MysqlGTIDSet:
		for _, tags := range *s {
			for _, ivs := range tags {
				for _, iv := range ivs {
					n += uint64(iv.Stop - iv.Start)
				}
			}
		}
	case *mysql.MariadbGTIDSet:
		for _, g := range s.Sets {
			n += g.SequenceNumber
		}
	}
	return n
}

// Contains reports whether s holds gtid: MySQL membership; MariaDB s holds
// gtid's domain at its sequence number or later (server ids are not
// compared). An invalid GTID is not contained.
func Contains(s mysql.GTIDSet, gtid string) bool {
	switch s := s.(type) {
	case *mysql.MysqlGTIDSet:
		g, err := parseMySQLGTID(gtid)
		if err != nil {
			return false
		}
		set := mysqlSet{s: *s}
		return set.has(g.sid, g.tag, mysql.Interval{Start: g.gno, Stop: g.gno + 1})
	case *mysql.MariadbGTIDSet:
		g, err := parseMariaDBGTID(gtid)
		if err != nil {
			return false
		}
		h, ok := s.Sets[g.domain]
		return ok && h.SequenceNumber >= g.seq
	}
	return false
}

// --- MySQL ---

// mysqlGTIDSet parses a MySQL GTID set (as ParseSet) into go-mysql's type.
func mysqlGTIDSet(s string) (*mysql.MysqlGTIDSet, error) {
	set, err := parseMySQLSet(s)
	if err != nil {
		return nil, err
	}
	return &set.s, nil
}

// mysqlElements is s as one text element per uuid[:tag] ("uuid:1-5:7",
// "uuid:tag:3"), uuids in byte order, the untagged intervals before the
// tags in order.
func mysqlElements(s *mysql.MysqlGTIDSet) []string {
	sids := make([]uuid.UUID, 0, len(*s))
	for sid := range *s {
		sids = append(sids, sid)
	}
	slices.SortFunc(sids, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	var out []string
	for _, sid := range sids {
		tags := make([]mysql.Tag, 0, len((*s)[sid]))
		for t, ivs := range (*s)[sid] {
			if len(ivs) > 0 {
				tags = append(tags, t)
			}
		}
		slices.SortFunc(tags, func(a, b mysql.Tag) int { return cmp.Compare(a.String(), b.String()) })
		for _, t := range tags {
			var sb strings.Builder
			sb.WriteString(sid.String())
			if t.String() != "" {
				sb.WriteString(":" + t.String())
			}
			for _, iv := range (*s)[sid][t] {
				if iv.Stop-iv.Start == 1 {
					fmt.Fprintf(&sb, ":%d", iv.Start)
				} else {
					fmt.Fprintf(&sb, ":%d-%d", iv.Start, iv.Stop-1)
				}
			}
			out = append(out, sb.String())
		}
	}
	return out
}

// mysqlDiff parses a and b and returns a − b.
func mysqlDiff(a, b string) (*mysql.MysqlGTIDSet, error) {
	x, err := mysqlGTIDSet(a)
	if err != nil {
		return nil, err
	}
	y, err := mysqlGTIDSet(b)
	if err != nil {
		return nil, err
	}
	d, err := Subtract(x, y)
	if err != nil {
		return nil, err
	}
	return d.(*mysql.MysqlGTIDSet), nil
}

func (mysqlFlavor) Missing(log, have string) (uint64, error) {
	d, err := mysqlDiff(log, have)
	if err != nil {
		return 0, err
	}
	return Count(d), nil
}

func (mysqlFlavor) Extra(log, _, held string, _ func(string) (bool, error)) ([]string, error) {
	d, err := mysqlDiff(held, log)
	if err != nil {
		return nil, err
	}
	return mysqlElements(d), nil
}

func (mysqlFlavor) CountGTIDs(list []string) (uint64, error) {
	s, err := mysqlGTIDSet(strings.Join(list, ","))
	if err != nil {
		return 0, err
	}
	return Count(s), nil
}

func (mysqlFlavor) KeepGTIDs(held string, extra []string) (string, error) {
	d, err := mysqlDiff(held, strings.Join(extra, ","))
	if err != nil {
		return "", err
	}
	return strings.Join(mysqlElements(d), ","), nil
}

func (mysqlFlavor) SplitTail(_, uuid string, extra []string) (tail, errant []string, err error) {
	for _, s := range extra {
		sid, _, _ := strings.Cut(strings.TrimSpace(s), ":")
		if uuid != "" && strings.EqualFold(sid, uuid) {
			tail = append(tail, s)
		} else {
			errant = append(errant, s)
		}
	}
	return tail, errant, nil
}

// --- MariaDB ---

// mariadbList parses "d-s-n,d-s-n" allowing several GTIDs per domain.
func mariadbList(s string) ([]mariadbGTID, error) {
	var out []mariadbGTID
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		g, err := parseMariaDBGTID(part)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// mariadbPosition is the position a list reaches: per domain its GTID of
// the highest sequence number (the first of equals).
func mariadbPosition(l []mariadbGTID) *mysql.MariadbGTIDSet {
	pos := &mysql.MariadbGTIDSet{Sets: map[uint32]*mysql.MariadbGTID{}}
	for _, g := range l {
		if o, ok := pos.Sets[g.domain]; !ok || g.seq > o.SequenceNumber {
			pos.Sets[g.domain] = &mysql.MariadbGTID{DomainID: g.domain, ServerID: g.server, SequenceNumber: g.seq}
		}
	}
	return pos
}

func parseMariaDBPosition(s string) (*mysql.MariadbGTIDSet, error) {
	l, err := mariadbList(s)
	if err != nil {
		return nil, err
	}
	return mariadbPosition(l), nil
}

func (mariadbFlavor) Missing(log, have string) (uint64, error) {
	l, err := parseMariaDBPosition(log)
	if err != nil {
		return 0, err
	}
	h, err := parseMariaDBPosition(have)
	if err != nil {
		return 0, err
	}
	var n uint64
	for d, g := range l.Sets {
		n += g.SequenceNumber
		if hg, ok := h.Sets[d]; ok {
			n -= min(hg.SequenceNumber, g.SequenceNumber)
		}
	}
	return n, nil
}

func (mariadbFlavor) Extra(_, start, held string, lookup func(string) (bool, error)) ([]string, error) {
	have, err := mariadbList(held)
	if err != nil {
		return nil, err
	}
	st, err := parseMariaDBPosition(start)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range have {
		if Contains(st, g.String()) {
			continue
		}
		in, err := lookup(g.String())
		if err != nil {
			return nil, err
		}
		if !in {
			out = append(out, g.String())
		}
	}
	return out, nil
}

func (mariadbFlavor) CountGTIDs(list []string) (uint64, error) { return uint64(len(list)), nil }

func (mariadbFlavor) KeepGTIDs(held string, extra []string) (string, error) {
	h, err := mariadbList(held)
	if err != nil {
		return "", err
	}
	drop := map[string]bool{}
	for _, g := range extra {
		drop[g] = true
	}
	var kept []mariadbGTID
	for _, g := range h {
		if !drop[g.String()] {
			kept = append(kept, g)
		}
	}
	pos := mariadbPosition(kept)
	domains := make([]uint32, 0, len(pos.Sets))
	for d := range pos.Sets {
		domains = append(domains, d)
	}
	sort.Slice(domains, func(i, j int) bool { return domains[i] < domains[j] })
	out := make([]string, 0, len(domains))
	for _, d := range domains {
		g := pos.Sets[d] // NB: not go-mysql's String, which writes 0-0-0 as ""
		out = append(out, mariadbGTID{domain: g.DomainID, server: g.ServerID, seq: g.SequenceNumber}.String())
	}
	return strings.Join(out, ","), nil
}

func (mariadbFlavor) SplitTail(log, _ string, extra []string) (tail, errant []string, err error) {
	pos, err := parseMariaDBPosition(log)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range extra {
		l, err := mariadbList(s)
		if err != nil || len(l) != 1 {
			return nil, nil, fmt.Errorf("%w: %q is not one MariaDB GTID", ErrBadGTID, s)
		}
		if p, ok := pos.Sets[l[0].domain]; ok && l[0].seq > p.SequenceNumber {
			tail = append(tail, s)
		} else {
			errant = append(errant, s)
		}
	}
	return tail, errant, nil
}
