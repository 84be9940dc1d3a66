package logger

import (
	"log/slog"

	"github.com/lni/dragonboat/v4/raftio"
	"github.com/prometheus/client_golang/prometheus"
)

// events receives dragonboat's system events. It counts the snapshots this
// member sends (a new learner or a member that fell behind the compacted
// log catches up from one) and logs each, so that an operator sees the
// transfer on the sending side too. Callbacks run on dragonboat's
// goroutines: they only count and log. The listener is the host's: on a
// host of several shards (shared) each line names the shard; a host that
// Start made for its one shard has the shard in its logger already.
type events struct {
	log    *slog.Logger
	sends  *prometheus.CounterVec
	shared bool
	// membership, when set, is told that a shard's membership as this
	// replica applied it changed (the guard's member loop: it only wakes
	// the loop, without blocking).
	membership func()
}

// args are a line's attributes about snapshot i.
func (e *events) args(i raftio.SnapshotInfo) []any {
	if e.shared {
		return []any{"shard", i.ShardID, "to", i.ReplicaID, "index", i.Index}
	}
	return []any{"to", i.ReplicaID, "index", i.Index}
}

var _ raftio.ISystemEventListener = (*events)(nil)

func (e *events) SendSnapshotStarted(i raftio.SnapshotInfo) {
	e.sends.WithLabelValues("started").Inc()
	e.log.Info("sending a snapshot", e.args(i)...)
}

func (e *events) SendSnapshotCompleted(i raftio.SnapshotInfo) {
	e.sends.WithLabelValues("completed").Inc()
	e.log.Info("sent a snapshot", e.args(i)...)
}

func (e *events) SendSnapshotAborted(i raftio.SnapshotInfo) {
	e.sends.WithLabelValues("aborted").Inc()
	e.log.Warn("a snapshot send was aborted (the receiver is retried by raft)", e.args(i)...)
}

func (e *events) NodeHostShuttingDown()                       {}
func (e *events) NodeUnloaded(raftio.NodeInfo)                {}
func (e *events) NodeDeleted(raftio.NodeInfo)                 {}
func (e *events) NodeReady(raftio.NodeInfo)                   {}
func (e *events) ConnectionEstablished(raftio.ConnectionInfo) {}
func (e *events) ConnectionFailed(raftio.ConnectionInfo)      {}
func (e *events) SnapshotReceived(raftio.SnapshotInfo)        {}
func (e *events) SnapshotRecovered(raftio.SnapshotInfo)       {}
func (e *events) SnapshotCreated(raftio.SnapshotInfo)         {}
func (e *events) SnapshotCompacted(raftio.SnapshotInfo)       {}
func (e *events) LogCompacted(raftio.EntryInfo)               {}
func (e *events) LogDBCompacted(raftio.EntryInfo)             {}

func (e *events) MembershipChanged(raftio.NodeInfo) {
	if e.membership != nil {
		e.membership()
	}
}
