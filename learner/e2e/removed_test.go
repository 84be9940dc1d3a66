package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
)

// TestRemovedMemberExits: a learner and a logger removed with binlogctl
// remove each log one line naming the caller and what to do, answer
// /healthz with 503 "removed from the group" and show the removal in
// binlogctl status, then exit with ExitRemoved; restarted on the same data
// directory, each refuses to start with the same message and exit code.
func TestRemovedMemberExits(t *testing.T) {
	r := newRig(t, nil, func(uint64) fleet.MemberSpec { return fleet.MemberSpec{} })
	r.leader()
	for _, id := range []uint64{1, 2, 3} {
		r.waitView(1, "the loggers answer", caughtUp(id, learner.RoleLogger, false))
	}
	m, err := r.f.NewMember(false)
	if err != nil {
		t.Fatal(err)
	}
	r.mustCtl(1, "add-learner", fmt.Sprint(m.ID), "--raft-addr", m.RaftAddr, "--admin-addr", m.AdminAddr)
	if err := r.f.Launch(m, true, "--role", "learner"); err != nil {
		t.Fatal(err)
	}
	r.waitView(1, "the learner catches up", caughtUp(m.ID, learner.RoleLearner, false))

	for _, id := range []uint64{m.ID, 3} {
		t0 := time.Now()
		r.mustCtl(1, "remove", fmt.Sprint(id))
		want := fmt.Sprintf("member %d was removed from the group (remove) by token fleet-operate via member 1", id)
		// While it lingers: /healthz and binlogctl status say why.
		var health, status, lastStatus string
		err := fleet.Poll(bg(), wait, func() error {
			if !r.f.Member(id).Running() {
				return nil
			}
			if health == "" {
				if code, body := r.healthz(id); code == http.StatusServiceUnavailable && strings.Contains(body, "removed from the group: "+want) {
					health = body
				}
			}
			if status == "" {
				// NB: the exit code is not checked: the failover part of
				// status may fail on a member that left the group.
				out, _ := r.binlogctl(id, "status")
				if strings.Contains(out, "REMOVED:        "+want) {
					status = out
				}
				lastStatus = out
			}
			if health == "" || status == "" {
				return fmt.Errorf("member %d: /healthz %q, status %q", id, health, status)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if health == "" || status == "" {
			t.Fatalf("member %d exited before /healthz (%q) and binlogctl status (%q) said it was removed", id, health, lastStatus)
		}
		if err := fleet.Poll(bg(), wait, func() error {
			if r.f.Member(id).Running() {
				return fmt.Errorf("member %d still runs", id)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if code := r.f.Member(id).ExitCode(); code != binlogsvr.ExitRemoved {
			t.Fatalf("member %d exited with %d, want %d", id, code, binlogsvr.ExitRemoved)
		}
		t.Logf("member %d: removed, said so and exited %d after %v; /healthz: %s", id, binlogsvr.ExitRemoved, time.Since(t0).Round(time.Millisecond), strings.TrimSpace(health))
		// One log line, and the same as the process's last word on stderr.
		lines := r.logLines(id, "level=ERROR msg=\""+want)
		if len(lines) != 1 || !strings.Contains(lines[0], "wipe its --data-dir") {
			t.Fatalf("member %d logged its removal %d times: %q", id, len(lines), lines)
		}
		if lines := r.logLines(id, "binlogsvr: "+want); len(lines) != 1 {
			t.Fatalf("member %d's exit message: %q", id, lines)
		}

		// A restart on the same data directory refuses, with the same line.
		if err := r.f.Restart(id); err != nil {
			t.Fatal(err)
		}
		if err := fleet.Poll(bg(), wait, func() error {
			if r.f.Member(id).Running() {
				return fmt.Errorf("restarted member %d still runs", id)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if code := r.f.Member(id).ExitCode(); code != binlogsvr.ExitRemoved {
			t.Fatalf("restarted member %d exited with %d, want %d", id, code, binlogsvr.ExitRemoved)
		}
		if lines := r.logLines(id, "binlogsvr: "+want); len(lines) != 2 {
			t.Fatalf("restarted member %d: %q", id, lines)
		}
	}
	v := r.waitView(1, "the group without them", func(v binlogsvr.MembersStatus) error {
		if len(v.Members) != 2 || !v.Complete {
			return fmt.Errorf("members %s", ids(v))
		}
		return nil
	})
	if fmt.Sprint(v.Removed) != fmt.Sprintf("[3 %d]", m.ID) {
		t.Fatalf("removed ids: %v", v.Removed)
	}
}

// healthz returns member id's /healthz status and body.
func (r *rig) healthz(id uint64) (int, string) {
	ctx, cancel := context.WithTimeout(bg(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.f.URL(id, "/healthz"), nil)
	resp, err := r.f.HTTP().Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// logLines returns member id's log lines that hold s.
func (r *rig) logLines(id uint64, s string) []string {
	b, _ := os.ReadFile(r.f.Member(id).LogPath)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
