package ldfake_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

// limitHeaders picks the rate-limit headers out of a reply; "-" marks an
// absent header.
func limitHeaders(r reply) [4]string {
	var got [4]string
	for i, name := range []string{"X-Ratelimit-Global-Remaining", "X-Ratelimit-Route-Remaining", "X-Ratelimit-Reset", "Retry-After"} {
		got[i] = "-"
		if v := r.header.Values(name); len(v) > 0 {
			got[i] = v[0]
		}
	}
	return got
}

func TestRateLimit(t *testing.T) {
	clock := newClock()
	clock.Advance(2500 * time.Millisecond) // mid-window: the reset is the window end, not now+window
	s := newServer(t, ldfake.Options{
		Now: clock.Now, RateWindow: 10 * time.Second, GlobalBudget: 4, RouteBudget: 2,
		RouteBudgets: map[string]int{ldfake.RouteGetEnvironment: 3}, RetryAfter: true,
	}, "production", "pr-1")
	reset := strconv.FormatInt(epoch.Add(10*time.Second).UnixMilli(), 10)
	nextReset := strconv.FormatInt(epoch.Add(20*time.Second).UnixMilli(), 10)
	list, get := envsPath, envsPath+"/production"
	steps := []struct {
		target     string
		advance    time.Duration
		wantStatus int
		want       [4]string
	}{
		{list, 0, 200, [4]string{"3", "1", reset, "-"}},
		{list, 0, 200, [4]string{"2", "0", reset, "-"}},
		{list, 0, 429, [4]string{"2", "0", reset, "8"}}, // route budget spent; 7.5s left rounds up
		{get, 0, 200, [4]string{"1", "2", reset, "-"}},  // per-route override, separate count
		{get, time.Second, 200, [4]string{"0", "1", reset, "-"}},
		{get, 0, 429, [4]string{"0", "1", reset, "7"}}, // global budget spent
		{list, 6 * time.Second, 429, [4]string{"0", "0", reset, "1"}},
		{list, 500 * time.Millisecond, 200, [4]string{"3", "1", nextReset, "-"}}, // new window
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		r := call(t, s, http.MethodGet, st.target, readerToken, "")
		if r.status != st.wantStatus {
			t.Errorf("step %d: status %d (%s), want %d", i, r.status, r.body, st.wantStatus)
		}
		if diff := cmp.Diff(st.want, limitHeaders(r)); diff != "" {
			t.Errorf("step %d: headers [global route reset retry-after] (-want +got):\n%s", i, diff)
		}
		if r.status == http.StatusTooManyRequests {
			want := `"code":"rate_limited","message":"You've exceeded the API rate limit. Try again later."`
			if got := string(r.body); !strings.Contains(got, want) {
				t.Errorf("step %d: 429 body %s, want %s", i, got, want)
			}
		}
	}
}

func TestRateLimitHeadersOnlyWhereLimited(t *testing.T) {
	tests := []struct {
		name string
		opts ldfake.Options
		want [4]string
	}{
		{"no budgets, no headers", ldfake.Options{}, [4]string{"-", "-", "-", "-"}},
		{"global only", ldfake.Options{GlobalBudget: 5}, [4]string{"4", "-", "1795341610000", "-"}},
		{"route override only", ldfake.Options{RouteBudgets: map[string]int{ldfake.RouteListEnvironments: 9}}, [4]string{"-", "8", "1795341610000", "-"}},
		{"other route limited", ldfake.Options{RouteBudgets: map[string]int{ldfake.RouteDeleteEnvironment: 9}}, [4]string{"-", "-", "-", "-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.opts, "production")
			r := call(t, s, http.MethodGet, envsPath, readerToken, "")
			if diff := cmp.Diff(tt.want, limitHeaders(r)); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRateLimitIgnoresUnauthenticated(t *testing.T) {
	s := newServer(t, ldfake.Options{GlobalBudget: 1}, "production")
	for range 3 {
		if r := call(t, s, http.MethodGet, envsPath, "api-bad", ""); r.status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", r.status)
		}
	}
	if r := call(t, s, http.MethodGet, envsPath, readerToken, ""); r.status != http.StatusOK {
		t.Errorf("first authenticated request: %d, want 200 (401s must not spend the budget)", r.status)
	}
}
