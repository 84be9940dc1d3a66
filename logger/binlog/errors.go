package binlog

import "errors"

// Sentinel errors. Functions wrap them with detail; test with errors.Is.
var (
	// ErrMalformed: an event or event stream is truncated or inconsistent.
	ErrMalformed = errors.New("binlog: malformed event")
	// ErrBadChecksum: an event's CRC32 trailer does not match its bytes.
	ErrBadChecksum = errors.New("binlog: checksum mismatch")
	// ErrUnknownFlavor: FlavorByName got a name other than "mysql" or "mariadb".
	ErrUnknownFlavor = errors.New("binlog: unknown flavor")
	// ErrBadGTID: a GTID's text is not valid for the flavor.
	ErrBadGTID = errors.New("binlog: invalid GTID")
	// ErrBadSet: a GTID set's text or binary form is not valid for the flavor.
	ErrBadSet = errors.New("binlog: invalid GTID set")
	// ErrFlavorMismatch: a Set of one flavor was given to the other flavor.
	ErrFlavorMismatch = errors.New("binlog: GTID set of another flavor")
)
