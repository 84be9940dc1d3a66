package loggertest

import (
	"context"
	"errors"
	"sync"

	"github.com/lni/dragonboat/v4/config"
	chantransport "github.com/lni/dragonboat/v4/plugin/chan"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// Network is an in-process network of dragonboat's channel transport that
// can cut members apart.
type Network struct {
	mu  sync.Mutex
	cut map[[2]string]bool
}

func newNetwork() *Network { return &Network{cut: map[[2]string]bool{}} }

func (n *Network) isCut(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[[2]string{a, b}]
}

func (n *Network) setCut(a, b string, v bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if v {
		n.cut[[2]string{a, b}], n.cut[[2]string{b, a}] = true, true
	} else {
		delete(n.cut, [2]string{a, b})
		delete(n.cut, [2]string{b, a})
	}
}

func (n *Network) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]string]bool{}
}

// factory wraps the channel transport: its Validate panics, and it has no
// way to cut links.
type factory struct {
	net   *Network
	inner *chantransport.ChanTransportFactory
}

func (f *factory) Create(c config.NodeHostConfig, h raftio.MessageHandler, ch raftio.ChunkHandler) raftio.ITransport {
	return &transport{ITransport: f.inner.Create(c, h, ch), net: f.net, self: c.RaftAddress}
}

func (f *factory) Validate(addr string) bool { return addr != "" }

type transport struct {
	raftio.ITransport
	net  *Network
	self string
}

var errCut = errors.New("loggertest: link cut")

func (t *transport) GetConnection(ctx context.Context, target string) (raftio.IConnection, error) {
	if t.net.isCut(t.self, target) {
		return nil, errCut
	}
	c, err := t.ITransport.GetConnection(ctx, target)
	if err != nil {
		return nil, err
	}
	return &conn{IConnection: c, t: t, target: target}, nil
}

func (t *transport) GetSnapshotConnection(ctx context.Context, target string) (raftio.ISnapshotConnection, error) {
	if t.net.isCut(t.self, target) {
		return nil, errCut
	}
	return t.ITransport.GetSnapshotConnection(ctx, target)
}

type conn struct {
	raftio.IConnection
	t      *transport
	target string
}

// SendMessageBatch drops the batch silently while the link is cut, as a
// partitioned network does.
func (c *conn) SendMessageBatch(b pb.MessageBatch) error {
	if c.t.net.isCut(c.t.self, c.target) {
		return nil
	}
	return c.IConnection.SendMessageBatch(b)
}
