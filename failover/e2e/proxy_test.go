package e2e

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// cutMode is what a cut proxy does with a new connection.
type cutMode int

const (
	// refuse closes a new connection at once: the peer sees the server go
	// away during the handshake.
	refuse cutMode = iota + 1
	// blackhole accepts a new connection and never answers: the peer's
	// reads time out, as across a real network partition.
	blackhole
)

func (m cutMode) String() string {
	switch m {
	case refuse:
		return "refuse"
	case blackhole:
		return "blackhole"
	}
	return "open"
}

// proxy is a TCP proxy in front of one server that a test can cut (every
// connection closed, new ones refused or blackholed) and heal. Its methods
// are safe for concurrent use.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu     sync.Mutex
	mode   cutMode // 0: open
	closed bool
	conns  map[net.Conn]struct{} // forwarded connections, both ends
	held   map[net.Conn]struct{} // blackholed connections
	// forwarded records when each connection got through to the target.
	forwarded []time.Time
	refused   int
	wg        sync.WaitGroup
}

// startProxy listens on 127.0.0.1:0 and forwards to target until the test
// ends.
func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}, held: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// addr is the proxy's address, to give to the fleet instead of target's.
func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.mu.Lock()
		switch {
		case p.closed:
			p.mu.Unlock()
			c.Close()
			return
		case p.mode == refuse:
			p.refused++
			p.mu.Unlock()
			c.Close()
			continue
		case p.mode == blackhole:
			p.refused++
			p.held[c] = struct{}{}
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.forward(c)
	}
}

// forward pipes c to a new connection to the target until either side
// ends or the proxy is cut.
func (p *proxy) forward(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.mode != 0 || p.closed {
		// NB: cut while dialing: this connection must not get through.
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.forwarded = append(p.forwarded, time.Now())
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// cut closes every forwarded connection and, until heal, refuses or
// blackholes new ones. When cut returns, no byte passes any more.
func (p *proxy) cut(mode cutMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	for c := range p.conns {
		c.Close()
	}
	p.t.Logf("proxy %s -> %s: cut (%s), %d connections closed", p.addr(), p.target, mode, len(p.conns)/2)
}

// heal forwards new connections again (blackholed ones are closed: their
// peers gave up on them long ago).
func (p *proxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = 0
	for c := range p.held {
		c.Close()
	}
	clear(p.held)
	p.t.Logf("proxy %s -> %s: healed (%d connections refused or blackholed while cut)", p.addr(), p.target, p.refused)
}

// forwardedSince counts the connections forwarded to the target since t.
func (p *proxy) forwardedSince(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, at := range p.forwarded {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

// close stops the proxy and waits for its goroutines.
func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	for c := range p.held {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
