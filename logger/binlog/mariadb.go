package binlog

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

type mariadbFlavor struct{}

// MariaDB returns the MariaDB flavor (GTIDs "domain-server-seq", positions
// of one GTID per domain).
func MariaDB() Flavor { return mariadbFlavor{} }

func (mariadbFlavor) Name() string { return "mariadb" }

func (mariadbFlavor) EmptySet() Set { return &mariadbSet{m: map[uint32]mariadbGTID{}} }

func (mariadbFlavor) ParseSet(s string) (Set, error) { return parseMariaDBSet(s) }

func (mariadbFlavor) ParseGTID(s string) (string, error) {
	g, err := parseMariaDBGTID(s)
	if err != nil {
		return "", err
	}
	return g.String(), nil
}

// GTIDOfEvent decodes a GTID_EVENT: seq (u64), domain (u32), flags2 (u8),
// then a commit id or padding. The server id is the header's.
func (mariadbFlavor) GTIDOfEvent(ev []byte, alg ChecksumAlg) (string, bool, error) {
	if len(ev) > offType && ev[offType] != TypeMariaDBGTID {
		return "", false, nil
	}
	b, err := body(ev, alg)
	if err != nil {
		return "", false, err
	}
	if len(b) < 8+4+1 {
		return "", false, fmt.Errorf("%w: GTID event body of %d bytes", ErrMalformed, len(b))
	}
	g := mariadbGTID{
		domain: binary.LittleEndian.Uint32(b[8:]),
		server: binary.LittleEndian.Uint32(ev[offServerID:]),
		seq:    binary.LittleEndian.Uint64(b),
	}
	return g.String(), true, nil
}

func (mariadbFlavor) FileHeaderEvent(set Set, ts, serverID, logPos uint32, alg ChecksumAlg) ([]byte, error) {
	return GTIDListEvent(set, ts, serverID, logPos, 0, alg)
}

// FileHeaderSet decodes a GTID_LIST_EVENT. A server's own GTID_LIST holds
// its binlog state, which may have several entries (one per server id) for
// a domain; the position keeps the one with the highest seq, the later one
// on a tie.
func (mariadbFlavor) FileHeaderSet(ev []byte, alg ChecksumAlg) (Set, error) {
	if len(ev) > offType && ev[offType] != TypeMariaDBGTIDList {
		return nil, fmt.Errorf("%w: type %d event is not a GTID_LIST event", ErrMalformed, ev[offType])
	}
	b, err := body(ev, alg)
	if err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: GTID_LIST body of %d bytes", ErrMalformed, len(b))
	}
	n := uint64(binary.LittleEndian.Uint32(b) & (1<<28 - 1))
	b = b[4:]
	if uint64(len(b)) < 16*n {
		return nil, fmt.Errorf("%w: GTID_LIST of %d entries in %d bytes", ErrMalformed, n, len(b))
	}
	set := &mariadbSet{m: make(map[uint32]mariadbGTID, n)}
	for i := uint64(0); i < n; i++ {
		e := b[16*i:]
		g := mariadbGTID{
			domain: binary.LittleEndian.Uint32(e),
			server: binary.LittleEndian.Uint32(e[4:]),
			seq:    binary.LittleEndian.Uint64(e[8:]),
		}
		if old, ok := set.m[g.domain]; !ok || g.seq >= old.seq {
			set.m[g.domain] = g
		}
	}
	return set, nil
}

// GTIDListEvent builds a MariaDB GTID_LIST_EVENT (163) with one entry per
// domain of set, in domain order: count (u32; flags in the top 4 bits, 0
// here), then per entry domain (u32), server_id (u32), seq (u64). The file
// header uses flags=0; the fake GTID_LIST a dump sends after skipping uses
// ts=0 and flags=FlagArtificial.
func GTIDListEvent(set Set, ts, serverID, logPos uint32, flags uint16, alg ChecksumAlg) ([]byte, error) {
	s, ok := set.(*mariadbSet)
	if !ok {
		return nil, fmt.Errorf("%w: %T given to mariadb", ErrFlavorMismatch, set)
	}
	b := make([]byte, 0, 4+16*len(s.m))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s.m)))
	for _, g := range s.sorted() {
		b = binary.LittleEndian.AppendUint32(b, g.domain)
		b = binary.LittleEndian.AppendUint32(b, g.server)
		b = binary.LittleEndian.AppendUint64(b, g.seq)
	}
	if len(s.m) == 0 {
		// NB: MariaDB pads an empty list to a 6-byte body, which older
		// replicas need when they replace the event with a dummy one.
		b = append(b, 0, 0)
	}
	return NewEvent(TypeMariaDBGTIDList, ts, serverID, logPos, flags, b, alg), nil
}

// mariadbGTID is one parsed MariaDB GTID.
type mariadbGTID struct {
	domain, server uint32
	seq            uint64
}

func (g mariadbGTID) String() string {
	return strconv.FormatUint(uint64(g.domain), 10) + "-" + strconv.FormatUint(uint64(g.server), 10) + "-" + strconv.FormatUint(g.seq, 10)
}

// parseMariaDBGTID parses "domain-server-seq", all decimal.
func parseMariaDBGTID(s string) (mariadbGTID, error) {
	// NB: cut by hand, not strings.Split: this runs for every transaction
	// the log applies.
	var parts [3]string
	rest := s
	for i := 0; i < 2; i++ {
		j := strings.IndexByte(rest, '-')
		if j < 0 {
			return mariadbGTID{}, fmt.Errorf("%w: %q is not domain-server-seq", ErrBadGTID, s)
		}
		parts[i], rest = rest[:j], rest[j+1:]
	}
	if strings.IndexByte(rest, '-') >= 0 {
		return mariadbGTID{}, fmt.Errorf("%w: %q is not domain-server-seq", ErrBadGTID, s)
	}
	parts[2] = rest
	var n [3]uint64
	for i, bits := range [3]int{32, 32, 64} {
		p := parts[i]
		if p == "" || p[0] < '0' || p[0] > '9' {
			return mariadbGTID{}, fmt.Errorf("%w: %q: %q is not a decimal number", ErrBadGTID, s, p)
		}
		v, err := strconv.ParseUint(p, 10, bits)
		if err != nil {
			return mariadbGTID{}, fmt.Errorf("%w: %q: %q is not a %d-bit number", ErrBadGTID, s, p, bits)
		}
		n[i] = v
	}
	return mariadbGTID{domain: uint32(n[0]), server: uint32(n[1]), seq: n[2]}, nil
}

// mariadbSet is a MariaDB GTID position: at most one GTID per domain.
type mariadbSet struct{ m map[uint32]mariadbGTID }

// parseMariaDBSet parses "d-s-n,d-s-n,...". A domain given twice is an error,
// as in MariaDB's gtid_slave_pos.
func parseMariaDBSet(str string) (*mariadbSet, error) {
	set := &mariadbSet{m: map[uint32]mariadbGTID{}}
	if strings.TrimSpace(str) == "" {
		return set, nil
	}
	for _, part := range strings.Split(str, ",") {
		g, err := parseMariaDBGTID(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSet, err)
		}
		if old, dup := set.m[g.domain]; dup {
			return nil, fmt.Errorf("%w: %s and %s: domain %d given twice", ErrBadSet, old, g, g.domain)
		}
		set.m[g.domain] = g
	}
	return set, nil
}

func (s *mariadbSet) sorted() []mariadbGTID {
	out := make([]mariadbGTID, 0, len(s.m))
	for _, d := range slices.Sorted(maps.Keys(s.m)) {
		out = append(out, s.m[d])
	}
	return out
}

func (s *mariadbSet) String() string {
	var sb strings.Builder
	for i, g := range s.sorted() {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(g.String())
	}
	return sb.String()
}

func (s *mariadbSet) Contains(gtid string) bool {
	g, err := parseMariaDBGTID(gtid)
	if err != nil {
		return false
	}
	have, ok := s.m[g.domain]
	return ok && g.seq <= have.seq
}

func (s *mariadbSet) ContainsSet(other Set) bool {
	o, ok := other.(*mariadbSet)
	if !ok {
		return false
	}
	for d, g := range o.m {
		if have, ok := s.m[d]; !ok || g.seq > have.seq {
			return false
		}
	}
	return true
}

func (s *mariadbSet) Add(gtid string) error {
	g, err := parseMariaDBGTID(gtid)
	if err != nil {
		return err
	}
	s.m[g.domain] = g
	return nil
}

func (s *mariadbSet) Clone() Set { return &mariadbSet{m: maps.Clone(s.m)} }

func (s *mariadbSet) Equal(other Set) bool {
	o, ok := other.(*mariadbSet)
	return ok && maps.Equal(s.m, o.m)
}
