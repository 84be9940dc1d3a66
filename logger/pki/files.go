package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files names a TLS identity and the CA bundle it trusts, as PEM files.
// Configs made from it read the files again whenever one of them changes
// (size or modification time), at the next handshake.
type Files struct {
	CA   string // PEM bundle of trusted CAs (may hold two during a rotation)
	Cert string // this side's certificate (chain)
	Key  string // its private key
}

// Set reports whether any of the files is named.
func (f Files) Set() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Validate checks that the three files are all named or none is, naming the
// flags (flagPrefix "--raft-tls" names --raft-tls-ca, -cert, -key).
func (f Files) Validate(flagPrefix string) error {
	if !f.Set() {
		return nil
	}
	var missing []string
	for _, x := range []struct{ v, name string }{{f.CA, "-ca"}, {f.Cert, "-cert"}, {f.Key, "-key"}} {
		if x.v == "" {
			missing = append(missing, flagPrefix+x.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("pki: %s-ca, %s-cert and %s-key go together; missing %v", flagPrefix, flagPrefix, flagPrefix, missing)
	}
	return nil
}

// material is one reading of the files.
type material struct {
	cert *tls.Certificate // nil without Cert/Key
	pool *x509.CertPool   // nil without CA
}

type stamp struct {
	size int64
	mod  time.Time
}

// loader caches the files' contents and re-reads them when they change.
type loader struct {
	f      Files
	mu     sync.Mutex
	stamps [3]stamp
	cur    material
	loaded bool
}

func (f Files) loader() (*loader, error) {
	l := &loader{f: f}
	if _, err := l.get(); err != nil {
		return nil, err
	}
	return l, nil
}

func statStamp(name string) stamp {
	if name == "" {
		return stamp{}
	}
	fi, err := os.Stat(name)
	if err != nil {
		return stamp{size: -1}
	}
	return stamp{size: fi.Size(), mod: fi.ModTime()}
}

// get returns the current material, re-reading the files if they changed.
// NB: if a changed file cannot be read (a rotation half done: the
// certificate replaced, the key not yet), the last good material stays in
// use and the error is returned only when there is none.
func (l *loader) get() (material, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := [3]stamp{statStamp(l.f.CA), statStamp(l.f.Cert), statStamp(l.f.Key)}
	if l.loaded && st == l.stamps {
		return l.cur, nil
	}
	m, err := l.f.read()
	if err != nil {
		if l.loaded {
			return l.cur, nil
		}
		return material{}, err
	}
	l.cur, l.stamps, l.loaded = m, st, true
	return m, nil
}

func (f Files) read() (material, error) {
	var m material
	if f.Cert != "" || f.Key != "" {
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return m, fmt.Errorf("pki: loading the certificate %s and key %s: %w", f.Cert, f.Key, err)
		}
		m.cert = &c
	}
	if f.CA != "" {
		b, err := os.ReadFile(f.CA)
		if err != nil {
			return m, fmt.Errorf("pki: reading the CA file: %w", err)
		}
		m.pool = x509.NewCertPool()
		if !m.pool.AppendCertsFromPEM(b) {
			return m, fmt.Errorf("pki: the CA file %s holds no PEM certificate", f.CA)
		}
	}
	return m, nil
}

// ServerConfig is a TLS server config presenting Cert/Key; with clientAuth
// tls.RequireAndVerifyClientCert (or VerifyClientCertIfGiven) the clients'
// certificates are verified against CA.
func (f Files) ServerConfig(clientAuth tls.ClientAuthType) (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("pki: a TLS server needs a certificate and a key")
	}
	if clientAuth >= tls.VerifyClientCertIfGiven && f.CA == "" {
		return nil, errors.New("pki: verifying clients' certificates needs a CA file")
	}
	l, err := f.loader()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m, err := l.get()
			if err != nil {
				return nil, err
			}
			return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*m.cert}, ClientCAs: m.pool, ClientAuth: clientAuth}, nil
		},
	}, nil
}

// ClientConfig is a TLS client config that verifies the server's certificate
// against CA and, when serverName is not empty, that it is issued for
// serverName (a host name or an IP address); it presents Cert/Key when the
// server asks for a client certificate.
func (f Files) ClientConfig(serverName string) (*tls.Config, error) {
	if f.CA == "" {
		return nil, errors.New("pki: a TLS client needs a CA file to verify the server")
	}
	l, err := f.loader()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// NB: verification is VerifyConnection's, against the CA as it is
		// now (rotations); Go's own would use a pool fixed at creation.
		InsecureSkipVerify: true,
		ServerName:         serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			m, err := l.get()
			if err != nil || m.cert == nil {
				return &tls.Certificate{}, err
			}
			return m.cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			m, err := l.get()
			if err != nil {
				return err
			}
			return verify(cs.PeerCertificates, m.pool, serverName, x509.ExtKeyUsageServerAuth)
		},
	}, nil
}

func verify(chain []*x509.Certificate, roots *x509.CertPool, name string, usage x509.ExtKeyUsage) error {
	if len(chain) == 0 {
		return errors.New("pki: the peer sent no certificate")
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: name, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{usage}}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := chain[0].Verify(opts); err != nil {
		return fmt.Errorf("pki: the peer's certificate (%s) is not trusted: %w", chain[0].Subject.CommonName, err)
	}
	return nil
}

// Peer returns the identity of a TLS connection's verified peer certificate
// (see Identity); empty when the peer sent none.
func Peer(cs tls.ConnectionState) (kind, name, role string) {
	if len(cs.PeerCertificates) == 0 {
		return "", "", ""
	}
	return Identity(cs.PeerCertificates[0])
}
