package ldclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRateLimitDelay(t *testing.T) {
	now := t0
	header := func(pairs ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(pairs); i += 2 {
			h.Set(pairs[i], pairs[i+1])
		}
		return h
	}
	reset := func(d time.Duration) string { return epochMillis(now.Add(d)) }
	tests := []struct {
		name    string
		header  http.Header
		maxWait time.Duration
		want    time.Duration
		wantOK  bool
	}{
		{"Retry-After seconds", header("Retry-After", "3"), time.Minute, 3 * time.Second, true},
		{"Retry-After zero waits the minimum", header("Retry-After", "0"), time.Minute, ms(100), true},
		{"Retry-After negative waits the minimum", header("Retry-After", "-5"), time.Minute, ms(100), true},
		{"Retry-After huge is capped", header("Retry-After", "99999999999999"), time.Minute, time.Minute, true},
		{"Retry-After HTTP date", header("Retry-After", now.Add(10*time.Second).Format(http.TimeFormat)), time.Minute, 10 * time.Second, true},
		{"Retry-After wins over the reset", header("Retry-After", "3", "X-Ratelimit-Reset", reset(20*time.Second)), time.Minute, 3 * time.Second, true},
		{"unparsable Retry-After falls back to the reset", header("Retry-After", "soon", "X-Ratelimit-Reset", reset(2*time.Second)), time.Minute, 2 * time.Second, true},
		{"reset in epoch milliseconds", header("X-Ratelimit-Reset", reset(1500*time.Millisecond)), time.Minute, ms(1500), true},
		{"reset in the past waits the minimum", header("X-Ratelimit-Reset", reset(-5*time.Second)), time.Minute, ms(100), true},
		{"negative reset waits the minimum", header("X-Ratelimit-Reset", "-1"), time.Minute, ms(100), true},
		{"zero reset waits the minimum", header("X-Ratelimit-Reset", "0"), time.Minute, ms(100), true},
		{"reset far ahead is capped", header("X-Ratelimit-Reset", reset(time.Hour)), time.Minute, time.Minute, true},
		{"reset in epoch seconds waits the cap", header("X-Ratelimit-Reset", fmt.Sprint(now.Add(5*time.Second).Unix())), time.Minute, time.Minute, true},
		{"minimum never exceeds the cap", header("X-Ratelimit-Reset", reset(-time.Second)), ms(10), ms(10), true},
		{"unparsable reset", header("X-Ratelimit-Reset", "tomorrow"), time.Minute, 0, false},
		{"no headers", header(), time.Minute, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := rateLimitDelay(tt.header, now, tt.maxWait)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("rateLimitDelay = %v, %t; want %v, %t", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzRateLimitDelay(f *testing.F) {
	f.Add("3", "", "", "")
	f.Add("", epochMillis(t0.Add(1500*time.Millisecond)), "0", "4")
	f.Add("Sat, 22 Nov 2026 10:00:10 GMT", "-1", "x", "")
	f.Add("-9223372036854775808", "9223372036854775807", "9223372036854775807", "-3")
	f.Add("", "1795000000", "", "0")
	f.Fuzz(func(t *testing.T, retryAfter, reset, globalRemaining, routeRemaining string) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		h.Set("X-Ratelimit-Reset", reset)
		h.Set("X-Ratelimit-Global-Remaining", globalRemaining)
		h.Set("X-Ratelimit-Route-Remaining", routeRemaining)
		const maxWait = time.Minute
		if d, ok := rateLimitDelay(h, t0, maxWait); ok && (d < minRateLimitWait || d > maxWait) {
			t.Fatalf("delay %v outside [%v, %v]", d, minRateLimitWait, maxWait)
		}
		limits := newRateLimits()
		limits.reserveAnyway(RouteGetEnvironment)
		limits.complete(RouteGetEnvironment, h)
		if d := limits.reserve(RouteGetEnvironment, t0, 0); d < 0 {
			t.Fatalf("negative pacing delay %v", d)
		}
		st := limits.state()
		if st.Global.Remaining < -1 || st.Routes[RouteGetEnvironment].Remaining < 0 && len(st.Routes) > 0 {
			t.Fatalf("impossible state %+v", st)
		}
	})
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name   string
		rand   float64
		n      int
		want   time.Duration
		maxCap time.Duration
	}{
		{"first retry, no jitter", 0, 0, ms(100), time.Minute},
		{"first retry, full jitter", 0.999, 0, ms(100) + time.Duration(0.999*float64(ms(100))), time.Minute},
		{"doubles", 0, 3, ms(800), time.Minute},
		{"capped", 0, 10, 500 * time.Millisecond, time.Second},
		{"huge retry counts do not overflow", 0, 200, 30 * time.Second, time.Minute},
		{"shift overflow is capped", 0, 40, 30 * time.Second, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{baseBackoff: DefaultBaseBackoff, maxWait: tt.maxCap, rand: func() float64 { return tt.rand }}
			if got := c.backoff(tt.n); got != tt.want {
				t.Errorf("backoff(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
}

func TestRateLimitedCallsWaitAndRetry(t *testing.T) {
	ok := reply(200, envJSON("k", "K"))
	limited := func(pairs ...string) http.HandlerFunc {
		return reply(429, `{"code":"rate_limited","message":"You've exceeded the API rate limit. Try again later."}`, pairs...)
	}
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		rand       float64
		mutate     func(*Options)
		wantSleeps []time.Duration
		wantCalls  int
		wantStatus int // of the final error, 0 for success
	}{
		{name: "reset in epoch milliseconds", handler: script(limited("X-Ratelimit-Reset", epochMillis(t0.Add(1500*time.Millisecond))), ok),
			wantSleeps: []time.Duration{ms(1500)}, wantCalls: 2},
		{name: "Retry-After", handler: script(limited("Retry-After", "2", "X-Ratelimit-Reset", epochMillis(t0.Add(time.Minute))), ok),
			wantSleeps: []time.Duration{2 * time.Second}, wantCalls: 2},
		{name: "jitter is added", rand: 0.5, handler: script(limited("X-Ratelimit-Reset", epochMillis(t0.Add(time.Second))), ok),
			wantSleeps: []time.Duration{ms(1100)}, wantCalls: 2},
		{name: "reset in the past", handler: script(limited("X-Ratelimit-Reset", epochMillis(t0.Add(-time.Hour))), ok),
			wantSleeps: []time.Duration{ms(100)}, wantCalls: 2},
		{name: "absurd reset waits MaxWait", handler: script(limited("X-Ratelimit-Reset", epochMillis(t0.Add(240*time.Hour))), ok),
			mutate: func(o *Options) { o.MaxWait = 5 * time.Second }, wantSleeps: []time.Duration{5 * time.Second}, wantCalls: 2},
		{name: "unusable headers back off", handler: script(limited("X-Ratelimit-Reset", "later"), limited(), ok),
			wantSleeps: []time.Duration{ms(100), ms(200)}, wantCalls: 3},
		{name: "429 budget is bounded", handler: limited("Retry-After", "1"),
			mutate:     func(o *Options) { o.RateLimitRetries = 2 },
			wantSleeps: []time.Duration{time.Second, time.Second}, wantCalls: 3, wantStatus: 429},
		{name: "429s do not use up the failure budget", handler: script(limited("Retry-After", "1"), limited("Retry-After", "1"), reply(500, ""), limited("Retry-After", "1"), ok),
			mutate:     func(o *Options) { o.MaxRetries = 1 },
			wantSleeps: []time.Duration{time.Second, time.Second, ms(100), time.Second}, wantCalls: 5},
		{name: "failures do not use up the 429 budget", handler: script(limited("Retry-After", "1"), reply(500, ""), reply(502, ""), limited("Retry-After", "1"), ok),
			mutate:     func(o *Options) { o.RateLimitRetries = 2 },
			wantSleeps: []time.Duration{time.Second, ms(100), ms(200), time.Second}, wantCalls: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.handler, func(o *Options) {
				o.Rand = func() float64 { return tt.rand }
				if tt.mutate != nil {
					tt.mutate(o)
				}
			})
			_, err := h.client.GetEnvironment(context.Background(), "p", "k")
			var apiErr *APIError
			switch {
			case tt.wantStatus == 0 && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantStatus != 0 && (!errors.As(err, &apiErr) || apiErr.Status != tt.wantStatus || apiErr.Code != "rate_limited"):
				t.Fatalf("error = %v, want a rate_limited %d", err, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantSleeps, h.clock.Sleeps()); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
			if n := len(h.rec.requests()); n != tt.wantCalls {
				t.Errorf("%d requests, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestPacing(t *testing.T) {
	reset := epochMillis(t0.Add(2 * time.Second))
	tests := []struct {
		name string
		// first answers the first GET; then the second call runs.
		first      http.HandlerFunc
		headroom   int
		secondCall func(c *Client) error
		wantSleeps []time.Duration
	}{
		{name: "route spent: wait for its reset",
			first:      reply(200, envJSON("k", "K"), "X-Ratelimit-Route-Remaining", "0", "X-Ratelimit-Reset", reset),
			wantSleeps: []time.Duration{2 * time.Second}},
		{name: "route above headroom: no wait",
			first: reply(200, envJSON("k", "K"), "X-Ratelimit-Route-Remaining", "1", "X-Ratelimit-Reset", reset)},
		{name: "route at headroom: wait",
			first: reply(200, envJSON("k", "K"), "X-Ratelimit-Route-Remaining", "2", "X-Ratelimit-Reset", reset), headroom: 2,
			wantSleeps: []time.Duration{2 * time.Second}},
		{name: "global spent: other routes wait too",
			first:      reply(200, envJSON("k", "K"), "X-Ratelimit-Global-Remaining", "0", "X-Ratelimit-Route-Remaining", "50", "X-Ratelimit-Reset", reset),
			secondCall: func(c *Client) error { _, err := c.DeleteEnvironment(context.Background(), "p", "k"); return err },
			wantSleeps: []time.Duration{2 * time.Second}},
		{name: "route spent: other routes do not wait",
			first:      reply(200, envJSON("k", "K"), "X-Ratelimit-Route-Remaining", "0", "X-Ratelimit-Reset", reset),
			secondCall: func(c *Client) error { _, err := c.DeleteEnvironment(context.Background(), "p", "k"); return err }},
		{name: "reset already past: no wait",
			first: reply(200, envJSON("k", "K"), "X-Ratelimit-Route-Remaining", "0", "X-Ratelimit-Reset", epochMillis(t0.Add(-time.Second)))},
		{name: "no reset header: no wait",
			first: reply(200, envJSON("k", "K"), "X-Ratelimit-Route-Remaining", "0")},
		{name: "far reset: wait is capped",
			first:      reply(200, envJSON("k", "K"), "X-Ratelimit-Route-Remaining", "0", "X-Ratelimit-Reset", epochMillis(t0.Add(time.Hour))),
			wantSleeps: []time.Duration{time.Minute}},
		{name: "negative headroom disables pacing", headroom: -1,
			first: reply(200, envJSON("k", "K"), "X-Ratelimit-Route-Remaining", "0", "X-Ratelimit-Reset", reset)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, byMethod{get: script(tt.first, reply(200, envJSON("k", "K"))), del: reply(204, "")},
				func(o *Options) { o.Headroom = tt.headroom })
			if _, err := h.client.GetEnvironment(context.Background(), "p", "k"); err != nil {
				t.Fatal(err)
			}
			second := tt.secondCall
			if second == nil {
				second = func(c *Client) error { _, err := c.GetEnvironment(context.Background(), "p", "k"); return err }
			}
			if err := second(h.client); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantSleeps, h.clock.Sleeps()); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
			if n := len(h.rec.requests()); n != 2 {
				t.Errorf("%d requests, want 2", n)
			}
		})
	}
}

func TestPacingWaitIsCanceled(t *testing.T) {
	h := newHarness(t, reply(200, envJSON("k", "K"), "X-Ratelimit-Route-Remaining", "0", "X-Ratelimit-Reset", epochMillis(t0.Add(time.Second))))
	if _, err := h.client.GetEnvironment(context.Background(), "p", "k"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.clock.onSleep = func(ctx context.Context, _ time.Duration) error {
		cancel()
		return ctx.Err()
	}
	if _, err := h.client.GetEnvironment(ctx, "p", "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if n := len(h.rec.requests()); n != 1 {
		t.Errorf("%d requests, want 1: the paced call must not be sent", n)
	}
}

func TestRateLimitsState(t *testing.T) {
	reset := t0.Add(3 * time.Second)
	h := newHarness(t, byMethod{
		get: reply(200, envJSON("k", "K"), "X-Ratelimit-Global-Remaining", "40", "X-Ratelimit-Route-Remaining", "7", "X-Ratelimit-Reset", epochMillis(reset)),
		del: reply(204, "", "X-Ratelimit-Route-Remaining", "2", "X-Ratelimit-Reset", epochMillis(reset)),
	})
	unknown := RateLimitState{Global: RateLimitWindow{Remaining: -1}, Routes: map[string]RateLimitWindow{}}
	if diff := cmp.Diff(unknown, h.client.RateLimits()); diff != "" {
		t.Errorf("initial state (-want +got):\n%s", diff)
	}
	if _, err := h.client.GetEnvironment(context.Background(), "p", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.DeleteEnvironment(context.Background(), "p", "k"); err != nil {
		t.Fatal(err)
	}
	want := RateLimitState{
		Global: RateLimitWindow{Remaining: 40, Reset: reset},
		Routes: map[string]RateLimitWindow{
			RouteGetEnvironment:    {Remaining: 7, Reset: reset},
			RouteDeleteEnvironment: {Remaining: 2, Reset: reset},
		},
	}
	got := h.client.RateLimits()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	got.Routes[RouteGetEnvironment] = RateLimitWindow{}
	if h.client.RateLimits().Routes[RouteGetEnvironment].Remaining != 7 {
		t.Error("RateLimits returned the client's own map")
	}
}

// TestConcurrentUse is for the race detector: calls share rate-limit state.
func TestConcurrentUse(t *testing.T) {
	var mu sync.Mutex
	remaining := 1000
	h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remaining--
		left := remaining
		mu.Unlock()
		reply(200, envJSON("k", "K"), "X-Ratelimit-Global-Remaining", fmt.Sprint(left),
			"X-Ratelimit-Route-Remaining", fmt.Sprint(left), "X-Ratelimit-Reset", epochMillis(t0.Add(time.Second)))(w, r)
	}))
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				_, err := h.client.GetEnvironment(context.Background(), "p", "k")
				errs <- err
				_ = h.client.RateLimits()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(h.rec.requests()); n != 40 {
		t.Errorf("%d requests, want 40", n)
	}
}

func TestSystemClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var clock systemClock
		start := clock.Now()
		if err := clock.Sleep(context.Background(), time.Hour); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != time.Hour {
			t.Errorf("slept %v, want 1h", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start = clock.Now()
		if err := clock.Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v, want deadline exceeded", err)
		}
		if got := time.Since(start); got != time.Second {
			t.Errorf("slept %v, want 1s", got)
		}
		if err := clock.Sleep(context.Background(), -time.Second); err != nil {
			t.Errorf("non-positive sleep: %v", err)
		}
	})
}

func TestRetryLogsAreStructured(t *testing.T) {
	h := newHarness(t, script(reply(503, ""), reply(200, envJSON("k", "K"))))
	if _, err := h.client.GetEnvironment(context.Background(), "p", "k"); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(h.logs.String())
	for _, field := range []string{`"level":"warn"`, `"route":"get_environment"`, `"method":"GET"`, `"key":"k"`, `"attempt":1`, `"wait":100`, `"message":"retrying"`, `status 503`} {
		if !strings.Contains(line, field) {
			t.Errorf("log %s lacks %s", line, field)
		}
	}
}
