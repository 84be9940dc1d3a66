package logger

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/lni/dragonboat/v4/config"

	"github.com/binlogsvr/binlogsvr/logger/pki"
)

// validateRaftTLS: the three --raft-tls-* files go together, and are
// required unless the member runs --insecure (or a test transport).
func validateRaftTLS(files pki.Files, insecure, testTransport bool) error {
	if err := files.Validate("--raft-tls"); err != nil {
		return fmt.Errorf("logger: %w", err)
	}
	if files.Set() || insecure || testTransport {
		return nil
	}
	return errors.New("logger: the raft links need mutual TLS: give --raft-tls-ca, --raft-tls-cert and --raft-tls-key " +
		"(binlogctl certs create-ca and binlogctl certs create-member make them), or run with --insecure for plaintext raft links")
}

// raftTransport returns the transport factory for dragonboat (nil: its
// built-in one) and, for the tcp transport, the set of shards its guard
// accepts frames for (each shard's Node adds itself with its membership).
func (c *HostConfig) raftTransport(log *slog.Logger) (config.TransportFactory, *shardSet) {
	if c.TransportFactory != nil {
		return c.TransportFactory, nil
	}
	if c.Transport == TransportDragonboat {
		return nil, nil
	}
	shards := newShardSet()
	f := &tcpFactory{log: log, reg: c.Registry, shards: shards}
	if !c.Insecure {
		files := c.RaftTLS
		f.tls = &files
	}
	return f, shards
}

// dragonboatTLS turns on mutual TLS in dragonboat's built-in transport.
// NB: that transport checks only that a peer's certificate chains to the
// CA (any certificate of it, a client's too), reads the files once at
// start, and hands every frame to dragonboat unchecked: the tcp transport
// is the hardened one (transport_guard.go).
func (c *HostConfig) dragonboatTLS(nhc *config.NodeHostConfig) {
	if c.Transport != TransportDragonboat || c.TransportFactory != nil || c.Insecure {
		return
	}
	nhc.MutualTLS = true
	nhc.CAFile, nhc.CertFile, nhc.KeyFile = c.RaftTLS.CA, c.RaftTLS.Cert, c.RaftTLS.Key
}
