package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/binlogsvr/binlogsvr/binlogsvr"
	"github.com/binlogsvr/binlogsvr/learner"
	"github.com/binlogsvr/binlogsvr/tools/fleet"
)

// waitLeader waits until every running member agrees that want leads.
func (r *rig) waitLeader(want uint64, why string) {
	r.t.Helper()
	t0 := time.Now()
	err := fleet.Poll(bg(), wait, func() error {
		l, err := r.f.Leader(bg(), wait)
		if err != nil {
			return err
		}
		if l != want {
			return fmt.Errorf("member %d leads", l)
		}
		return nil
	})
	if err != nil {
		r.t.Fatalf("%s: want member %d to lead: %v", why, want, err)
	}
	r.t.Logf("%s: member %d leads (after %v)", why, want, time.Since(t0).Round(10*time.Millisecond))
}

// TestWeights: with loggers weighted 3/2/1 (by
// --weight, seeded into the log), the heaviest caught-up logger leads, after
// a kill, a restart, a restart of the whole fleet, and a weight change.
func TestWeights(t *testing.T) {
	weights := map[uint64]string{1: "3", 2: "2", 3: "1"}
	r := newRig(t, nil, func(id uint64) fleet.MemberSpec {
		return fleet.MemberSpec{Args: []string{"--weight", weights[id]}}
	})
	r.waitView(2, "the weights are seeded into the log", func(v binlogsvr.MembersStatus) error {
		for id, w := range weights {
			if m, _ := member(v, id); fmt.Sprint(m.Weight) != w {
				return fmt.Errorf("member %d weighs %d, want %s", id, m.Weight, w)
			}
		}
		return nil
	})
	r.waitLeader(1, "weights 3/2/1")

	if err := r.f.Kill(1); err != nil {
		t.Fatal(err)
	}
	r.waitLeader(2, "the heaviest killed")
	if err := r.f.Launch(r.f.Member(1), false, "--weight", "3"); err != nil {
		t.Fatal(err)
	}
	r.waitLeader(1, "the heaviest restarted and caught up")

	for _, m := range r.f.Members {
		if err := r.f.Stop(m.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []uint64{3, 2, 1} {
		if err := r.f.Launch(r.f.Member(id), false, "--weight", weights[id]); err != nil {
			t.Fatal(err)
		}
	}
	r.waitLeader(1, "the whole fleet restarted")

	r.mustCtl(2, "weight", "3", "5")
	r.waitLeader(3, "member 3 made the heaviest")
	if err := r.f.Stop(3); err != nil {
		t.Fatal(err)
	}
	r.waitLeader(1, "member 3 stopped")
	if err := r.f.Launch(r.f.Member(3), false); err != nil {
		t.Fatal(err)
	}
	r.waitLeader(3, "member 3 back (the log's weight wins over --weight)")
}

// TestBadAdminInput: bad admin input and unsafe
// changes get a clear error and change nothing.
func TestBadAdminInput(t *testing.T) {
	r := newRig(t, nil, func(uint64) fleet.MemberSpec { return fleet.MemberSpec{} })
	r.leader()
	before := r.waitView(1, "all members caught up", func(v binlogsvr.MembersStatus) error {
		for _, m := range v.Members {
			if !m.CaughtUp {
				return fmt.Errorf("member %d not caught up", m.ID)
			}
		}
		return nil
	})
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"add-learner", "2", "--raft-addr", "127.0.0.1:1"}, "400 Bad Request: member id 2 is already in the group"},
		{[]string{"add-learner", "9", "--raft-addr", "no-port-here"}, "is not host:port"},
		{[]string{"add-learner", "9", "--raft-addr", "127.0.0.1:99999"}, "port must be a number from 1 to 65535"},
		{[]string{"add-learner", "9", "--raft-addr", r.f.Member(1).RaftAddr}, "already used by member 1"},
		{[]string{"add-learner", "0", "--raft-addr", "127.0.0.1:7"}, "not a positive integer"},
		{[]string{"add-learner", "9"}, "needs --raft-addr"},
		{[]string{"add-learner", "9", "--raft-addr", "127.0.0.1:7", "--admin-addr", "nope"}, "is not host:port"},
		{[]string{"promote", "42"}, "404 Not Found: no member 42 in the group"},
		{[]string{"promote", "2"}, "already a logger"},
		{[]string{"remove", "42"}, "no member 42"},
		{[]string{"demote", "42"}, "no member 42"},
		{[]string{"transfer-leader", "42"}, "no member 42"},
		{[]string{"weight", "2", "heavy"}, `weight "heavy" is not an integer`},
		{[]string{"weight", "2", "1001"}, "between 0 and 1000"},
		{[]string{"purge", "binlog.999999"}, "400 Bad Request: purge up to binlog.999999"},
		{[]string{"purge", "not-a-file"}, "not a binlog file name"},
	}
	for _, c := range cases {
		out, err := r.binlogctl(1, c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("binlogctl %s: %v: %q, want %q", strings.Join(c.args, " "), err, strings.TrimSpace(out), c.want)
		}
	}
	// Unsafe: a learner that never started cannot be promoted.
	m, err := r.f.NewMember(false)
	if err != nil {
		t.Fatal(err)
	}
	r.mustCtl(1, "add-learner", fmt.Sprint(m.ID), "--raft-addr", m.RaftAddr)
	out, err := r.binlogctl(1, "promote", fmt.Sprint(m.ID))
	if err == nil || !strings.Contains(out, "409 Conflict") || !strings.Contains(out, "unreachable") {
		t.Fatalf("promoting a learner that never ran: %v %s", err, out)
	}
	r.mustCtl(1, "remove", fmt.Sprint(m.ID))
	out, err = r.binlogctl(1, "add-learner", fmt.Sprint(m.ID), "--raft-addr", m.RaftAddr)
	if err == nil || !strings.Contains(out, "can never be used again") {
		t.Fatalf("re-adding a removed id: %v %s", err, out)
	}
	after := mustView(t, r, 1)
	if ids(after) != ids(before) {
		t.Fatalf("the membership changed: %s, was %s", ids(after), ids(before))
	}
	for _, mb := range after.Members {
		if mb.Role != learner.RoleLogger || mb.Weight != learner.DefaultWeight {
			t.Fatalf("member changed: %+v", mb)
		}
	}
}
