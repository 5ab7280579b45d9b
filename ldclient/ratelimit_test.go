package ldclient

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

func limitHeader(global, route int, reset time.Time) http.Header {
	h := http.Header{}
	if global >= 0 {
		h.Set("X-Ratelimit-Global-Remaining", fmt.Sprint(global))
	}
	if route >= 0 {
		h.Set("X-Ratelimit-Route-Remaining", fmt.Sprint(route))
	}
	h.Set("X-Ratelimit-Reset", epochMillis(reset))
	return h
}

// TestReserveCountsRequestsInFlight walks the pacing state through a script
// of reservations and completions. The header alone would let every caller
// take the last request of a window; the in-flight count must not.
func TestReserveCountsRequestsInFlight(t *testing.T) {
	reset := t0.Add(4 * time.Second)
	later := reset.Add(10 * time.Second)
	type step struct {
		complete http.Header // when set, complete one reservation with it
		headroom int
		at       time.Time // zero means t0
		want     time.Duration
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "unknown window: every call goes",
			steps: []step{{}, {}, {}}},
		{name: "two left: two go, the third waits for the reset",
			steps: []step{
				{}, {complete: limitHeader(2, -1, reset)},
				{}, {}, {want: 4 * time.Second},
			}},
		{name: "headroom is left for others",
			steps: []step{
				{}, {complete: limitHeader(3, -1, reset)},
				{headroom: 2}, {headroom: 2, want: 4 * time.Second},
			}},
		{name: "a late answer with more left does not undo a lower one",
			steps: []step{
				{}, {}, {complete: limitHeader(1, -1, reset)}, {complete: limitHeader(2, -1, reset)},
				{}, {want: 4 * time.Second},
			}},
		{name: "an answer from an older window is ignored",
			steps: []step{
				{}, {}, {complete: limitHeader(0, -1, later)}, {complete: limitHeader(50, -1, reset)},
				{want: 14 * time.Second},
			}},
		{name: "the route window counts the route's own requests",
			steps: []step{
				{}, {complete: limitHeader(-1, 1, reset)},
				{}, {want: 4 * time.Second},
			}},
		{name: "once the reset has passed the window no longer holds calls back",
			steps: []step{
				{}, {complete: limitHeader(0, 0, reset)},
				{want: 4 * time.Second}, {at: reset},
			}},
		{name: "a response without limit headers only ends the request",
			steps: []step{
				{}, {complete: limitHeader(1, -1, reset)},
				{}, {complete: http.Header{}}, {}, {want: 4 * time.Second},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newRateLimits()
			var got, want []time.Duration
			for _, s := range tt.steps {
				if s.complete != nil {
					l.complete(RouteGetEnvironment, s.complete)
					continue
				}
				at := s.at
				if at.IsZero() {
					at = t0
				}
				got = append(got, l.reserve(RouteGetEnvironment, at, s.headroom))
				want = append(want, s.want)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMergeWindow(t *testing.T) {
	reset := t0.Add(time.Second)
	tests := []struct {
		name        string
		known, seen RateLimitWindow
		want        RateLimitWindow
	}{
		{"nothing known", RateLimitWindow{Remaining: -1}, RateLimitWindow{Remaining: 9, Reset: reset}, RateLimitWindow{Remaining: 9, Reset: reset}},
		{"same window, lower", RateLimitWindow{Remaining: 9, Reset: reset}, RateLimitWindow{Remaining: 4, Reset: reset}, RateLimitWindow{Remaining: 4, Reset: reset}},
		{"same window, higher (an older admission)", RateLimitWindow{Remaining: 4, Reset: reset}, RateLimitWindow{Remaining: 9, Reset: reset}, RateLimitWindow{Remaining: 4, Reset: reset}},
		{"newer window", RateLimitWindow{Remaining: 0, Reset: reset}, RateLimitWindow{Remaining: 50, Reset: reset.Add(time.Second)}, RateLimitWindow{Remaining: 50, Reset: reset.Add(time.Second)}},
		{"older window", RateLimitWindow{Remaining: 50, Reset: reset.Add(time.Second)}, RateLimitWindow{Remaining: 0, Reset: reset}, RateLimitWindow{Remaining: 50, Reset: reset.Add(time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, mergeWindow(tt.known, tt.seen)); diff != "" {
				t.Errorf("merged (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConcurrentCallersStayInsideTheBudget runs concurrent callers against
// ldfake's windowed budget. Every 429 here is one the headers announced, so
// there must be none, and no window may give away the headroom.
func TestConcurrentCallersStayInsideTheBudget(t *testing.T) {
	const (
		budget   = 20
		headroom = 3
		callers  = 8
		calls    = 120
		window   = 10 * time.Second
	)
	clock := &fakeClock{now: t0}
	fake := ldfake.New(ldfake.Options{GlobalBudget: budget, RateWindow: window, Now: clock.Now,
		// Requests overlap at the server, as they do at LD.
		Latency: time.Millisecond})
	fake.AddToken(testToken, ldfake.RoleWriter)
	fake.AddProject("p")
	if _, err := fake.Seed("p", ldfake.Environment{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	lowest := &lowestRemaining{next: fake, window: window, byWindow: map[time.Time]int{}}
	server := httptest.NewServer(lowest)
	defer server.Close()
	ctx := context.Background()
	baseURL := server.URL
	var mu sync.Mutex
	statuses := map[int]int{}
	c, err := New(Options{BaseURL: baseURL, Token: testToken, Clock: clock, Headroom: headroom, Rand: func() float64 { return 0 },
		Observe: func(r RequestRecord) {
			mu.Lock()
			defer mu.Unlock()
			statuses[r.Status]++
		}})
	if err != nil {
		t.Fatal(err)
	}
	work := make(chan struct{}, calls)
	for range calls {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range work {
				if _, err := c.GetEnvironment(ctx, "p", "k"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	if diff := cmp.Diff(map[int]int{http.StatusOK: calls}, statuses); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	for start, left := range lowest.windows() {
		if left < headroom {
			t.Errorf("window at %s: LD had %d requests left, want at least the headroom %d", start.Format(time.RFC3339), left, headroom)
		}
	}
}

// lowestRemaining records, per rate-limit window, the lowest
// X-Ratelimit-Global-Remaining the server answered: what the budget came
// down to, counted where LD counts it.
type lowestRemaining struct {
	next   http.Handler
	window time.Duration

	mu       sync.Mutex
	byWindow map[time.Time]int
}

func (l *lowestRemaining) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.next.ServeHTTP(headerSpy{ResponseWriter: w, seen: l.record}, r)
}

func (l *lowestRemaining) record(h http.Header) {
	remaining, okRemaining := parseRemaining(h.Get("X-Ratelimit-Global-Remaining"))
	reset, okReset := parseResetMillis(h.Get("X-Ratelimit-Reset"))
	if !okRemaining || !okReset {
		return
	}
	start := reset.Add(-l.window)
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.byWindow[start]; !ok || remaining < old {
		l.byWindow[start] = remaining
	}
}

func (l *lowestRemaining) windows() map[time.Time]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.byWindow)
}

// headerSpy shows the response headers to seen as they are written.
type headerSpy struct {
	http.ResponseWriter
	seen func(http.Header)
}

func (s headerSpy) WriteHeader(status int) {
	s.seen(s.Header())
	s.ResponseWriter.WriteHeader(status)
}

// TestPaceWaitsAgainWhenTheNextWindowIsSpent: while a call waited for a
// reset, other users spent the next window too. The call waits again rather
// than walking into a 429 the headers announced.
func TestPaceWaitsAgainWhenTheNextWindowIsSpent(t *testing.T) {
	first, second := t0.Add(2*time.Second), t0.Add(12*time.Second)
	h := newHarness(t, reply(200, envJSON("k", "K"), "X-Ratelimit-Global-Remaining", "0", "X-Ratelimit-Reset", epochMillis(first)))
	if _, err := h.client.GetEnvironment(context.Background(), "p", "k"); err != nil {
		t.Fatal(err)
	}
	h.clock.onSleep = func(context.Context, time.Duration) error {
		h.clock.onSleep = nil
		// Another caller's answer, from the window after the reset.
		h.client.limits.reserveAnyway(RouteListEnvironments)
		h.client.limits.complete(RouteListEnvironments, limitHeader(0, -1, second))
		return nil
	}
	if _, err := h.client.GetEnvironment(context.Background(), "p", "k"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]time.Duration{2 * time.Second, 10 * time.Second}, h.clock.Sleeps()); diff != "" {
		t.Errorf("sleeps (-want +got):\n%s", diff)
	}
}
