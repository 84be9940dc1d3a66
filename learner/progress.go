package learner

import (
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
)

// Progress is a member's catch-up: how much of the leader's log it holds,
// how fast it gains, and when it should be done.
type Progress = api.Progress

// Bytes formats a byte count for people.
func Bytes(n uint64) string { return api.Bytes(n) }

type sample struct {
	t    time.Time
	done uint64
}

// Tracker turns successive observations of members into Progress. It keeps
// a short window of samples per member. Not safe for concurrent use; pure
// apart from its own state (times are passed in).
type Tracker struct {
	Window  time.Duration
	samples map[uint64][]sample
}

// NewTracker returns a Tracker averaging rates over window.
func NewTracker(window time.Duration) *Tracker {
	return &Tracker{Window: window, samples: map[uint64][]sample{}}
}

// Observe records member m's state against the leader's log size (total
// bytes the leader holds) and returns its Progress, or nil when the member
// is caught up (its samples are then dropped).
func (t *Tracker) Observe(m Member, total uint64, now time.Time) *Progress {
	if m.CaughtUp || m.Leader {
		delete(t.samples, m.ID)
		return nil
	}
	p := &Progress{Phase: "log", Total: total, ETA: -1}
	switch {
	case m.File == 0:
		// NB: the log is empty until the snapshot is recovered; the data
		// directory's growth is what shows the transfer.
		p.Phase = "snapshot"
		p.Done = min(m.DiskBytes, total/100*99)
	case m.LagBytes >= total:
		p.Done = 0
	default:
		p.Done = total - m.LagBytes
	}
	if total > 0 {
		p.Percent = 100 * float64(p.Done) / float64(total)
	}
	ss := append(t.samples[m.ID], sample{now, p.Done})
	for len(ss) > 2 && now.Sub(ss[0].t) > t.Window {
		ss = ss[1:]
	}
	t.samples[m.ID] = ss
	if first := ss[0]; len(ss) > 1 && now.After(first.t) && p.Done >= first.done {
		p.Rate = float64(p.Done-first.done) / now.Sub(first.t).Seconds()
		if p.Rate > 0 {
			p.ETA = float64(total-p.Done) / p.Rate
		}
	}
	return p
}

// Forget drops the samples of members not in keep.
func (t *Tracker) Forget(keep map[uint64]bool) {
	for id := range t.samples {
		if !keep[id] {
			delete(t.samples, id)
		}
	}
}
