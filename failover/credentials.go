package failover

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrCredential is wrapped by errors about a candidate's named credential.
var ErrCredential = errors.New("failover: credential")

// ReadCredentials reads a --failover-credentials-file: one credential a
// line, "NAME USER PASSWORD" (the password is the rest of the line, so it
// may hold spaces); blank lines and lines starting with # are skipped. The
// file must not be readable by group or others. Each member reads its own
// file, so that the log holds only the NAME a candidate uses.
func ReadCredentials(path string) (map[string]Credentials, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: --failover-credentials-file: %v", ErrCredential, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: --failover-credentials-file %s is readable by others (mode %v): chmod 600 it", ErrCredential, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: --failover-credentials-file: %v", ErrCredential, err)
	}
	return parseCredentials(path, b)
}

// parseCredentials is ReadCredentials' parser. Pure.
func parseCredentials(path string, b []byte) (map[string]Credentials, error) {
	out := map[string]Credentials{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		user, pass, _ := strings.Cut(strings.TrimSpace(rest), " ")
		pass = strings.TrimSpace(pass)
		if name == "" || user == "" || pass == "" {
			// NB: no line content in the message: it may hold a password.
			return nil, fmt.Errorf("%w: %s line %d: want NAME USER PASSWORD", ErrCredential, path, n)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: %s line %d: credential %q named twice", ErrCredential, path, n, name)
		}
		out[name] = Credentials{User: user, Password: pass}
	}
	return out, sc.Err()
}

// credential returns a candidate's named credential from this member's
// file, read at each use so that a changed file needs no restart.
func (m *Manager) credential(name string) (Credentials, error) {
	if m.cfg.CredentialsFile == "" {
		return Credentials{}, fmt.Errorf("%w %q: this member has no --failover-credentials-file; give every member one with a line \"%s USER PASSWORD\"", ErrCredential, name, name)
	}
	creds, err := ReadCredentials(m.cfg.CredentialsFile)
	if err != nil {
		return Credentials{}, err
	}
	c, ok := creds[name]
	if !ok {
		return Credentials{}, fmt.Errorf("%w %q is not in --failover-credentials-file %s on this member; add a line \"%s USER PASSWORD\" to it on every member", ErrCredential, name, m.cfg.CredentialsFile, name)
	}
	return c, nil
}

// adminCred is the account a failover login to c uses: its named
// credential, else a password an older version stored in its record,
// else the fleet's --failover-admin-user (or c.User) with the admin
// password.
func (m *Manager) adminCred(c Candidate) (Credentials, error) {
	switch {
	case c.Credential != "":
		return m.credential(c.Credential)
	case c.Password != "":
		m.warnStoredPassword(c.Addr)
		return Credentials{User: c.User, Password: c.Password}, nil
	case c.User != "":
		return Credentials{User: c.User, Password: m.cfg.AdminPassword}, nil
	}
	return Credentials{User: m.cfg.AdminUser, Password: m.cfg.AdminPassword}, nil
}

// warnStoredPassword warns once per candidate whose log record holds a
// password (written before candidates named credentials).
func (m *Manager) warnStoredPassword(addr string) {
	m.mu.Lock()
	if m.warnedPassword == nil {
		m.warnedPassword = map[string]bool{}
	}
	done := m.warnedPassword[addr]
	m.warnedPassword[addr] = true
	m.mu.Unlock()
	if !done {
		m.log.Warn("the candidate's record in the log holds its password in plaintext (written by an older version): put the account in --failover-credentials-file on every member and re-add the candidate with credential=NAME, which rewrites the record without it",
			"candidate", addr)
	}
}

// connectAdmin logs in to addr with c's admin account and the failover's
// TLS (Deps.Connect).
func (m *Manager) connectAdmin(ctx context.Context, addr string, c Candidate) (Server, error) {
	cred, err := m.adminCred(c)
	if err != nil {
		return nil, err
	}
	return m.deps.Connect(ctx, addr, cred)
}
