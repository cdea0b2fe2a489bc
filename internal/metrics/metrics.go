// Package metrics defines Usher's Prometheus metrics and serves them. Each
// server builds its own Metrics on its own registry (no global state); the
// transports record through narrow interfaces of their own that *Metrics
// satisfies, so they never see a Prometheus type. A nil *Metrics is valid
// and records nothing, which is what a server without --metrics-addr uses.
//
// The metrics (all prefixed usher_):
//
//	registrations_total{transport,outcome}           counter
//	registration_duration_seconds{transport}          histogram, request to finished operation
//	mqtt_connections{kind}                           gauge, admitted sessions: dps or hub
//	throttled_requests_total{transport,limit}         counter
//	store_operation_duration_seconds{operation}       histogram
//	http_requests_total{route,status}                 counter
//	http_request_duration_seconds{route}              histogram
//
// plus the Go runtime and process collectors (go_*, process_*).
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Label values used in advance, so that a scrape shows every series at 0
// before the first event.
var (
	transports = []string{"https", "mqtt"}
	outcomes   = []string{"assigned", "failed", "disabled", "unauthenticated", "throttled", "invalid", "unavailable", "error"}
)

// latencyBuckets suit requests that take from a millisecond to seconds.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// storeBuckets suit store calls: from a tenth of a millisecond to a second.
var storeBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// Metrics holds one server's metrics and their registry.
type Metrics struct {
	reg                 *prometheus.Registry
	registrations       *prometheus.CounterVec
	registrationSeconds *prometheus.HistogramVec
	mqttConnections     *prometheus.GaugeVec
	throttled           *prometheus.CounterVec
	storeSeconds        *prometheus.HistogramVec
	httpRequests        *prometheus.CounterVec
	httpSeconds         *prometheus.HistogramVec
}

// New returns metrics registered on a registry of their own, with the Go
// runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_registrations_total",
			Help: "Device registration requests by transport and outcome (assigned, failed, disabled, unauthenticated, throttled, invalid, unavailable, error).",
		}, []string{"transport", "outcome"}),
		registrationSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usher_registration_duration_seconds",
			Help:    "Time from a registration request to its finished operation (or its refusal), by transport.",
			Buckets: latencyBuckets,
		}, []string{"transport"}),
		mqttConnections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usher_mqtt_connections",
			Help: "Admitted MQTT connections by kind: dps (registering devices) or hub (devices of the built-in hub).",
		}, []string{"kind"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_throttled_requests_total",
			Help: "Requests refused by a rate or connection limit, by transport and limit.",
		}, []string{"transport", "limit"}),
		storeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usher_store_operation_duration_seconds",
			Help:    "Duration of store calls made by provisioning and the audit log, by operation.",
			Buckets: storeBuckets,
		}, []string{"operation"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_http_requests_total",
			Help: "HTTPS requests by route class and status code.",
		}, []string{"route", "status"}),
		httpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usher_http_request_duration_seconds",
			Help:    "HTTPS request duration by route class.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.registrations, m.registrationSeconds, m.mqttConnections, m.throttled, m.storeSeconds, m.httpRequests, m.httpSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, t := range transports {
		for _, o := range outcomes {
			m.registrations.WithLabelValues(t, o)
		}
		m.registrationSeconds.WithLabelValues(t)
	}
	m.mqttConnections.WithLabelValues("dps")
	m.mqttConnections.WithLabelValues("hub")
	return m
}

// Handler serves the metrics in Prometheus's text format at /metrics, and
// 404 elsewhere.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	return mux
}

// Registration records a registration request that ended with outcome
// (dps.RegistrationOutcome) after d.
func (m *Metrics) Registration(transport, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.registrations.WithLabelValues(transport, outcome).Inc()
	m.registrationSeconds.WithLabelValues(transport).Observe(d.Seconds())
}

// Throttled records a request refused by a limit (the rate limiter's
// OnThrottle hook), e.g. ("https", "per-address").
func (m *Metrics) Throttled(transport, limit string) {
	if m == nil {
		return
	}
	m.throttled.WithLabelValues(transport, limit).Inc()
}

// Connection adds delta (+1 on admission, -1 on close) to the gauge of
// MQTT connections of kind ("dps" or "hub").
func (m *Metrics) Connection(kind string, delta int) {
	if m == nil {
		return
	}
	m.mqttConnections.WithLabelValues(kind).Add(float64(delta))
}

// HTTPRequest records an HTTPS request of a route class answered with
// status after d.
func (m *Metrics) HTTPRequest(route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.httpRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.httpSeconds.WithLabelValues(route).Observe(d.Seconds())
}

// StoreOperation records a store call that took d.
func (m *Metrics) StoreOperation(operation string, d time.Duration) {
	if m == nil {
		return
	}
	m.storeSeconds.WithLabelValues(operation).Observe(d.Seconds())
}
