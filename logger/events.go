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
// goroutines: they only count and log.
type events struct {
	log   *slog.Logger
	sends *prometheus.CounterVec
}

var _ raftio.ISystemEventListener = (*events)(nil)

func (e *events) SendSnapshotStarted(i raftio.SnapshotInfo) {
	e.sends.WithLabelValues("started").Inc()
	e.log.Info("sending a snapshot", "to", i.ReplicaID, "index", i.Index)
}

func (e *events) SendSnapshotCompleted(i raftio.SnapshotInfo) {
	e.sends.WithLabelValues("completed").Inc()
	e.log.Info("sent a snapshot", "to", i.ReplicaID, "index", i.Index)
}

func (e *events) SendSnapshotAborted(i raftio.SnapshotInfo) {
	e.sends.WithLabelValues("aborted").Inc()
	e.log.Warn("a snapshot send was aborted (the receiver is retried by raft)", "to", i.ReplicaID, "index", i.Index)
}

func (e *events) NodeHostShuttingDown()                       {}
func (e *events) NodeUnloaded(raftio.NodeInfo)                {}
func (e *events) NodeDeleted(raftio.NodeInfo)                 {}
func (e *events) NodeReady(raftio.NodeInfo)                   {}
func (e *events) MembershipChanged(raftio.NodeInfo)           {}
func (e *events) ConnectionEstablished(raftio.ConnectionInfo) {}
func (e *events) ConnectionFailed(raftio.ConnectionInfo)      {}
func (e *events) SnapshotReceived(raftio.SnapshotInfo)        {}
func (e *events) SnapshotRecovered(raftio.SnapshotInfo)       {}
func (e *events) SnapshotCreated(raftio.SnapshotInfo)         {}
func (e *events) SnapshotCompacted(raftio.SnapshotInfo)       {}
func (e *events) LogCompacted(raftio.EntryInfo)               {}
func (e *events) LogDBCompacted(raftio.EntryInfo)             {}
