package learner

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg       prometheus.Registerer
	cs        []prometheus.Collector
	byRole    *prometheus.GaugeVec
	lagEnt    *prometheus.GaugeVec
	lagBytes  *prometheus.GaugeVec
	reachable *prometheus.GaugeVec
	changes   *prometheus.CounterVec
	handoffs  *prometheus.CounterVec
	purges    *prometheus.CounterVec
	progress  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, mg *Manager) (*metrics, error) {
	m := &metrics{reg: reg}
	m.byRole = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "binlogsvr_members", Help: "Members of the group by role (logger, learner), as this member sees them.",
	}, []string{"role"})
	m.lagEnt = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "binlogsvr_members_lag_entries", Help: "Log entries each member is behind the leader.",
	}, []string{"member", "role"})
	m.lagBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "binlogsvr_members_lag_bytes", Help: "Binlog bytes each member is behind the leader.",
	}, []string{"member", "role"})
	m.reachable = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "binlogsvr_members_reachable", Help: "1 if the member answered recently, else 0.",
	}, []string{"member", "role"})
	m.changes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "binlogsvr_members_changes_total", Help: "Membership changes asked of this member, by operation and result.",
	}, []string{"op", "result"})
	m.handoffs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "binlogsvr_members_leader_handoffs_total", Help: "Weight-based leadership handoffs started by this member, by result.",
	}, []string{"result"})
	m.purges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "binlogsvr_members_purges_total", Help: "Group purges asked of this member, by result (ok, partial, forced, refused, error).",
	}, []string{"result"})
	// NB: every result from the start, at 0: the first refused purge is
	// then an increase the BinlogsvrPurgeBlocked alert sees, not the first
	// sample of a new series.
	for _, r := range []string{"ok", "partial", "forced", "refused", "error"} {
		m.purges.WithLabelValues(r)
	}
	m.progress = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "binlogsvr_learner_catch_up_ratio", Help: "This member's catch-up progress, 0 to 1 (1: caught up).",
	})
	snaps := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "binlogsvr_learner_snapshots_recovered_total", Help: "Snapshots this member caught up from since it started.",
	}, func() float64 {
		if s := mg.d.Node.SM(); s != nil {
			return float64(s.SnapshotsRecovered())
		}
		return 0
	})
	serving := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "binlogsvr_learner_serving", Help: "1 if this member serves dumps now (it has caught up), else 0.",
	}, func() float64 {
		if mg.d.DumpAddr != "" && mg.gate.Open() {
			return 1
		}
		return 0
	})
	m.cs = []prometheus.Collector{m.byRole, m.lagEnt, m.lagBytes, m.reachable, m.changes, m.handoffs, m.purges, m.progress, snaps, serving}
	if reg != nil {
		for _, c := range m.cs {
			if err := reg.Register(c); err != nil {
				m.unregister()
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(v View) {
	m.byRole.Reset()
	m.lagEnt.Reset()
	m.lagBytes.Reset()
	m.reachable.Reset()
	m.byRole.WithLabelValues(RoleLogger).Set(0)
	m.byRole.WithLabelValues(RoleLearner).Set(0)
	for _, mb := range v.Members {
		m.byRole.WithLabelValues(mb.Role).Inc()
		id := strconv.FormatUint(mb.ID, 10)
		r := 0.0
		if mb.Reachable {
			r = 1
		}
		m.reachable.WithLabelValues(id, mb.Role).Set(r)
		if v.Complete {
			m.lagEnt.WithLabelValues(id, mb.Role).Set(float64(mb.LagEntries))
			m.lagBytes.WithLabelValues(id, mb.Role).Set(float64(mb.LagBytes))
		}
	}
}

func (m *metrics) setProgress(ratio float64) { m.progress.Set(ratio) }

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.cs {
		m.reg.Unregister(c)
	}
}
