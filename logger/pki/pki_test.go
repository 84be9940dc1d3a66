package pki

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// handshake runs one TLS handshake over loopback between a server with srv
// and a client with cli, and returns the error each side saw and the
// identity of the peer the server verified.
func handshake(t *testing.T, srv, cli *tls.Config) (kind, name, role string, serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			serverErr = err
			return
		}
		defer c.Close()
		tc := tls.Server(c, srv)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if serverErr = tc.Handshake(); serverErr == nil {
			kind, name, role = Peer(tc.ConnectionState())
			_, _ = tc.Write([]byte("x"))
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, cli)
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if clientErr = tc.Handshake(); clientErr == nil {
		// NB: in TLS 1.3 the client finishes before the server has checked
		// its certificate; a read sees the server's verdict.
		_, clientErr = io.ReadFull(tc, make([]byte, 1))
	}
	tc.Close()
	<-done
	return
}

func TestMutualTLS(t *testing.T) {
	p := Testing(t, t.TempDir())
	srv, err := p.Members[0].ServerConfig(tls.RequireAndVerifyClientCert)
	if err != nil {
		t.Fatal(err)
	}
	client := func(f Files, name string) *tls.Config {
		c, err := f.ClientConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// A member reaching a member: both verified, the server sees a member.
	kind, name, _, se, ce := handshake(t, srv, client(p.Members[1], "127.0.0.1"))
	if se != nil || ce != nil || kind != KindMember || name != "member2" {
		t.Fatalf("member to member: server %v, client %v, peer %q %q", se, ce, kind, name)
	}
	// A client certificate carries its role.
	kind, name, role, se, ce := handshake(t, srv, client(p.Read, "127.0.0.1"))
	if se != nil || ce != nil || kind != KindClient || name != "reader" || role != RoleRead {
		t.Fatalf("read client: server %v, client %v, peer %q %q %q", se, ce, kind, name, role)
	}
	// A certificate from another CA is refused by the server.
	foreign := p.Foreign
	foreign.CA = p.CA // it trusts our CA, but its own cert is not ours
	if _, _, _, se, _ := handshake(t, srv, client(foreign, "127.0.0.1")); se == nil {
		t.Fatal("the server accepted a client certificate from another CA")
	}
	// No client certificate: refused.
	if _, _, _, se, _ := handshake(t, srv, client(Files{CA: p.CA}, "127.0.0.1")); se == nil {
		t.Fatal("the server accepted a client without a certificate")
	}
	// A client that does not trust the server's CA refuses it.
	if _, _, _, _, ce := handshake(t, srv, client(p.Foreign, "127.0.0.1")); ce == nil || !strings.Contains(ce.Error(), "not trusted") {
		t.Fatalf("a client trusting another CA accepted the server: %v", ce)
	}
	// The server's certificate must name the host dialled.
	if _, _, _, _, ce := handshake(t, srv, client(p.Members[1], "10.9.9.9")); ce == nil {
		t.Fatal("the client accepted a server certificate for another host")
	}
}

// TestRotation replaces a member's certificate and the CA bundle on disk:
// the next handshake uses the new files, with no new config.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	p := Testing(t, dir)
	srv, err := p.Members[0].ServerConfig(tls.RequireAndVerifyClientCert)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := p.Members[1].ClientConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, se, ce := handshake(t, srv, cli); se != nil || ce != nil {
		t.Fatalf("before rotation: %v %v", se, ce)
	}
	// New CA; both sides trust both CAs; then the server gets a new cert.
	ca2, err := NewCA("second CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(p.CA)
	bundle := append(append([]byte{}, old...), ca2.CertPEM...)
	if err := os.WriteFile(p.CA, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	c, k, err := ca2.IssueMember("member1", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePair(p.Members[0].Cert, p.Members[0].Key, c, k); err != nil {
		t.Fatal(err)
	}
	if _, _, _, se, ce := handshake(t, srv, cli); se != nil || ce != nil {
		t.Fatalf("after rotation (both CAs trusted): %v %v", se, ce)
	}
	// Drop the old CA: the client's old certificate is no longer accepted.
	if err := os.WriteFile(p.CA, ca2.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if _, _, _, se, _ := handshake(t, srv, cli); se == nil {
		t.Fatal("after the old CA was dropped, a certificate from it was still accepted")
	}
	if fi, err := os.Stat(p.Members[0].Key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

func TestValidate(t *testing.T) {
	if err := (Files{}).Validate("--raft-tls"); err != nil {
		t.Fatal(err)
	}
	err := (Files{CA: "x", Cert: "y"}).Validate("--raft-tls")
	if err == nil || !strings.Contains(err.Error(), "--raft-tls-key") {
		t.Fatalf("got %v, want an error naming --raft-tls-key", err)
	}
	p := Testing(t, t.TempDir())
	ca, err := LoadCA(p.CA, p.CAKey)
	if err != nil || !ca.Cert.IsCA {
		t.Fatalf("LoadCA: %v", err)
	}
	if _, err := LoadCA(p.Members[0].Cert, p.Members[0].Key); err == nil {
		t.Fatal("LoadCA took a member certificate")
	}
	if _, _, err := ca.IssueClient("x", "admin", time.Hour); err == nil {
		t.Fatal("IssueClient took an unknown role")
	}
}
