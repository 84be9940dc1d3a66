package logger

import (
	"testing"
	"time"
)

func TestRetentionCut(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	files := func(sizes ...uint64) []FileMeta {
		var out []FileMeta
		for i, s := range sizes {
			// file i+1 last written (len-i) hours ago
			out = append(out, FileMeta{Number: uint32(i + 1), Size: s, LastTime: uint32(now.Add(-time.Duration(len(sizes)-i) * time.Hour).Unix())})
		}
		return out
	}
	cases := []struct {
		name  string
		files []FileMeta
		r     Retention
		want  uint32
	}{
		{"no limits keep everything", files(10, 10, 10), Retention{}, 0},
		{"one file is never cut", files(100), Retention{MaxFiles: 1, MaxBytes: 1}, 0},
		{"max files", files(10, 10, 10, 10), Retention{MaxFiles: 2}, 3},
		{"max bytes counts from the newest", files(10, 10, 10, 10), Retention{MaxBytes: 25}, 3},
		{"max bytes never cuts the open file", files(10, 100), Retention{MaxBytes: 50}, 2},
		{"max age", files(10, 10, 10, 10), Retention{MaxAge: 150 * time.Minute}, 3},
		{"the tightest limit wins", files(10, 10, 10, 10, 10), Retention{MaxFiles: 4, MaxBytes: 25}, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := RetentionCut(c.files, c.r, now); got != c.want {
				t.Fatalf("RetentionCut = %d, want %d", got, c.want)
			}
		})
	}
}
