package semisync

import (
	"errors"
	"fmt"
	"strings"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// The named values of --source-start; anything else is a GTID set.
const (
	// StartOldest begins the log at the oldest binlog file the source
	// still holds: the fleet copies the source's whole history, then
	// streams.
	StartOldest = "oldest"
	// StartCurrent begins the log at the source's executed GTID state: the
	// fleet holds only what the source commits after it attached.
	StartCurrent = "current"
)

// ErrBadStart is wrapped by the refusals of --source-start: retrying with
// the same value will not help.
var ErrBadStart = errors.New("semisync: --source-start refused")

// CheckStartSyntax checks a --source-start value before the source's flavor
// is known: a named value, or a GTID set of either flavor.
func CheckStartSyntax(v string) error {
	switch v {
	case StartOldest, StartCurrent:
		return nil
	case "":
		return fmt.Errorf("%w: empty (want oldest, current or a GTID set)", ErrBadStart)
	}
	var errs []string
	for _, f := range []binlog.Flavor{binlog.MySQL(), binlog.MariaDB()} {
		_, err := f.ParseSet(v)
		if err == nil {
			return nil
		}
		errs = append(errs, err.Error())
	}
	return fmt.Errorf("%w: %q is neither oldest, current nor a GTID set (%s)", ErrBadStart, v, strings.Join(errs, "; "))
}

// StartGTIDs returns the GTID state the log begins at for --source-start
// mode, given the source's executed set and the GTIDs it no longer holds
// (purged), in the flavor's text. Pure. A GTID set must lie within
// executed (else the fleet would wait for transactions that never come)
// and hold purged (else the source could not send what lies between);
// either refusal wraps ErrBadStart and names the fix.
func StartGTIDs(flav binlog.Flavor, mode, executed, purged string) (string, error) {
	exec, err := flav.ParseSet(executed)
	if err != nil {
		return "", fmt.Errorf("semisync: the source's executed GTIDs %q: %w", executed, err)
	}
	switch mode {
	case StartCurrent:
		return exec.String(), nil
	case StartOldest:
		p, err := flav.ParseSet(purged)
		if err != nil {
			return "", fmt.Errorf("semisync: the source's purged GTIDs %q: %w", purged, err)
		}
		return p.String(), nil
	}
	start, err := flav.ParseSet(mode)
	if err != nil {
		return "", fmt.Errorf("%w: %q is not a %s GTID set: %v; give one in the source's own form, or oldest or current", ErrBadStart, mode, flav.Name(), err)
	}
	if !exec.ContainsSet(start) {
		return "", fmt.Errorf("%w: %q holds GTIDs the source has not executed (its executed set is %q): "+
			"the fleet would wait for transactions that never come; give a set within the source's executed set, or --source-start oldest",
			ErrBadStart, mode, exec.String())
	}
	p, err := flav.ParseSet(purged)
	if err != nil {
		return "", fmt.Errorf("semisync: the source's purged GTIDs %q: %w", purged, err)
	}
	if !start.ContainsSet(p) {
		return "", fmt.Errorf("%w: %q lacks GTIDs the source has purged (%q): the source can no longer send them; "+
			"give a set that contains the purged set (--source-start oldest begins exactly there), or restore the purged binlogs on the source first",
			ErrBadStart, mode, p.String())
	}
	return start.String(), nil
}
