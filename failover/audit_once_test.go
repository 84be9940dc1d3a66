package failover

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
)

// recLog records the audit records proposed to it.
type recLog struct {
	Log
	recs []Record
}

func (l *recLog) LeaderID() uint64 { return 1 }
func (l *recLog) Propose(_ context.Context, c logger.Command) (logger.Result, error) {
	if m, ok := c.(*logger.Meta); ok {
		var r Record
		if err := json.Unmarshal(m.Value, &r); err == nil {
			l.recs = append(l.recs, r)
		}
	}
	return logger.Result{Code: logger.ResultOK}, nil
}

// A pre-hook that keeps vetoing alternates "vetoed" and "blocked ... asking
// again at TIME" records: each is written once until a step happens.
func TestAuditOnceAcrossAlternatingRecords(t *testing.T) {
	l := &recLog{}
	m := &Manager{deps: Deps{Log: l, Now: time.Now}, log: slog.New(slog.DiscardHandler)}
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		m.auditOnce(context.Background(), Record{Step: "pre-hook", Outcome: "vetoed", Message: "exit status 1: maintenance"})
		m.auditOnce(context.Background(), Record{Step: "decide", Outcome: "blocked",
			Message: "the pre-failover hook vetoed; asking again at " + t0.Add(time.Duration(i)*3*time.Second).Format(time.RFC3339)})
	}
	if len(l.recs) != 2 {
		t.Fatalf("%d records for a veto repeated 5 times, want 2: %+v", len(l.recs), l.recs)
	}
	m.auditOnce(context.Background(), Record{Step: "decide", Outcome: "blocked", Message: "anti-flap: no automatic failover before 2026-11-21T10:05:00Z"})
	if len(l.recs) != 3 || !strings.HasPrefix(l.recs[2].Message, "anti-flap") {
		t.Fatalf("a different reason was not recorded: %+v", l.recs)
	}
	// A step starts a new round: the same veto is recorded again.
	m.mu.Lock()
	m.onceAudits = nil
	m.mu.Unlock()
	m.auditOnce(context.Background(), Record{Step: "pre-hook", Outcome: "vetoed", Message: "exit status 1: maintenance"})
	if len(l.recs) != 4 {
		t.Fatalf("after a step the veto was not recorded again: %d records", len(l.recs))
	}
}
