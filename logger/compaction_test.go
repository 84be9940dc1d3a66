package logger

import "testing"

func TestSizePolicy(t *testing.T) {
	p := sizePolicy{Every: 100, Overhead: 50}
	m := func(index, bytes uint64) applyMark { return applyMark{Index: index, Bytes: bytes} }
	cases := []struct {
		name       string
		p          sizePolicy
		start, now applyMark
		due        bool
		to         uint64
	}{
		{"below the budget", p, m(10, 0), m(20, 99), false, 10},
		{"at the budget: keep the window behind the snapshot", p, m(10, 0), m(20, 100), true, 10},
		{"no more than the overhead in entries", p, m(10, 0), m(200, 150), true, 150},
		{"a window 5 budgets long keeps its last fifth", p, m(0, 0), m(20, 500), true, 16},
		{"a late loop keeps about the budget, rounded up to whole entries", sizePolicy{Every: 256 << 10, Overhead: 5000}, m(22, 0), m(71, 2_715_629), true, 66},
		{"a window just over the budget keeps all but its first entry", p, m(10, 0), m(20, 101), true, 10},
		{"no entry applied since the start", p, m(20, 0), m(20, 500), false, 19},
		{"off", sizePolicy{Overhead: 50}, m(0, 0), m(20, 1<<40), false, 0},
		{"overhead 0 still keeps the last entry", sizePolicy{Every: 100}, m(10, 0), m(20, 100), true, 19},
		{"nothing applied", p, m(0, 0), m(0, 0), false, 0},
		{"counted from a recovery's mark", p, m(1000, 700), m(1005, 799), false, 1000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.due(c.start, c.now); got != c.due {
				t.Fatalf("due = %v, want %v", got, c.due)
			}
			if got := c.p.compactTo(c.start, c.now); got != c.to {
				t.Fatalf("compactTo = %d, want %d", got, c.to)
			}
		})
	}
}

func TestSizeSnapshotsOn(t *testing.T) {
	c := DefaultConfig()
	if !c.sizeSnapshotsOn() {
		t.Fatal("off by default")
	}
	for _, r := range []Retention{{MaxFiles: 2}, {MaxBytes: 1}, {MaxAge: 1}} {
		c.Retention = r
		if c.sizeSnapshotsOn() {
			t.Fatalf("on with its own retention %+v", r)
		}
	}
	c.Retention, c.SnapshotBytes = Retention{}, 0
	if c.sizeSnapshotsOn() {
		t.Fatal("on with --snapshot-bytes 0")
	}
}
