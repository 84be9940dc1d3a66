package dump

import (
	"net"
	"sync"
	"time"
)

// throttle slows password guessing: after limit failed logins from one
// client address within window, the address is blocked, first for base,
// and each further failure doubles the block (up to maxBlock). A
// successful login forgets the address. The table holds at most size
// addresses (IPv6 by /64), so a flood of addresses cannot grow it without
// bound. Pure given its clock; safe for concurrent use.
type throttle struct {
	limit    int
	window   time.Duration
	base     time.Duration
	maxBlock time.Duration
	size     int

	mu sync.Mutex
	m  map[string]*strikes
}

type strikes struct {
	fails  int       // failures since first
	first  time.Time // start of the counting window
	last   time.Time // last failure
	until  time.Time // blocked until
	blocks int       // blocks so far (the backoff's exponent)
	noted  bool      // a refusal during the current block was logged
}

func newThrottle(limit int, window time.Duration) *throttle {
	return &throttle{limit: limit, window: window, base: time.Second, maxBlock: 5 * time.Minute, size: 10000, m: map[string]*strikes{}}
}

// key is the throttled unit of an address: its IP, an IPv6 one by /64.
func throttleKey(a net.Addr) string {
	h := hostOf(a)
	ip := net.ParseIP(h)
	if ip == nil || ip.To4() != nil {
		return h
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// blocked returns how long key stays blocked (0: not blocked), and
// whether this is the first refusal of the block (to log once per block).
func (t *throttle) blocked(key string, now time.Time) (time.Duration, bool) {
	if t == nil {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[key]
	if s == nil || !now.Before(s.until) {
		return 0, false
	}
	first := !s.noted
	s.noted = true
	return s.until.Sub(now), first
}

// fail records a failed login; it returns the block it starts (0: none).
func (t *throttle) fail(key string, now time.Time) time.Duration {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[key]
	if s != nil && t.stale(s, now) {
		s = nil
	}
	if s == nil {
		if len(t.m) >= t.size {
			t.evict(now)
		}
		s = &strikes{first: now}
		t.m[key] = s
	}
	if now.Sub(s.first) > t.window && s.blocks == 0 {
		s.fails, s.first = 0, now
	}
	s.fails++
	s.last = now
	if s.fails < t.limit {
		return 0
	}
	d := t.base << min(s.blocks, 20)
	if d > t.maxBlock || d <= 0 {
		d = t.maxBlock
	}
	s.blocks++
	s.until, s.noted = now.Add(d), false
	return d
}

// ok forgets key after a successful login.
func (t *throttle) ok(key string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	delete(t.m, key)
	t.mu.Unlock()
}

// stale: no block in force and no failure for a window past the longest
// block; such a record says nothing any more.
func (t *throttle) stale(s *strikes, now time.Time) bool {
	return !now.Before(s.until) && now.Sub(s.last) > t.window+t.maxBlock
}

// evict makes room: stale records first, then one that is not blocked,
// then any (map order is random, so an attacker cannot pick which).
func (t *throttle) evict(now time.Time) {
	for k, s := range t.m {
		if t.stale(s, now) {
			delete(t.m, k)
		}
	}
	if len(t.m) < t.size {
		return
	}
	for k, s := range t.m {
		if !now.Before(s.until) {
			delete(t.m, k)
			return
		}
	}
	for k := range t.m {
		delete(t.m, k)
		return
	}
}

// len is the number of addresses tracked.
func (t *throttle) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
