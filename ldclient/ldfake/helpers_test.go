package ldfake_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

const (
	project     = "proj"
	writerToken = "api-writer-0000"
	readerToken = "api-reader-0000"
)

var epoch = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newServer returns a fake with a writer and a reader token, project "proj"
// and the given environment keys seeded one second apart (in that order of
// createdOn).
func newServer(t testing.TB, o ldfake.Options, keys ...string) *ldfake.Server {
	t.Helper()
	if o.Now == nil {
		o.Now = newClock().Now
	}
	s := ldfake.New(o)
	s.AddToken(writerToken, ldfake.RoleWriter)
	s.AddToken(readerToken, ldfake.RoleReader)
	s.AddProject(project)
	for i, key := range keys {
		if _, err := s.Seed(project, ldfake.Environment{Key: key, CreatedOn: epoch.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatalf("seeding %q: %v", key, err)
		}
	}
	return s
}

// reply is a response as a test sees it.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) errorCode() string {
	var body struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.body, &body)
	return body.Code
}

// call sends one request straight to the handler. It recovers the
// http.ErrAbortHandler a dropped connection raises without a real server.
func call(t testing.TB, h http.Handler, method, target, token, body string) (got reply) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("LD-API-Version", "20240415")
	rec := httptest.NewRecorder()
	defer func() {
		if v := recover(); v != nil {
			if err, ok := v.(error); !ok || !errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			got = reply{status: 0}
		}
	}()
	h.ServeHTTP(rec, req)
	return reply{status: rec.Code, header: rec.Result().Header, body: rec.Body.Bytes()}
}

// listPage is the decoded Environments representation.
type listPage struct {
	Links      map[string]ldfake.Link `json:"_links"`
	TotalCount *int                   `json:"totalCount"`
	Items      []ldfake.Environment   `json:"items"`
}

func decodePage(t testing.TB, r reply) listPage {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("list answered %d: %s", r.status, r.body)
	}
	var p listPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decoding list page %s: %v", r.body, err)
	}
	return p
}

func itemKeys(items []ldfake.Environment) []string {
	keys := make([]string, len(items))
	for i, e := range items {
		keys[i] = e.Key
	}
	return keys
}

func envKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return keys
}

const envsPath = "/api/v2/projects/proj/environments"

func createBody(key string, tags ...string) string {
	b, _ := json.Marshal(map[string]any{"key": key, "name": "Env " + key, "color": "F5A623", "tags": tags})
	return string(b)
}
