package semisync

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	ackLatency     prometheus.Histogram
	acks           prometheus.Counter
	received       prometheus.Counter
	stored         prometheus.Counter
	sessionErrors  prometheus.Counter
	sourceSemiSync prometheus.Gauge
	// statementEvents counts statement-based DML events from the source.
	statementEvents prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, in *Ingester) (*metrics, error) {
	m := &metrics{
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "binlogsvr_semisync_ack_latency_seconds",
			Help:    "From receiving a transaction's last event to sending its semi-sync ACK (after the quorum commit).",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}),
		acks:          prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_semisync_acks_total", Help: "Semi-sync ACKs sent to the source."}),
		received:      prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_semisync_transactions_received_total", Help: "Whole transactions received from the source."}),
		stored:        prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_semisync_transactions_stored_total", Help: "Transactions committed in the log (or found there already) after receipt."}),
		sessionErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_semisync_session_errors_total", Help: "Ingest sessions that ended in an error (then reconnected)."}),
		statementEvents: prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_semisync_statement_events_total",
			Help: "Statement-based DML events received from the source (a session with binlog_format=STATEMENT); stored and ACKed, but CDC tools cannot decode them."}),
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
		for _, c := range []prometheus.Collector{m.ackLatency, m.acks, m.received, m.stored, m.sessionErrors, m.sourceSemiSync, m.statementEvents, lagSeconds, lagBytes, streaming} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
