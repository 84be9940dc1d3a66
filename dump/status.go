package dump

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binlogsvr/binlogsvr/binlogsvr/api"
	"github.com/binlogsvr/binlogsvr/logger"
)

// ClientStatus describes one connection to the dump server, for /status
// and binlogctl.
type ClientStatus = api.DumpClientStatus

// clientStats are one session's counters, updated by its goroutine and
// read by Clients and the metrics collector.
type clientStats struct {
	file       atomic.Uint32
	pos        atomic.Uint64
	events     atomic.Uint64
	bytes      atomic.Uint64
	heartbeats atomic.Uint64
	lastTS     atomic.Uint32
	caught     atomic.Bool
	// The newest event that asked for a semi-sync ACK, and when it was
	// written (unix ns), to time its ACK.
	askFile atomic.Uint32
	askPos  atomic.Uint64
	askAt   atomic.Int64
}

// askedAck notes an event (ending at file:pos) that asks for an ACK.
func (c *clientStats) askedAck(file uint32, pos uint64) {
	c.askAt.Store(time.Now().UnixNano())
	c.askFile.Store(file)
	c.askPos.Store(pos)
}

// ackLatency is the time from the newest ACK request to a, when a answers
// it (ok false for an ACK of an older event).
func (c *clientStats) ackLatency(a ack, now time.Time) (time.Duration, bool) {
	f, err := logger.ParseFileName(a.File)
	if err != nil || f != c.askFile.Load() || a.Pos != c.askPos.Load() {
		return 0, false
	}
	at := c.askAt.Load()
	if at == 0 {
		return 0, false
	}
	return now.Sub(time.Unix(0, at)), true
}

func (c *clientStats) sent(file uint32, pos uint64, ev []byte) {
	c.file.Store(file)
	c.pos.Store(pos)
	c.events.Add(1)
	c.bytes.Add(uint64(len(ev)) + 5)
	if ts := uint32(ev[0]) | uint32(ev[1])<<8 | uint32(ev[2])<<16 | uint32(ev[3])<<24; ts != 0 {
		c.lastTS.Store(ts)
	}
}

func (c *clientStats) heartbeat()      { c.heartbeats.Add(1) }
func (c *clientStats) caughtUp(v bool) { c.caught.Store(v) }

// lag is 0 for a client that has everything, else the age of the last
// event it was sent.
func (c *clientStats) lag(now time.Time) float64 {
	if c.caught.Load() {
		return 0
	}
	ts := c.lastTS.Load()
	if ts == 0 {
		return 0
	}
	d := now.Sub(time.Unix(int64(ts), 0)).Seconds()
	if d < 0 {
		return 0
	}
	return d
}

// info is the mutable, mutex-guarded part of a session's status.
type info struct {
	mu sync.Mutex
	st ClientStatus
}

func (i *info) update(f func(*ClientStatus)) {
	i.mu.Lock()
	f(&i.st)
	i.mu.Unlock()
}

func (i *info) get() ClientStatus {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.st
}

// status returns the session's ClientStatus with its counters.
func (s *session) status(now time.Time) ClientStatus {
	st := s.info.get()
	if st.Dumping || st.Events > 0 || s.stats.events.Load() > 0 {
		st.File = logger.FileName(s.stats.file.Load())
		st.Pos = s.stats.pos.Load()
		st.Events = s.stats.events.Load()
		st.Bytes = s.stats.bytes.Load()
		st.Heartbeats = s.stats.heartbeats.Load()
		st.CaughtUp = s.stats.caught.Load()
		st.LagSeconds = s.stats.lag(now)
	}
	return st
}

// metrics are the dump server's Prometheus metrics.
type metrics struct {
	connections prometheus.Counter
	authFail    prometheus.Counter
	refused     *prometheus.CounterVec
	dumps       *prometheus.CounterVec
	errors      *prometheus.CounterVec
	srv         *Server

	bytesDesc, eventsDesc, lagDesc, clientsDesc, hbDesc *prometheus.Desc
	acksDesc                                            *prometheus.Desc
	cacheReadsDesc, cacheBytesDesc                      *prometheus.Desc
}

func newMetrics(reg prometheus.Registerer, srv *Server) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_dump_connections_total", Help: "Connections accepted by the dump server."}),
		authFail:    prometheus.NewCounter(prometheus.CounterOpts{Name: "binlogsvr_dump_auth_failures_total", Help: "Logins refused (wrong user or password, bad handshake)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "binlogsvr_dump_logins_refused_total",
			Help: "Connections refused before or at login, by reason: access_denied, throttled, tls_required, too_many_clients, packet_too_large, malformed, io."}, []string{"reason"}),
		dumps:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "binlogsvr_dump_dumps_total", Help: "Dumps started, by mode (file, gtid, mariadb-gtid)."}, []string{"mode"}),
		errors:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "binlogsvr_dump_errors_total", Help: "Dumps that ended in an error, by reason."}, []string{"reason"}),
		srv:         srv,
		bytesDesc:   prometheus.NewDesc("binlogsvr_dump_sent_bytes_total", "Bytes of events sent to a dump client.", []string{"client", "server_id"}, nil),
		eventsDesc:  prometheus.NewDesc("binlogsvr_dump_sent_events_total", "Events sent to a dump client.", []string{"client", "server_id"}, nil),
		hbDesc:      prometheus.NewDesc("binlogsvr_dump_heartbeats_total", "Heartbeats sent to a dump client.", []string{"client", "server_id"}, nil),
		lagDesc:     prometheus.NewDesc("binlogsvr_dump_lag_seconds", "Age of the last event sent to a dump client that has not caught up (0 when it has).", []string{"client", "server_id"}, nil),
		acksDesc:    prometheus.NewDesc("binlogsvr_dump_semisync_acks_total", "Semi-sync ACKs received from a dump client that speaks semi-sync.", []string{"client", "server_id"}, nil),
		clientsDesc: prometheus.NewDesc("binlogsvr_dump_clients", "Connections to the dump server, and how many are dumping.", []string{"state"}, nil),
		cacheReadsDesc: prometheus.NewDesc("binlogsvr_dump_cache_reads_total", "Reads of the log by dumps: hit (a chunk shared from the cache), miss (a chunk read from the log into the cache, for a dump or ahead of one), direct (read from the log for one client: the open file's growing end).",
			[]string{"result"}, nil),
		cacheBytesDesc: prometheus.NewDesc("binlogsvr_dump_cache_bytes", "Bytes of the log kept in the dump servers' shared chunk cache.", nil, nil),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connections, m.authFail, m.refused, m.dumps, m.errors, m} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector for the per-client metrics.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.bytesDesc
	ch <- m.eventsDesc
	ch <- m.hbDesc
	ch <- m.lagDesc
	ch <- m.acksDesc
	ch <- m.clientsDesc
	ch <- m.cacheReadsDesc
	ch <- m.cacheBytesDesc
}

// Collect implements prometheus.Collector: one series per dumping client,
// labelled by connection id, so series end with their connection.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	all, dumping := 0, 0
	for _, s := range m.srv.sessionList() {
		all++
		st := s.status(now)
		if !st.Dumping {
			continue
		}
		dumping++
		l := []string{strconv.FormatUint(uint64(st.ID), 10), strconv.FormatUint(uint64(st.ServerID), 10)}
		ch <- prometheus.MustNewConstMetric(m.bytesDesc, prometheus.CounterValue, float64(st.Bytes), l...)
		ch <- prometheus.MustNewConstMetric(m.eventsDesc, prometheus.CounterValue, float64(st.Events), l...)
		ch <- prometheus.MustNewConstMetric(m.hbDesc, prometheus.CounterValue, float64(st.Heartbeats), l...)
		ch <- prometheus.MustNewConstMetric(m.lagDesc, prometheus.GaugeValue, st.LagSeconds, l...)
		if st.SemiSync {
			ch <- prometheus.MustNewConstMetric(m.acksDesc, prometheus.CounterValue, float64(st.Acks), l...)
		}
	}
	ch <- prometheus.MustNewConstMetric(m.clientsDesc, prometheus.GaugeValue, float64(all), "connected")
	ch <- prometheus.MustNewConstMetric(m.clientsDesc, prometheus.GaugeValue, float64(dumping), "dumping")
	hits, misses, direct, kept := m.srv.cache.stats()
	ch <- prometheus.MustNewConstMetric(m.cacheReadsDesc, prometheus.CounterValue, float64(hits), "hit")
	ch <- prometheus.MustNewConstMetric(m.cacheReadsDesc, prometheus.CounterValue, float64(misses), "miss")
	ch <- prometheus.MustNewConstMetric(m.cacheReadsDesc, prometheus.CounterValue, float64(direct), "direct")
	ch <- prometheus.MustNewConstMetric(m.cacheBytesDesc, prometheus.GaugeValue, float64(kept))
}
