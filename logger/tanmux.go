package logger

import (
	_ "unsafe" // go:linkname

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	// NB: imported for the linker: the package below holds tan.
	_ "github.com/lni/dragonboat/v4/plugin/tan"
)

// tan's multiplexed mode (HostConfig.RaftLogMultiplex): what dragonboat
// v4 has and does not export, in its module
// (github.com/lni/dragonboat/v4@v4.0.0-20250723143628-076c7f6497dc):
//
//   - internal/tan/logdb.go:72-82: MultiplexedLogFactory, whose Create
//     calls CreateLogMultiplexedTan (logdb.go:115-118). plugin/tan/tan.go:22
//     exports Factory only, and multiplexLogFactory has no Name method, so
//     it is not a config.LogDBFactory either: multiplexedTan below reaches
//     its Create by linkname and supplies the name ("Tan", as tan's LogDB
//     reports it, logdb.go:202-204, so the flag file's LogDB type check,
//     internal/server/environment.go:405-407, is the same either way).
//   - internal/tan/db_keeper.go:99-105: a raft shard's records go to the
//     tan db (one directory, one log file at a time) "shard-K" with
//     K = ShardID % 16, whatever the replica; the regular keeper's is
//     "node-S-R", one per replica (db_keeper.go:54-56).
//   - internal/tan/logdb.go:258-263: SaveRaftState of a step worker's round
//     goes to concurrentSaveState (logdb.go:265-304) when multiplexed: it
//     writes every update of the round, then one fsync of the one db, and
//     it panics ("shard ID changed", logdb.go:276-281; one fsync: logdb.go:298-302) if the round holds
//     shards of two keys. The regular sequentialSaveState (logdb.go:306-340, goroutines at 330-336)
//     writes each update, then fsyncs each written db in a goroutine of its
//     own and waits for them all: N fsyncs at once, not one after the other.
//   - A step worker's round holds its shards with ShardID % ExecShards ==
//     worker-1 (engine.go:1023 and 1262-1292: FixedPartitioner(ExecShards),
//     internal/server/partition.go:38-39). So a round's shards share one
//     key only if 16 divides ExecShards: the multiplexed host runs
//     multiplexExecShards step workers, and worker k saves the shards
//     k-1, k+15, k+31, ... into the one log file shard-(k-1), one fsync a
//     round for all of them.
//
// A link error (not a silent change) follows if a dragonboat upgrade
// renames it; TestHostMultiplexedRestart runs it.
//
//go:linkname tanMultiplexedCreate github.com/lni/dragonboat/v4/internal/tan.multiplexLogFactory.Create
func tanMultiplexedCreate(f struct{}, nhc config.NodeHostConfig, cb config.LogDBCallback, dirs, wals []string) (raftio.ILogDB, error)

// multiplexExecShards is the step workers (ExecShards) of a multiplexed
// host: tan's 16 keys, one per worker (see above).
const multiplexExecShards = 16

// multiplexedTan is dragonboat's tan LogDB with multiplexed log files as a
// config.LogDBFactory.
type multiplexedTan struct{}

func (multiplexedTan) Create(nhc config.NodeHostConfig, cb config.LogDBCallback, dirs, wals []string) (raftio.ILogDB, error) {
	return tanMultiplexedCreate(struct{}{}, nhc, cb, dirs, wals)
}

func (multiplexedTan) Name() string { return "Tan" }
