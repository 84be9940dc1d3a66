package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// binlogctl status prints where the source's history ends and the
// backfill's progress, running and done.
func TestPrintHistory(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		in   api.IngestStatus
		want []string
	}{
		{api.IngestStatus{State: "streaming", SourceOldestFile: "binlog.000003", SourcePurged: "0-1-10",
			Backfill: &api.BackfillStatus{Active: true, ReadBytes: 3 << 20, TotalBytes: 12 << 20, Files: 4, RateBytesPerSecond: 1 << 20, ETASeconds: 9, SourceFile: "binlog.000004"}},
			[]string{"Source history: oldest file binlog.000003; purged (the source can no longer send): 0-1-10\n",
				"Backfill:       reading the source's binlog: 3.0 MiB of 12.0 MiB (25.0%, 4 files), 1.0 MiB/s, ETA 9s, at binlog.000004\n"}},
		{api.IngestStatus{State: "streaming", SourceOldestFile: "binlog.000001",
			Backfill: &api.BackfillStatus{ReadBytes: 5 << 30, TotalBytes: 5 << 30, FromFile: "binlog.000001", RateBytesPerSecond: 30 << 20,
				Started: now.Add(-time.Minute), Finished: now.Add(-10 * time.Second)}},
			[]string{"purged (the source can no longer send): nothing (it holds every transaction since it began)",
				"Backfill:       done 10s ago: read up to the source's end (5.00 GiB, from binlog.000001), 30.0 MiB/s, took 50s\n"}},
		{api.IngestStatus{State: "retrying", Backfill: &api.BackfillStatus{ReadBytes: 512, TotalBytes: 2048}},
			[]string{"Backfill:       stopped at 512 B of 2.0 KiB (25.0%)"}},
	} {
		var b bytes.Buffer
		printHistory(&b, &tc.in)
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("output\n%s\nlacks %q", b.String(), w)
			}
		}
	}
	var b bytes.Buffer
	printHistory(&b, &api.IngestStatus{State: "idle"})
	if b.Len() != 0 {
		t.Errorf("an idle member prints %q", b.String())
	}
}
