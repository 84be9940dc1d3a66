package semisync

import (
	"time"

	"github.com/binlogsvr/binlogsvr/logger"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	ackLatency     prometheus.Histogram
	ackStages      *prometheus.HistogramVec
	acks           prometheus.Counter
	received       prometheus.Counter
	stored         prometheus.Counter
	sessionErrors  prometheus.Counter
	sourceSemiSync prometheus.Gauge
	// statementEvents counts statement-based DML events from the source.
	statementEvents prometheus.Counter
	// rotations counts the log's files closed because the source closed one.
	rotations prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, in *Ingester) (*metrics, error) {
	m := &metrics{
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "binlogsvr_semisync_ack_latency_seconds",
			Help: "From receiving a transaction's last event to sending its semi-sync ACK (after the quorum commit).",
			// NB: four buckets per doubling from 50 µs to 205 ms: the ACK
			// path's target is a few tenths of a millisecond.
			Buckets: prometheus.ExponentialBuckets(0.00005, 1.189207115, 49),
		}),
		ackStages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "binlogsvr_semisync_ack_stage_seconds",
			Help: "The ACK latency by stage, for each ACK sent: cut (last event received → queued for the log), queue (→ its raft entry proposed), " +
				"commit (→ committed on a quorum), apply (→ applied here and its result back), handoff (→ the acker saw it), ack (→ the ACK written to the source). The stages add up to binlogsvr_semisync_ack_latency_seconds.",
			// NB: two buckets per doubling from 10 µs to 2.6 s.
			Buckets: prometheus.ExponentialBuckets(0.00001, 1.414213562, 37),
		}, []string{"stage"}),
		acks:          prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_semisync_acks_total", Help: "Semi-sync ACKs sent to the source."}),
		received:      prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_semisync_transactions_received_total", Help: "Whole transactions received from the source."}),
		stored:        prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_semisync_transactions_stored_total", Help: "Transactions committed in the log (or found there already) after receipt."}),
		sessionErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_semisync_session_errors_total", Help: "Ingest sessions that ended in an error (then reconnected)."}),
		statementEvents: prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_semisync_statement_events_total",
			Help: "Statement-based DML events received from the source (a session with binlog_format=STATEMENT); stored and ACKed, but CDC tools cannot decode them."}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_semisync_source_rotations_followed_total",
			Help: "The log's files closed because the source closed one of its own (FLUSH BINARY LOGS, max_binlog_size; --follow-source-rotate)."}),
		sourceSemiSync: prometheus.NewGauge(prometheus.GaugeOpts{Name: "binlogsvr_semisync_source_protected", Help: "1 while the source's commits wait for the fleet's ACK (semi-sync on, not fallen back); 0 otherwise."}),
	}
	lagSeconds := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "binlogsvr_semisync_source_lag_seconds", Help: "Age of the newest event received from the source."},
		func() float64 { return in.Status().LagSeconds })
	lagBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "binlogsvr_semisync_source_lag_bytes", Help: "The source's binlog position minus the last ACKed position (same file)."},
		func() float64 { return float64(in.Status().LagBytes) })
	streaming := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "binlogsvr_semisync_streaming", Help: "1 while this member streams from the source."},
		func() float64 {
			if in.Status().State == StateStreaming {
				return 1
			}
			return 0
		})
	if reg != nil {
		for _, c := range []prometheus.Collector{m.ackLatency, m.ackStages, m.acks, m.received, m.stored, m.sessionErrors, m.sourceSemiSync, m.statementEvents, m.rotations, lagSeconds, lagBytes, streaming} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// AckStages names the stages of binlogsvr_semisync_ack_stage_seconds, in
// order.
var AckStages = []string{"cut", "queue", "commit", "apply", "handoff", "ack"}

// observeStages records one ACK's stages: received is when the
// transaction's last event was read, t the proposer's times, seen when the
// acker learnt the outcome, sent when the ACK was written.
func (m *metrics) observeStages(received time.Time, t logger.StageTimes, seen, sent time.Time) {
	if t.Enqueued.IsZero() || t.Proposed.IsZero() || t.Committed.IsZero() || t.Stored.IsZero() {
		return
	}
	for i, d := range stageDurations(received, t, seen, sent) {
		m.ackStages.WithLabelValues(AckStages[i]).Observe(d.Seconds())
	}
}

// stageDurations splits received → sent at the stage boundaries. Pure.
func stageDurations(received time.Time, t logger.StageTimes, seen, sent time.Time) []time.Duration {
	at := []time.Time{received, t.Enqueued, t.Proposed, t.Committed, t.Stored, seen, sent}
	out := make([]time.Duration, len(at)-1)
	for i := range out {
		out[i] = max(0, at[i+1].Sub(at[i]))
	}
	return out
}
