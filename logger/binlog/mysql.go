package binlog

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/google/uuid"
)

// gnoEnd is MySQL's GNO_END: a GNO is in [1, gnoEnd).
const gnoEnd = math.MaxInt64

type mysqlFlavor struct{}

// MySQL returns the MySQL flavor (GTIDs "uuid:N", sets of intervals).
func MySQL() Flavor { return mysqlFlavor{} }

func (mysqlFlavor) Name() string { return "mysql" }

func (mysqlFlavor) EmptySet() Set { return &mysqlSet{s: mysql.NewMysqlGTIDSet()} }

func (mysqlFlavor) ParseSet(s string) (Set, error) { return parseMySQLSet(s) }

func (mysqlFlavor) ParseGTID(s string) (string, error) {
	g, err := parseMySQLGTID(s)
	if err != nil {
		return "", err
	}
	return g.String(), nil
}

func (mysqlFlavor) GTIDOfEvent(ev []byte, alg ChecksumAlg) (string, bool, error) {
	if len(ev) > offType && ev[offType] != TypeGTID && ev[offType] != TypeGTIDTagged {
		return "", false, nil
	}
	b, err := body(ev, alg)
	if err != nil {
		return "", false, err
	}
	var g mysqlGTID
	if ev[offType] == TypeGTIDTagged {
		g, err = decodeTaggedGTID(b)
	} else {
		g, err = decodeGTID(b)
	}
	if err != nil {
		return "", false, err
	}
	return g.String(), true, nil
}

func (mysqlFlavor) FileHeaderEvent(set Set, ts, serverID, logPos uint32, alg ChecksumAlg) ([]byte, error) {
	s, ok := set.(*mysqlSet)
	if !ok {
		return nil, fmt.Errorf("%w: %T given to mysql", ErrFlavorMismatch, set)
	}
	return NewEvent(TypePreviousGTIDs, ts, serverID, logPos, 0, s.s.Encode(), alg), nil
}

func (mysqlFlavor) FileHeaderSet(ev []byte, alg ChecksumAlg) (Set, error) {
	if len(ev) > offType && ev[offType] != TypePreviousGTIDs {
		return nil, fmt.Errorf("%w: type %d event is not a Previous_gtids event", ErrMalformed, ev[offType])
	}
	b, err := body(ev, alg)
	if err != nil {
		return nil, err
	}
	return DecodeMySQLSet(b)
}

// mysqlGTID is one parsed MySQL GTID.
type mysqlGTID struct {
	sid uuid.UUID
	tag string // normalized: lower case, "" for none
	gno int64
}

func (g mysqlGTID) String() string {
	if g.tag == "" {
		return g.sid.String() + ":" + strconv.FormatInt(g.gno, 10)
	}
	return g.sid.String() + ":" + g.tag + ":" + strconv.FormatInt(g.gno, 10)
}

// parseMySQLGTID parses "uuid:N" or "uuid:tag:N".
func parseMySQLGTID(s string) (mysqlGTID, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 2 && len(parts) != 3 {
		return mysqlGTID{}, fmt.Errorf("%w: %q is not uuid:N or uuid:tag:N", ErrBadGTID, s)
	}
	sid, err := parseSID(parts[0])
	if err != nil {
		return mysqlGTID{}, fmt.Errorf("%w: %q: %v", ErrBadGTID, s, err)
	}
	g := mysqlGTID{sid: sid}
	if len(parts) == 3 {
		if g.tag, err = parseTag(parts[1]); err != nil {
			return mysqlGTID{}, fmt.Errorf("%w: %q: %v", ErrBadGTID, s, err)
		}
	}
	if g.gno, err = parseGNO(parts[len(parts)-1]); err != nil {
		return mysqlGTID{}, fmt.Errorf("%w: %q: %v", ErrBadGTID, s, err)
	}
	return g, nil
}

// parseSID accepts only the 36-character dashed form MySQL prints.
func parseSID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.UUID{}, fmt.Errorf("server uuid %q is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	return uuid.Parse(s)
}

// parseTag validates a GTID tag: [a-zA-Z_][a-zA-Z0-9_]{0,31}, normalized
// to lower case as MySQL does.
func parseTag(s string) (string, error) {
	ok := len(s) >= 1 && len(s) <= 32
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
	}
	if !ok {
		return "", fmt.Errorf("tag %q is not [a-zA-Z_][a-zA-Z0-9_]{0,31}", s)
	}
	return strings.ToLower(s), nil
}

// parseGNO parses a decimal GNO in [1, gnoEnd).
func parseGNO(s string) (int64, error) {
	if len(s) == 0 || s[0] < '0' || s[0] > '9' {
		return 0, fmt.Errorf("transaction number %q is not a decimal number", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n >= gnoEnd {
		return 0, fmt.Errorf("transaction number %q is not in [1, %d)", s, int64(gnoEnd))
	}
	return n, nil
}

// mysqlSet is a MySQL GTID set. Interval slices are always normalized and
// never empty.
type mysqlSet struct{ s mysql.MysqlGTIDSet }

// parseMySQLSet parses "uuid:1-5:7,uuid:tag:3,...". It is stricter than
// go-mysql's parser: canonical uuids only, GNOs in [1, gnoEnd).
func parseMySQLSet(str string) (*mysqlSet, error) {
	set := &mysqlSet{s: mysql.NewMysqlGTIDSet()}
	if strings.TrimSpace(str) == "" {
		return set, nil
	}
	for _, part := range strings.Split(str, ",") {
		part = strings.TrimSpace(part)
		toks := strings.Split(part, ":")
		if len(toks) < 2 {
			return nil, fmt.Errorf("%w: %q is not uuid:interval[:interval...]", ErrBadSet, part)
		}
		sid, err := parseSID(toks[0])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSet, err)
		}
		tag, n, pending := "", 0, false
		for _, t := range toks[1:] {
			if t != "" && (t[0] < '0' || t[0] > '9') {
				if pending {
					return nil, fmt.Errorf("%w: %q: tag %q has no interval", ErrBadSet, part, tag)
				}
				if tag, err = parseTag(t); err != nil {
					return nil, fmt.Errorf("%w: %q: %v", ErrBadSet, part, err)
				}
				pending = true
				continue
			}
			iv, err := parseInterval(t)
			if err != nil {
				return nil, fmt.Errorf("%w: %q: %v", ErrBadSet, part, err)
			}
			set.addInterval(sid, tag, iv)
			n, pending = n+1, false
		}
		if n == 0 || pending {
			return nil, fmt.Errorf("%w: %q: no interval after %q", ErrBadSet, part, toks[len(toks)-1])
		}
	}
	return set, nil
}

// parseInterval parses "a" or "a-b" into the half-open [a, b+1).
func parseInterval(s string) (mysql.Interval, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err := parseGNO(lo)
	if err != nil {
		return mysql.Interval{}, err
	}
	b := a
	if ok {
		if b, err = parseGNO(hi); err != nil {
			return mysql.Interval{}, err
		}
		if b < a {
			return mysql.Interval{}, fmt.Errorf("interval %q ends before it starts", s)
		}
	}
	return mysql.Interval{Start: a, Stop: b + 1}, nil
}

// addInterval adds iv, keeping the slice normalized. The common case, a
// GNO just after the last interval, extends it in place.
func (s *mysqlSet) addInterval(sid uuid.UUID, tag string, iv mysql.Interval) {
	m, ok := s.s[sid]
	if !ok {
		m = make(map[mysql.Tag]mysql.IntervalSlice, 1)
		s.s[sid] = m
	}
	t := mysql.NewTag(tag)
	ivs := m[t]
	switch n := len(ivs); {
	case n == 0:
		m[t] = mysql.IntervalSlice{iv}
	case iv.Start >= ivs[n-1].Start && iv.Start <= ivs[n-1].Stop:
		ivs[n-1].Stop = max(ivs[n-1].Stop, iv.Stop)
	case iv.Start > ivs[n-1].Stop:
		m[t] = append(ivs, iv)
	default:
		m[t] = append(ivs, iv).Normalize()
	}
}

func (s *mysqlSet) String() string { return s.s.String() }

func (s *mysqlSet) Contains(gtid string) bool {
	g, err := parseMySQLGTID(gtid)
	if err != nil {
		return false
	}
	return s.has(g.sid, g.tag, mysql.Interval{Start: g.gno, Stop: g.gno + 1})
}

// has reports whether [iv.Start, iv.Stop) lies inside one interval of sid:tag.
func (s *mysqlSet) has(sid uuid.UUID, tag string, iv mysql.Interval) bool {
	ivs := s.s[sid][mysql.NewTag(tag)]
	i := sort.Search(len(ivs), func(i int) bool { return ivs[i].Stop > iv.Start })
	return i < len(ivs) && ivs[i].Start <= iv.Start && iv.Stop <= ivs[i].Stop
}

func (s *mysqlSet) ContainsSet(other Set) bool {
	o, ok := other.(*mysqlSet)
	if !ok {
		return false
	}
	for sid, tags := range o.s {
		for tag, ivs := range tags {
			for _, iv := range ivs {
				if !s.has(sid, tag.String(), iv) {
					return false
				}
			}
		}
	}
	return true
}

func (s *mysqlSet) Add(gtid string) error {
	g, err := parseMySQLGTID(gtid)
	if err != nil {
		return err
	}
	s.addInterval(g.sid, g.tag, mysql.Interval{Start: g.gno, Stop: g.gno + 1})
	return nil
}

func (s *mysqlSet) Clone() Set {
	c, _ := s.s.Clone().(*mysql.MysqlGTIDSet) // NB: go-mysql's Clone always returns this type
	return &mysqlSet{s: *c}
}

func (s *mysqlSet) Equal(other Set) bool {
	o, ok := other.(*mysqlSet)
	return ok && s.s.Equal(&o.s)
}

// EncodeMySQLSet returns the binary encoding of a MySQL set, as in a
// Previous_gtids event and COM_BINLOG_DUMP_GTID (the tagged format if any
// GTID has a tag).
func EncodeMySQLSet(set Set) ([]byte, error) {
	s, ok := set.(*mysqlSet)
	if !ok {
		return nil, fmt.Errorf("%w: %T is not a mysql set", ErrFlavorMismatch, set)
	}
	return s.s.Encode(), nil
}

// DecodeMySQLSet decodes the binary encoding of a MySQL set: n_sids (u64),
// then per sid its uuid, [tag,] n_intervals (u64) and (start, end) u64
// pairs, end exclusive. The tagged format marks byte 7 of n_sids with 1 and
// keeps the count in bytes 1..6. Trailing bytes are an error.
func DecodeMySQLSet(b []byte) (Set, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: %d bytes, need at least 8", ErrBadSet, len(b))
	}
	tagged := b[7] == 1
	n := binary.LittleEndian.Uint64(b)
	if tagged {
		n = binary.LittleEndian.Uint64(append(append([]byte{}, b[1:7]...), 0, 0))
	}
	set := &mysqlSet{s: mysql.NewMysqlGTIDSet()}
	b = b[8:]
	for i := uint64(0); i < n; i++ {
		if len(b) < 16 {
			return nil, fmt.Errorf("%w: sid %d truncated", ErrBadSet, i)
		}
		sid, _ := uuid.FromBytes(b[:16]) // NB: cannot fail on 16 bytes
		b = b[16:]
		tag := ""
		if tagged {
			if len(b) < 1 || len(b) < 1+int(b[0]>>1) || b[0]&1 != 0 {
				return nil, fmt.Errorf("%w: tag of sid %d truncated", ErrBadSet, i)
			}
			l := int(b[0] >> 1)
			if l > 0 {
				var err error
				if tag, err = parseTag(string(b[1 : 1+l])); err != nil {
					return nil, fmt.Errorf("%w: %v", ErrBadSet, err)
				}
			}
			b = b[1+l:]
		}
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: interval count of sid %d truncated", ErrBadSet, i)
		}
		k := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if k == 0 || k > uint64(len(b))/16 {
			return nil, fmt.Errorf("%w: sid %d declares %d intervals in %d bytes", ErrBadSet, i, k, len(b))
		}
		for j := uint64(0); j < k; j++ {
			lo, hi := int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:]))
			b = b[16:]
			if lo < 1 || hi <= lo || hi > gnoEnd {
				return nil, fmt.Errorf("%w: sid %d interval [%d, %d) is not within [1, %d)", ErrBadSet, i, lo, hi, int64(gnoEnd))
			}
			set.addInterval(sid, tag, mysql.Interval{Start: lo, Stop: hi})
		}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadSet, len(b))
	}
	return set, nil
}

// decodeGTID decodes a GTID_LOG_EVENT body: flags (1), sid (16), gno (8),
// then logical clocks and more that are not needed here.
func decodeGTID(b []byte) (mysqlGTID, error) {
	if len(b) < 1+16+8 {
		return mysqlGTID{}, fmt.Errorf("%w: GTID event body of %d bytes", ErrMalformed, len(b))
	}
	sid, _ := uuid.FromBytes(b[1:17])
	g := mysqlGTID{sid: sid, gno: int64(binary.LittleEndian.Uint64(b[17:]))}
	if g.gno < 1 || g.gno >= gnoEnd {
		return mysqlGTID{}, fmt.Errorf("%w: GTID event with transaction number %d", ErrMalformed, g.gno)
	}
	return g, nil
}

// decodeTaggedGTID decodes the first fields of a GTID_TAGGED_LOG_EVENT body,
// written in MySQL's serialization format: version, message size and last
// non-ignorable field id (varlen each), then (field id, value) pairs:
// 0 gtid_flags (varlen), 1 uuid (16 varlen bytes), 2 gno (signed varlen),
// 3 tag (varlen length + bytes). Later fields are not needed.
func decodeTaggedGTID(b []byte) (mysqlGTID, error) {
	r := varReader{b: b}
	r.uint() // serialization version
	r.uint() // message size
	r.uint() // last non-ignorable field id
	r.field(0)
	r.uint() // gtid_flags
	r.field(1)
	var sid uuid.UUID
	for i := range sid {
		v := r.uint()
		if v > 0xff {
			r.err = fmt.Errorf("uuid byte %d out of range", v)
		}
		sid[i] = byte(v)
	}
	r.field(2)
	gno := r.int()
	r.field(3)
	l := r.uint()
	var tag string
	switch {
	case r.err != nil:
	case l > 32 || l > uint64(len(r.b)):
		r.err = fmt.Errorf("tag of %d bytes", l)
	case l > 0:
		tag, r.err = parseTag(string(r.b[:l]))
	}
	if r.err != nil {
		return mysqlGTID{}, fmt.Errorf("%w: tagged GTID event: %v", ErrMalformed, r.err)
	}
	if gno < 1 || gno >= gnoEnd {
		return mysqlGTID{}, fmt.Errorf("%w: tagged GTID event with transaction number %d", ErrMalformed, gno)
	}
	return mysqlGTID{sid: sid, tag: tag, gno: gno}, nil
}

// varReader reads MySQL serialization varlen integers; the first error
// sticks and makes later reads return 0.
type varReader struct {
	b   []byte
	err error
}

// uint reads an unsigned varlen integer: the count of trailing one bits of
// the first byte, plus one, is the length; the value follows that marker,
// little endian.
func (r *varReader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = fmt.Errorf("truncated")
		return 0
	}
	n := 1
	for n < 9 && r.b[0]&(1<<(n-1)) != 0 {
		n++
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("truncated")
		return 0
	}
	var buf [8]byte
	copy(buf[:], r.b[1:n])
	v := uint64(r.b[0]) >> n
	if n > 1 {
		shift := 8 - n
		if n == 9 {
			shift = 0
		}
		v |= binary.LittleEndian.Uint64(buf[:]) << shift
	}
	r.b = r.b[n:]
	return v
}

// int reads a signed varlen integer (sign in the lowest bit).
func (r *varReader) int() int64 {
	u := r.uint()
	return int64(u>>1) ^ -int64(u&1)
}

// field reads a field id and checks it is id.
func (r *varReader) field(id uint64) {
	if got := r.uint(); r.err == nil && got != id {
		r.err = fmt.Errorf("field %d where field %d was expected", got, id)
	}
}
