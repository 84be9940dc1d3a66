//go:build !binlogsvr_acktrace

package logger

// The ACK path's trace is compiled in only with -tags binlogsvr_acktrace
// (acktrace_on.go).

func traceStart(uint64)            {}
func trace(string, uint64, uint64) {}

const traceOn = false
