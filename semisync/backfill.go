package semisync

import (
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// backfill follows the ingest through the source's binlog files while it
// reads from behind the source's end, for /status: bytes read against the
// files' sizes (SHOW BINARY LOGS, refreshed by the caller), the mean rate
// and the time left. Pure: the caller passes the clock and holds the
// Ingester's lock.
type backfill struct {
	hist      History
	offset    map[string]uint64 // each file's start, counted from the oldest held
	total     uint64
	sizesRead time.Time

	st        *api.BackfillStatus // the current or last read; nil: none yet
	firstRead uint64              // the first position observed, and when
	firstTime time.Time
	lastFile  string // the last position observed
	lastPos   uint64
}

// refresh takes the source's files and purged GTIDs as just read.
func (b *backfill) refresh(h History, now time.Time) {
	b.hist, b.sizesRead = h, now
	b.offset = make(map[string]uint64, len(h.Files))
	b.total = 0
	for _, f := range h.Files {
		b.offset[f.Name] = b.total
		b.total += f.Size
	}
	if b.st != nil && b.st.Active {
		b.st.TotalBytes, b.st.Files, b.st.SizesRead = b.total, len(h.Files), now
		// NB: the stream may have reached the end before this listing (the
		// first one comes after the session starts): judge it again.
		b.observe(b.lastFile, b.lastPos, now)
	}
}

// begin starts a read from behind the source's end (a session whose start
// lies before the source's executed set). It replaces the last one.
func (b *backfill) begin(now time.Time) {
	b.st = &api.BackfillStatus{Active: true, Started: now, TotalBytes: b.total, Files: len(b.hist.Files), SizesRead: b.sizesRead}
	b.firstTime, b.lastFile, b.lastPos = time.Time{}, "", 0
}

// stop ends the session's read where it is (the session ended before the
// source's end); the next session begins a new one if still behind.
func (b *backfill) stop() {
	if b.st != nil && b.st.Active {
		b.st.Active = false
		b.st.ETASeconds = 0
	}
}

// observe records the ingest's position in the source's file (the end of
// the event just received); at or past the source's end as last listed,
// the read is done.
func (b *backfill) observe(file string, pos uint64, now time.Time) {
	if b.st == nil || !b.st.Active || file == "" {
		return
	}
	b.lastFile, b.lastPos = file, pos
	start, ok := b.offset[file]
	var read uint64
	switch {
	case ok:
		read = start + pos
	case len(b.hist.Files) > 0 && newerFile(file, b.hist.Files[len(b.hist.Files)-1].Name):
		read = b.total // NB: a file the last listing did not know yet: at its end
	default:
		return
	}
	if b.firstTime.IsZero() {
		b.firstRead, b.firstTime = read, now
		b.st.FromFile = file
	}
	b.st.ReadBytes, b.st.SourceFile = read, file
	if b.total > 0 && read >= b.total {
		b.st.Active, b.st.Finished, b.st.ReadBytes = false, now, read
		b.st.RateBytesPerSecond, b.st.ETASeconds = b.rate(now), 0
	}
}

// rate is the mean rate since the first position observed.
func (b *backfill) rate(now time.Time) float64 {
	d := now.Sub(b.firstTime).Seconds()
	if b.firstTime.IsZero() || d <= 0 || b.st.ReadBytes < b.firstRead {
		return 0
	}
	return float64(b.st.ReadBytes-b.firstRead) / d
}

// status returns a copy of the current or last read (nil if none).
func (b *backfill) status(now time.Time) *api.BackfillStatus {
	if b.st == nil {
		return nil
	}
	st := *b.st
	if st.Active {
		st.RateBytesPerSecond = b.rate(now)
		if st.RateBytesPerSecond > 0 && st.TotalBytes > st.ReadBytes {
			st.ETASeconds = float64(st.TotalBytes-st.ReadBytes) / st.RateBytesPerSecond
		}
	}
	return &st
}

// newerFile reports whether binlog file a comes after b: the same base
// name with a higher number (numbers grow past six digits by length).
func newerFile(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}
