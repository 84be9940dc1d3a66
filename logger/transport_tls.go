package logger

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/binlogsvr/binlogsvr/logger/pki"
)

// Mutual TLS on the tcp raft transport. Both ends present a member
// certificate of the fleet's CA (binlogctl certs create-member) and verify
// the other's: the server requires and verifies the client's certificate
// against the CA, the client verifies the server's against the CA and the
// host it dialed. Then each checks that the other's certificate is of kind
// member, so a client certificate of the same CA (an operator's, for the
// admin API) does not open a raft link. pki.Files re-reads the files when
// they change, so a rotated certificate or CA bundle is used from the next
// connection on, without a restart.

// serverHandshake runs the TLS handshake of an inbound connection within
// wireHandshake.
func (t *tcpTransport) serverHandshake(raw net.Conn) (net.Conn, error) {
	tc := tls.Server(raw, t.serverTLS)
	raw.SetDeadline(time.Now().Add(wireHandshake))
	ctx, cancel := context.WithTimeout(context.Background(), wireHandshake)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	if kind, name, _ := pki.Peer(tc.ConnectionState()); kind != pki.KindMember {
		return nil, fmt.Errorf("the peer's certificate %q is a %s certificate, not a member's", name, orNone(kind))
	}
	raw.SetDeadline(time.Time{})
	return tc, nil
}

// clientHandshake runs the TLS handshake of a connection this member
// dialed to target within wireHandshake.
func (t *tcpTransport) clientHandshake(ctx context.Context, c net.Conn, target string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil, err
	}
	conf, err := t.clientConfig(host)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, conf)
	ctx, cancel := context.WithTimeout(ctx, wireHandshake)
	defer cancel()
	c.SetDeadline(time.Now().Add(wireHandshake))
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("logger: raft transport: TLS handshake with %s: %w", target, err)
	}
	if kind, name, _ := pki.Peer(tc.ConnectionState()); kind != pki.KindMember {
		return nil, fmt.Errorf("logger: raft transport: %s presented %q, a %s certificate, not a member's", target, name, orNone(kind))
	}
	c.SetDeadline(time.Time{})
	return tc, nil
}

// clientConfig returns the TLS client config for peers at host (one per
// host: it verifies the server's certificate for that host).
func (t *tcpTransport) clientConfig(host string) (*tls.Config, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.clientTLS[host]; ok {
		return c, nil
	}
	c, err := t.files.ClientConfig(host)
	if err != nil {
		return nil, fmt.Errorf("logger: raft transport TLS (--raft-tls-ca, --raft-tls-cert, --raft-tls-key): %w", err)
	}
	t.clientTLS[host] = c
	return c, nil
}

func orNone(kind string) string {
	if kind == "" {
		return "no"
	}
	return kind
}
