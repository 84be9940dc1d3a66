package logger

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg           prometheus.Registerer
	cs            []prometheus.Collector
	proposals     *prometheus.CounterVec
	commitLatency prometheus.Histogram
	batchTxns     prometheus.Histogram
	inFlight      prometheus.Gauge
	sizeSnapshots *prometheus.CounterVec
}

// hostMetrics are the host's: what its NodeHost, raft log and transport
// do for all its shards.
type hostMetrics struct {
	reg           prometheus.Registerer
	cs            []prometheus.Collector
	snapshotSends *prometheus.CounterVec
	raftLogFiles  *prometheus.CounterVec
	raftLogSpares *prometheus.CounterVec
}

func newHostMetrics(reg prometheus.Registerer) (*hostMetrics, error) {
	m := &hostMetrics{reg: reg}
	m.snapshotSends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "binlogsvr_logger_snapshot_sends_total", Help: "Snapshots this member sent to others (a new learner, a member behind the compacted log), by result: started, completed, aborted.",
	}, []string{"result"})
	m.raftLogFiles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "binlogsvr_logger_raft_log_files_total", Help: "Raft log files (tan, 64 MiB) this member created, by kind: zeroed (--raft-log-prefill: each fsync flushes data only) or growing (prefill off, the previous file filled at more than 16 MiB/s, or its spare was not ready).",
	}, []string{"kind"})
	m.raftLogSpares = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "binlogsvr_logger_raft_log_spares_total", Help: "Zeroed spare raft log files this member prepared in the background, by result: prepared, disk_full (less than 1 GiB would be left), failed (see the log).",
	}, []string{"result"})
	m.cs = []prometheus.Collector{m.snapshotSends, m.raftLogFiles, m.raftLogSpares}
	if err := register(reg, m.cs); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *hostMetrics) unregister() { unregister(m.reg, m.cs) }

// register registers cs, none of them if one fails (nil reg: none).
func register(reg prometheus.Registerer, cs []prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			unregister(reg, cs[:i])
			return err
		}
	}
	return nil
}

func unregister(reg prometheus.Registerer, cs []prometheus.Collector) {
	if reg == nil {
		return
	}
	for _, c := range cs {
		reg.Unregister(c)
	}
}

func newMetrics(reg prometheus.Registerer, n *Node) (*metrics, error) {
	m := &metrics{reg: reg}
	m.proposals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "binlogsvr_logger_proposals_total", Help: "Proposals by command kind and result code.",
	}, []string{"kind", "result"})
	m.commitLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "binlogsvr_logger_commit_latency_seconds", Help: "Time from proposal to applied result on this member.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
	m.batchTxns = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "binlogsvr_logger_batch_transactions", Help: "Transactions per Append proposal.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 14),
	})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "binlogsvr_logger_proposals_in_flight", Help: "Append proposals awaiting their result.",
	})
	m.sizeSnapshots = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "binlogsvr_logger_size_snapshots_total", Help: "Snapshots this member requested because the entries applied since the last one reached --snapshot-bytes, by result: ok, error.",
	}, []string{"result"})
	applied := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "binlogsvr_logger_applied_index", Help: "Last raft index applied to this member's log.",
	}, func() float64 {
		if r := n.Reader(); r != nil {
			return float64(r.Applied())
		}
		return 0
	})
	txns := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "binlogsvr_logger_transactions", Help: "Transactions stored in the log since it began.",
	}, func() float64 {
		if r := n.Reader(); r != nil {
			return float64(r.State().Txns)
		}
		return 0
	})
	epoch := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "binlogsvr_logger_epoch", Help: "The log's current source epoch.",
	}, func() float64 {
		if r := n.Reader(); r != nil {
			return float64(r.State().Epoch)
		}
		return 0
	})
	// NB: the alerts' view of the group (tools/monitoring): a group where
	// no member reports leader_known has no quorum; the sum of is_leader
	// over the members says who leads.
	leaderKnown := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "binlogsvr_logger_leader_known", Help: "1 if this member knows the group's leader, else 0 (no quorum, or electing).",
	}, func() float64 {
		if _, ok := n.LeaderID(); ok {
			return 1
		}
		return 0
	})
	isLeader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "binlogsvr_logger_is_leader", Help: "1 if this member leads the group, else 0.",
	}, func() float64 {
		if n.IsLeader() {
			return 1
		}
		return 0
	})
	m.cs = []prometheus.Collector{m.proposals, m.commitLatency, m.batchTxns, m.inFlight, m.sizeSnapshots, applied, txns, epoch, leaderKnown, isLeader}
	if err := register(reg, m.cs); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) unregister() { unregister(m.reg, m.cs) }
