package ldclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"relative base URL", Options{BaseURL: "app.launchdarkly.com", Token: testToken}, "scheme must be http or https"},
		{"ftp base URL", Options{BaseURL: "ftp://app.launchdarkly.com", Token: testToken}, "scheme must be http or https"},
		{"no host", Options{BaseURL: "https://", Token: testToken}, "no host"},
		{"credentials in base URL", Options{BaseURL: "https://user:" + testToken + "@ld.example", Token: testToken}, "must not contain credentials"},
		{"query in base URL", Options{BaseURL: "https://ld.example/?x=1", Token: testToken}, "query or fragment"},
		{"empty token", Options{}, "access token is empty"},
		{"bearer token", Options{Token: "Bearer " + testToken}, "Bearer prefix"},
		{"token with newline", Options{Token: testToken + "\n"}, "whitespace or control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error contains the token: %v", err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	type settings struct {
		BaseURL                                          string
		UserAgent                                        string
		PageSize, MaxRetries, RateLimitRetries, Headroom int
		RequestTimeout, MaxWait, BaseBackoff             time.Duration
	}
	get := func(c *Client) settings {
		return settings{c.base.String(), c.userAgent, c.pageSize, c.maxRetries, c.rateLimitRetries, c.headroom,
			c.requestTimeout, c.maxWait, c.baseBackoff}
	}
	tests := []struct {
		name string
		opts Options
		want settings
	}{
		{"zero values", Options{Token: testToken},
			settings{"https://app.launchdarkly.com", "launchdarkly-ldreaper-int/dev", 100, 5, 10, 0, 30 * time.Second, 60 * time.Second, 200 * time.Millisecond}},
		{"explicit values, trailing slash trimmed", Options{Token: testToken, BaseURL: "http://127.0.0.1:1/ld/", UserAgent: "x/1", PageSize: 7, MaxRetries: 2, RateLimitRetries: 3, Headroom: 4, RequestTimeout: time.Second, MaxWait: 2 * time.Second, BaseBackoff: time.Millisecond},
			settings{"http://127.0.0.1:1/ld", "x/1", 7, 2, 3, 4, time.Second, 2 * time.Second, time.Millisecond}},
		{"page size above LD's cap, retries disabled", Options{Token: testToken, PageSize: 500, MaxRetries: -1, RateLimitRetries: -1, Headroom: -1},
			settings{"https://app.launchdarkly.com", "launchdarkly-ldreaper-int/dev", 100, 0, 0, -1, 30 * time.Second, 60 * time.Second, 200 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, get(c)); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFormatHidesToken(t *testing.T) {
	c, err := New(Options{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Token: testToken, BaseURL: "https://ld.example"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		for _, v := range []any{o, &o, c, *c} {
			if s := fmt.Sprintf(verb, v); strings.Contains(s, testToken) {
				t.Errorf("Sprintf(%q, %T) = %s", verb, v, s)
			}
		}
	}
}

func TestEveryRequestCarriesHeaders(t *testing.T) {
	type headers struct {
		Method, Authorization, APIVersion, UserAgent, Accept, ContentType string
	}
	handler := byMethod{
		get: func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/environments") {
				reply(200, `{"items":[`+envJSON("a", "A")+`],"totalCount":1}`)(w, r)
				return
			}
			reply(200, envJSON("a", "A"))(w, r)
		},
		post: reply(201, envJSON("b", "B")),
		del:  reply(204, ""),
	}
	run := func(t *testing.T, c *Client) {
		ctx := context.Background()
		if _, err := c.ListEnvironments(ctx, "p", ListFilter{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CountEnvironments(ctx, "p"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetEnvironment(ctx, "p", "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateEnvironment(ctx, "p", EnvironmentPost{Key: "b", Name: "B", Color: "000000"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeleteEnvironment(ctx, "p", "a"); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		userAgent string
		wantUA    string
	}{
		{"default user agent", "", "launchdarkly-ldreaper-int/dev"},
		{"configured user agent", "launchdarkly-ldreaper-int/1.2.3", "launchdarkly-ldreaper-int/1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, handler, func(o *Options) { o.UserAgent = tt.userAgent })
			run(t, h.client)
			var got []headers
			for _, r := range h.rec.requests() {
				got = append(got, headers{r.Method, r.Header.Get("Authorization"), r.Header.Get("LD-API-Version"),
					r.Header.Get("User-Agent"), r.Header.Get("Accept"), r.Header.Get("Content-Type")})
			}
			want := func(method, contentType string) headers {
				return headers{method, testToken, "20240415", tt.wantUA, "application/json", contentType}
			}
			wantAll := []headers{want("GET", ""), want("GET", ""), want("GET", ""), want("POST", "application/json"), want("DELETE", "")}
			if diff := cmp.Diff(wantAll, got); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeysArePathEscaped(t *testing.T) {
	h := newHarness(t, byMethod{get: reply(200, envJSON("x", "X")), del: reply(204, "")})
	prefixed := newHarness(t, byMethod{get: reply(200, envJSON("x", "X"))}, func(o *Options) { o.BaseURL += "/ld%20proxy/" })

	ctx := context.Background()
	if _, err := h.client.GetEnvironment(ctx, "my proj", "a/b?c#d"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.DeleteEnvironment(ctx, "p", "../admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := prefixed.client.GetEnvironment(ctx, "p", "k%2F"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range append(h.rec.requests(), prefixed.rec.requests()...) {
		got = append(got, r.Method+" "+r.RequestURI)
	}
	want := []string{
		"GET /api/v2/projects/my%20proj/environments/a%2Fb%3Fc%23d",
		"DELETE /api/v2/projects/p/environments/..%2Fadmin",
		"GET /ld%20proxy/api/v2/projects/p/environments/k%252F",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request URIs (-want +got):\n%s", diff)
	}
}

func TestInvalidKeysSendNothing(t *testing.T) {
	h := newHarness(t, reply(500, ""))
	ctx := context.Background()
	calls := map[string]func() error{
		"get empty key":       func() error { _, err := h.client.GetEnvironment(ctx, "p", ""); return err },
		"get dot-dot key":     func() error { _, err := h.client.GetEnvironment(ctx, "p", ".."); return err },
		"delete dot key":      func() error { _, err := h.client.DeleteEnvironment(ctx, "p", "."); return err },
		"create empty key":    func() error { _, err := h.client.CreateEnvironment(ctx, "p", EnvironmentPost{Name: "x"}); return err },
		"list empty project":  func() error { _, err := h.client.ListEnvironments(ctx, "", ListFilter{}); return err },
		"count empty project": func() error { _, err := h.client.CountEnvironments(ctx, ""); return err },
	}
	for name, call := range calls {
		if err := call(); err == nil || !strings.Contains(err.Error(), "not a valid path segment") {
			t.Errorf("%s: error = %v", name, err)
		}
	}
	if n := len(h.rec.requests()); n != 0 {
		t.Errorf("%d requests sent, want 0", n)
	}
}

func TestDefaultClientDoesNotFollowRedirects(t *testing.T) {
	h := newHarness(t, byMethod{
		post: func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) },
		get:  reply(200, envJSON("pr-1", "PR 1")),
	}, func(o *Options) { o.HTTPClient = nil })
	_, err := h.client.CreateEnvironment(context.Background(), "p", EnvironmentPost{Key: "pr-1", Name: "PR 1"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusFound {
		t.Fatalf("error = %v, want an *APIError with status 302", err)
	}
	if diff := cmp.Diff([]string{"POST"}, h.rec.methods()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestGetEnvironment(t *testing.T) {
	// A real-looking body with fields the client does not know and without
	// the keys LD has announced it will drop.
	tolerant := `{"_links":{"self":{"href":"/x"}},"_access":{"denied":[]},"approvalSettings":{"required":true},
		"key":"pr-1","name":"PR 1","color":"F5A623","defaultTtl":5,"secureMode":true,"defaultTrackEvents":true,
		"requireComments":true,"confirmChanges":true,"tags":["ldreaper","ephemeral"],"critical":false,"brandNew":{"x":1}}`
	tests := []struct {
		name         string
		handler      http.HandlerFunc
		want         Environment
		wantStatus   int // of the *APIError; 0 for none
		wantNotFound bool
		wantMethods  int
		wantSleeps   []time.Duration
	}{
		{name: "200 decodes tolerantly", handler: reply(200, tolerant), want: Environment{Key: "pr-1", Name: "PR 1", Color: "F5A623", DefaultTTL: 5, SecureMode: true,
			DefaultTrackEvents: true, RequireComments: true, ConfirmChanges: true, Tags: []string{"ldreaper", "ephemeral"}}, wantMethods: 1},
		{name: "404 is not found", handler: reply(404, `{"code":"not_found","message":"Invalid resource identifier"}`), wantStatus: 404, wantNotFound: true, wantMethods: 1},
		{name: "401 is final", handler: reply(401, `{"code":"unauthorized","message":"Invalid access token"}`), wantStatus: 401, wantMethods: 1},
		{name: "5xx and resets are retried", handler: script(reply(500, ""), drop, reply(502, "<html>bad gateway</html>"), reply(200, envJSON("pr-1", "PR 1"))),
			want:        Environment{ClientSideID: "0123456789abcdef01234567", Key: "pr-1", Name: "PR 1", APIKey: "sdk-SECRET-pr-1", MobileKey: "mob-SECRET-pr-1", Color: "7B42BC", Tags: []string{}},
			wantMethods: 4, wantSleeps: []time.Duration{ms(100), ms(200), ms(400)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.handler)
			env, err := h.client.GetEnvironment(context.Background(), "p", "pr-1")
			if diff := cmp.Diff(tt.want, env); diff != "" {
				t.Errorf("environment (-want +got):\n%s", diff)
			}
			var apiErr *APIError
			gotStatus := 0
			if errors.As(err, &apiErr) {
				gotStatus = apiErr.Status
			} else if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if gotStatus != tt.wantStatus || IsNotFound(err) != tt.wantNotFound {
				t.Errorf("error = %v; want status %d, not found %t", err, tt.wantStatus, tt.wantNotFound)
			}
			if n := len(h.rec.requests()); n != tt.wantMethods {
				t.Errorf("%d requests, want %d", n, tt.wantMethods)
			}
			if diff := cmp.Diff(tt.wantSleeps, h.clock.Sleeps()); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGetEnvironmentRejectsNonJSONSuccess(t *testing.T) {
	h := newHarness(t, reply(200, "<html>captive portal</html>"))
	_, err := h.client.GetEnvironment(context.Background(), "p", "k")
	if err == nil || !strings.Contains(err.Error(), "decode environment") {
		t.Fatalf("error = %v, want a decode error", err)
	}
}

func TestCreateEnvironment(t *testing.T) {
	apiErr := func(status int, code string) http.HandlerFunc {
		return reply(status, fmt.Sprintf(`{"code":%q,"message":"m"}`, code))
	}
	conflict := apiErr(409, "optimistic_locking_error")
	notFound := apiErr(404, "not_found")
	body := EnvironmentPost{Key: "pr-1", Name: "PR 1", Color: "7B42BC", Tags: []string{"ldreaper", "ephemeral"}, Source: &SourceEnv{Key: "staging"}}
	tests := []struct {
		name        string
		post, get   http.HandlerFunc
		want        CreateResult
		wantStatus  int
		wantMethods []string
	}{
		{name: "201 created", post: reply(201, envJSON("pr-1", "PR 1", "ldreaper", "ephemeral")),
			want:        CreateResult{Environment: Environment{Key: "pr-1", Name: "PR 1", Tags: []string{"ldreaper", "ephemeral"}}},
			wantMethods: []string{"POST"}},
		{name: "201 with an unreadable body is read back", post: reply(201, "<html>ok</html>"), get: reply(200, envJSON("pr-1", "PR 1", "ldreaper", "ephemeral")),
			want:        CreateResult{Environment: Environment{Key: "pr-1", Name: "PR 1", Tags: []string{"ldreaper", "ephemeral"}}},
			wantMethods: []string{"POST", "GET"}},
		{name: "409 then the key exists", post: conflict, get: reply(200, envJSON("pr-1", "Someone's", "manual")),
			want:        CreateResult{Environment: Environment{Key: "pr-1", Name: "Someone's", Tags: []string{"manual"}}, Existed: true},
			wantMethods: []string{"POST", "GET"}},
		{name: "409 on a lock race is retried", post: script(conflict, reply(201, envJSON("pr-1", "PR 1", "ldreaper", "ephemeral"))), get: notFound,
			want:        CreateResult{Environment: Environment{Key: "pr-1", Name: "PR 1", Tags: []string{"ldreaper", "ephemeral"}}},
			wantMethods: []string{"POST", "GET", "POST"}},
		{name: "409 races are bounded", post: conflict, get: notFound, wantStatus: 409,
			wantMethods: []string{"POST", "GET", "POST", "GET", "POST", "GET"}},
		{name: "429 is retried without a lookup", post: script(reply(429, `{"code":"rate_limited"}`, "Retry-After", "1"), reply(201, envJSON("pr-1", "PR 1", "ldreaper", "ephemeral"))),
			want:        CreateResult{Environment: Environment{Key: "pr-1", Name: "PR 1", Tags: []string{"ldreaper", "ephemeral"}}},
			wantMethods: []string{"POST", "POST"}},
		{name: "400 is final", post: apiErr(400, "invalid_request"), wantStatus: 400, wantMethods: []string{"POST"}},
		{name: "401 is final", post: apiErr(401, "unauthorized"), wantStatus: 401, wantMethods: []string{"POST"}},
		{name: "403 is final", post: apiErr(403, "forbidden"), wantStatus: 403, wantMethods: []string{"POST"}},
		{name: "404 unknown project is final", post: notFound, wantStatus: 404, wantMethods: []string{"POST"}},
	}
	// Secrets are irrelevant here; compare what the caller acts on.
	trim := func(r CreateResult) CreateResult {
		e := r.Environment
		return CreateResult{Environment: Environment{Key: e.Key, Name: e.Name, Tags: e.Tags}, Existed: r.Existed}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, byMethod{post: tt.post, get: tt.get}, func(o *Options) { o.MaxRetries = 2 })
			res, err := h.client.CreateEnvironment(context.Background(), "p", body)
			if diff := cmp.Diff(tt.want, trim(res)); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			var apiErr *APIError
			switch {
			case tt.wantStatus == 0 && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantStatus != 0 && (!errors.As(err, &apiErr) || apiErr.Status != tt.wantStatus):
				t.Fatalf("error = %v, want an *APIError with status %d", err, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantMethods, h.rec.methods()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			var sent map[string]any
			if err := json.Unmarshal([]byte(h.rec.requests()[0].Body), &sent); err != nil {
				t.Fatal(err)
			}
			wantSent := map[string]any{"key": "pr-1", "name": "PR 1", "color": "7B42BC", "tags": []any{"ldreaper", "ephemeral"}, "source": map[string]any{"key": "staging"}}
			if diff := cmp.Diff(wantSent, sent); diff != "" {
				t.Errorf("POST body (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCreateIsNeverDuplicated covers POSTs whose outcome the client cannot
// see: it must end with exactly one environment and report honestly whether
// it made it.
func TestCreateIsNeverDuplicated(t *testing.T) {
	body := EnvironmentPost{Key: "pr-1", Name: "PR 1", Color: "7B42BC", Tags: []string{"ldreaper", "Ephemeral"}}
	internal := reply(500, `{"code":"internal","message":"oops"}`)
	notFound := reply(404, `{"code":"not_found","message":"Invalid resource identifier"}`)
	tests := []struct {
		name string
		// handlers builds the POST and GET handlers around the store.
		handlers     func(s *envStore) (post, get http.HandlerFunc)
		wantExisted  bool
		wantErr      bool
		wantKeys     []string
		wantMethods  []string
		wantName     string
		wantRetryLog bool
	}{
		{name: "commits then answers 500",
			handlers: func(s *envStore) (http.HandlerFunc, http.HandlerFunc) {
				return script(s.commitThen(internal), s.serve), s.get
			},
			wantKeys: []string{"pr-1"}, wantMethods: []string{"POST", "GET"}, wantName: "PR 1"},
		{name: "commits then drops the connection",
			handlers: func(s *envStore) (http.HandlerFunc, http.HandlerFunc) {
				return script(s.commitThen(drop), s.serve), s.get
			},
			wantKeys: []string{"pr-1"}, wantMethods: []string{"POST", "GET"}, wantName: "PR 1"},
		{name: "drops before committing",
			handlers: func(s *envStore) (http.HandlerFunc, http.HandlerFunc) {
				return script(drop, s.serve), s.get
			},
			wantKeys: []string{"pr-1"}, wantMethods: []string{"POST", "GET", "POST"}, wantName: "PR 1", wantRetryLog: true},
		{name: "500 before committing",
			handlers: func(s *envStore) (http.HandlerFunc, http.HandlerFunc) {
				return script(internal, s.serve), s.get
			},
			wantKeys: []string{"pr-1"}, wantMethods: []string{"POST", "GET", "POST"}, wantName: "PR 1", wantRetryLog: true},
		{name: "someone else created the key meanwhile",
			handlers: func(s *envStore) (http.HandlerFunc, http.HandlerFunc) {
				return func(w http.ResponseWriter, r *http.Request) {
					s.put(Environment{Key: "pr-1", Name: "Manual", Tags: []string{"team-x"}})
					internal(w, r)
				}, s.get
			},
			wantExisted: true, wantKeys: []string{"pr-1"}, wantMethods: []string{"POST", "GET"}, wantName: "Manual"},
		{name: "lookup lags, then a 409 for our own create",
			handlers: func(s *envStore) (http.HandlerFunc, http.HandlerFunc) {
				return script(s.commitThen(internal), s.serve), script(notFound, s.get)
			},
			wantKeys: []string{"pr-1"}, wantMethods: []string{"POST", "GET", "POST", "GET"}, wantName: "PR 1", wantRetryLog: true},
		{name: "lookup lags, then a 409 for someone else's",
			handlers: func(s *envStore) (http.HandlerFunc, http.HandlerFunc) {
				return script(func(w http.ResponseWriter, r *http.Request) {
					s.put(Environment{Key: "pr-1", Name: "PR 1", Tags: []string{"ldreaper"}})
					drop(w, r)
				}, s.serve), script(notFound, s.get)
			},
			wantExisted: true, wantKeys: []string{"pr-1"}, wantMethods: []string{"POST", "GET", "POST", "GET"}, wantName: "PR 1", wantRetryLog: true},
		{name: "outage outlasts the budget",
			handlers: func(s *envStore) (http.HandlerFunc, http.HandlerFunc) {
				return internal, s.get
			},
			wantErr: true, wantMethods: []string{"POST", "GET", "POST", "GET", "POST", "GET"}, wantRetryLog: true},
		{name: "lookup fails",
			handlers: func(s *envStore) (http.HandlerFunc, http.HandlerFunc) {
				return s.commitThen(internal), reply(403, `{"code":"forbidden","message":"no"}`)
			},
			wantErr: true, wantKeys: []string{"pr-1"}, wantMethods: []string{"POST", "GET"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newEnvStore()
			post, get := tt.handlers(store)
			h := newHarness(t, byMethod{post: post, get: get}, func(o *Options) { o.MaxRetries = 2 })
			res, err := h.client.CreateEnvironment(context.Background(), "p", body)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %t", err, tt.wantErr)
			}
			if !tt.wantErr && (res.Existed != tt.wantExisted || res.Environment.Name != tt.wantName) {
				t.Errorf("result = {Existed:%t Name:%q}, want {Existed:%t Name:%q}", res.Existed, res.Environment.Name, tt.wantExisted, tt.wantName)
			}
			if diff := cmp.Diff(tt.wantKeys, store.keys()); diff != "" {
				t.Errorf("environments in LD (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMethods, h.rec.methods()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if got := strings.Contains(h.logs.String(), `"message":"retrying"`); got != tt.wantRetryLog {
				t.Errorf("retry logged = %t, want %t; logs:\n%s", got, tt.wantRetryLog, h.logs.String())
			}
			if strings.Contains(h.logs.String(), "sdk-SECRET") {
				t.Errorf("SDK key in logs:\n%s", h.logs.String())
			}
		})
	}
}

// roundTripFunc is an in-memory transport, used where a test needs time
// to pass inside a synctest bubble (loopback sockets are not durably
// blocking, so the bubble's clock would not advance over them).
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func memResponse(status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
}

func TestCreateTimeoutIsResolvedByLookup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var posts, gets atomic.Int32
		var postHadDeadline atomic.Bool
		transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			switch r.Method {
			case http.MethodPost:
				posts.Add(1)
				_, ok := r.Context().Deadline()
				postHadDeadline.Store(ok)
				// LD commits, then the answer never comes.
				<-r.Context().Done()
				return nil, r.Context().Err()
			default:
				gets.Add(1)
				return memResponse(200, envJSON("pr-1", "PR 1", "ldreaper")), nil
			}
		})
		c, err := New(Options{BaseURL: "https://ld.example", Token: testToken, RequestTimeout: 5 * time.Second,
			HTTPClient: &http.Client{Transport: transport}})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res, err := c.CreateEnvironment(context.Background(), "p", EnvironmentPost{Key: "pr-1", Name: "PR 1", Tags: []string{"ldreaper"}})
		if err != nil {
			t.Fatal(err)
		}
		got := []any{res.Existed, posts.Load(), gets.Load(), postHadDeadline.Load(), time.Since(start)}
		want := []any{false, int32(1), int32(1), true, 5 * time.Second}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("[existed posts gets deadline elapsed] (-want +got):\n%s", diff)
		}
	})
}

func TestPerAttemptTimeoutIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if calls.Add(1) == 1 {
				<-r.Context().Done()
				return nil, r.Context().Err()
			}
			return memResponse(200, envJSON("k", "K")), nil
		})
		c, err := New(Options{BaseURL: "https://ld.example", Token: testToken, RequestTimeout: 5 * time.Second,
			HTTPClient: &http.Client{Transport: transport}, Rand: func() float64 { return 0 }})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := c.GetEnvironment(context.Background(), "p", "k"); err != nil {
			t.Fatal(err)
		}
		// 5s attempt timeout, then the first backoff (200ms with zero jitter
		// is 100ms), then an instant answer.
		if got, want := time.Since(start), 5*time.Second+100*time.Millisecond; got != want {
			t.Errorf("elapsed %v, want %v", got, want)
		}
	})
}

func TestDeleteEnvironment(t *testing.T) {
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		want       DeleteResult
		wantStatus int
		wantCalls  int
	}{
		{name: "204 deleted", handler: reply(204, ""), want: Deleted, wantCalls: 1},
		{name: "404 already gone", handler: reply(404, `{"code":"not_found","message":"Invalid resource identifier"}`), want: AlreadyGone, wantCalls: 1},
		{name: "500 then 204", handler: script(reply(503, ""), reply(204, "")), want: Deleted, wantCalls: 2},
		{name: "500 then 404 means our first try deleted it", handler: script(reply(500, ""), reply(404, "")), want: Deleted, wantCalls: 2},
		{name: "reset then 404 means our first try deleted it", handler: script(drop, reply(404, "")), want: Deleted, wantCalls: 2},
		{name: "429 then 404 is already gone", handler: script(reply(429, "", "Retry-After", "1"), reply(404, "")), want: AlreadyGone, wantCalls: 2},
		{name: "403 is final", handler: reply(403, `{"code":"forbidden","message":"Forbidden"}`), wantStatus: 403, wantCalls: 1},
		{name: "last environment 400 is final", handler: reply(400, `{"code":"invalid_request","message":"cannot delete the last environment"}`), wantStatus: 400, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, byMethod{del: tt.handler})
			got, err := h.client.DeleteEnvironment(context.Background(), "p", "pr-1")
			var apiErr *APIError
			switch {
			case tt.wantStatus == 0 && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantStatus != 0 && (!errors.As(err, &apiErr) || apiErr.Status != tt.wantStatus):
				t.Fatalf("error = %v, want status %d", err, tt.wantStatus)
			case tt.wantStatus == 0 && got != tt.want:
				t.Errorf("result = %v, want %v", got, tt.want)
			}
			if n := len(h.rec.requests()); n != tt.wantCalls {
				t.Errorf("%d requests, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestDeleteAgainstStore(t *testing.T) {
	store := newEnvStore()
	store.put(Environment{Key: "pr-1"})
	h := newHarness(t, byMethod{del: script(store.commitThen(drop), store.serve)})
	got, err := h.client.DeleteEnvironment(context.Background(), "p", "pr-1")
	if err != nil || got != Deleted {
		t.Fatalf("DeleteEnvironment = %v, %v; want deleted", got, err)
	}
	if keys := store.keys(); len(keys) != 0 {
		t.Errorf("environments left: %v", keys)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	tests := []struct {
		name       string
		maxRetries int
		handler    http.HandlerFunc
		call       func(c *Client) error
		wantCalls  int
		wantSleeps []time.Duration
		wantStatus int
	}{
		{name: "GET 503 with 3 retries", maxRetries: 3, handler: reply(503, ""),
			call:      func(c *Client) error { _, err := c.GetEnvironment(context.Background(), "p", "k"); return err },
			wantCalls: 4, wantSleeps: []time.Duration{ms(100), ms(200), ms(400)}, wantStatus: 503},
		{name: "DELETE resets with 2 retries", maxRetries: 2, handler: drop,
			call:      func(c *Client) error { _, err := c.DeleteEnvironment(context.Background(), "p", "k"); return err },
			wantCalls: 3, wantSleeps: []time.Duration{ms(100), ms(200)}},
		{name: "list 500 with retries disabled", maxRetries: -1, handler: reply(500, ""),
			call: func(c *Client) error {
				_, err := c.ListEnvironments(context.Background(), "p", ListFilter{})
				return err
			},
			wantCalls: 1, wantStatus: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.handler, func(o *Options) { o.MaxRetries = tt.maxRetries })
			err := tt.call(h.client)
			if err == nil {
				t.Fatal("no error")
			}
			var apiErr *APIError
			if tt.wantStatus != 0 && (!errors.As(err, &apiErr) || apiErr.Status != tt.wantStatus) {
				t.Errorf("error = %v, want status %d", err, tt.wantStatus)
			}
			if tt.wantCalls > 1 && !strings.Contains(err.Error(), fmt.Sprintf("giving up after %d attempts", tt.wantCalls)) {
				t.Errorf("error = %v, want it to say how many attempts", err)
			}
			if n := len(h.rec.requests()); n != tt.wantCalls {
				t.Errorf("%d requests, want %d", n, tt.wantCalls)
			}
			if diff := cmp.Diff(tt.wantSleeps, h.clock.Sleeps()); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCancellationStopsWaits(t *testing.T) {
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		call      func(ctx context.Context, c *Client) error
		wantCalls int
	}{
		{name: "backoff after 5xx", handler: reply(500, ""),
			call:      func(ctx context.Context, c *Client) error { _, err := c.GetEnvironment(ctx, "p", "k"); return err },
			wantCalls: 1},
		{name: "429 reset", handler: reply(429, "", "Retry-After", "30"),
			call:      func(ctx context.Context, c *Client) error { _, err := c.DeleteEnvironment(ctx, "p", "k"); return err },
			wantCalls: 1},
		{name: "create retry after a lost race", handler: byMethod{post: reply(409, ""), get: reply(404, "")}.ServeHTTP,
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateEnvironment(ctx, "p", EnvironmentPost{Key: "k"})
				return err
			},
			wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.handler)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			h.clock.onSleep = func(ctx context.Context, _ time.Duration) error {
				cancel()
				return ctx.Err()
			}
			err := tt.call(ctx, h.client)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("error = %v, want context.Canceled", err)
			}
			if n := len(h.rec.requests()); n != tt.wantCalls {
				t.Errorf("%d requests, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestCanceledContextSendsNothing(t *testing.T) {
	h := newHarness(t, reply(200, envJSON("k", "K")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.client.GetEnvironment(ctx, "p", "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if _, err := h.client.CreateEnvironment(ctx, "p", EnvironmentPost{Key: "k"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if n := len(h.rec.requests()); n != 0 {
		t.Errorf("%d requests, want 0", n)
	}
}

func TestObserveRecordsEveryAttempt(t *testing.T) {
	h := newHarness(t, script(reply(500, ""), drop, reply(200, envJSON("k", "K"))))
	if _, err := h.client.GetEnvironment(context.Background(), "p", "k"); err != nil {
		t.Fatal(err)
	}
	want := []RequestRecord{
		{Route: RouteGetEnvironment, Method: "GET", Status: 500, Attempt: 1},
		{Route: RouteGetEnvironment, Method: "GET", Status: 0, Attempt: 2},
		{Route: RouteGetEnvironment, Method: "GET", Status: 200, Attempt: 3},
	}
	if diff := cmp.Diff(want, h.observed()); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestMatchesPost(t *testing.T) {
	post := EnvironmentPost{Key: "pr-1", Name: "PR 1", Tags: []string{"ldreaper", "Ephemeral"}}
	tests := []struct {
		name string
		env  Environment
		want bool
	}{
		{"same", Environment{Key: "pr-1", Name: "PR 1", Tags: []string{"ldreaper", "Ephemeral"}}, true},
		{"tags in another case and order", Environment{Key: "PR-1", Name: "PR 1", Tags: []string{"ephemeral", "LDREAPER"}}, true},
		{"other name", Environment{Key: "pr-1", Name: "PR one", Tags: []string{"ldreaper", "ephemeral"}}, false},
		{"missing tag", Environment{Key: "pr-1", Name: "PR 1", Tags: []string{"ldreaper"}}, false},
		{"extra tag", Environment{Key: "pr-1", Name: "PR 1", Tags: []string{"ldreaper", "ephemeral", "x"}}, false},
		{"other key", Environment{Key: "pr-2", Name: "PR 1", Tags: []string{"ldreaper", "ephemeral"}}, false},
	}
	for _, tt := range tests {
		if got := matchesPost(tt.env, post); got != tt.want {
			t.Errorf("%s: matchesPost = %t, want %t", tt.name, got, tt.want)
		}
	}
}
