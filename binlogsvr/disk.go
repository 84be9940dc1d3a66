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
