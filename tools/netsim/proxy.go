package netsim

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"time"
)

// Link is what a Proxy does to the bytes it relays, in each direction.
type Link struct {
	Delay  time.Duration // added to every chunk, each way (10 ms each way: 20 ms RTT)
	Jitter time.Duration // plus a uniform random 0..Jitter
	// Loss is the fraction of chunks that are "lost": as TCP retransmits a
	// lost segment after its retransmission timeout, the chunk (and all
	// behind it, order is kept) arrives LossStall later.
	Loss      float64
	LossStall time.Duration // default 200 ms (Linux's minimum RTO)
}

// Proxy relays TCP connections from a listening address to a target,
// delaying (and stalling, for loss) each chunk as its Link says.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	link   Link
	rnd    *rand.Rand
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// NewProxy listens on listen (host:port, port 0 for a free one) and relays
// to target. seed makes its jitter and loss reproducible.
func NewProxy(listen, target string, l Link, seed uint64) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, link: l, rnd: rand.New(rand.NewPCG(seed, 0x6e6574)), conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set changes the link for the chunks read from now on.
func (p *Proxy) Set(l Link) {
	p.mu.Lock()
	p.link = l
	p.mu.Unlock()
}

// Close stops listening and closes every relayed connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				return
			}
			if !p.track(u) {
				return
			}
			defer p.untrack(u)
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); p.pump(u, c); u.Close(); c.Close() }()
			go func() { defer wg.Done(); p.pump(c, u); u.Close(); c.Close() }()
			wg.Wait()
		}()
	}
}

type chunk struct {
	b   []byte
	due time.Time
}

// pump copies src to dst, each chunk delivered at its due time, in order.
func (p *Proxy) pump(dst, src net.Conn) {
	q := make(chan chunk, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ch := range q {
			if d := time.Until(ch.due); d > 0 {
				sleep(d)
			}
			if _, err := dst.Write(ch.b); err != nil {
				for range q { // NB: drain so the reader is not stuck
				}
				return
			}
		}
	}()
	var last time.Time
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			due := time.Now().Add(p.lag())
			if due.Before(last) {
				due = last // NB: TCP keeps order
			}
			last = due
			q <- chunk{append([]byte(nil), buf[:n]...), due}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			break
		}
	}
	close(q)
	<-done
}

func (p *Proxy) lag() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.link.Delay
	if p.link.Jitter > 0 {
		d += time.Duration(p.rnd.Int64N(int64(p.link.Jitter)))
	}
	if p.link.Loss > 0 && p.rnd.Float64() < p.link.Loss {
		st := p.link.LossStall
		if st == 0 {
			st = 200 * time.Millisecond
		}
		d += st
	}
	return d
}

// sleep waits d. Go's timers wait at least a millisecond when the process
// is otherwise idle (the netpoller's epoll_wait takes whole milliseconds),
// so a delay under preciseBelow sleeps in nanosleep on this goroutine's
// thread instead: within the kernel's timer slack (50 µs) of d.
func sleep(d time.Duration) {
	if d >= preciseBelow {
		time.Sleep(d)
		return
	}
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

const preciseBelow = 5 * time.Millisecond
