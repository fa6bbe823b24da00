package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Namespace prefixes every metric name of xmppd's own.
const Namespace = "xmppd"

// Metrics owns a Prometheus registry of its own (nothing is registered
// globally) and the collectors. It implements xmpp.Metrics: set it as the
// server's Metrics, wrap the store with WrapStore, and Watch the server.
//
// Counters the core touches per stanza are resolved once here, per kind,
// so that counting is an atomic add: no label lookup, no allocation.
type Metrics struct {
	reg *prometheus.Registry

	stanzasIn, stanzasOut [xmpp.NumStanzaKinds]prometheus.Counter
	routing               [xmpp.NumStanzaKinds]prometheus.Observer
	stanzasDropped        [xmpp.NumDropReasons]prometheus.Counter
	sessionsDropped       prometheus.Counter
	authFailures          *prometheus.CounterVec
	storage               *prometheus.HistogramVec
}

var _ xmpp.Metrics = (*Metrics)(nil)

// New makes the collectors, with the Go runtime's and the process's.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	in := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "stanzas_in_total",
		Help: "Stanzas received from local clients and from other servers, by kind.",
	}, []string{"kind"})
	out := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "stanzas_out_total",
		Help: "Stanzas queued for local clients and for other servers, by kind.",
	}, []string{"kind"})
	routing := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "routing_duration_seconds",
		Help: "Time from a stanza being read to it being queued for its recipients or handed to federation, hooks included, by kind.",
		// 10 µs to about 2.6 s: a local message takes tens of µs, an IQ
		// a module answers from storage milliseconds.
		Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10),
	}, []string{"kind"})
	for k := xmpp.StanzaKind(0); k < xmpp.NumStanzaKinds; k++ {
		m.stanzasIn[k] = in.WithLabelValues(k.String())
		m.stanzasOut[k] = out.WithLabelValues(k.String())
		m.routing[k] = routing.WithLabelValues(k.String())
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "stanzas_dropped_total",
		Help: "Stanzas refused by a full queue: session_queue (a client that does not read), s2s_queue (a slow peer server; the stanza bounced).",
	}, []string{"reason"})
	for r := xmpp.DropReason(0); r < xmpp.NumDropReasons; r++ {
		m.stanzasDropped[r] = dropped.WithLabelValues(r.String())
	}
	m.sessionsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "sessions_dropped_total",
		Help: "Client sessions closed because their queue was full (the client did not read).",
	})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "auth_failures_total",
		Help: "Failed SASL attempts by mechanism and reason (credentials, locked, token, storage, protocol).",
	}, []string{"mechanism", "reason"})
	m.storage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "storage_duration_seconds",
		Help: "Time taken by storage calls, by operation (the storage.Store method).",
		// 100 µs to about 1 s.
		Buckets: prometheus.ExponentialBuckets(100e-6, 2.5, 11),
	}, []string{"operation"})
	m.reg.MustRegister(in, out, routing, dropped, m.sessionsDropped, m.authFailures, m.storage)
	return m
}

// Registry is where the collectors are, for a test or another handler.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus's text format (or OpenMetrics,
// when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// StanzaIn implements xmpp.Metrics.
func (m *Metrics) StanzaIn(k xmpp.StanzaKind) { m.stanzasIn[k].Inc() }

// StanzaOut implements xmpp.Metrics.
func (m *Metrics) StanzaOut(k xmpp.StanzaKind) { m.stanzasOut[k].Inc() }

// Routed implements xmpp.Metrics.
func (m *Metrics) Routed(k xmpp.StanzaKind, d time.Duration) { m.routing[k].Observe(d.Seconds()) }

// AuthFailed implements xmpp.Metrics; failures are rare enough for a label
// lookup each.
func (m *Metrics) AuthFailed(mechanism string, reason xmpp.AuthReason) {
	if mechanism == "" {
		mechanism = "none"
	}
	m.authFailures.WithLabelValues(mechanism, reason.String()).Inc()
}

// SessionDropped implements xmpp.Metrics.
func (m *Metrics) SessionDropped() { m.sessionsDropped.Inc() }

// StanzaDropped implements xmpp.Metrics.
func (m *Metrics) StanzaDropped(r xmpp.DropReason) { m.stanzasDropped[r].Inc() }

// Watch adds the counts srv keeps (sessions by transport, hibernated
// sessions, federation streams), read from srv.Stats at each scrape.
func (m *Metrics) Watch(srv *xmpp.Server) {
	m.reg.MustRegister(serverCollector{srv})
}

// WatchBOSH adds the number of open BOSH sessions, as bosh.Handler counts
// them (unauthenticated ones included).
func (m *Metrics) WatchBOSH(h interface{ Sessions() int }) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "bosh_sessions",
		Help: "Open BOSH sessions (XEP-0124), signed in or not.",
	}, func() float64 { return float64(h.Sessions()) }))
}

// A Store is a storage.Store that times each call of the store it wraps
// (store.go, generated).
type Store struct {
	next    storage.Store
	observe [len(storeOperations)]prometheus.Observer
}

var _ storage.Store = (*Store)(nil)

// WrapStore returns st timed per operation. Wrap only when metrics are on:
// a bare store costs nothing.
func (m *Metrics) WrapStore(st storage.Store) *Store {
	s := &Store{next: st}
	for i, op := range storeOperations {
		s.observe[i] = m.storage.WithLabelValues(op)
	}
	return s
}

// Close closes the wrapped store.
func (s *Store) Close() error { return s.next.Close() }

// Unwrap is the store s times.
func (s *Store) Unwrap() storage.Store { return s.next }

var (
	sessionsDesc = prometheus.NewDesc(Namespace+"_sessions",
		"Bound client sessions by transport (tcp, directtls, websocket, bosh), hibernated ones included.",
		[]string{"transport"}, nil)
	hibernatedDesc = prometheus.NewDesc(Namespace+"_sessions_hibernated",
		"Sessions waiting for their client to resume them (XEP-0198).", nil, nil)
	s2sDesc = prometheus.NewDesc(Namespace+"_s2s_streams",
		"Server-to-server streams: in (opened by other servers), out (opened by this one).",
		[]string{"direction"}, nil)
)

// serverCollector reads the server's own counts when scraped.
type serverCollector struct{ srv *xmpp.Server }

func (c serverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sessionsDesc
	ch <- hibernatedDesc
	ch <- s2sDesc
}

func (c serverCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	for _, t := range []struct {
		name string
		n    int
	}{{"tcp", st.TCP}, {"directtls", st.DirectTLS}, {"websocket", st.WebSocket}, {"bosh", st.BOSH}} {
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(t.n), t.name)
	}
	ch <- prometheus.MustNewConstMetric(hibernatedDesc, prometheus.GaugeValue, float64(st.Hibernated))
	ch <- prometheus.MustNewConstMetric(s2sDesc, prometheus.GaugeValue, float64(st.S2SIn), "in")
	ch <- prometheus.MustNewConstMetric(s2sDesc, prometheus.GaugeValue, float64(st.S2SOut), "out")
}
