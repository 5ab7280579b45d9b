package ldclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// testToken is distinctive so that a leak anywhere is easy to spot; every
// test client uses it, and every test client's log is scanned for it.
const testToken = "api-ldreaper-TEST-TOKEN-7c1e9b2f-must-never-print"

// t0 is the fake clock's start, so handlers can compute reset headers.
var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// fakeClock advances instantly on Sleep and records every wait.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
	// onSleep, if set, runs after the clock advanced; its error is Sleep's.
	onSleep func(ctx context.Context, d time.Duration) error
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	hook := c.onSleep
	c.mu.Unlock()
	if hook != nil {
		return hook(ctx, d)
	}
	return nil
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// syncBuffer collects log output from concurrent calls.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// seenRequest is what the test server saw of one request.
type seenRequest struct {
	Method     string
	RequestURI string
	Header     http.Header
	Body       string
}

// recorder wraps a handler and keeps every request it saw.
type recorder struct {
	mu   sync.Mutex
	reqs []seenRequest
	next http.Handler
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body bytes.Buffer
	_, _ = body.ReadFrom(r.Body)
	r.Body.Close()
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, seenRequest{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Body: body.String()})
	rec.mu.Unlock()
	r.Body = readCloser{bytes.NewReader(body.Bytes())}
	rec.next.ServeHTTP(w, r)
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func (rec *recorder) requests() []seenRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]seenRequest(nil), rec.reqs...)
}

// methods lists the methods of the requests seen, in order.
func (rec *recorder) methods() []string {
	var out []string
	for _, r := range rec.requests() {
		out = append(out, r.Method)
	}
	return out
}

type harness struct {
	client  *Client
	clock   *fakeClock
	logs    *syncBuffer
	rec     *recorder
	server  *httptest.Server
	mu      sync.Mutex
	records []RequestRecord
}

func (h *harness) observed() []RequestRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]RequestRecord(nil), h.records...)
}

// newHarness serves handler on loopback and returns a client for it with a
// fake clock, zero jitter and a debug log that is checked for the token
// when the test ends. Keep-alives are off so that a dropped connection is
// never retried by net/http itself, which would blur attempt counts.
func newHarness(t *testing.T, handler http.Handler, mutate ...func(*Options)) *harness {
	t.Helper()
	h := &harness{clock: &fakeClock{now: t0}, logs: &syncBuffer{}, rec: &recorder{next: handler}}
	h.server = httptest.NewServer(h.rec)
	t.Cleanup(h.server.Close)
	o := Options{
		BaseURL:    h.server.URL,
		Token:      testToken,
		HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		Clock:      h.clock,
		Rand:       func() float64 { return 0 },
		Logger:     zerolog.New(h.logs).Level(zerolog.DebugLevel),
		Observe: func(r RequestRecord) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.records = append(h.records, r)
		},
	}
	for _, m := range mutate {
		m(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.client = c
	t.Cleanup(func() {
		if strings.Contains(h.logs.String(), testToken) {
			t.Errorf("token found in logs:\n%s", h.logs.String())
		}
	})
	return h
}

// script answers the n-th request with steps[n]; the last step repeats.
func script(steps ...http.HandlerFunc) http.HandlerFunc {
	var mu sync.Mutex
	n := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		step := steps[min(n, len(steps)-1)]
		n++
		mu.Unlock()
		step(w, r)
	}
}

// reply answers with status, a JSON body and header pairs.
func reply(status int, body string, headerPairs ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headerPairs); i += 2 {
			w.Header().Set(headerPairs[i], headerPairs[i+1])
		}
		if body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// drop closes the connection without answering, like a reset.
func drop(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

// byMethod routes by HTTP method; a nil handler answers 405.
type byMethod struct {
	get, post, del http.HandlerFunc
}

func (m byMethod) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var h http.HandlerFunc
	switch r.Method {
	case http.MethodGet:
		h = m.get
	case http.MethodPost:
		h = m.post
	case http.MethodDelete:
		h = m.del
	}
	if h == nil {
		reply(http.StatusMethodNotAllowed, `{"code":"method_not_allowed","message":"Method not allowed"}`)(w, r)
		return
	}
	h(w, r)
}

func envJSON(key, name string, tags ...string) string {
	if tags == nil {
		tags = []string{}
	}
	b, err := json.Marshal(map[string]any{
		"_id": "0123456789abcdef01234567", "_links": map[string]any{"self": map[string]string{"href": "/api/v2/projects/p/environments/" + key}},
		"key": key, "name": name, "apiKey": "sdk-SECRET-" + key, "mobileKey": "mob-SECRET-" + key,
		"color": "7B42BC", "defaultTtl": 0, "secureMode": false, "defaultTrackEvents": false,
		"requireComments": false, "confirmChanges": false, "tags": tags, "critical": false,
	})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// envStore is a minimal stateful LD for the create/delete races: it
// commits mutations and can be told to answer badly after committing.
type envStore struct {
	mu   sync.Mutex
	envs map[string]Environment
}

func newEnvStore() *envStore { return &envStore{envs: map[string]Environment{}} }

func (s *envStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.envs {
		out = append(out, k)
	}
	return out
}

func (s *envStore) put(env Environment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.envs[env.Key] = env
}

// commit applies a POST or DELETE and reports the status LD would send.
func (s *envStore) commit(r *http.Request) (int, Environment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodPost:
		var body EnvironmentPost
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return http.StatusBadRequest, Environment{}
		}
		if _, ok := s.envs[body.Key]; ok {
			return http.StatusConflict, Environment{}
		}
		env := Environment{Key: body.Key, Name: body.Name, Color: body.Color, Tags: body.Tags, APIKey: "sdk-SECRET"}
		s.envs[body.Key] = env
		return http.StatusCreated, env
	case http.MethodDelete:
		key := lastSegment(r)
		if _, ok := s.envs[key]; !ok {
			return http.StatusNotFound, Environment{}
		}
		delete(s.envs, key)
		return http.StatusNoContent, Environment{}
	}
	return http.StatusMethodNotAllowed, Environment{}
}

func lastSegment(r *http.Request) string {
	key, err := url.PathUnescape(path.Base(r.URL.EscapedPath()))
	if err != nil {
		panic(err)
	}
	return key
}

// serve commits and answers truthfully.
func (s *envStore) serve(w http.ResponseWriter, r *http.Request) {
	status, env := s.commit(r)
	switch status {
	case http.StatusCreated:
		reply(status, envJSON(env.Key, env.Name, env.Tags...))(w, r)
	case http.StatusNoContent:
		w.WriteHeader(status)
	case http.StatusConflict:
		reply(status, `{"code":"optimistic_locking_error","message":"Conflict. Optimistic lock error. Try again later."}`)(w, r)
	default:
		reply(status, `{"code":"not_found","message":"Invalid resource identifier"}`)(w, r)
	}
}

// commitThen commits, then answers with fault instead of the truth.
func (s *envStore) commitThen(fault http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.commit(r)
		fault(w, r)
	}
}

func (s *envStore) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	env, ok := s.envs[lastSegment(r)]
	s.mu.Unlock()
	if !ok {
		reply(http.StatusNotFound, `{"code":"not_found","message":"Invalid resource identifier"}`)(w, r)
		return
	}
	reply(http.StatusOK, envJSON(env.Key, env.Name, env.Tags...))(w, r)
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func epochMillis(t time.Time) string { return fmt.Sprint(t.UnixMilli()) }
