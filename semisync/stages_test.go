package semisync

import (
	"reflect"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
)

// The stages split the ACK latency at their boundaries and add up to it;
// a boundary out of order (clocks are monotonic, but a zero time would
// be) never gives a negative stage.
func TestStageDurations(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	ms := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Millisecond))) }
	got := stageDurations(t0, logger.StageTimes{Enqueued: ms(0.02), Proposed: ms(0.3), Committed: ms(0.9), Stored: ms(1.1)}, ms(1.15), ms(1.2))
	want := []time.Duration{20 * time.Microsecond, 280 * time.Microsecond, 600 * time.Microsecond, 200 * time.Microsecond, 50 * time.Microsecond, 50 * time.Microsecond}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stages %v, want %v", got, want)
	}
	var sum time.Duration
	for _, d := range got {
		sum += d
	}
	if sum != ms(1.2).Sub(t0) {
		t.Fatalf("stages add up to %v, want %v", sum, ms(1.2).Sub(t0))
	}
	if len(AckStages) != len(got) {
		t.Fatalf("%d stage names for %d stages", len(AckStages), len(got))
	}
	for i, d := range stageDurations(t0, logger.StageTimes{Enqueued: ms(1), Proposed: ms(0.5), Committed: ms(0.4), Stored: ms(2)}, ms(3), ms(4)) {
		if d < 0 {
			t.Fatalf("stage %s negative: %v", AckStages[i], d)
		}
	}
}
