package catalog

import (
	"strings"
	"testing"
)

// TestStartMode: how a host starts its replica of a shard, and the one
// case it must refuse: a voter that ran the replica and lost its data.
func TestStartMode(t *testing.T) {
	s := NewState()
	s, res := Apply(s, Command{Op: OpAdd, Name: "orders", SourceAddr: "db:3306", Loggers: []uint64{1, 2, 3}, Learners: []uint64{4}})
	if !res.OK() {
		t.Fatal(res)
	}
	s, _ = Apply(s, Command{Op: OpStarted, Name: "orders", Host: 1, Replica: 1})
	s, _ = Apply(s, Command{Op: OpStarted, Name: "orders", Host: 4, Replica: 4})
	mv, res := Apply(s, Command{Op: OpMoveBegin, Name: "orders", From: 3, To: 5})
	if !res.OK() {
		t.Fatal(res)
	}
	mv, _ = Apply(mv, Command{Op: OpMoveStep, Name: "orders", Step: MoveLearner})
	promoted, _ := Apply(mv, Command{Op: OpMoveStep, Name: "orders", Step: MovePromoted})
	promoted, _ = Apply(promoted, Command{Op: OpStarted, Name: "orders", Host: 5, Replica: 5})
	for _, x := range []struct {
		st      *State
		host    uint64
		hasData bool
		want    string
	}{
		{s, 1, true, "restart"},
		{s, 1, false, "error"},     // started, data gone: refused
		{s, 2, false, "bootstrap"}, // an initial logger that never started it
		{s, 4, false, "join"},      // a learner (no vote: joins again)
		{s, 4, true, "restart"},
		{mv, 5, false, "join"},        // a move's incoming learner
		{promoted, 5, false, "error"}, // promoted by the move, started, data gone
		{promoted, 5, true, "restart"},
	} {
		got, err := x.st.Source("orders").StartMode(x.host, x.hasData)
		if err != nil {
			if x.want != "error" || !strings.Contains(err.Error(), "sources move orders") {
				t.Errorf("host %d, data %v: %v; want %s", x.host, x.hasData, err, x.want)
			}
			continue
		}
		if got != x.want {
			t.Errorf("host %d, data %v: %s; want %s", x.host, x.hasData, got, x.want)
		}
	}
	if _, err := s.Source("orders").StartMode(9, false); err == nil {
		t.Error("a host that does not run the source got a start mode")
	}
}
