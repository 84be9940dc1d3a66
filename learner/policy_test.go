package learner

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var lim = Limits{Entries: 100, Bytes: 1 << 20, ReachableWithin: 5 * time.Second}

// group builds a view: loggers and learners with their state.
type mspec struct {
	id       uint64
	role     string
	leader   bool
	dead     bool
	lagEnt   uint64
	lagBytes uint64
	weight   int
	limited  bool // a log-only member with its own retention
}

func group(specs ...mspec) View {
	now := time.Unix(1000, 0)
	in := Inputs{Loggers: map[uint64]string{}, Learners: map[uint64]string{}, Removed: map[uint64]struct{}{9: {}},
		Reports: map[uint64]Report{}, Contact: map[uint64]time.Time{}, Weights: map[uint64]int{}, Limits: lim, Now: now}
	const head = 10000
	for _, s := range specs {
		addr := "127.0.0.1:" + string(rune('0'+s.id)) + "000"
		if s.role == RoleLearner {
			in.Learners[s.id] = addr
		} else {
			in.Loggers[s.id] = addr
		}
		if s.leader {
			in.Leader = s.id
		}
		if s.weight != 0 {
			in.Weights[s.id] = s.weight
		}
		if s.dead {
			in.Contact[s.id] = now.Add(-time.Minute)
			continue
		}
		in.Contact[s.id] = now
		r := Report{ID: s.id, Applied: head - s.lagEnt, File: 1, Pos: 1<<30 - s.lagBytes}
		if s.limited {
			r.Retention = Retention{Files: 2}
		}
		if s.leader {
			r.Files = []FileSize{{1, 1 << 30}}
		}
		in.Reports[s.id] = r
	}
	return Build(in)
}

func TestCheck(t *testing.T) {
	healthy := group(mspec{id: 1, leader: true}, mspec{id: 2}, mspec{id: 3}, mspec{id: 4, role: RoleLearner})
	oneDead := group(mspec{id: 1, leader: true}, mspec{id: 2}, mspec{id: 3, dead: true}, mspec{id: 4, role: RoleLearner})
	twoDead := group(mspec{id: 1, leader: true}, mspec{id: 2, dead: true}, mspec{id: 3, dead: true})
	behind := group(mspec{id: 1, leader: true}, mspec{id: 2}, mspec{id: 3}, mspec{id: 4, role: RoleLearner, lagEnt: 5000, lagBytes: 300 << 20})
	twoLoggers := group(mspec{id: 1, leader: true}, mspec{id: 2})
	cases := []struct {
		name  string
		v     View
		c     Change
		class error  // nil: allowed
		want  string // in the reason
	}{
		{"add learner", healthy, Change{Op: OpAddLearner, ID: 5, Addr: "127.0.0.1:7005"}, nil, ""},
		{"add learner: duplicate id", healthy, Change{Op: OpAddLearner, ID: 2, Addr: "127.0.0.1:7005"}, ErrBadInput, "already in the group"},
		{"add learner: removed id", healthy, Change{Op: OpAddLearner, ID: 9, Addr: "127.0.0.1:7005"}, ErrBadInput, "never be used again"},
		{"add learner: malformed address", healthy, Change{Op: OpAddLearner, ID: 5, Addr: "localhost"}, ErrBadInput, "not host:port"},
		{"add learner: bad port", healthy, Change{Op: OpAddLearner, ID: 5, Addr: "127.0.0.1:http"}, ErrBadInput, "port must be a number"},
		{"add learner: address in use", healthy, Change{Op: OpAddLearner, ID: 5, Addr: "127.0.0.1:2000"}, ErrBadInput, "already used by member 2"},
		{"add learner: zero id", healthy, Change{Op: OpAddLearner, ID: 0, Addr: "127.0.0.1:7005"}, ErrBadInput, "positive"},
		{"add learner: no quorum", twoDead, Change{Op: OpAddLearner, ID: 5, Addr: "127.0.0.1:7005"}, ErrUnsafe, "only 1 of 3 loggers"},
		{"promote caught-up learner", healthy, Change{Op: OpPromote, ID: 4}, nil, ""},
		{"promote far-behind learner", behind, Change{Op: OpPromote, ID: 4}, ErrUnsafe, "far behind"},
		{"promote a logger", healthy, Change{Op: OpPromote, ID: 2}, ErrBadInput, "already a logger"},
		{"promote unknown", healthy, Change{Op: OpPromote, ID: 42}, ErrUnknownMember, "no member 42"},
		{"promote with a dead logger", oneDead, Change{Op: OpPromote, ID: 4}, nil, ""},
		{"remove dead logger", oneDead, Change{Op: OpRemove, ID: 3}, nil, ""},
		{"remove live logger with one dead", oneDead, Change{Op: OpRemove, ID: 2}, ErrUnsafe, "below their quorum"},
		{"remove learner", oneDead, Change{Op: OpRemove, ID: 4}, nil, ""},
		{"remove with no quorum", twoDead, Change{Op: OpRemove, ID: 3}, ErrUnsafe, "needs a quorum"},
		{"remove the last logger", group(mspec{id: 1, leader: true}), Change{Op: OpRemove, ID: 1}, ErrUnsafe, "last logger"},
		{"remove unknown", healthy, Change{Op: OpRemove, ID: 7}, ErrUnknownMember, "no member 7"},
		{"remove from two loggers", twoLoggers, Change{Op: OpRemove, ID: 2}, nil, ""},
		{"demote logger", healthy, Change{Op: OpDemote, ID: 3, NewID: 5}, nil, ""},
		{"demote to a used id", healthy, Change{Op: OpDemote, ID: 3, NewID: 4}, ErrBadInput, "already in the group"},
		{"demote to a removed id", healthy, Change{Op: OpDemote, ID: 3, NewID: 9}, ErrBadInput, "never be used again"},
		{"demote without new id", healthy, Change{Op: OpDemote, ID: 3}, ErrBadInput, "new id"},
		{"demote a learner", healthy, Change{Op: OpDemote, ID: 4, NewID: 5}, ErrBadInput, "learner already"},
		{"demote breaking quorum", oneDead, Change{Op: OpDemote, ID: 2, NewID: 5}, ErrUnsafe, "below their quorum"},
		{"transfer to caught-up logger", healthy, Change{Op: OpTransferLeader, ID: 2}, nil, ""},
		{"transfer to learner", healthy, Change{Op: OpTransferLeader, ID: 4}, ErrBadInput, "only a logger can lead"},
		{"transfer to dead logger", oneDead, Change{Op: OpTransferLeader, ID: 3}, ErrUnsafe, "unreachable"},
		{"transfer to leader", healthy, Change{Op: OpTransferLeader, ID: 1}, nil, ""},
		{"weight", healthy, Change{Op: OpWeight, ID: 2, Weight: 3}, nil, ""},
		{"weight out of range", healthy, Change{Op: OpWeight, ID: 2, Weight: -2}, ErrBadInput, "between 0 and 1000"},
		{"unknown op", healthy, Change{Op: "explode", ID: 2}, ErrBadInput, "unknown operation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check(c.v, c.c, lim)
			if c.class == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("allowed, want a refusal (%v)", c.class)
			}
			if !errors.Is(err, c.class) || !IsRefusal(err) {
				t.Fatalf("error %v is not %v", err, c.class)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("reason %q does not say %q", err, c.want)
			}
		})
	}
}

func TestHandoff(t *testing.T) {
	cases := []struct {
		name string
		v    View
		want uint64
	}{
		{"equal weights: stay", group(mspec{id: 1, leader: true}, mspec{id: 2}, mspec{id: 3}), 0},
		{"heavier caught-up logger", group(mspec{id: 1, leader: true, weight: 1}, mspec{id: 2, weight: 2}, mspec{id: 3, weight: 3}), 3},
		{"heaviest leads already", group(mspec{id: 1, leader: true, weight: 3}, mspec{id: 2, weight: 2}, mspec{id: 3, weight: 1}), 0},
		{"heaviest is behind", group(mspec{id: 1, leader: true, weight: 1}, mspec{id: 2, weight: 2}, mspec{id: 3, weight: 3, lagEnt: 5000}), 2},
		{"heaviest is dead", group(mspec{id: 1, leader: true, weight: 1}, mspec{id: 2, weight: 2}, mspec{id: 3, weight: 3, dead: true}), 2},
		{"learners never lead", group(mspec{id: 1, leader: true, weight: 1}, mspec{id: 4, role: RoleLearner, weight: 9}), 0},
		{"weight 0 leader hands off", group(mspec{id: 1, leader: true, weight: 0}, mspec{id: 2, weight: 1}), 2},
		{"ties go to the lowest id", group(mspec{id: 3, leader: true, weight: 0}, mspec{id: 2, weight: 2}, mspec{id: 1, weight: 2}), 1},
		{"log-only leader hands to a full member", group(mspec{id: 1, leader: true, weight: 3, limited: true}, mspec{id: 2, weight: 1}), 2},
		{"full leader stays over heavier log-only", group(mspec{id: 1, leader: true, weight: 1}, mspec{id: 2, weight: 3, limited: true}), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "weight 0 leader hands off" {
				// NB: group() treats weight 0 as unset; set it.
				for i := range c.v.Members {
					if c.v.Members[i].ID == 1 {
						c.v.Members[i].Weight = 0
					}
				}
			}
			if c.name == "ties go to the lowest id" {
				for i := range c.v.Members {
					if c.v.Members[i].ID == 3 {
						c.v.Members[i].Weight = 0
					}
				}
			}
			got, why := Handoff(c.v)
			if got != c.want {
				t.Fatalf("handoff to %d (%s), want %d", got, why, c.want)
			}
			if got != 0 && why == "" {
				t.Fatal("no reason given")
			}
		})
	}
}

func TestPlanPurge(t *testing.T) {
	v := group(mspec{id: 1, leader: true}, mspec{id: 2}, mspec{id: 3}, mspec{id: 4, role: RoleLearner})
	for i := range v.Members {
		v.Members[i].File = 9
	}
	if p := PlanPurge(v, 8); p.UpTo != 8 || len(p.Holds) != 0 {
		t.Fatalf("no holds: %+v", p)
	}
	// A replica of member 2 reads file 5; learner 4 catches up at file 3.
	v.Members[1].Replicas = []Replica{{ServerID: 201, File: 5, Pos: 120, Registered: true}}
	p := PlanPurge(v, 8)
	if p.UpTo != 5 || len(p.Holds) != 1 || !strings.Contains(p.Holds[0].By, "server_id 201") {
		t.Fatalf("replica hold: %+v", p)
	}
	v.Members[3].CaughtUp, v.Members[3].File = false, 3
	p = PlanPurge(v, 8)
	if p.UpTo != 3 || len(p.Holds) != 2 || !strings.Contains(p.Holds[1].Why, "catching up") {
		t.Fatalf("learner hold: %+v", p)
	}
	// Below every hold: nothing is held.
	if p := PlanPurge(v, 3); p.UpTo != 3 || len(p.Holds) != 0 {
		t.Fatalf("below the holds: %+v", p)
	}
	// An unreachable member holds everything.
	v.Members[2].Reachable = false
	if p := PlanPurge(v, 3); p.UpTo != 0 || !strings.Contains(p.Holds[0].Why, "unreachable") {
		t.Fatalf("unreachable: %+v", p)
	}
}

func TestNextID(t *testing.T) {
	v := group(mspec{id: 1, leader: true}, mspec{id: 2}, mspec{id: 3})
	if n := NextID(v); n != 10 { // 9 was removed
		t.Fatalf("next id %d, want 10", n)
	}
}
