package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
)

// Serving and joining members: per-member flags, a dump address, members
// added to a running group (learners started with --join).

// MemberSpec is one initial logger's extra setup for StartEach.
type MemberSpec struct {
	Serve bool     // give it a --dump-addr on a free port
	Args  []string // extra flags for this member only
}

// StartEach starts a fleet like Start, with each initial logger's own
// flags and, when spec.Serve, a dump address (Member.DumpAddr).
func StartEach(ctx context.Context, o Options, spec func(id uint64) MemberSpec) (*Fleet, error) {
	if o.Dir == "" {
		return nil, errors.New("fleet: Options.Dir is required")
	}
	if o.Members == 0 {
		o.Members = 3
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if o.Bin == "" {
		b, err := Binary(o.Dir)
		if err != nil {
			return nil, err
		}
		o.Bin = b
	}
	if o.Host == nil {
		h := PrivateLoopback()
		o.Host = func(uint64) string { return h }
	}
	f := &Fleet{opts: o, http: &http.Client{Timeout: 5 * time.Second}}
	if !o.Insecure {
		p, err := newPKI(filepath.Join(o.Dir, "pki"))
		if err != nil {
			return nil, err
		}
		f.PKI = p
	}
	specs := map[uint64]MemberSpec{}
	for id := 1; id <= o.Members; id++ {
		sp := spec(uint64(id))
		specs[uint64(id)] = sp
		if _, err := f.NewMember(sp.Serve); err != nil {
			return nil, err
		}
	}
	for _, m := range f.Members {
		if err := f.Launch(m, false, specs[m.ID].Args...); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// NewMember reserves the next member id (one more than the last), with
// free raft and admin ports (and a dump port when serve) and a data
// directory. It does not start it: add it to the group (binlogctl
// add-learner), then Launch it with join.
func (f *Fleet) NewMember(serve bool) (*Member, error) {
	id := uint64(len(f.Members) + 1)
	m := &Member{ID: id, DataDir: filepath.Join(f.opts.Dir, fmt.Sprintf("member%d", id)),
		LogPath: filepath.Join(f.opts.Dir, fmt.Sprintf("member%d.log", id))}
	host := ""
	if f.opts.Host != nil {
		host = f.opts.Host(id)
	}
	var err error
	if m.RaftAddr, err = f.freeAddr(host); err != nil {
		return nil, err
	}
	if f.opts.RaftFront != nil {
		m.RaftListen = m.RaftAddr
		if m.RaftAddr, err = f.opts.RaftFront(m, m.RaftListen); err != nil {
			return nil, err
		}
	}
	if m.AdminAddr, err = f.freeAddr(host); err != nil {
		return nil, err
	}
	if serve {
		if m.DumpAddr, err = f.freeAddr(host); err != nil {
			return nil, err
		}
	}
	f.Members = append(f.Members, m)
	return m, nil
}

// freeAddr is a free port on host that this fleet has not handed out yet.
//
// NB: a port is free only until someone binds it: the kernel handed one
// member's admin port to another member's raft port once (member 3 then
// failed with "address already in use"), since every port is released
// before the members start. Ports handed out are remembered for that.
func (f *Fleet) freeAddr(host string) (string, error) {
	f.portsMu.Lock()
	defer f.portsMu.Unlock()
	if f.ports == nil {
		f.ports = map[string]bool{}
	}
	for range 100 {
		a, err := freeAddrOn(host)
		if err != nil {
			return "", err
		}
		if !f.ports[a] {
			f.ports[a] = true
			return a, nil
		}
	}
	return "", fmt.Errorf("fleet: no free port on %q that the fleet did not hand out already", host)
}

// Launch starts member m's process (again): the fleet's flags, its dump
// address if it has one, then --join (a member the group added) or
// --members (an initial logger), then extra. Stop, Kill and Close work on
// it as on any member.
func (f *Fleet) Launch(m *Member, join bool, extra ...string) error {
	if m.Running() {
		return fmt.Errorf("fleet: member %d is running", m.ID)
	}
	m.mu.Lock()
	m.join, m.extra = join, append([]string(nil), extra...) // NB: for Restart
	m.mu.Unlock()
	args := []string{"--id", fmt.Sprint(m.ID), "--data-dir", m.DataDir, "--raft-addr", m.RaftAddr, "--admin-addr", m.AdminAddr}
	switch {
	case f.opts.Catalog:
		var hosts []string
		voters := f.opts.Members
		if f.opts.CatalogVoters > 0 {
			voters = f.opts.CatalogVoters
		}
		for _, o := range f.Members[:min(voters, len(f.Members))] {
			hosts = append(hosts, fmt.Sprintf("%d=%s", o.ID, o.RaftAddr))
		}
		args = append(args, "--catalog-members", strings.Join(hosts, ","))
	case join:
		args = append(args, "--join")
	default:
		var members []string
		for _, o := range f.Members[:min(f.opts.Members, len(f.Members))] {
			members = append(members, fmt.Sprintf("%d=%s", o.ID, o.RaftAddr))
		}
		args = append(args, "--members", strings.Join(members, ","))
	}
	if m.RaftListen != "" {
		args = append(args, "--raft-listen-addr", m.RaftListen)
	}
	if m.DumpAddr != "" && !f.opts.Catalog {
		args = append(args, "--dump-addr", m.DumpAddr)
	}
	if f.opts.Source != "" && !f.opts.Catalog {
		args = append(args, "--source", f.opts.Source, "--source-user", f.opts.SourceUser)
		if f.opts.SourceStart != "" {
			args = append(args, "--source-start", f.opts.SourceStart)
		}
	}
	sec, err := f.securityArgs(m) // pki.go
	if err != nil {
		return err
	}
	args = append(args, sec...)
	args = append(args, f.opts.ExtraArgs...)
	args = append(args, extra...)
	cmd := exec.Command(f.opts.Bin, args...)
	cmd.Env = append(os.Environ(), binlogsvr.EnvSourcePassword+"="+f.opts.SourcePassword,
		binlogsvr.EnvDumpPassword+"="+DumpPassword)
	var out io.Writer = f.opts.Output
	if out == nil {
		lf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		out = lf
		defer lf.Close() // NB: the child keeps its own descriptor
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // NB: never outlive the test
	if runtime.GOOS != "linux" {
		cmd.SysProcAttr = nil
	}
	if f.opts.Cmd != nil {
		f.opts.Cmd(m, cmd)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("fleet: starting member %d: %w", m.ID, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	return nil
}

// DumpPassword is the password of the dump account (--dump-user, "repl"
// by default) of members started by StartEach and Launch: the one
// tools/dumptest's PointReplica logs in with.
const DumpPassword = "dump-secret"

// Delete calls a DELETE endpoint of member id and decodes its JSON answer.
func (f *Fleet) Delete(ctx context.Context, id uint64, path string, v any) error {
	return f.do(ctx, "DELETE", f.Member(id).AdminAddr, path, v)
}

// Get calls a GET endpoint of member id and decodes its JSON answer.
func (f *Fleet) Get(ctx context.Context, id uint64, path string, v any) error {
	return f.do(ctx, "GET", f.Member(id).AdminAddr, path, v)
}

// PrivateLoopback picks a loopback address of the fleet's own in
// 127.100.0.1-127.199.255.254. Ports are chosen free (listen on :0, close)
// before the member binds them; on a shared 127.0.0.1 another test's
// server (a sandbox, another fleet) can take one in between and the member
// exits at start. On an address of its own only this fleet binds.
func PrivateLoopback() string {
	return fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), rand.IntN(256), 1+rand.IntN(254))
}
