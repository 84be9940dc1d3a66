package fleet

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/binlogsvr/binlogsvr/logger/pki"
)

// PKI is a secure fleet's certificates and tokens: one CA, a member
// certificate per member (for its raft links and its admin API), and a
// token file with an operate and a read token.
type PKI struct {
	Dir          string
	CA, CAKey    string               // the CA's files
	Members      map[uint64]pki.Files // each member's certificate, key and the CA
	TokenFile    string               // lines "ROLE NAME TOKEN" (--admin-token-file)
	OperateToken string               // name "fleet-operate"
	ReadToken    string               // name "fleet-read"
	authority    *pki.CA
	mu           sync.Mutex
}

// Names of the fleet's tokens in the audit trail.
const (
	OperateTokenName = "fleet-operate"
	ReadTokenName    = "fleet-read"
)

const pkiValidity = 7 * 24 * time.Hour

// NewToken returns a random 32-byte token, base64url.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func newPKI(dir string) (*PKI, error) {
	p := &PKI{Dir: dir, CA: filepath.Join(dir, "ca.crt"), CAKey: filepath.Join(dir, "ca.key"), Members: map[uint64]pki.Files{},
		TokenFile: filepath.Join(dir, "tokens")}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	ca, err := pki.NewCA("binlogsvr fleet CA", pkiValidity)
	if err != nil {
		return nil, err
	}
	p.authority = ca
	if err := ca.WriteFiles(p.CA, p.CAKey); err != nil {
		return nil, err
	}
	if p.OperateToken, err = NewToken(); err != nil {
		return nil, err
	}
	if p.ReadToken, err = NewToken(); err != nil {
		return nil, err
	}
	if err := p.WriteTokens(fmt.Sprintf("operate %s %s\nread %s %s\n", OperateTokenName, p.OperateToken, ReadTokenName, p.ReadToken)); err != nil {
		return nil, err
	}
	return p, nil
}

// WriteTokens replaces the token file's contents (0600, renamed into place
// so a member never reads half of it): the members pick it up without a
// restart.
func (p *PKI) WriteTokens(contents string) error {
	tmp := p.TokenFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(contents), 0o600); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	return os.Rename(tmp, p.TokenFile)
}

// member issues (once) member id's certificate for 127.0.0.1, localhost
// and host.
func (p *PKI) member(id uint64, host string) (pki.Files, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.Members[id]; ok {
		return f, nil
	}
	hosts := []string{"127.0.0.1", "localhost"}
	if host != "" && host != "127.0.0.1" && host != "localhost" {
		hosts = append(hosts, host)
	}
	c, k, err := p.authority.IssueMember(fmt.Sprint(id), hosts, pkiValidity)
	if err != nil {
		return pki.Files{}, err
	}
	f := pki.Files{CA: p.CA, Cert: filepath.Join(p.Dir, fmt.Sprintf("member.%d.crt", id)), Key: filepath.Join(p.Dir, fmt.Sprintf("member.%d.key", id))}
	if err := pki.WritePair(f.Cert, f.Key, c, k); err != nil {
		return pki.Files{}, err
	}
	p.Members[id] = f
	return f, nil
}

// Client issues a client certificate with role into the PKI's directory.
func (p *PKI) Client(name, role string) (pki.Files, error) {
	c, k, err := p.authority.IssueClient(name, role, pkiValidity)
	if err != nil {
		return pki.Files{}, err
	}
	f := pki.Files{CA: p.CA, Cert: filepath.Join(p.Dir, "client."+name+".crt"), Key: filepath.Join(p.Dir, "client."+name+".key")}
	return f, pki.WritePair(f.Cert, f.Key, c, k)
}

// securityArgs are a member's flags for TLS and tokens (or --insecure).
func (f *Fleet) securityArgs(m *Member) ([]string, error) {
	if f.PKI == nil {
		return []string{"--insecure"}, nil
	}
	host := strings.Split(m.AdminAddr, ":")[0]
	files, err := f.PKI.member(m.ID, host)
	if err != nil {
		return nil, err
	}
	// NB: one certificate per member: the admin API defaults to the raft
	// member's certificate.
	return []string{"--admin-token-file", f.PKI.TokenFile,
		"--raft-tls-ca", files.CA, "--raft-tls-cert", files.Cert, "--raft-tls-key", files.Key}, nil
}

// CtlArgs are binlogctl's global flags for this fleet (before the
// command): --ca and --token-file with the operate token, or --insecure.
func (f *Fleet) CtlArgs() []string {
	if f.PKI == nil {
		return []string{"--insecure"}
	}
	return []string{"--ca", f.PKI.CA, "--token-file", f.operateTokenFile()}
}

// CtlEnv is binlogctl's environment for this fleet ($BINLOGCTL_CA and
// $BINLOGCTL_TOKEN with the operate token; BINLOGCTL_INSECURE=1 for an
// insecure fleet), to append to os.Environ().
func (f *Fleet) CtlEnv() []string {
	if f.PKI == nil {
		return []string{"BINLOGCTL_INSECURE=1"}
	}
	return []string{"BINLOGCTL_CA=" + f.PKI.CA, "BINLOGCTL_TOKEN=" + f.PKI.OperateToken}
}

// operateTokenFile writes (once) a file holding only the operate token,
// for binlogctl --token-file.
func (f *Fleet) operateTokenFile() string {
	p := filepath.Join(f.PKI.Dir, "operate.token")
	if _, err := os.Stat(p); err != nil {
		_ = os.WriteFile(p, []byte(f.PKI.OperateToken+"\n"), 0o600)
	}
	return p
}

// Scheme is "https", or "http" for an insecure fleet.
func (f *Fleet) Scheme() string {
	if f.PKI == nil {
		return "http"
	}
	return "https"
}

// URL is the URL of path on member id's admin API.
func (f *Fleet) URL(id uint64, path string) string {
	return f.Scheme() + "://" + f.Member(id).AdminAddr + path
}

// HTTP returns a client for the fleet's admin APIs: it verifies them
// against the fleet's CA and sends the operate token on requests that carry
// no Authorization header. No overall timeout: bound requests by ctx.
func (f *Fleet) HTTP() *http.Client {
	return &http.Client{Transport: f.transport()}
}

// HTTPWithToken is HTTP with token instead of the operate token ("" sends
// no credentials).
func (f *Fleet) HTTPWithToken(token string) *http.Client {
	return &http.Client{Transport: &bearer{token: token, next: f.baseTransport(), set: true}}
}

func (f *Fleet) transport() http.RoundTripper {
	tok := ""
	if f.PKI != nil {
		tok = f.PKI.OperateToken
	}
	return &bearer{token: tok, next: f.baseTransport()}
}

func (f *Fleet) baseTransport() http.RoundTripper {
	f.trOnce.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if f.PKI != nil {
			// NB: pki.Files re-reads the CA file when it changes, so the
			// client follows a CA rotation as the members do; one
			// config per host verifies the certificate for that host.
			files := pki.Files{CA: f.PKI.CA}
			var mu sync.Mutex
			confs := map[string]*tls.Config{}
			tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, _, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				mu.Lock()
				conf, ok := confs[host]
				if !ok {
					if conf, err = files.ClientConfig(host); err == nil {
						confs[host] = conf
					}
				}
				mu.Unlock()
				if err != nil {
					return nil, err
				}
				d := tls.Dialer{Config: conf}
				return d.DialContext(ctx, network, addr)
			}
		}
		f.tr = tr
	})
	return f.tr
}

// bearer adds "Authorization: Bearer token" to requests without one.
type bearer struct {
	token string
	set   bool // always replace (HTTPWithToken)
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	if (b.set || req.Header.Get("Authorization") == "") && (b.token != "" || b.set) {
		req = req.Clone(req.Context())
		if b.token == "" {
			req.Header.Del("Authorization")
		} else {
			req.Header.Set("Authorization", "Bearer "+b.token)
		}
	}
	return b.next.RoundTrip(req)
}

// GetJSONAt fetches path from the admin API at addr (a member of this
// fleet, or one it started) and decodes its JSON answer.
func (f *Fleet) GetJSONAt(ctx context.Context, addr, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return f.do(ctx, http.MethodGet, addr, path, v)
}

var errNoPKI = errors.New("fleet: an insecure fleet has no PKI")

// RequirePKI returns the fleet's PKI, or an error for an insecure fleet.
func (f *Fleet) RequirePKI() (*PKI, error) {
	if f.PKI == nil {
		return nil, errNoPKI
	}
	return f.PKI, nil
}
