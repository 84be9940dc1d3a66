package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/failover"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
)

// hooks are a --failover-pre-hook and a --failover-post-hook that write
// their BINLOGSVR_FAILOVER_* environment to files; the pre-hook vetoes
// (exits 3) while a veto file exists.
type hooks struct {
	t   *testing.T
	dir string
}

func newHooks(t *testing.T, veto bool) *hooks {
	h := &hooks{t: t, dir: t.TempDir()}
	if veto {
		if err := os.WriteFile(h.path("veto"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (h *hooks) path(name string) string { return filepath.Join(h.dir, name) }

// flags are the fleet's hook flags.
func (h *hooks) flags() []string {
	save := func(name string) string {
		return fmt.Sprintf("env | grep '^BINLOGSVR_FAILOVER_' | sort > %s.tmp && mv %s.tmp %s; echo run >> %s.runs",
			h.path(name), h.path(name), h.path(name), h.path(name))
	}
	return []string{
		"--failover-pre-hook", save("pre.env") + "; if test -e " + h.path("veto") + "; then echo vetoed by the test; exit 3; fi",
		"--failover-post-hook", save("post.env"),
		"--failover-hook-timeout", "10s",
	}
}

// allow removes the veto file.
func (h *hooks) allow() {
	if err := os.Remove(h.path("veto")); err != nil {
		h.t.Fatal(err)
	}
}

// runs is how many times a hook ran.
func (h *hooks) runs(name string) int {
	b, _ := os.ReadFile(h.path(name + ".runs"))
	return strings.Count(string(b), "run")
}

// env reads the environment a hook last ran with.
func (h *hooks) env(name string) map[string]string {
	h.t.Helper()
	b, err := os.ReadFile(h.path(name))
	if err != nil {
		h.t.Fatalf("hook %s: %v", name, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		out[strings.TrimPrefix(k, "BINLOGSVR_FAILOVER_")] = v
	}
	return out
}

// waitVetoed waits until the pre-hook has vetoed a failover away from old
// and checks that the fleet has neither fenced nor replaced the source.
func (h *hooks) waitVetoed(r *rig, old string, epoch uint64) {
	h.t.Helper()
	err := fleet.Poll(context.Background(), wait, func() error {
		rs, err := r.history()
		if err != nil {
			return err
		}
		for _, rec := range rs {
			if rec.Step == "pre-hook" && rec.Outcome == "vetoed" {
				if !strings.Contains(rec.Message, "vetoed by the test") || rec.OldSource != old {
					return fmt.Errorf("veto record %+v", rec)
				}
				return nil
			}
		}
		return fmt.Errorf("no veto in %d records", len(rs))
	})
	if err != nil {
		h.t.Fatalf("the pre-hook did not veto: %v", err)
	}
	// NB: the veto is re-asked once a lease has passed; it must hold
	// through more than one round.
	if err := fleet.Poll(context.Background(), wait, func() error {
		if n := h.runs("pre.env"); n < 2 {
			return fmt.Errorf("the pre-hook ran %d times", n)
		}
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	st, err := r.status()
	if err != nil || st.Source != old || st.Epoch != epoch {
		h.t.Fatalf("after the veto the log names source %q at epoch %d (%v), want %s at %d, untouched", st.Source, st.Epoch, err, old, epoch)
	}
	out, _ := r.ctl("history")
	if !strings.Contains(out, "vetoed") {
		h.t.Errorf("binlogctl history does not show the veto:\n%s", out)
	}
	h.t.Logf("the pre-hook vetoed %d times; the source %s stays, epoch %d", h.runs("pre.env"), old, epoch)
}

// check verifies the hooks' environment of the failover old -> new: the
// pre-hook before the fence (epoch from, the log's state at that time),
// the post-hook after (the new epoch, the state the new source took over).
func (h *hooks) check(flavor, old, newSrc string, from, to uint64, gtids string) {
	h.t.Helper()
	// NB: the post-hook runs once the ingest streams from the new source,
	// as the operation's last step.
	if err := fleet.Poll(context.Background(), wait, func() error {
		if n := h.runs("post.env"); n == 0 {
			return errors.New("the post-hook has not run")
		}
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	pre, post := h.env("pre.env"), h.env("post.env")
	want := func(who string, env map[string]string, k, v string) {
		h.t.Helper()
		if env[k] != v {
			h.t.Errorf("%s-hook: BINLOGSVR_FAILOVER_%s=%q, want %q (env %v)", who, k, env[k], v, env)
		}
	}
	for _, c := range []struct {
		who   string
		env   map[string]string
		epoch uint64
		new   string
	}{{"pre", pre, from, ""}, {"post", post, to, newSrc}} {
		want(c.who, c.env, "HOOK", c.who)
		want(c.who, c.env, "KIND", failover.KindFailover)
		want(c.who, c.env, "FORCED", "false")
		want(c.who, c.env, "OLD_SOURCE", old)
		want(c.who, c.env, "NEW_SOURCE", c.new)
		want(c.who, c.env, "EPOCH", strconv.FormatUint(c.epoch, 10))
		if !sameGTIDs(flavor, c.env["GTIDS"], gtids) {
			h.t.Errorf("%s-hook: BINLOGSVR_FAILOVER_GTIDS=%q, want %q", c.who, c.env["GTIDS"], gtids)
		}
		if _, ok := c.env["PASSWORD"]; ok {
			h.t.Errorf("%s-hook: the admin password is in the hook's environment", c.who)
		}
	}
	if pre["ID"] == "" || pre["ID"] != post["ID"] {
		h.t.Errorf("operation id: pre-hook %q, post-hook %q", pre["ID"], post["ID"])
	}
	if n := h.runs("post.env"); n != 1 {
		h.t.Errorf("the post-hook ran %d times, want 1", n)
	}
}

// history reads the audit records.
func (r *rig) history() ([]failover.Record, error) {
	var rs []failover.Record
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	for _, m := range r.f.Members {
		if !m.Running() {
			continue
		}
		if err = r.get(ctx, m.ID, "/failover/history", &rs); err == nil {
			return rs, nil
		}
	}
	return rs, err
}
