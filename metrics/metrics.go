// Package metrics owns policyca's Prometheus metrics: one registry per
// process, served on a separate listener (never on the ACME port), with the
// collectors the CA's parts report to. docs/metrics.md lists them with the
// queries an operator's dashboard needs.
package metrics

import (
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Latency buckets from 100 µs (a policy decision, a cached read) to 30 s
// (a validation that times out).
var buckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Metrics are the collectors of one process.
type Metrics struct {
	Registry *prometheus.Registry

	// HTTP requests by endpoint (ACME resource, admin, health…) and status.
	Requests        *prometheus.CounterVec
	RequestDuration *prometheus.HistogramVec
	// Validations by challenge type and result (valid or the problem kind).
	Validation *prometheus.HistogramVec
	// Policy decisions by stage and result (allow, deny, error).
	PolicyEval *prometheus.HistogramVec
	// Signatures by key backend (soft, pkcs11) and result.
	Sign *prometheus.HistogramVec
	// Store operations by name and result.
	Store *prometheus.HistogramVec
	// Issuances by provisioner; refusals by provisioner, stage and reason
	// (the problem kind).
	Issuances *prometheus.CounterVec
	Refusals  *prometheus.CounterVec
	// PolicyRevision is 1 for the bundle revision in force.
	PolicyRevision *prometheus.GaugeVec
	// PolicyLoadFailures counts refused bundles.
	PolicyLoadFailures prometheus.Counter
}

// New makes the collectors and registers them with the Go and process
// collectors in a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "policyca_http_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "policyca_http_request_duration_seconds", Help: "HTTP request latency by endpoint.", Buckets: buckets,
		}, []string{"endpoint"}),
		Validation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "policyca_validation_duration_seconds", Help: "Challenge validations by type and result.", Buckets: buckets,
		}, []string{"type", "result"}),
		PolicyEval: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "policyca_policy_evaluation_duration_seconds", Help: "Policy decisions by stage and result.", Buckets: buckets,
		}, []string{"stage", "result"}),
		Sign: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "policyca_sign_duration_seconds", Help: "Signatures with the issuing key by backend and result.", Buckets: buckets,
		}, []string{"backend", "result"}),
		Store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "policyca_store_operation_duration_seconds", Help: "Store operations by name and result.", Buckets: buckets,
		}, []string{"op", "result"}),
		Issuances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "policyca_issuances_total", Help: "Certificates issued by provisioner.",
		}, []string{"provisioner"}),
		Refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "policyca_refusals_total", Help: "Refused orders and signatures by provisioner, stage and reason.",
		}, []string{"provisioner", "stage", "reason"}),
		PolicyRevision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "policyca_policy_bundle_info",
			Help: "1 for the policy bundle revision in force; name_rules is go when its name rules are the default's and run in Go, rego otherwise.",
		}, []string{"revision", "name_rules"}),
		PolicyLoadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "policyca_policy_bundle_load_failures_total", Help: "Policy bundles refused (load, compile, verify or smoke test failed).",
		}),
	}
	m.Registry.MustRegister(m.Requests, m.RequestDuration, m.Validation, m.PolicyEval, m.Sign, m.Store,
		m.Issuances, m.Refusals, m.PolicyRevision, m.PolicyLoadFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetPolicyRevision records the revision in force, and whether its name
// rules run in Go.
func (m *Metrics) SetPolicyRevision(rev string, nameRulesInGo bool) {
	nameRules := "rego"
	if nameRulesInGo {
		nameRules = "go"
	}
	m.PolicyRevision.Reset()
	m.PolicyRevision.WithLabelValues(rev, nameRules).Set(1)
}

// GaugeFunc registers a gauge computed at scrape time (e.g. signer health).
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Contention profiling rates set by Handler(true): one mutex contention
// event in MutexProfileFraction is recorded, and about one blocking event
// per BlockProfileRate of time spent blocked. Off (0) until pprof is
// configured, as Go's defaults are.
const (
	MutexProfileFraction = 100
	BlockProfileRate     = 100 * time.Microsecond
)

// Handler serves /metrics, and with withPprof the net/http/pprof endpoints
// under /debug/pprof/ (CPU, heap, goroutine, mutex and block profiles
// under load); withPprof also turns on the mutex and block profilers,
// whose profiles are empty otherwise.
func (m *Metrics) Handler(withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	if withPprof {
		runtime.SetMutexProfileFraction(MutexProfileFraction)
		runtime.SetBlockProfileRate(int(BlockProfileRate))
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
