package failover

import (
	"testing"
	"time"
)

func TestCatchUpProgress(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name           string
		first, missing uint64
		after          time.Duration
		rate, eta      float64
	}{
		{"first look: nothing applied yet", 500, 500, 0, 0, -1},
		{"no progress after a second", 500, 500, time.Second, 0, -1},
		{"100 applied in 2s", 500, 400, 2 * time.Second, 50, 8},
		{"done", 500, 0, 5 * time.Second, 100, 0},
		{"nothing was missing", 0, 0, 0, 0, 0},
	} {
		cu := catchUpProgress("127.0.0.1:3307", t0, c.first, c.missing, t0.Add(c.after))
		if cu.Rate != c.rate || cu.ETASeconds != c.eta || cu.Missing != c.missing || cu.Total != c.first || cu.Target != "127.0.0.1:3307" || !cu.Since.Equal(t0) {
			t.Errorf("%s: %+v; want rate %v, eta %v, missing %d of %d", c.name, cu, c.rate, c.eta, c.missing, c.first)
		}
	}
}
