package learner

import (
	"strings"
	"testing"
	"time"
)

func TestBytesBetween(t *testing.T) {
	files := []FileSize{{1, 1000}, {2, 2000}, {3, 500}}
	cases := []struct {
		name  string
		fromF uint32
		fromP uint64
		toF   uint32
		toP   uint64
		want  uint64
	}{
		{"same file", 3, 100, 3, 500, 400},
		{"ahead", 3, 500, 3, 400, 0},
		{"later file", 3, 10, 2, 100, 0},
		{"across files", 1, 400, 3, 500, 600 + 2000 + 500},
		{"empty member", 0, 0, 3, 500, 1000 + 2000 + 500},
		{"purged file counts as empty", 1, 400, 3, 500, 600 + 2000 + 500},
	}
	for _, c := range cases {
		if got := BytesBetween(files, c.fromF, c.fromP, c.toF, c.toP); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if got := BytesBetween(files[1:], 1, 400, 3, 500); got != 2000+500 {
		t.Errorf("leader purged file 1: %d", got)
	}
}

func TestBuild(t *testing.T) {
	now := time.Unix(1000, 0)
	in := Inputs{
		Loggers:  map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1"},
		Learners: map[uint64]string{4: "d:1"},
		Leader:   1,
		Reports: map[uint64]Report{
			1: {ID: 1, Applied: 500, File: 2, Pos: 300, Files: []FileSize{{1, 1000}, {2, 300}}},
			2: {ID: 2, Applied: 500, File: 2, Pos: 300},
			4: {ID: 4, Applied: 100, File: 1, Pos: 200, Serving: false, DumpAddr: "d:2"},
		},
		Errors:  map[uint64]string{3: "unreachable: connection refused"},
		Contact: map[uint64]time.Time{1: now, 2: now, 3: now.Add(-time.Hour), 4: now},
		Weights: map[uint64]int{1: 3},
		Limits:  Limits{Entries: 100, Bytes: 1 << 20, ReachableWithin: 5 * time.Second},
		Now:     now,
	}
	v := Build(in)
	if !v.Complete || v.Leader != 1 || len(v.Members) != 4 {
		t.Fatalf("view %+v", v)
	}
	m1, _ := v.Get(1)
	m3, _ := v.Get(3)
	m4, _ := v.Get(4)
	if !m1.Leader || !m1.CaughtUp || m1.Weight != 3 {
		t.Errorf("leader %+v", m1)
	}
	if m3.Reachable || m3.CaughtUp || m3.Weight != DefaultWeight || !strings.Contains(m3.Error, "refused") {
		t.Errorf("dead logger %+v", m3)
	}
	if m4.Role != RoleLearner || m4.LagEntries != 400 || m4.LagBytes != 800+300 || m4.CaughtUp {
		t.Errorf("learner %+v", m4)
	}
	in.Reports[4] = Report{ID: 4, Applied: 450, File: 2, Pos: 300}
	if m4, _ := Build(in).Get(4); !m4.CaughtUp {
		t.Errorf("caught-up learner %+v", m4)
	}
	delete(in.Reports, 1)
	if v := Build(in); v.Complete {
		t.Errorf("no leader report, yet complete")
	}
}

func TestProgress(t *testing.T) {
	tr := NewTracker(10 * time.Second)
	t0 := time.Unix(1000, 0)
	total := uint64(100 << 20)
	m := Member{ID: 4, File: 0, DiskBytes: 10 << 20}
	p := tr.Observe(m, total, t0)
	if p.Phase != "snapshot" || p.Done != 10<<20 || p.Percent != 10 || p.ETA != -1 {
		t.Fatalf("first sample %+v", p)
	}
	m.DiskBytes = 30 << 20
	p = tr.Observe(m, total, t0.Add(2*time.Second))
	if p.Rate != 10<<20 || p.ETA != 7 {
		t.Fatalf("rate %+v", p)
	}
	m.File, m.LagBytes = 3, 40<<20
	p = tr.Observe(m, total, t0.Add(4*time.Second))
	if p.Phase != "log" || p.Done != 60<<20 || p.Percent != 60 || p.Rate != 12.5*(1<<20) {
		t.Fatalf("log phase %+v", p)
	}
	if s := p.String(); !strings.Contains(s, "60.0%") || !strings.Contains(s, "MiB/s") || !strings.Contains(s, "ETA 3s") {
		t.Fatalf("line %q", s)
	}
	// A snapshot larger than the leader's log never shows 100%.
	if p := tr.Observe(Member{ID: 5, DiskBytes: 200 << 20}, total, t0); p.Percent >= 100 {
		t.Fatalf("snapshot percent %+v", p)
	}
	m.CaughtUp = true
	if p := tr.Observe(m, total, t0.Add(5*time.Second)); p != nil {
		t.Fatalf("caught up, progress %+v", p)
	}
	if _, ok := tr.samples[4]; ok {
		t.Fatal("samples kept after catching up")
	}
	tr.Forget(map[uint64]bool{})
	if len(tr.samples) != 0 {
		t.Fatal("Forget kept samples")
	}
}
