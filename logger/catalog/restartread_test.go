package catalog

import (
	"context"
	"testing"
	"time"
)

// TestReadAfterRestart: a host's catalog replica answers a linearizable
// read soon after it restarts (a host that starts serves POST /sources),
// when the reader retries with a bound on each try: a read issued as the
// replica learns its leader may go unanswered (the daemon's readCatalog
// retries every 2 s for that reason; this test saw one such loss, 2.3 s
// to the first read, where the others took 0.2-0.6 s).
func TestReadAfterRestart(t *testing.T) {
	f := newFleet(t, 3, 3)
	l := f.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	res, err := f.cats[l].Propose(ctx, Command{Op: OpHost, Host: 1, RaftAddr: f.h.Addr(1), AdminAddr: "127.0.0.1:7070"})
	cancel()
	if err != nil || !res.OK() {
		t.Fatalf("recording host 1: %v %v", res, err)
	}
	for _, victim := range []uint64{l%3 + 1, l} {
		f.stop(victim)
		time.Sleep(500 * time.Millisecond)
		// NB: as the daemon does, with the catalog's members again.
		f.h.StartHost(victim)
		members := map[uint64]string{}
		for id := uint64(1); id <= 3; id++ {
			members[id] = f.h.Addr(id)
		}
		c := f.start(victim, members)
		t0 := time.Now()
		for time.Since(t0) < 20*time.Second {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var st *State
			st, err = c.Read(ctx)
			if err == nil && st.Version == 0 {
				t.Fatalf("host %d: a linearizable read without the recorded host", victim)
			}
			cancel()
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("host %d: no read 20 s after its restart: %v", victim, err)
		}
		t.Logf("host %d (leader before: %v): first read %v after its restart", victim, victim == l, time.Since(t0))
	}
}
