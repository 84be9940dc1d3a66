package failover

import (
	"reflect"
	"testing"

	"github.com/binlogsvr/binlogsvr/logger"
)

func TestHookEnv(t *testing.T) {
	cur := func() (string, uint64) { return "0-1-50", 7 }
	old := logger.Source{Addr: "10.0.0.1:3306"}
	for _, tc := range []struct {
		name string
		op   Operation
		want []string
	}{
		{"pre, not fenced", Operation{ID: "f1", Kind: KindFailover, Step: StepStarted, OldSource: old},
			[]string{"HOOK=pre", "ID=f1", "KIND=failover", "OLD_SOURCE=10.0.0.1:3306", "NEW_SOURCE=", "EPOCH=7", "GTIDS=0-1-50", "FORCED=false"}},
		{"pre, switchover target", Operation{ID: "s1", Kind: KindSwitchover, Step: StepStarted, OldSource: old, To: "10.0.0.2:3306"},
			[]string{"HOOK=pre", "ID=s1", "KIND=switchover", "OLD_SOURCE=10.0.0.1:3306", "NEW_SOURCE=10.0.0.2:3306", "EPOCH=7", "GTIDS=0-1-50", "FORCED=false"}},
		{"post", Operation{ID: "f2", Kind: KindFailover, Step: StepResumed, OldSource: old, Target: "10.0.0.3:3306", Forced: true,
			LogGTIDs: "0-1-40", FenceEpoch: 4, NewEpoch: 5},
			[]string{"HOOK=post", "ID=f2", "KIND=failover", "OLD_SOURCE=10.0.0.1:3306", "NEW_SOURCE=10.0.0.3:3306", "EPOCH=5", "GTIDS=0-1-40", "FORCED=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hookEnv(&tc.op, cur)
			for i := range tc.want {
				tc.want[i] = hookEnvPrefix + tc.want[i]
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestHookBaseEnv(t *testing.T) {
	got := hookBaseEnv([]string{"PATH=/bin", EnvAdminPassword + "=secret", "BINLOGSVR_FAILOVER_EPOCH=stale", "HOME=/root"})
	if want := []string{"PATH=/bin", "HOME=/root"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestKeepGTIDs(t *testing.T) {
	for _, tc := range []struct {
		flavor, held string
		extra        []string
		want         string
		n            uint64
	}{
		{"mysql", u1 + ":1-120", []string{u1 + ":118-120"}, u1 + ":1-117", 3},
		{"mysql", u1 + ":1-10," + u2 + ":1-5", []string{u1 + ":4", u2 + ":5"}, u1 + ":1-3:5-10," + u2 + ":1-4", 2},
		{"mariadb", "0-1-1,0-1-2,0-1-3,0-1-3", []string{"0-1-3"}, "0-1-2", 1},
		{"mariadb", "0-1-8,1-1-4,0-2-9,0-1-9,1-1-5", []string{"0-1-9", "1-1-5"}, "0-2-9,1-1-4", 2},
		{"mariadb", "2-1-1", []string{"2-1-1"}, "", 1},
	} {
		got, err := keepGTIDs(tc.flavor, tc.held, tc.extra)
		if err != nil || got != tc.want {
			t.Errorf("keepGTIDs(%s, %s, %v) = %q, %v; want %q", tc.flavor, tc.held, tc.extra, got, err, tc.want)
		}
		if n, err := countGTIDs(tc.flavor, tc.extra); err != nil || n != tc.n {
			t.Errorf("countGTIDs(%s, %v) = %d, %v; want %d", tc.flavor, tc.extra, n, err, tc.n)
		}
	}
}
