package sources

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
)

const apiTestToken = "api-secret-token-9a7b"

// apiTransportFunc is a hand-written transport for tests that need no server.
type apiTransportFunc func(*http.Request) (*http.Response, error)

func (f apiTransportFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func fakeResponse(status int, header map[string]string, body string) *http.Response {
	h := http.Header{}
	for k, v := range header {
		h.Set(k, v)
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body))}
}

func newTransportClient(rt apiTransportFunc, log zerolog.Logger) *apiClient {
	return newAPIClient(apiConfig{
		vendor: "test", token: apiTestToken, tokenEnv: "TEST_TOKEN", httpClient: &http.Client{Transport: rt},
		limits: []rateLimitHeaders{xRateLimitHeaders()}, log: log,
	})
}

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		value  string
		want   time.Duration
		wantOK bool
	}{
		{value: "0", want: 0, wantOK: true},
		{value: " 120 ", want: 2 * time.Minute, wantOK: true},
		{value: testNow.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second, wantOK: true},
		{value: testNow.Add(-time.Minute).Format(http.TimeFormat), want: 0, wantOK: true},
		{value: ""},
		{value: "-1"},
		{value: "1.5"},
		{value: "soon"},
		{value: "99999999999999999999"},
		{value: "604801"},
		{value: testNow.Add(200 * 365 * 24 * time.Hour).Format(http.TimeFormat)},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.value, testNow)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestParseRateLimitReset(t *testing.T) {
	epoch := func(d time.Duration) string { return strconv.FormatInt(testNow.Add(d).Unix(), 10) }
	tests := []struct {
		name   string
		value  string
		want   time.Duration
		wantOK bool
	}{
		{name: "epoch seconds (GitHub, Vercel)", value: epoch(61 * time.Second), want: 61 * time.Second, wantOK: true},
		{name: "seconds from now (Render's example)", value: "45", want: 45 * time.Second, wantOK: true},
		{name: "an epoch time in the past", value: epoch(-time.Minute), want: 0, wantOK: true},
		{name: "zero", value: "0", want: 0, wantOK: true},
		{name: "empty", value: ""},
		{name: "negative", value: "-5"},
		{name: "not a number", value: "soon"},
		{name: "an epoch time years away", value: epoch(3 * 365 * 24 * time.Hour)},
		{name: "a delta beyond a week", value: "999999999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRateLimitReset(tt.value, testNow)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRateLimitReset(%q) = %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestVendorMessage(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{name: "vercel", body: `{"error":{"code":"forbidden","message":"Not authorized"}}`, want: "Not authorized"},
		{name: "render", body: `{"id":"x","message":"unauthorized"}`, want: "unauthorized"},
		{name: "github", body: `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`, want: "Bad credentials"},
		{name: "error string", body: `{"error":"invalid token"}`, want: "invalid token"},
		{name: "text", body: "upstream\n  timed out\n", want: "upstream timed out"},
		{name: "html page", body: "<html><body>502 Bad Gateway</body></html>", want: ""},
		{name: "binary", body: "\xff\xfe", want: ""},
		{name: "empty", body: "", want: ""},
		{name: "echoed token", body: `{"message":"token ` + apiTestToken + ` is revoked"}`, want: "token [redacted] is revoked"},
		{name: "long", body: strings.Repeat("é", 300), want: strings.Repeat("é", 199) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := vendorMessage([]byte(tt.body), apiTestToken); got != tt.want {
				t.Errorf("vendorMessage = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	c := newAPIClient(apiConfig{})
	var got []time.Duration
	c.jitter = func(time.Duration) time.Duration { return 0 }
	for attempt := range 7 {
		got = append(got, c.backoff(attempt))
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff without jitter (-want +got):\n%s", diff)
	}
	// The jitter spreads over the upper half of each step.
	var asked []time.Duration
	c.jitter = func(d time.Duration) time.Duration { asked = append(asked, d); return d - 1 }
	if got := c.backoff(2); got != 2*time.Second-1 {
		t.Errorf("backoff(2) with full jitter = %v", got)
	}
	if got := c.backoff(100); got != 8*time.Second-1 {
		t.Errorf("backoff(100) = %v, want the cap", got)
	}
	if diff := cmp.Diff([]time.Duration{time.Second, 4 * time.Second}, asked); diff != "" {
		t.Errorf("jitter ranges (-want +got):\n%s", diff)
	}
}

// Each attempt has its own deadline; the retries and their backoff run on
// the real timer code, in a synctest bubble so that no time passes.
func TestAPIClientAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attempts atomic.Int32
		hang := apiTransportFunc(func(r *http.Request) (*http.Response, error) {
			attempts.Add(1)
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		c := newTransportClient(hang, zerolog.Nop())
		c.jitter = func(time.Duration) time.Duration { return 0 }
		start := time.Now()
		_, err := c.get(t.Context(), "https://api.example/x")
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "giving up after 4 attempts") {
			t.Fatalf("get = %v, want a deadline error after 4 attempts", err)
		}
		if n := attempts.Load(); n != 4 {
			t.Errorf("%d attempts, want 4", n)
		}
		// Four 30s attempts and backoffs of 250ms, 500ms and 1s.
		if elapsed := time.Since(start); elapsed != 4*30*time.Second+1750*time.Millisecond {
			t.Errorf("took %v of bubble time", elapsed)
		}
	})
}

// The caller's deadline ends the retries at once, whatever is left of them.
func TestAPIClientStopsAtTheCallersDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attempts atomic.Int32
		hang := apiTransportFunc(func(r *http.Request) (*http.Response, error) {
			attempts.Add(1)
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		c := newTransportClient(hang, zerolog.Nop())
		ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
		defer cancel()
		_, err := c.get(ctx, "https://api.example/x")
		if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "giving up") {
			t.Fatalf("get = %v, want the caller's deadline", err)
		}
		if n := attempts.Load(); n != 2 {
			t.Errorf("%d attempts, want 2", n)
		}
	})
}

// A rate-limit wait that would outlast the caller's deadline fails now.
func TestAPIClientRateLimitWaitRespectsTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		limited := apiTransportFunc(func(r *http.Request) (*http.Response, error) {
			return fakeResponse(429, map[string]string{"Retry-After": "20"}, `{"message":"slow down"}`), nil
		})
		c := newTransportClient(limited, zerolog.Nop())
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := c.get(ctx, "https://api.example/x")
		var rl *rateLimitError
		if !errors.As(err, &rl) || rl.wait != 20*time.Second || rl.limit != 10*time.Second {
			t.Fatalf("get = %v, want a rate-limit error for a 20s wait with 10s left", err)
		}
	})
}

func TestAPIClientBodyLimit(t *testing.T) {
	var attempts int
	big := apiTransportFunc(func(r *http.Request) (*http.Response, error) {
		attempts++
		return fakeResponse(200, nil, strings.Repeat("x", 11)), nil
	})
	c := newTransportClient(big, zerolog.Nop())
	c.maxBody = 10
	instant(c)
	_, err := c.get(t.Context(), "https://api.example/x")
	if err == nil || err.Error() != "GET https://api.example/x: response body larger than the 10-byte limit" || attempts != 1 {
		t.Errorf("get = %v after %d attempts; want one attempt and a size error", err, attempts)
	}
}

func TestAPIClientNotModifiedWithoutACachedBody(t *testing.T) {
	c := newTransportClient(func(r *http.Request) (*http.Response, error) { return fakeResponse(304, nil, ""), nil }, zerolog.Nop())
	instant(c)
	if _, err := c.get(t.Context(), "https://api.example/x"); err == nil || !strings.Contains(err.Error(), "304 Not Modified") {
		t.Errorf("get = %v, want a 304 error", err)
	}
}

// The token goes into the Authorization header and nowhere else: not into
// errors, not into the log.
func TestAPIClientNeverLeaksTheToken(t *testing.T) {
	var sent []string
	echo := apiTransportFunc(func(r *http.Request) (*http.Response, error) {
		sent = append(sent, r.Header.Get("Authorization"))
		if len(sent) < 3 {
			return fakeResponse(502, nil, "bad gateway for "+r.Header.Get("Authorization")), nil
		}
		return fakeResponse(401, nil, `{"message":"token `+apiTestToken+` revoked"}`), nil
	})
	var logs bytes.Buffer
	c := newTransportClient(echo, zerolog.New(&logs))
	instant(c)
	_, err := c.get(t.Context(), "https://api.example/x")
	if err == nil || strings.Contains(err.Error(), apiTestToken) {
		t.Fatalf("get = %v, want an error without the token", err)
	}
	if strings.Contains(logs.String(), apiTestToken) {
		t.Errorf("the log holds the token:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"message":"retrying request"`) || !strings.Contains(logs.String(), `"attempt":2`) {
		t.Errorf("retries were not logged with fields:\n%s", logs.String())
	}
	if diff := cmp.Diff([]string{"Bearer " + apiTestToken, "Bearer " + apiTestToken, "Bearer " + apiTestToken}, sent); diff != "" {
		t.Errorf("Authorization headers (-want +got):\n%s", diff)
	}
}

func TestETagCacheEvictsTheOldest(t *testing.T) {
	c := newETagCache(2)
	c.put("a", cachedResponse{etag: "1"})
	c.put("b", cachedResponse{etag: "2"})
	c.put("a", cachedResponse{etag: "3"}) // an update, not a new entry
	c.put("c", cachedResponse{etag: "4"})
	var got []string
	for _, k := range []string{"a", "b", "c"} {
		if r, ok := c.get(k); ok {
			got = append(got, k+"="+r.etag)
		}
	}
	if diff := cmp.Diff([]string{"b=2", "c=4"}, got); diff != "" {
		t.Errorf("cache (-want +got):\n%s", diff)
	}
	var none *etagCache
	none.put("a", cachedResponse{})
	if _, ok := none.get("a"); ok {
		t.Error("a nil cache holds an entry")
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "Sun, 22 Nov 2026 12:01:00 GMT", "-1", "x", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, parse := range []func(string, time.Time) (time.Duration, bool){parseRetryAfter, parseRateLimitReset} {
			d, ok := parse(v, testNow)
			if !ok && d != 0 {
				t.Errorf("%q: not ok but %v", v, d)
			}
			if d < 0 || d > maxHeaderWaitSeconds*time.Second {
				t.Errorf("%q: wait %v outside 0..a week", v, d)
			}
		}
	})
}

func FuzzVendorMessage(f *testing.F) {
	for _, s := range []string{`{"message":"x"}`, `{"error":{"message":"y"}}`, `{"error":"z"}`, "text", "<html>", "tok " + apiTestToken} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		msg := vendorMessage([]byte(body), apiTestToken)
		if strings.Contains(msg, apiTestToken) {
			t.Errorf("message %q holds the token", msg)
		}
		if n := len([]rune(msg)); n > maxMessageLen {
			t.Errorf("message of %d runes", n)
		}
	})
}
