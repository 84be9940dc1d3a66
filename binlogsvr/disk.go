package binlogsvr

import (
	"log/slog"
	"os"

	"github.com/binlogsvr/binlogsvr/logger"
)

// ExitDiskFull is the daemon's exit code when its disk is full (sysexits'
// EX_TEMPFAIL: restart it once space is freed).
const ExitDiskFull = 75

// ExitOnDiskFull is the daemon's logger.DiskConfig.OnFull: one line that
// says what happened and what to do, then exit.
//
// NB: os.Exit, not a shutdown: dragonboat's and Pebble's own shutdowns
// write, which would fail again (and may panic), and nothing is owed:
// every entry acknowledged was fsync'd on a quorum before the ACK, and a
// restarted member recovers from its files as after a crash.
func ExitOnDiskFull(log *slog.Logger) func(*logger.DiskFullError) {
	return func(e *logger.DiskFullError) {
		log.Error(e.Error(), "exit_code", ExitDiskFull)
		os.Exit(ExitDiskFull)
	}
}

// ExitNewerEncoding is the daemon's exit code when its log holds an entry
// in an encoding newer than this binary reads (sysexits' EX_PROTOCOL):
// install the newer binlogsvr, then restart.
const ExitNewerEncoding = 76

// ExitOnNewerEncoding is the daemon's logger.Config.OnNewerEncoding: the
// member must not apply the entry and must not reject it either (the
// others applied it), so it stops, saying what to do.
func ExitOnNewerEncoding(log *slog.Logger) func(*logger.NewerEncodingError) {
	return func(e *logger.NewerEncodingError) {
		log.Error(e.Error(), "exit_code", ExitNewerEncoding)
		os.Exit(ExitNewerEncoding)
	}
}
