package semisync

import (
	"testing"
	"time"
)

// The backfill follows the stream through the source's files, refreshes
// their sizes, ends at the source's end as last listed, and keeps the last
// read for /status.
func TestBackfillProgress(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var b backfill
	if b.status(t0) != nil {
		t.Fatal("a status before any read")
	}
	b.refresh(History{Files: []BinlogFile{{"binlog.000003", 1000}, {"binlog.000004", 3000}}, Purged: "0-1-3"}, t0)
	b.begin(t0)
	b.observe("binlog.000003", 500, t0.Add(time.Second)) // the first position: the rate's base
	b.observe("binlog.000004", 500, t0.Add(2*time.Second))
	st := b.status(t0.Add(2 * time.Second))
	if !st.Active || st.ReadBytes != 1500 || st.TotalBytes != 4000 || st.Files != 2 || st.FromFile != "binlog.000003" || st.SourceFile != "binlog.000004" {
		t.Fatalf("mid-read: %+v", st)
	}
	if st.RateBytesPerSecond != 1000 || st.ETASeconds != 2.5 {
		t.Fatalf("rate %v eta %v, want 1000 and 2.5", st.RateBytesPerSecond, st.ETASeconds)
	}
	// The source writes on: a new file appears; its end moves.
	b.refresh(History{Files: []BinlogFile{{"binlog.000003", 1000}, {"binlog.000004", 3500}, {"binlog.000005", 500}}}, t0.Add(3*time.Second))
	b.observe("binlog.000004", 3500, t0.Add(4*time.Second))
	if st := b.status(t0.Add(4 * time.Second)); !st.Active || st.TotalBytes != 5000 || st.ReadBytes != 4500 {
		t.Fatalf("after the refresh: %+v", st)
	}
	// A file newer than the last listing counts as the end.
	b.observe("binlog.000006", 100, t0.Add(5*time.Second))
	st = b.status(t0.Add(9 * time.Second))
	if st.Active || !st.Finished.Equal(t0.Add(5*time.Second)) || st.ReadBytes != 5000 || st.ETASeconds != 0 || st.RateBytesPerSecond != 1125 {
		t.Fatalf("done: %+v", st)
	}
	// Done stays done; later events do not move it.
	b.observe("binlog.000006", 900, t0.Add(10*time.Second))
	if st2 := b.status(t0.Add(10 * time.Second)); *st2 != *st {
		t.Fatalf("after done: %+v, want %+v", st2, st)
	}
	// A session that ends before the end stops its read; the next begins anew.
	b.begin(t0.Add(20 * time.Second))
	b.observe("binlog.000003", 10, t0.Add(21*time.Second))
	b.stop()
	if st := b.status(t0.Add(22 * time.Second)); st.Active || !st.Finished.IsZero() || st.ReadBytes != 10 {
		t.Fatalf("stopped: %+v", st)
	}
	// A position in a file older than the listing (purged meanwhile) is not counted.
	b.begin(t0.Add(30 * time.Second))
	b.observe("binlog.000001", 10, t0.Add(31*time.Second))
	if st := b.status(t0.Add(31 * time.Second)); !st.Active || st.ReadBytes != 0 || st.SourceFile != "" {
		t.Fatalf("an unlisted older file: %+v", st)
	}
}

// The stream may reach the source's end before the first listing of its
// files: the listing ends the read.
func TestBackfillEndsAtTheFirstListing(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var b backfill
	b.begin(t0)
	b.observe("binlog.000002", 700, t0.Add(time.Second))
	if st := b.status(t0.Add(time.Second)); !st.Active || st.ReadBytes != 0 {
		t.Fatalf("before any listing: %+v", st)
	}
	b.refresh(History{Files: []BinlogFile{{"binlog.000001", 300}, {"binlog.000002", 700}}}, t0.Add(2*time.Second))
	if st := b.status(t0.Add(3 * time.Second)); st.Active || st.ReadBytes != 1000 || st.TotalBytes != 1000 || !st.Finished.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("after the first listing: %+v", st)
	}
}
