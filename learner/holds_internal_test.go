package learner

import (
	"strings"
	"testing"
	"time"
)

// TestReplicaHolds: a connected replica supersedes its record (same
// server_id, and uuid where both are known); a disconnected one holds its
// recorded file until the ttl after it was last seen; the purge plan names
// it with its age.
func TestReplicaHolds(t *testing.T) {
	now := time.Unix(100000, 0)
	ttl := time.Hour
	recs := []ReplicaHold{
		{ServerID: 3, UUID: "u3", File: 2, Member: 1, Remote: "127.0.0.1:5003", Seen: now.Add(-10 * time.Minute)}, // connected again: superseded
		{ServerID: 4, File: 3, Pos: 99, Member: 2, Remote: "127.0.0.1:5004", Seen: now.Add(-30 * time.Minute)},    // held
		{ServerID: 5, File: 1, Member: 1, Seen: now.Add(-2 * time.Hour)},                                          // expired
		{ServerID: 6, UUID: "old", File: 1, Member: 1, Seen: now.Add(-time.Minute)},                               // another server with server_id 6
	}
	members := []Member{
		{ID: 1, Replicas: []Replica{{ServerID: 3, UUID: "u3", File: 7, Pos: 4}}},
		{ID: 2, Replicas: []Replica{{ServerID: 6, UUID: "new", File: 8, Pos: 4}, {ServerID: 0, File: 0}}},
	}
	holds, expired := ReplicaHolds(recs, members, now, ttl)
	got := map[uint32][]ReplicaHold{}
	for _, h := range holds {
		got[h.ServerID] = append(got[h.ServerID], h)
	}
	if h := got[3]; len(h) != 1 || !h[0].Connected || h[0].File != 7 {
		t.Errorf("server_id 3 (reconnected): %+v", h)
	}
	if h := got[4]; len(h) != 1 || h[0].Connected || h[0].File != 3 || h[0].AgeSeconds != 1800 || !h[0].Expires.Equal(now.Add(30*time.Minute)) {
		t.Errorf("server_id 4 (disconnected): %+v", h)
	}
	if len(got[6]) != 2 {
		t.Errorf("server_id 6: another uuid connected, the old one's record holds too: %+v", got[6])
	}
	if len(got[5]) != 0 || len(expired) != 1 || expired[0].ServerID != 5 {
		t.Errorf("server_id 5 should have expired: holds %+v, expired %+v", got[5], expired)
	}

	v := View{Complete: true, Members: []Member{{ID: 1, Role: RoleLogger, Reachable: true, CaughtUp: true, Replicas: members[0].Replicas}},
		ReplicaHolds: holds}
	p := PlanPurge(v, 5)
	if p.UpTo != 1 || len(p.Holds) != 2 {
		t.Fatalf("plan: %+v", p)
	}
	txt := holdsText(p.Holds)
	for _, want := range []string{"binlog.000003 is held by replica server_id 4 (127.0.0.1:5004 of member 2, disconnected 30m0s ago)", "binlog.000001 is held by replica server_id 6",
		"--replica-hold-ttl"} {
		if !strings.Contains(txt, want) {
			t.Errorf("holds %q lack %q", txt, want)
		}
	}
}
