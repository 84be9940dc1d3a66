package dumptest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
)

// SetMaxFileSize makes the log rotate its files at n bytes (at least
// 4096), so tests cross file boundaries.
func SetMaxFileSize(t testing.TB, node *logger.Node, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := node.Propose(ctx, &logger.Meta{Key: logger.MetaMaxFileSize, Value: []byte(strconv.Itoa(n))})
	if err != nil {
		t.Fatalf("dumptest: set max file size: %v", err)
	}
	if !res.Code.Stored() {
		t.Fatalf("dumptest: set max file size: %s: %s", res.Code, res.Message)
	}
}
