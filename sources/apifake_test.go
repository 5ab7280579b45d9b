package sources

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// What the vendor fakes share: scripted faults served before the normal
// answer, a log of the requests they saw, and a clock that makes the HTTP
// layer's waits instant and recorded.

// testNow is the fake clocks' start: every test sees the same time.
var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// fakeClock stands in for the apiClient's sleep and now: a sleep records its
// duration and moves the clock, without waiting.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

// instant makes api's waits instant and recorded, and its jitter zero, so
// that backoff waits are exactly half their step.
func instant(apis ...*apiClient) *fakeClock {
	clock := &fakeClock{now: testNow}
	for _, api := range apis {
		api.sleep = clock.sleep
		api.now = clock.Now
		api.jitter = func(time.Duration) time.Duration { return 0 }
	}
	return clock
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// fault is one scripted response.
type fault struct {
	status int
	header map[string]string
	body   string
}

// fakeAPI is the part of a vendor fake that is not vendor-specific.
type fakeAPI struct {
	mu       sync.Mutex
	faults   []fault
	requests []seenRequest
}

type seenRequest struct {
	Path        string
	Query       url.Values
	Auth        string
	IfNoneMatch string
}

// fail queues responses served, in order, before any normal answer.
func (f *fakeAPI) fail(faults ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, faults...)
}

// record logs r and serves the next fault, if any; it reports whether it
// answered.
func (f *fakeAPI) record(w http.ResponseWriter, r *http.Request) bool {
	f.mu.Lock()
	f.requests = append(f.requests, seenRequest{
		Path: r.URL.Path, Query: r.URL.Query(), Auth: r.Header.Get("Authorization"), IfNoneMatch: r.Header.Get("If-None-Match"),
	})
	var next *fault
	if len(f.faults) > 0 {
		next = &f.faults[0]
		f.faults = f.faults[1:]
	}
	f.mu.Unlock()
	if next == nil {
		return false
	}
	for k, v := range next.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(next.status)
	_, _ = w.Write([]byte(next.body))
	return true
}

func (f *fakeAPI) seen() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.requests...)
}

func writeFakeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// bearer returns the token of an "Authorization: Bearer …" header.
func bearerToken(r *http.Request) string {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return token
}

// serve starts h on loopback for the test.
func serveFake(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// failureCase is one row of the failure table every source runs against its
// fake: the faults to serve, then what List must return.
type failureCase struct {
	name   string
	faults []fault
	// wantErr is a substring of the error; "" means List succeeds.
	wantErr string
	// wantWaits are the waits the HTTP layer sat out.
	wantWaits []time.Duration
	// wantRequests is how many requests reached the fake.
	wantRequests int
}
