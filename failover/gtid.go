package failover

import (
	"fmt"

	"github.com/binlogsvr/binlogsvr/logger/binlog"
)

// GTID questions the failover asks of the log's flavor (named by the log's
// State.Flavor); the math is logger/binlog's (GTIDMath). Everything here is
// pure.

// flavorNamed returns the flavor a log or server records.
func flavorNamed(name string) (binlog.Flavor, error) {
	f, err := binlog.FlavorByName(name)
	if err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	return f, nil
}

// Missing counts the log's transactions that a server with GTID state have
// has not applied: MySQL |log − have|; MariaDB the sum over the log's
// domains of how many sequence numbers the server is behind. 0 means the
// server has applied all of the log (rule 4).
func Missing(flavor, log, have string) (uint64, error) {
	f, err := flavorNamed(flavor)
	if err != nil {
		return 0, err
	}
	return f.Missing(log, have)
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
	f, err := flavorNamed(flavor)
	if err != nil {
		return nil, err
	}
	return f.Extra(log, start, serverGTIDs, lookup)
}
