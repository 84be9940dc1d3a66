// Package pki makes and loads the certificates a fleet's links use: a CA,
// member certificates (raft peers and admin servers; each one both a TLS
// server and a TLS client) and client certificates (binlogctl, scrapers),
// with an identity that names what a certificate is for.
//
// Loading is by file name, and files are read again when they change, so a
// certificate, its key or the CA bundle can be rotated by replacing the files:
// the next handshake uses the new ones, with no restart (see docs/SECURITY.md).
//
// Caller's duties: keep key files private (WritePair writes them 0600), and
// during a CA rotation put both CAs in the CA file until every member's and
// client's certificate is from the new one.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Kinds of certificate, in the subject's OrganizationalUnit.
const (
	KindMember = "member"
	KindClient = "client"
	KindCA     = "ca"
)

// Roles a client certificate can carry (the admin API's roles).
const (
	RoleRead    = "read"
	RoleOperate = "operate"
)

const ouPrefix = "binlogsvr-"

// CA is a certificate authority: its certificate and private key.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
}

func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// NewCA makes a self-signed CA valid for validity.
func NewCA(cn string, validity time.Duration) (*CA, error) {
	k, err := newKey()
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn, OrganizationalUnit: []string{ouPrefix + KindCA}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return nil, fmt.Errorf("pki: creating the CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: k, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// LoadCA reads a CA's certificate and key (as WriteFiles writes them).
func LoadCA(certFile, keyFile string) (*CA, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: loading the CA from %s and %s: %w", certFile, keyFile, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", certFile)
	}
	k, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s: the key cannot sign", keyFile)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: k, CertPEM: firstPEM(certPEM)}, nil
}

func firstPEM(b []byte) []byte {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return b
	}
	return pem.EncodeToMemory(blk)
}

// WriteFiles writes the CA's certificate (0644) and key (0600).
func (ca *CA) WriteFiles(certFile, keyFile string) error {
	kp, err := keyPEM(ca.Key)
	if err != nil {
		return err
	}
	return WritePair(certFile, keyFile, ca.CertPEM, kp)
}

func (ca *CA) issue(tmpl *x509.Certificate, validity time.Duration) (certPEM, kPEM []byte, err error) {
	k, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = serial(); err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(validity)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, k.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issuing %q: %w", tmpl.Subject.CommonName, err)
	}
	if kPEM, err = keyPEM(k); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), kPEM, nil
}

// IssueMember makes a member certificate: a TLS server for hosts (IP
// addresses or DNS names; the addresses its raft and admin listeners are
// reached at) and a TLS client toward the other members.
func (ca *CA) IssueMember(name string, hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if name == "" {
		return nil, nil, errors.New("pki: a member certificate needs a name")
	}
	if len(hosts) == 0 {
		return nil, nil, errors.New("pki: a member certificate needs the hosts it is reached at")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, OrganizationalUnit: []string{ouPrefix + KindMember}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(tmpl, validity)
}

// IssueClient makes a client certificate for NAME with an admin role
// (RoleRead or RoleOperate).
func (ca *CA) IssueClient(name, role string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if name == "" {
		return nil, nil, errors.New("pki: a client certificate needs a name")
	}
	if role != RoleRead && role != RoleOperate {
		return nil, nil, fmt.Errorf("pki: role must be %s or %s, got %q", RoleRead, RoleOperate, role)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, OrganizationalUnit: []string{ouPrefix + KindClient, ouPrefix + "role-" + role}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ca.issue(tmpl, validity)
}

// Identity says what a (verified) certificate is: kind KindMember or
// KindClient (empty for a certificate this package did not issue), its name,
// and for a client its role.
func Identity(cert *x509.Certificate) (kind, name, role string) {
	if cert == nil {
		return "", "", ""
	}
	for _, ou := range cert.Subject.OrganizationalUnit {
		switch {
		case ou == ouPrefix+KindMember:
			kind = KindMember
		case ou == ouPrefix+KindClient:
			kind = KindClient
		case strings.HasPrefix(ou, ouPrefix+"role-"):
			role = strings.TrimPrefix(ou, ouPrefix+"role-")
		}
	}
	if kind == KindMember {
		role = ""
	}
	return kind, cert.Subject.CommonName, role
}

// WritePair writes a certificate (0644) and its key (0600), creating the
// directories (0700). Each file is written to a temporary name and renamed,
// so a reader never sees half of one.
func WritePair(certFile, keyFile string, certPEM, keyPEM []byte) error {
	if err := writeFile(certFile, certPEM, 0o644); err != nil {
		return err
	}
	return writeFile(keyFile, keyPEM, 0o600)
}

func writeFile(name string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}
