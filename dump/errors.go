package dump

import (
	"errors"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Sentinel errors.
var (
	// ErrNotReady: the log is not open on this member yet.
	ErrNotReady = errors.New("dump: the log is not open yet")
	// ErrMalformed: a client sent a command packet that cannot be decoded.
	ErrMalformed = errors.New("dump: malformed packet")
	// ErrStart: a dump cannot start from what the client asked (a purged
	// file, a GTID not in the log, a bad position). Sent as error 1236.
	ErrStart = errors.New("dump: cannot start the dump")
	// ErrReplaced: a newer dump with the same server id replaced this one.
	ErrReplaced = errors.New("dump: replaced by a newer dump with the same server id")
	// ErrKilled: the connection was killed (KILL, or the server stopping).
	ErrKilled = errors.New("dump: connection killed")
	// ErrClientGone: the client closed the connection or stopped reading.
	ErrClientGone = errors.New("dump: client gone")
)

// MySQL error codes the dump server sends.
const (
	erMasterFatalReadingBinlog = 1236 // ER_MASTER_FATAL_ERROR_READING_BINLOG
	erUnknownThread            = 1094 // ER_NO_SUCH_THREAD
	erUnknownSystemVariable    = 1193
	erNotSupportedYet          = 1235
	erSlaveSameID              = 4052 // MariaDB ER_SLAVE_SAME_ID
	erUnknownCom               = 1047
	erMalformedPacket          = 1835
)

// startError is an ErrStart with the message the client sees.
func startError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrStart, fmt.Sprintf(format, args...))
}

// errAhead marks a start refused because the client holds transactions
// of the log's source that this member's log does not hold yet: a member
// that restarted, or a follower that lags, may get them within moments,
// so the session waits for its log before it refuses (a refusal, error
// 1236, stops the replica's IO thread until someone restarts it).
var errAhead = errors.New("dump: the client is ahead of this member's log")

// aheadError is a startError that is also errAhead (its message is the
// startError's alone: the client sees what MySQL would send).
func aheadError(format string, args ...any) error {
	return aheadErr{startError(format, args...)}
}

type aheadErr struct{ error }

func (e aheadErr) Unwrap() []error { return []error{e.error, errAhead} }

// myError builds a MySQL error packet value with SQLSTATE HY000.
func myError(code uint16, format string, args ...any) *mysql.MyError {
	return &mysql.MyError{Code: code, State: "HY000", Message: fmt.Sprintf(format, args...)}
}
