package logger

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/lni/dragonboat/v4/config"
)

// validateRaftTLS: the three --raft-tls-* files go together, and are
// required unless the member runs --insecure (or a test transport).
func (c *Config) validateRaftTLS() error {
	if err := c.RaftTLS.Validate("--raft-tls"); err != nil {
		return fmt.Errorf("logger: %w", err)
	}
	if c.RaftTLS.Set() || c.Insecure || c.TransportFactory != nil {
		return nil
	}
	return errors.New("logger: the raft links need mutual TLS: give --raft-tls-ca, --raft-tls-cert and --raft-tls-key " +
		"(binlogctl certs create-ca and binlogctl certs create-member make them), or run with --insecure for plaintext raft links")
}

// raftTransport returns the transport factory for dragonboat (nil: its
// built-in one) and, for the tcp transport, the feed that keeps its
// membership current.
func (c *Config) raftTransport(log *slog.Logger) (config.TransportFactory, *memberFeed) {
	if c.TransportFactory != nil {
		return c.TransportFactory, nil
	}
	if c.Transport == TransportDragonboat {
		return nil, nil
	}
	feed := newMemberFeed(c.ShardID, c.Members)
	f := &tcpFactory{log: log, reg: c.Registry,
		guard: &frameGuard{shard: c.ShardID, replica: c.ReplicaID, peers: feed.peers}}
	if !c.Insecure {
		files := c.RaftTLS
		f.tls = &files
	}
	return f, feed
}

// dragonboatTLS turns on mutual TLS in dragonboat's built-in transport.
// NB: that transport checks only that a peer's certificate chains to the
// CA (any certificate of it, a client's too), reads the files once at
// start, and hands every frame to dragonboat unchecked: the tcp transport
// is the hardened one (transport_guard.go).
func (c *Config) dragonboatTLS(nhc *config.NodeHostConfig) {
	if c.Transport != TransportDragonboat || c.TransportFactory != nil || c.Insecure {
		return
	}
	nhc.MutualTLS = true
	nhc.CAFile, nhc.CertFile, nhc.KeyFile = c.RaftTLS.CA, c.RaftTLS.Cert, c.RaftTLS.Key
}

// startFeed gives the membership feed the NodeHost it reads.
func (n *Node) startFeed() {
	if n.feed != nil {
		n.feed.nh.Store(n.nh)
	}
}

// runFeed starts the feed's loop (joined by Close).
func (n *Node) runFeed() {
	if n.feed == nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.feed.run(n.ctx)
	}()
}
