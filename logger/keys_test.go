package logger_test

import (
	"testing"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
)

// TestFileNameMatchesAPI: the admin API's clients name files as the log
// does (api.FileName is a copy, so that binlogctl needs no logger).
func TestFileNameMatchesAPI(t *testing.T) {
	for _, n := range []uint32{0, 1, 42, 999999, 1000000, 1<<32 - 1} {
		if got, want := api.FileName(n), logger.FileName(n); got != want {
			t.Errorf("api.FileName(%d) = %q; logger.FileName = %q", n, got, want)
		}
	}
}
