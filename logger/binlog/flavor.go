package binlog

import (
	"fmt"
	"strings"
)

// Flavor is the one seam between MySQL and MariaDB: GTID text, GTID sets,
// the events that carry them, the GTID math (gtidmath.go), the SQL a
// replica and an administrator send (sql.go) and the protocol quirks
// (quirks.go). Code outside this package asks a Flavor instead of comparing
// flavor names (seam_test.go holds it to that). Implementations are
// stateless values, safe for concurrent use; every method is deterministic.
type Flavor interface {
	ReplicaSQL
	AdminSQL
	Quirks
	GTIDMath

	// Name returns "mysql" or "mariadb": for logs, records and flags, not
	// for branching (ask a method instead).
	Name() string
	// EmptySet returns a new empty Set of this flavor.
	EmptySet() Set
	// ParseSet parses the flavor's text form: MySQL "uuid:1-5:7,uuid2:1-3"
	// (tags as "uuid:tag:1-5"; whitespace around elements is ignored, as in
	// @@gtid_executed); MariaDB "0-1-8,7-1-3" (one GTID per domain). ""
	// is the empty set. Errors wrap ErrBadSet.
	ParseSet(s string) (Set, error)
	// ParseGTID validates one GTID and returns its canonical text: MySQL
	// "uuid:N" or "uuid:tag:N" (lower case, 1 <= N < 2^63-1); MariaDB
	// "d-s-n" (decimal, no leading zeros). Errors wrap ErrBadGTID.
	ParseGTID(s string) (string, error)
	// GTIDOfEvent returns the GTID of ev in canonical text and true if ev is
	// this flavor's GTID event (MySQL GTID_LOG_EVENT 33 or
	// GTID_TAGGED_LOG_EVENT 42; MariaDB GTID_EVENT 162). Any other event,
	// including MySQL's ANONYMOUS_GTID_LOG_EVENT, gives "", false, nil. A GTID
	// event too short for its fields is ErrMalformed.
	GTIDOfEvent(ev []byte, alg ChecksumAlg) (gtid string, ok bool, err error)
	// FileHeaderEvent builds the event that follows the FDE in each file:
	// MySQL PREVIOUS_GTIDS_LOG_EVENT (35) holding set's binary encoding;
	// MariaDB GTID_LIST_EVENT (163) with one (domain, server_id, seq) entry
	// per domain, in domain order. Flags are 0.
	FileHeaderEvent(set Set, ts, serverID, logPos uint32, alg ChecksumAlg) ([]byte, error)
	// FileHeaderSet decodes the Set held by an event built as by
	// FileHeaderEvent (also a MariaDB fake GTID_LIST). Another event type is
	// ErrMalformed.
	FileHeaderSet(ev []byte, alg ChecksumAlg) (Set, error)
}

// Set is a GTID set (MySQL) or GTID position (MariaDB: one GTID per
// domain). A Set is not safe for concurrent mutation; Clone to share.
type Set interface {
	// String returns the canonical text form, which ParseSet reads back:
	// MySQL uuids in byte order with merged intervals; MariaDB domains in
	// numeric order.
	String() string
	// Contains reports whether the GTID is in the set. MySQL: membership;
	// MariaDB: the set has the GTID's domain with seq >= the GTID's seq
	// (server ids are not compared). An invalid GTID is not contained.
	Contains(gtid string) bool
	// ContainsSet reports whether every GTID of other is in s, in the sense
	// of Contains; false if other is of another flavor.
	ContainsSet(other Set) bool
	// Add adds a GTID. MariaDB: replaces the domain's (server, seq) entry,
	// whatever its seq. Errors wrap ErrBadGTID.
	Add(gtid string) error
	// Clone returns an independent copy.
	Clone() Set
	// Equal reports whether both sets hold the same GTIDs (MariaDB: the same
	// entry per domain); false if other is of another flavor.
	Equal(other Set) bool
}

// FlavorOfVersion returns the flavor of a server from its VERSION() or
// the server version of its FDE: MariaDB if the text names MariaDB (any
// case), else MySQL.
func FlavorOfVersion(version string) Flavor {
	if isMariaDBVersion(version) {
		return MariaDB()
	}
	return MySQL()
}

func isMariaDBVersion(v string) bool { return strings.Contains(strings.ToLower(v), "mariadb") }

// FlavorByName returns the flavor named "mysql" or "mariadb" (any case).
func FlavorByName(name string) (Flavor, error) {
	switch strings.ToLower(name) {
	case "mysql":
		return MySQL(), nil
	case "mariadb":
		return MariaDB(), nil
	}
	return nil, fmt.Errorf("%w: %q (want mysql or mariadb)", ErrUnknownFlavor, name)
}
