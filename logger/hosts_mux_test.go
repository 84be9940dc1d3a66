package logger_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	lvfs "github.com/lni/vfs"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/binlogsvr/binlogsvr/logger/loggertest"
)

// tanDBs returns the names of the db directories in host id's tandb
// directories (raft/<host>/<deployment>/tandb).
func tanDBs(t *testing.T, fs lvfs.FS, dataDir string) []string {
	t.Helper()
	var out []string
	var walk func(dir string, depth int)
	walk = func(dir string, depth int) {
		names, err := fs.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			p := filepath.Join(dir, n)
			if fi, err := fs.Stat(p); err != nil || !fi.IsDir() {
				continue
			}
			switch {
			case n == "tandb":
				dbs, err := fs.List(p)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range dbs {
					if fi, err := fs.Stat(filepath.Join(p, d)); err == nil && fi.IsDir() && d != "bootstrap" {
						out = append(out, d)
					}
				}
			case depth < 3:
				walk(p, depth+1)
			}
		}
	}
	walk(filepath.Join(dataDir, "raft"), 0)
	slices.Sort(out)
	return out
}

// Three new hosts with multiplexed raft logs (--raft-log-multiplex=true)
// run shards 1, 2 and 17 (1 and 17 share a log file and a step
// worker), restart one host and then all three from their data, and commit
// all along; the layout cannot change afterwards.
func TestHostMultiplexedRestart(t *testing.T) {
	h := loggertest.NewHostsWith(t, 3, loggertest.HostsOptions{RaftLogMultiplex: logger.MultiplexOn})
	shards := []uint64{1, 2, 17}
	feeders, appendAll := startShards(t, h, shards)
	check := func(hosts ...uint64) {
		t.Helper()
		for _, s := range shards {
			fp := shardSame(t, h, s, hosts...)
			if st, want := h.Leader(s, wait).Reader().State(), uint64(feeders[s].next-1); st.Txns != want {
				t.Fatalf("shard %d holds %d transactions, want %d (%s)", s, st.Txns, want, fp)
			}
		}
	}
	appendAll(20)
	check(1, 2, 3)
	// tan's multiplexed keeper: one db per shard id modulo 16.
	if got, want := tanDBs(t, h.FS(1), "/h1"), []string{"shard-1", "shard-2"}; !slices.Equal(got, want) {
		t.Fatalf("host 1's tan dbs %v, want %v", got, want)
	}

	// One host restarts and catches up.
	h.StopHost(2)
	appendAll(10)
	h.StartHost(2)
	appendAll(5)
	check(1, 2, 3)

	// Every host restarts from its data.
	for id := uint64(1); id <= 3; id++ {
		h.StopHost(id)
	}
	for id := uint64(1); id <= 3; id++ {
		h.StartHost(id)
	}
	appendAll(10)
	check(1, 2, 3)

	// Host 3 cannot open its data per-shard, nor a one-source daemon.
	h.StopHost(3)
	cfg := h.HostConfig(3)
	cfg.RaftLogMultiplex = logger.MultiplexOff
	if host, err := logger.StartHost(cfg.Host()); err == nil {
		host.Close()
		t.Fatal("a multiplexed data directory opened with --raft-log-multiplex=false")
	} else if !strings.Contains(err.Error(), "--raft-log-multiplex=true") {
		t.Fatalf("the refusal does not name the flag to set: %v", err)
	} else {
		t.Logf("refused: %v", err)
	}
	one := h.HostConfig(3)
	one.ShardID, one.ReplicaID = 1, 3
	if n, err := logger.Start(one); err == nil {
		n.Close()
		t.Fatal("a one-source daemon opened a multiplexed data directory")
	} else if !strings.Contains(err.Error(), "--raft-log-multiplex") {
		t.Fatalf("the refusal does not name the flag: %v", err)
	}
	// Explicitly multiplexed, it opens.
	cfg = h.HostConfig(3)
	cfg.RaftLogMultiplex = logger.MultiplexOn
	host, err := logger.StartHost(cfg.Host())
	if err != nil {
		t.Fatal(err)
	}
	host.Close()
	h.StartHost(3)
	appendAll(5)
	check(1, 2, 3)
}

// A host whose data directory holds per-shard raft logs refuses to open
// it multiplexed; one whose raft directory predates the layout file (no
// file, tan's node-S-R directories) is taken for per-shard.
func TestHostRaftLayoutRefused(t *testing.T) {
	h := loggertest.NewHostsWith(t, 3, loggertest.HostsOptions{RaftLogMultiplex: logger.MultiplexOff})
	h.StartShard(1, 1, 2, 3)
	setSourceOn(t, h.Leader(1, wait))
	h.StopHost(1)
	open := func() error {
		cfg := h.HostConfig(1)
		cfg.RaftLogMultiplex = logger.MultiplexOn
		host, err := logger.StartHost(cfg.Host())
		if err == nil {
			host.Close()
		}
		return err
	}
	if err := open(); err == nil || !strings.Contains(err.Error(), "--raft-log-multiplex=false") {
		t.Fatalf("opening per-shard data with --raft-log-multiplex=true: %v", err)
	} else {
		t.Logf("refused: %v", err)
	}
	if err := h.FS(1).Remove("/h1/raft/raft-log-layout"); err != nil {
		t.Fatal(err)
	}
	if err := open(); err == nil || !strings.Contains(err.Error(), "--raft-log-multiplex=false") {
		t.Fatalf("opening per-shard data without a layout file with --raft-log-multiplex=true: %v", err)
	}
	// auto opens it as it is: per-shard.
	cfg := h.HostConfig(1)
	cfg.RaftLogMultiplex = logger.MultiplexAuto
	host, err := logger.StartHost(cfg.Host())
	if err != nil {
		t.Fatal(err)
	}
	host.Close()
	h.StartHost(1)
	if got := tanDBs(t, h.FS(1), "/h1"); !slices.Equal(got, []string{"node-1-1"}) {
		t.Fatalf("host 1's tan dbs %v, want [node-1-1]", got)
	}
}
