package failover

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// GTID math the failover needs beyond logger/binlog's sets: how far a
// server is behind the log, and what a server holds that the log does not.
// Everything here is pure.

// interval is one run of MySQL GNOs.
type interval struct{ lo, hi uint64 } // inclusive

// mysqlIntervals is a MySQL GTID set as intervals per uuid[:tag].
type mysqlIntervals map[string][]interval

// parseMySQLIntervals reads the canonical text of a MySQL GTID set.
func parseMySQLIntervals(s string) (mysqlIntervals, error) {
	set, err := binlog.MySQL().ParseSet(s)
	if err != nil {
		return nil, err
	}
	out := mysqlIntervals{}
	for _, part := range strings.Split(set.String(), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		toks := strings.Split(part, ":")
		sid, key := toks[0], toks[0]
		for _, t := range toks[1:] {
			if t == "" {
				continue
			}
			if t[0] < '0' || t[0] > '9' {
				key = sid + ":" + t
				continue
			}
			lo, hi, ok := strings.Cut(t, "-")
			a, err := strconv.ParseUint(lo, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("failover: GTID set %q: %v", s, err)
			}
			b := a
			if ok {
				if b, err = strconv.ParseUint(hi, 10, 64); err != nil {
					return nil, fmt.Errorf("failover: GTID set %q: %v", s, err)
				}
			}
			out[key] = append(out[key], interval{a, b})
		}
	}
	return out, nil
}

// minus returns the GTIDs of a that are not in b.
func (a mysqlIntervals) minus(b mysqlIntervals) mysqlIntervals {
	out := mysqlIntervals{}
	for k, ivs := range a {
		rest := append([]interval(nil), ivs...)
		for _, cut := range b[k] {
			var next []interval
			for _, iv := range rest {
				if cut.hi < iv.lo || cut.lo > iv.hi {
					next = append(next, iv)
					continue
				}
				if iv.lo < cut.lo {
					next = append(next, interval{iv.lo, cut.lo - 1})
				}
				if iv.hi > cut.hi {
					next = append(next, interval{cut.hi + 1, iv.hi})
				}
			}
			rest = next
		}
		if len(rest) > 0 {
			out[k] = rest
		}
	}
	return out
}

func (a mysqlIntervals) count() uint64 {
	var n uint64
	for _, ivs := range a {
		for _, iv := range ivs {
			n += iv.hi - iv.lo + 1
		}
	}
	return n
}

// String is the set's text form (uuid[:tag]:lo-hi:..., keys sorted).
func (a mysqlIntervals) String() string {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(k)
		for _, iv := range a[k] {
			if iv.lo == iv.hi {
				fmt.Fprintf(&sb, ":%d", iv.lo)
			} else {
				fmt.Fprintf(&sb, ":%d-%d", iv.lo, iv.hi)
			}
		}
	}
	return sb.String()
}

// mariadbGTID is one MariaDB GTID, d-s-n.
type mariadbGTID struct {
	domain, server uint32
	seq            uint64
}

func (g mariadbGTID) String() string { return fmt.Sprintf("%d-%d-%d", g.domain, g.server, g.seq) }

// parseMariaDBList reads "d-s-n,d-s-n" allowing several entries per domain
// (as @@gtid_binlog_state has one per domain and server).
func parseMariaDBList(s string) ([]mariadbGTID, error) {
	var out []mariadbGTID
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var g mariadbGTID
		if _, err := fmt.Sscanf(part, "%d-%d-%d", &g.domain, &g.server, &g.seq); err != nil || g.String() != part {
			return nil, fmt.Errorf("failover: %q is not a MariaDB GTID (domain-server-seq)", part)
		}
		out = append(out, g)
	}
	return out, nil
}

// maxPerDomain keeps the highest seq of each domain.
func maxPerDomain(l []mariadbGTID) map[uint32]mariadbGTID {
	m := map[uint32]mariadbGTID{}
	for _, g := range l {
		if o, ok := m[g.domain]; !ok || g.seq > o.seq {
			m[g.domain] = g
		}
	}
	return m
}

// Missing counts the log's transactions that a server with GTID state have
// has not applied: MySQL |log − have|; MariaDB the sum over the log's
// domains of how many sequence numbers the server is behind. 0 means the
// server has applied all of the log (rule 4).
func Missing(flavor, log, have string) (uint64, error) {
	switch flavor {
	case "mysql":
		l, err := parseMySQLIntervals(log)
		if err != nil {
			return 0, err
		}
		h, err := parseMySQLIntervals(have)
		if err != nil {
			return 0, err
		}
		return l.minus(h).count(), nil
	case "mariadb":
		l, err := parseMariaDBList(log)
		if err != nil {
			return 0, err
		}
		h, err := parseMariaDBList(have)
		if err != nil {
			return 0, err
		}
		hm := maxPerDomain(h)
		var n uint64
		for d, g := range maxPerDomain(l) {
			if hg, ok := hm[d]; !ok {
				n += g.seq
			} else if g.seq > hg.seq {
				n += g.seq - hg.seq
			}
		}
		return n, nil
	}
	return 0, fmt.Errorf("failover: unknown flavor %q", flavor)
}

// Lookup reports whether the log holds (or held, before a purge) one exact
// GTID. It is the one question about the log that MariaDB's per-domain
// positions cannot answer.
type Lookup func(gtid string) (bool, error)

// Extra returns the GTIDs a server holds that the log does not: for a
// candidate these are errant transactions (never promote it); for an old
// source they are the transactions that were never acknowledged (rule 1),
// safe to discard.
//
// MySQL: serverGTIDs is @@gtid_executed and the answer is serverGTIDs − log.
// MariaDB: serverGTIDs is a list of GTIDs the server holds (its
// @@gtid_binlog_state, or the GTIDs read from its binlog); each one the log
// does not hold by lookup is extra, unless it is at or below start, the
// log's GTID position when it began (what came before is not in the log's
// index).
func Extra(flavor, log, start, serverGTIDs string, lookup Lookup) ([]string, error) {
	switch flavor {
	case "mysql":
		l, err := parseMySQLIntervals(log)
		if err != nil {
			return nil, err
		}
		h, err := parseMySQLIntervals(serverGTIDs)
		if err != nil {
			return nil, err
		}
		d := h.minus(l)
		if len(d) == 0 {
			return nil, nil
		}
		return strings.Split(d.String(), ","), nil
	case "mariadb":
		have, err := parseMariaDBList(serverGTIDs)
		if err != nil {
			return nil, err
		}
		st, err := parseMariaDBList(start)
		if err != nil {
			return nil, err
		}
		sm := maxPerDomain(st)
		var out []string
		for _, g := range have {
			if s, ok := sm[g.domain]; ok && g.seq <= s.seq {
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
	return nil, fmt.Errorf("failover: unknown flavor %q", flavor)
}
