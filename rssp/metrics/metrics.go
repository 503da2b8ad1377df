// Package metrics is the RSSP's Prometheus instrumentation: the counters
// and histograms that the HTTP front (server.Options.Metrics) and the
// service (service.Deps.Metrics) feed, and the handler that the separate
// metrics listener serves. Each Metrics has a registry of its own, so two
// servers in one process (tests) do not mix their figures.
//
// Labels are bounded: the route is the router's pattern (never the raw
// path), the status an HTTP code, the key type and SCAL the credential's,
// the factor "pin" or "otp". Nothing that names a user or a credential
// becomes a label.
package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/store"
)

// Metrics holds the RSSP's collectors.
type Metrics struct {
	reg *prometheus.Registry

	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	signatures   *prometheus.CounterVec
	factorFails  *prometheus.CounterVec
	locks        prometheus.Counter
	auditAppends prometheus.Counter
	auditErrors  prometheus.Counter
	storeErrors  *prometheus.CounterVec
	internal     prometheus.Counter
}

// New makes the collectors and registers them, with the Go runtime's and
// the process's, in a new registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rssp_http_requests_total",
			Help: "HTTP requests answered, by route (the CSC or OAuth2 method's path pattern) and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rssp_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		signatures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rssp_signatures_total",
			Help: "Signatures made, by key type (rsa-2048, ec-p256, ...) and the credential's SCAL.",
		}, []string{"key_type", "scal"}),
		factorFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rssp_factor_failures_total",
			Help: "Wrong authorization factors given for a credential, by factor (pin, otp).",
		}, []string{"factor"}),
		locks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rssp_credential_locks_total",
			Help: "Credentials locked by a failure that reached the retry limit.",
		}),
		auditAppends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rssp_audit_appends_total",
			Help: "Rows appended to the audit log.",
		}),
		auditErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rssp_audit_append_errors_total",
			Help: "Audit rows that could not be written (the operation they belonged to failed with them, or was logged).",
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rssp_store_errors_total",
			Help: "Database failures (not refusals such as an unknown token), by store method and kind: full (no space left) or other.",
		}, []string{"op", "kind"}),
		internal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rssp_internal_errors_total",
			Help: "Requests answered 500: a failure of the database, the key backend or the program (the log says which).",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.signatures, m.factorFails, m.locks,
		m.auditAppends, m.auditErrors, m.storeErrors, m.internal,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveRequest counts one answered request.
func (m *Metrics) ObserveRequest(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// StoreFailure counts a failure of the database in the store method op
// (the callback of store.Observe).
func (m *Metrics) StoreFailure(op string, err error) {
	kind := "other"
	if errors.Is(err, store.ErrFull) {
		kind = "full"
	}
	m.storeErrors.WithLabelValues(op, kind).Inc()
}

// InternalError counts a request answered 500 (server.Metrics).
func (m *Metrics) InternalError() { m.internal.Inc() }

// Signed counts n signatures (service.Metrics).
func (m *Metrics) Signed(keyType string, scal, n int) {
	m.signatures.WithLabelValues(keyType, strconv.Itoa(scal)).Add(float64(n))
}

// FactorFailed counts a wrong factor and the lock it caused (service.Metrics).
func (m *Metrics) FactorFailed(factor string, locked bool) {
	m.factorFails.WithLabelValues(factor).Inc()
	if locked {
		m.locks.Inc()
	}
}

// AuditAppended counts an audit row written or lost (service.Metrics).
func (m *Metrics) AuditAppended(err error) {
	if err != nil {
		m.auditErrors.Inc()
		return
	}
	m.auditAppends.Inc()
}

// WatchPool exports a backend's session pool: sessions owned and in use
// (gauges), borrows that waited and that gave up (counters).
func (m *Metrics) WatchPool(backend string, p keystore.Pooled) {
	labels := prometheus.Labels{"backend": backend}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rssp_keystore_sessions", Help: "Sessions the key backend owns.", ConstLabels: labels,
		}, func() float64 { return float64(p.PoolStats().Size) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rssp_keystore_sessions_in_use", Help: "Sessions of the key backend borrowed now.", ConstLabels: labels,
		}, func() float64 { return float64(p.PoolStats().InUse) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "rssp_keystore_session_waits_total", Help: "Operations that found no idle session and waited for one.", ConstLabels: labels,
		}, func() float64 { return float64(p.PoolStats().Waits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "rssp_keystore_session_wait_timeouts_total", Help: "Operations that gave up waiting for a session.", ConstLabels: labels,
		}, func() float64 { return float64(p.PoolStats().Timeouts) }),
	)
}
