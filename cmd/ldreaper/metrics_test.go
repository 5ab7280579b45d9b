package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/reconciler"
)

// scrapeSeries GETs /metrics from h and returns every ldreaper_ sample as
// `name{label="value",…}` → value, parsed with Prometheus's own text parser.
// Histograms contribute their _count and _sum.
func scrapeSeries(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body.String())
	}
	return parseSeries(t, rec.Body.String())
}

func parseSeries(t *testing.T, text string) map[string]float64 {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, text)
	}
	out := map[string]float64{}
	for name, f := range families {
		if !strings.HasPrefix(name, "ldreaper_") {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := seriesLabels(m.GetLabel())
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[name+labels] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name+labels] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"+labels] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum"+labels] = m.GetHistogram().GetSampleSum()
			default:
				t.Fatalf("series %s has unexpected type %s", name, f.GetType())
			}
		}
	}
	return out
}

func seriesLabels(pairs []*dto.LabelPair) string {
	if len(pairs) == 0 {
		return ""
	}
	parts := make([]string, 0, len(pairs))
	for _, p := range pairs {
		parts = append(parts, fmt.Sprintf("%s=%q", p.GetName(), p.GetValue()))
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// TestMetricsSeries feeds runs and LD requests to the metrics and checks
// every ldreaper_ series a scrape returns.
func TestMetricsSeries(t *testing.T) {
	started := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	okRun := reconciler.Report{
		StartedAt: started, FinishedAt: started.Add(1500 * time.Millisecond),
		Sources: []reconciler.SourceReport{{Name: "previews", Items: 3, Complete: true}},
		Actions: []reconciler.ActionReport{
			{Op: "create", Key: "pr-1", Status: reconciler.StatusApplied},
			{Op: "create", Key: "pr-2", Status: reconciler.StatusApplied},
			{Op: "delete", Key: "pr-0", Status: reconciler.StatusHeld, Reason: reconciler.ReasonOrphanGrace},
		},
		Guards:  []reconciler.GuardReport{{Name: reconciler.GuardOrphanGrace, Tripped: true}, {Name: "max_deletes"}},
		Summary: reconciler.Summary{Create: 2, Held: 1, Keep: 1, Owned: 4},
	}
	guardedRun := reconciler.Report{
		StartedAt: started.Add(time.Minute), FinishedAt: started.Add(time.Minute + 500*time.Millisecond),
		Sources: []reconciler.SourceReport{{Name: "previews", Items: 0, Complete: true}},
		Actions: []reconciler.ActionReport{
			{Op: "delete", Key: "pr-1", Status: reconciler.StatusHeld, Reason: reconciler.ReasonMaxDeletes},
		},
		Guards:  []reconciler.GuardReport{{Name: reconciler.GuardOrphanGrace}, {Name: "max_deletes", Tripped: true}},
		Summary: reconciler.Summary{Held: 1, Owned: 5},
	}
	failedRun := reconciler.Report{
		StartedAt: started.Add(2 * time.Minute), FinishedAt: started.Add(2*time.Minute + 250*time.Millisecond),
		Error: "list environments: connection refused",
	}
	rateLimits := ldclient.RateLimitState{
		Global: ldclient.RateLimitWindow{Remaining: 95},
		Routes: map[string]ldclient.RateLimitWindow{ldclient.RouteCreateEnvironment: {Remaining: 3}},
	}
	requests := []ldclient.RequestRecord{
		{Route: ldclient.RouteListEnvironments, Status: 200, Duration: 100 * time.Millisecond},
		{Route: ldclient.RouteCreateEnvironment, Status: 201, Duration: 200 * time.Millisecond},
		{Route: ldclient.RouteCreateEnvironment, Status: 429, Duration: 50 * time.Millisecond},
		{Route: ldclient.RouteCreateEnvironment, Status: 0, Duration: 250 * time.Millisecond},
	}
	// Series every scenario shares: the requests above and no leadership.
	common := map[string]float64{
		`ldreaper_ld_requests_total{route="list_environments",status="200"}`:     1,
		`ldreaper_ld_requests_total{route="create_environment",status="201"}`:    1,
		`ldreaper_ld_requests_total{route="create_environment",status="429"}`:    1,
		`ldreaper_ld_requests_total{route="create_environment",status="0"}`:      1,
		`ldreaper_ld_request_duration_seconds_count{route="list_environments"}`:  1,
		`ldreaper_ld_request_duration_seconds_sum{route="list_environments"}`:    0.1,
		`ldreaper_ld_request_duration_seconds_count{route="create_environment"}`: 3,
		`ldreaper_ld_request_duration_seconds_sum{route="create_environment"}`:   0.5,
		`ldreaper_leader`:             0,
		`ldreaper_fencing_generation`: 0,
	}
	tests := []struct {
		name string
		runs []reconciler.Report
		want map[string]float64
	}{
		{
			name: "no run yet",
			want: map[string]float64{
				`ldreaper_runs_total{result="success"}`:   0,
				`ldreaper_runs_total{result="guarded"}`:   0,
				`ldreaper_runs_total{result="error"}`:     0,
				`ldreaper_run_duration_seconds_count`:     0,
				`ldreaper_run_duration_seconds_sum`:       0,
				`ldreaper_last_success_timestamp_seconds`: 0,
				`ldreaper_owned_environments`:             0,
			},
		},
		{
			name: "successful run",
			runs: []reconciler.Report{okRun},
			want: map[string]float64{
				`ldreaper_runs_total{result="success"}`:                                   1,
				`ldreaper_runs_total{result="guarded"}`:                                   0,
				`ldreaper_runs_total{result="error"}`:                                     0,
				`ldreaper_run_duration_seconds_count`:                                     1,
				`ldreaper_run_duration_seconds_sum`:                                       1.5,
				`ldreaper_last_success_timestamp_seconds`:                                 float64(okRun.FinishedAt.Unix()),
				`ldreaper_changes_total{op="create",reason="",status="applied"}`:          2,
				`ldreaper_changes_total{op="delete",reason="orphan-grace",status="held"}`: 1,
				`ldreaper_source_items{source="previews"}`:                                3,
				`ldreaper_source_complete{source="previews"}`:                             1,
				`ldreaper_owned_environments`:                                             4,
				`ldreaper_guard_trips_total{guard="orphan_grace"}`:                        1,
				`ldreaper_guard_tripped{guard="orphan_grace"}`:                            1,
				`ldreaper_guard_tripped{guard="max_deletes"}`:                             0,
				`ldreaper_ld_ratelimit_remaining{scope="global"}`:                         95,
				`ldreaper_ld_ratelimit_remaining{scope="create_environment"}`:             3,
			},
		},
		{
			name: "success, guarded, then failed run",
			runs: []reconciler.Report{okRun, guardedRun, failedRun},
			want: map[string]float64{
				`ldreaper_runs_total{result="success"}`: 1,
				`ldreaper_runs_total{result="guarded"}`: 1,
				`ldreaper_runs_total{result="error"}`:   1,
				`ldreaper_run_duration_seconds_count`:   3,
				`ldreaper_run_duration_seconds_sum`:     2.25,
				// A guarded run succeeded; the failed one moves neither the
				// last success nor the owned count.
				`ldreaper_last_success_timestamp_seconds`:                                 float64(guardedRun.FinishedAt.Unix()),
				`ldreaper_changes_total{op="create",reason="",status="applied"}`:          2,
				`ldreaper_changes_total{op="delete",reason="orphan-grace",status="held"}`: 1,
				`ldreaper_changes_total{op="delete",reason="max-deletes",status="held"}`:  1,
				`ldreaper_source_items{source="previews"}`:                                0,
				`ldreaper_source_complete{source="previews"}`:                             1,
				`ldreaper_owned_environments`:                                             5,
				`ldreaper_guard_trips_total{guard="orphan_grace"}`:                        1,
				`ldreaper_guard_trips_total{guard="max_deletes"}`:                         1,
				`ldreaper_guard_tripped{guard="orphan_grace"}`:                            0,
				`ldreaper_guard_tripped{guard="max_deletes"}`:                             1,
				`ldreaper_ld_ratelimit_remaining{scope="global"}`:                         95,
				`ldreaper_ld_ratelimit_remaining{scope="create_environment"}`:             3,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics()
			for _, r := range requests {
				m.observeRequest(r)
			}
			for _, rep := range tc.runs {
				m.observeRun(rep, rateLimits)
			}
			want := maps.Clone(common)
			maps.Copy(want, tc.want)
			got := scrapeSeries(t, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ldreaper_ series (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunResult(t *testing.T) {
	tests := []struct {
		name string
		rep  reconciler.Report
		want string
	}{
		{"clean", reconciler.Report{}, resultSuccess},
		{"permanent exclusion held", reconciler.Report{Actions: []reconciler.ActionReport{{Status: reconciler.StatusHeld, Reason: reconciler.ReasonProtected}}}, resultSuccess},
		{"cap held deletes", reconciler.Report{Actions: []reconciler.ActionReport{{Status: reconciler.StatusHeld, Reason: reconciler.ReasonMaxDeletePercent}}}, resultGuarded},
		{"failed source", reconciler.Report{Sources: []reconciler.SourceReport{{Name: "a", Error: "timeout"}}}, resultError},
		{"failed action beats guard", reconciler.Report{
			Summary: reconciler.Summary{Failed: 1},
			Actions: []reconciler.ActionReport{{Status: reconciler.StatusHeld, Reason: reconciler.ReasonMaxDeletes}},
		}, resultError},
		{"run error", reconciler.Report{Error: "boom"}, resultError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := runResult(tc.rep); got != tc.want {
				t.Errorf("runResult = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDaemonMetrics checks the series the daemon itself sets: leadership,
// the fencing generation, and a run's outcome, through its /metrics.
func TestDaemonMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newFakeLease(42)
		el := &fakeElector{results: []acquireResult{{lease: l}, {err: errNotLeaderForTest}}}
		r := &fakeRunner{run: func(_ context.Context, opts reconciler.RunOptions) (reconciler.Report, error) {
			start := time.Now()
			time.Sleep(3 * time.Second)
			return reconciler.Report{Generation: opts.Generation, StartedAt: start, FinishedAt: time.Now(), Summary: reconciler.Summary{Owned: 2}}, nil
		}}
		o := testDaemonOptions(t, r, el)
		o.RateLimits = func() ldclient.RateLimitState {
			return ldclient.RateLimitState{Global: ldclient.RateLimitWindow{Remaining: -1}}
		}
		d := newDaemon(o)
		stop, stopped := startDaemon(d)
		time.Sleep(3 * time.Second)
		synctest.Wait()

		type view struct {
			Leader, Generation, Success, DurationSum, LastSuccess, Owned, RateRemaining float64
		}
		look := func() view {
			s := scrapeSeries(t, d.routes())
			return view{
				s[`ldreaper_leader`], s[`ldreaper_fencing_generation`], s[`ldreaper_runs_total{result="success"}`],
				s[`ldreaper_run_duration_seconds_sum`], s[`ldreaper_last_success_timestamp_seconds`],
				s[`ldreaper_owned_environments`], s[`ldreaper_ld_ratelimit_remaining{scope="global"}`],
			}
		}
		leading := view{1, 42, 1, 3, float64(time.Now().Unix()), 2, -1}
		if diff := cmp.Diff(leading, look()); diff != "" {
			t.Errorf("while leading (-want +got):\n%s", diff)
		}
		l.lose()
		synctest.Wait()
		following := leading
		following.Leader = 0 // the generation stays: it names the last lease held
		if diff := cmp.Diff(following, look()); diff != "" {
			t.Errorf("after losing the lease (-want +got):\n%s", diff)
		}
		stop()
		<-stopped
	})
}
