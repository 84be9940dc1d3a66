package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/logger/pki"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
	"github.com/binlogsvr/binlogsvr/tools/sandbox"
	"github.com/binlogsvr/binlogsvr/tools/sandbox/sandboxtest"
)

// writer commits rows to a semi-sync source on one connection until
// stopped, counting commits and errors and timing the slowest.
type writer struct {
	commits, errs atomic.Int64
	slowest       atomic.Int64 // ns
	lastErr       atomic.Value
	stop          chan struct{}
	done          chan struct{}
	once          sync.Once
}

func startWriter(t *testing.T, src *sandbox.Server) *writer {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS rot", "CREATE TABLE IF NOT EXISTS rot.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64))"} {
		if _, err := src.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	c, err := src.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer c.Close()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			t0 := time.Now()
			_, err := c.Execute("INSERT INTO rot.t (v) VALUES (?)", "row-"+strconv.Itoa(i))
			if d := int64(time.Since(t0)); d > w.slowest.Load() {
				w.slowest.Store(d)
			}
			if err != nil {
				w.errs.Add(1)
				w.lastErr.Store(err.Error())
				time.Sleep(100 * time.Millisecond)
				continue
			}
			w.commits.Add(1)
		}
	}()
	return w
}

func (w *writer) close() { w.once.Do(func() { close(w.stop) }); <-w.done }

// progress waits until the writer has committed n more rows.
func (w *writer) progress(t *testing.T, what string, n int64) {
	t.Helper()
	from := w.commits.Load()
	if err := fleet.Poll(context.Background(), wait, func() error {
		if got := w.commits.Load() - from; got < n {
			return fmt.Errorf("%d commits (errors %d, last %v)", got, w.errs.Load(), w.lastErr.Load())
		}
		return nil
	}); err != nil {
		t.Fatalf("%s: the source's commits stalled: %v", what, err)
	}
}

// noTx is the source's count of commits that went without an ACK.
func noTx(t *testing.T, src *sandbox.Server) int64 {
	t.Helper()
	res, err := src.Exec(context.Background(), "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_no_tx'")
	if err != nil || res.RowNumber() != 1 {
		t.Fatalf("reading Rpl_semi_sync_master_no_tx: %v", err)
	}
	v, _ := res.GetInt(0, 1)
	return v
}

// issuer dials addr with TLS, presenting client (may be nil), and returns
// the common name of the issuer of the certificate the server presents.
// It trusts any server: it reports what is served, the members' own
// verification is what the test is about.
func issuer(addr string, client *tls.Certificate) (string, error) {
	conf := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if client != nil {
		// NB: sent whatever CAs the server names as acceptable (Go's
		// client would otherwise leave out a certificate of another CA).
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return client, nil }
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: conf}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	tc := c.(*tls.Conn)
	// NB: with TLS 1.3 the server verifies the client's certificate after
	// the client's handshake is done; a refusal shows on the first read.
	tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := tc.Read(make([]byte, 1)); err != nil {
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			return "", err
		}
	}
	return tc.ConnectionState().PeerCertificates[0].Issuer.CommonName, nil
}

// writeAtomically replaces name's contents (a temporary file renamed into
// place, as an operator's deployment tool does).
func writeAtomically(t *testing.T, name string, b []byte) {
	t.Helper()
	tmp := name + ".new"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

// TestRotationUnderLoad rotates a running fleet's CA and every member's
// certificate, as docs/SECURITY.md tells an operator to, while a client
// commits to a semi-sync source without pause (its timeout 5 s): both
// CAs in the CA file; new certificates member by member; the old CA
// removed. No member restarts; the source's commits go on at every step
// and none goes without the fleet's ACK; each member serves its new
// certificate on its raft and admin ports from the next connection on;
// after the old CA is removed a certificate of the old CA is refused on
// both; a member killed and restarted afterwards rejoins on the new
// certificates alone.
func TestRotationUnderLoad(t *testing.T) {
	src := sandboxtest.Start(t, sandbox.Options{Flavor: sandbox.MariaDB, SemiSyncSource: true, SemiSyncTimeout: 5 * time.Second})
	user, pass := src.ReplUser()
	ctx := context.Background()
	f, err := fleet.Start(ctx, fleet.Options{Dir: t.TempDir(), Members: 3, Source: src.Addr(), SourceUser: user, SourcePassword: pass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			t.Log(f.LogTails(25))
		}
	})
	p, err := f.RequirePKI()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WaitStreaming(ctx, wait); err != nil {
		t.Fatalf("the fleet does not stream from its source: %v", err)
	}
	oldCA, err := pki.LoadCA(p.CA, p.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	oldPEM, err := os.ReadFile(p.CA)
	if err != nil {
		t.Fatal(err)
	}
	// A member certificate and an operate client certificate of the old
	// CA, to show they are refused at the end.
	staleMember := issue(t, func() ([]byte, []byte, error) {
		return oldCA.IssueMember("9", []string{"127.0.0.1"}, time.Hour)
	})
	staleClient := issue(t, func() ([]byte, []byte, error) { return oldCA.IssueClient("stale", pki.RoleOperate, time.Hour) })

	w := startWriter(t, src)
	defer w.close()
	w.progress(t, "before the rotation", 20)
	noTx0 := noTx(t, src)

	// 1. The new CA beside the old one in the CA file every member reads.
	newCA, err := pki.NewCA("binlogsvr fleet CA 2", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := newCA.WriteFiles(filepath.Join(p.Dir, "ca2.crt"), filepath.Join(p.Dir, "ca2.key")); err != nil {
		t.Fatal(err)
	}
	writeAtomically(t, p.CA, append(append(append([]byte(nil), oldPEM...), '\n'), newCA.CertPEM...))
	w.progress(t, "both CAs trusted", 20)

	// 2. Member by member, a certificate of the new CA; each is served
	// from the next connection on, the others trust it.
	newMember := issue(t, func() ([]byte, []byte, error) { return newCA.IssueMember("9", []string{"127.0.0.1"}, time.Hour) })
	for _, m := range f.Members {
		host, _, _ := net.SplitHostPort(m.AdminAddr) // NB: the fleet's own loopback address
		c, k, err := newCA.IssueMember(strconv.FormatUint(m.ID, 10), []string{"127.0.0.1", "localhost", host}, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		files := p.Members[m.ID]
		if err := pki.WritePair(files.Cert, files.Key, c, k); err != nil {
			t.Fatal(err)
		}
		for what, addr := range map[string]string{"raft": m.RaftAddr, "admin": m.AdminAddr} {
			if err := fleet.Poll(ctx, 10*time.Second, func() error {
				got, err := issuer(addr, &newMember)
				if err != nil {
					return err
				}
				if got != "binlogsvr fleet CA 2" {
					return fmt.Errorf("served a certificate of %q", got)
				}
				return nil
			}); err != nil {
				t.Fatalf("member %d's %s port after its new certificate: %v", m.ID, what, err)
			}
		}
		w.progress(t, fmt.Sprintf("member %d rotated", m.ID), 20)
	}
	// Every member reaches every other (the status fan-out dials the
	// others' admin APIs with its member certificate).
	allReachable(t, f)

	// 3. The old CA removed: its certificates are refused on both ports.
	writeAtomically(t, p.CA, newCA.CertPEM)
	for _, m := range f.Members {
		if got, err := issuer(m.RaftAddr, &staleMember); err == nil {
			t.Errorf("member %d's raft port accepted a member certificate of the removed CA (it served one of %q)", m.ID, got)
		}
		if got, err := issuer(m.RaftAddr, &newMember); err != nil || got != "binlogsvr fleet CA 2" {
			t.Errorf("member %d's raft port with a new member certificate: %q %v", m.ID, got, err)
		}
		if _, err := issuer(m.AdminAddr, &staleClient); err == nil {
			// NB: the admin API asks for client certificates without
			// requiring one (tokens are the other way in); one that is
			// sent must verify or the handshake fails.
			t.Errorf("member %d's admin API accepted a client certificate of the removed CA", m.ID)
		}
	}
	w.progress(t, "old CA removed", 20)
	allReachable(t, f)

	// 4. A member killed and restarted opens every raft link anew, on the
	// new certificates only.
	l, err := f.Leader(ctx, wait)
	if err != nil {
		t.Fatal(err)
	}
	victim := l%3 + 1
	if err := f.Kill(victim); err != nil {
		t.Fatal(err)
	}
	w.progress(t, fmt.Sprintf("member %d killed", victim), 20)
	if err := f.Restart(victim); err != nil {
		t.Fatal(err)
	}
	w.progress(t, fmt.Sprintf("member %d restarted", victim), 20)
	allReachable(t, f)

	w.close()
	if n := noTx(t, src) - noTx0; n != 0 {
		t.Errorf("the source committed %d transactions without the fleet's ACK during the rotation", n)
	}
	if w.errs.Load() != 0 {
		t.Errorf("%d commits failed (last: %v)", w.errs.Load(), w.lastErr.Load())
	}
	t.Logf("%d commits during the rotation, the slowest %v, none without an ACK", w.commits.Load(), time.Duration(w.slowest.Load()))
	converge(t, f)
}

// issue makes a tls.Certificate of a PEM pair.
func issue(t *testing.T, fn func() ([]byte, []byte, error)) tls.Certificate {
	t.Helper()
	c, k, err := fn()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// allReachable asks each member for the whole fleet's status (which it
// gathers from the others' admin APIs over member-certificate TLS) and
// requires every member to answer in it.
func allReachable(t *testing.T, f *fleet.Fleet) {
	t.Helper()
	ctx := context.Background()
	if err := fleet.Poll(ctx, wait, func() error {
		for _, m := range f.Members {
			st, err := f.Status(ctx, m.ID, false)
			if err != nil {
				return fmt.Errorf("member %d: %w", m.ID, err)
			}
			if len(st.Members) != len(f.Members) {
				return fmt.Errorf("member %d sees %d members", m.ID, len(st.Members))
			}
			for _, ms := range st.Members {
				if ms.Error != "" {
					return fmt.Errorf("member %d cannot reach member %d: %s", m.ID, ms.ID, ms.Error)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
