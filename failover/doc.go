// Package failover holds the source's lease, fences a dead source by epoch,
// and promotes the most caught-up replica: analyse and decide (pure),
// execute (behind small interfaces), audit (records in the log), and an
// anti-flap window.
//
// Not built yet: this is the work of the failover issue. The fence it will
// use exists: logger.SetSource is a compare-and-set on the epoch, and an
// Append of any other epoch is rejected with logger.ResultStaleEpoch.
package failover
