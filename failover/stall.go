package failover

import (
	"context"
	"sync"
	"time"
)

// Stall is a stretch of time in which this process did not run when it
// should have: a timer or the Manager's step loop came late.
type Stall struct {
	End    time.Time     // when the process ran again
	Length time.Duration // how late it was
}

// LateBy is the stall rule: something expected to run at expected that
// ran at actual shows a stall when it is late by more than threshold.
// Pure.
func LateBy(expected, actual time.Time, threshold time.Duration) (Stall, bool) {
	lag := actual.Sub(expected)
	if lag <= threshold {
		return Stall{}, false
	}
	return Stall{End: actual, Length: lag}, true
}

// StallThreshold is the lateness that counts as a stall: a third of the
// lease, the same margin that separates a healthy source from a suspect
// one.
func StallThreshold(lease time.Duration) time.Duration { return lease / 3 }

// stallPeriod is how often the StallDetector's timer fires.
const stallPeriod = 100 * time.Millisecond

// StallDetector measures how late this process runs. Its Run goroutine
// sleeps for a period at a time and notes by how much each wake-up came
// late; the Manager notes its own step loop's lateness too (Observe). It
// is safe for concurrent use.
type StallDetector struct {
	period, threshold time.Duration
	now               func() time.Time

	mu   sync.Mutex
	beat time.Time // the detector's last wake-up
	last Stall     // the latest stall seen
}

// NewStallDetector returns a detector whose timer fires every period and
// that counts a lateness above threshold as a stall.
func NewStallDetector(period, threshold time.Duration, now func() time.Time) *StallDetector {
	if now == nil {
		now = time.Now
	}
	return &StallDetector{period: period, threshold: threshold, now: now}
}

// Run fires the timer until ctx ends.
func (d *StallDetector) Run(ctx context.Context) {
	t := time.NewTimer(d.period)
	defer t.Stop()
	d.mu.Lock()
	d.beat = d.now()
	d.mu.Unlock()
	for {
		expected := d.now().Add(d.period)
		t.Reset(d.period)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := d.now()
		d.Observe(expected, now)
		d.mu.Lock()
		d.beat = now
		d.mu.Unlock()
	}
}

// Observe records that something expected at expected ran at actual.
func (d *StallDetector) Observe(expected, actual time.Time) {
	s, ok := LateBy(expected, actual, d.threshold)
	if !ok {
		return
	}
	d.mu.Lock()
	if s.End.After(d.last.End) {
		d.last = s
	}
	d.mu.Unlock()
}

// Last returns the latest stall as of now. A stall still going on (the
// timer is overdue by more than the threshold: the process just woke up
// and the detector's goroutine has not run yet, or it is starved) ends
// now, and is recorded as such.
func (d *StallDetector) Last(now time.Time) Stall {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.beat.IsZero() {
		if s, ok := LateBy(d.beat.Add(d.period), now, d.threshold); ok && s.End.After(d.last.End) {
			d.last = s
		}
	}
	return d.last
}
