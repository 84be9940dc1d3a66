package dump

import (
	"fmt"
	"testing"
	"time"
)

// TestThrottle: 5 failures in a minute block for 1 s, each further failure
// doubles the block (to at most 5 min); a success forgets the address;
// failures spread wider than the window do not block; the table never
// holds more than its size.
func TestThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	th := newThrottle(5, time.Minute)
	for i := 0; i < 4; i++ {
		if d := th.fail("a", now); d != 0 {
			t.Fatalf("failure %d blocked for %v", i+1, d)
		}
	}
	if d := th.fail("a", now); d != time.Second {
		t.Fatalf("5th failure: block %v, want 1s", d)
	}
	if d, first := th.blocked("a", now); d != time.Second || !first {
		t.Fatalf("blocked: %v %v", d, first)
	}
	if _, first := th.blocked("a", now); first {
		t.Fatal("a second refusal in the same block is not the first")
	}
	want := 2 * time.Second
	for i := 0; i < 12; i++ {
		now = now.Add(time.Hour / 60)
		if d := th.fail("a", now); d != min(want, 5*time.Minute) {
			t.Fatalf("failure %d: block %v, want %v", 6+i, d, min(want, 5*time.Minute))
		}
		want *= 2
	}
	th.ok("a")
	if d, _ := th.blocked("a", now); d != 0 {
		t.Fatalf("blocked after a success: %v", d)
	}
	for i := 0; i < 20; i++ { // one failure every 20 s: 3 a minute
		now = now.Add(20 * time.Second)
		if d := th.fail("b", now); d != 0 {
			t.Fatalf("slow failure %d blocked", i)
		}
	}
	th.size = 100
	for i := 0; i < 1000; i++ {
		th.fail(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now)
	}
	if n := th.len(); n > 100 {
		t.Fatalf("%d addresses tracked, want at most 100", n)
	}
}
