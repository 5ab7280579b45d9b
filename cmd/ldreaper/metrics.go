package main

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/reconciler"
)

// metrics are ldreaper's Prometheus series, on a registry of their own (no
// global default registry).
type metrics struct {
	reg            *prometheus.Registry
	runs           *prometheus.CounterVec
	runDuration    prometheus.Histogram
	lastSuccess    prometheus.Gauge
	changes        *prometheus.CounterVec
	sourceItems    *prometheus.GaugeVec
	sourceComplete *prometheus.GaugeVec
	ownedEnvs      prometheus.Gauge
	leader         prometheus.Gauge
	generation     prometheus.Gauge
	guardTrips     *prometheus.CounterVec
	guardTripped   *prometheus.GaugeVec
	ldRequests     *prometheus.CounterVec
	ldRequestTime  *prometheus.HistogramVec
	rateRemaining  *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ldreaper_runs_total", Help: "Reconciliation runs by result (success, guarded, error).",
		}, []string{"result"}),
		runDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ldreaper_run_duration_seconds", Help: "Duration of reconciliation runs.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ldreaper_last_success_timestamp_seconds", Help: "Unix time of the last run that finished without error.",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ldreaper_changes_total", Help: "Creates and deletes by status (planned, applied, failed, held) and reason.",
		}, []string{"op", "status", "reason"}),
		sourceItems: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ldreaper_source_items", Help: "Items the source listed in the last run.",
		}, []string{"source"}),
		sourceComplete: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ldreaper_source_complete", Help: "1 when the source's last list was complete, else 0.",
		}, []string{"source"}),
		ownedEnvs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ldreaper_owned_environments", Help: "LD environments carrying the managed tag at the last run.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ldreaper_leader", Help: "1 while this replica holds the leader lock.",
		}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ldreaper_fencing_generation", Help: "Fencing generation of the lease this replica last held.",
		}),
		guardTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ldreaper_guard_trips_total", Help: "Runs in which a safety guard held deletions, by guard.",
		}, []string{"guard"}),
		guardTripped: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ldreaper_guard_tripped", Help: "1 when the guard held deletions in the last run.",
		}, []string{"guard"}),
		ldRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ldreaper_ld_requests_total", Help: "HTTP attempts to the LD API by route and status (0: no response).",
		}, []string{"route", "status"}),
		ldRequestTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ldreaper_ld_request_duration_seconds", Help: "Duration of HTTP attempts to the LD API.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"route"}),
		rateRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ldreaper_ld_ratelimit_remaining", Help: "Last seen LD rate-limit remaining (scope global or a route); -1 unknown.",
		}, []string{"scope"}),
	}
	m.reg.MustRegister(m.runs, m.runDuration, m.lastSuccess, m.changes, m.sourceItems, m.sourceComplete,
		m.ownedEnvs, m.leader, m.generation, m.guardTrips, m.guardTripped, m.ldRequests, m.ldRequestTime,
		m.rateRemaining, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{resultSuccess, resultGuarded, resultError} {
		m.runs.WithLabelValues(r)
	}
	return m
}

// observeRequest is the ldclient Observe hook.
func (m *metrics) observeRequest(r ldclient.RequestRecord) {
	m.ldRequests.WithLabelValues(r.Route, strconv.Itoa(r.Status)).Inc()
	m.ldRequestTime.WithLabelValues(r.Route).Observe(r.Duration.Seconds())
}

// Run results, the label values of ldreaper_runs_total and /status.
const (
	resultSuccess = "success"
	resultGuarded = "guarded"
	resultError   = "error"
)

// runResult classifies a run the way --once's exit code does: an error (the
// run, a source or an action failed) wins over a guard that held deletes.
func runResult(rep reconciler.Report) string {
	switch rep.ExitCode(false) {
	case reconciler.ExitError:
		return resultError
	case reconciler.ExitGuarded:
		return resultGuarded
	}
	return resultSuccess
}

// observeRun records a finished run.
func (m *metrics) observeRun(rep reconciler.Report, rl ldclient.RateLimitState) {
	result := runResult(rep)
	m.runs.WithLabelValues(result).Inc()
	m.runDuration.Observe(rep.FinishedAt.Sub(rep.StartedAt).Seconds())
	if result != resultError {
		m.lastSuccess.Set(float64(rep.FinishedAt.Unix()))
	}
	for _, a := range rep.Actions {
		m.changes.WithLabelValues(a.Op, a.Status, a.Reason).Inc()
	}
	for _, s := range rep.Sources {
		m.sourceItems.WithLabelValues(s.Name).Set(float64(s.Items))
		m.sourceComplete.WithLabelValues(s.Name).Set(boolFloat(s.Complete))
	}
	if rep.Error == "" {
		m.ownedEnvs.Set(float64(rep.Summary.Owned))
	}
	for _, g := range rep.Guards {
		m.guardTripped.WithLabelValues(g.Name).Set(boolFloat(g.Tripped))
		if g.Tripped {
			m.guardTrips.WithLabelValues(g.Name).Inc()
		}
	}
	m.rateRemaining.WithLabelValues("global").Set(float64(rl.Global.Remaining))
	for route, w := range rl.Routes {
		m.rateRemaining.WithLabelValues(route).Set(float64(w.Remaining))
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
