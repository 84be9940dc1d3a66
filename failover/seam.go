package failover

// SetBinlogEventsPage sets how many events BinlogGTIDs reads per SHOW
// BINLOG EVENTS query (5000 by default) and returns a func that restores
// the previous value. A test seam: failover/e2e pages a real server's
// binlogs a few events at a time. Not safe while a BinlogGTIDs runs.
func SetBinlogEventsPage(n int) (restore func()) {
	saved := binlogEventsPage
	binlogEventsPage = n
	return func() { binlogEventsPage = saved }
}
