package pki

import (
	"fmt"
	"path/filepath"
	"time"
)

// TestPKI is a throw-away set of certificates for tests: a CA, three member
// certificates, read and operate client certificates, and a member
// certificate from another CA (which the fleet must refuse).
type TestPKI struct {
	Dir       string
	Authority *CA
	CA, CAKey string  // the CA's files
	Members   []Files // members 1..3 at index 0..2, each with CA
	Read      Files   // client certificate with role read
	Operate   Files   // client certificate with role operate
	Foreign   Files   // a member certificate from another CA (its CA in Foreign.CA)
}

// TB is the part of testing.TB Testing needs (pki does not import testing).
type TB interface {
	Helper()
	Fatal(args ...any)
}

// Testing writes a TestPKI into dir; member certificates are for hosts
// (default 127.0.0.1 and localhost).
func Testing(t TB, dir string, hosts ...string) TestPKI {
	t.Helper()
	p, err := NewTestPKI(dir, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// NewTestPKI is Testing without a test.
func NewTestPKI(dir string, hosts ...string) (TestPKI, error) {
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	const validity = 24 * time.Hour
	p := TestPKI{Dir: dir, CA: filepath.Join(dir, "ca.crt"), CAKey: filepath.Join(dir, "ca.key")}
	ca, err := NewCA("binlogsvr test CA", validity)
	if err != nil {
		return p, err
	}
	p.Authority = ca
	if err := ca.WriteFiles(p.CA, p.CAKey); err != nil {
		return p, err
	}
	pair := func(name string, c, k []byte, err error) (Files, error) {
		if err != nil {
			return Files{}, err
		}
		f := Files{CA: p.CA, Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
		return f, WritePair(f.Cert, f.Key, c, k)
	}
	for i := 1; i <= 3; i++ {
		c, k, err := ca.IssueMember(fmt.Sprintf("member%d", i), hosts, validity)
		f, err := pair(fmt.Sprintf("member%d", i), c, k, err)
		if err != nil {
			return p, err
		}
		p.Members = append(p.Members, f)
	}
	c, k, err := ca.IssueClient("reader", RoleRead, validity)
	if p.Read, err = pair("client.reader", c, k, err); err != nil {
		return p, err
	}
	c, k, err = ca.IssueClient("operator", RoleOperate, validity)
	if p.Operate, err = pair("client.operator", c, k, err); err != nil {
		return p, err
	}
	other, err := NewCA("another CA", validity)
	if err != nil {
		return p, err
	}
	otherCA := filepath.Join(dir, "foreign-ca.crt")
	if err := other.WriteFiles(otherCA, filepath.Join(dir, "foreign-ca.key")); err != nil {
		return p, err
	}
	c, k, err = other.IssueMember("intruder", hosts, validity)
	if p.Foreign, err = pair("foreign", c, k, err); err != nil {
		return p, err
	}
	p.Foreign.CA = otherCA
	return p, nil
}
