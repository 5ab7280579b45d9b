package sources

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const httpTestToken = "http-secret-token-31f0"

// jsonFake serves one JSON document at /previews, behind an optional Bearer
// token, with an ETag and 304 for a matching If-None-Match.
type jsonFake struct {
	fakeAPI
	token string

	mu   sync.Mutex
	body string
}

func (f *jsonFake) set(body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.body = body
}

func (f *jsonFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.record(w, r) {
		return
	}
	if r.URL.Path != "/previews" {
		http.NotFound(w, r)
		return
	}
	if f.token != "" && bearerToken(r) != f.token {
		writeFakeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid token"})
		return
	}
	f.mu.Lock()
	body := f.body
	f.mu.Unlock()
	etag := `"` + string(rune('a'+len(body)%26)) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(body))
}

func newTestHTTPJSON(t *testing.T, fake *jsonFake, o HTTPJSONOptions) (*HTTPJSON, *fakeClock) {
	t.Helper()
	o.Name = "api"
	o.URL = serveFake(t, fake) + "/previews"
	if fake.token != "" && o.Token == "" {
		o.Token, o.TokenEnv = fake.token, "PREVIEWS_TOKEN"
	}
	h, err := NewHTTPJSON(o)
	if err != nil {
		t.Fatal(err)
	}
	return h, instant(h.api)
}

func TestHTTPJSONExtract(t *testing.T) {
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	doc := `{"data": {"previews": [
		{"id": "pr-2", "pr": 2, "git": {"branch": "feat/b"}, "live": true, "created": "2025-01-02T03:04:05Z", "state": "up"},
		{"id": "pr-1", "pr": 1, "git": {"branch": "feat/a"}, "live": false, "state": "down", "note": null}
	]}}`
	tests := []struct {
		name    string
		doc     string
		opts    HTTPJSONOptions
		want    []Env
		wantErr string
	}{
		{name: "names and attrs", doc: doc,
			opts: HTTPJSONOptions{ItemsPath: "$.data.previews", NamePath: "$.id",
				AttrPaths: map[string]string{"pr": "$.pr", "branch": "$.git.branch", "live": "@.live", "note": "note", "missing": "$.nope"}, CreatedAtPath: "$.created"},
			want: []Env{
				{Name: "pr-1", Attrs: map[string]string{"pr": "1", "branch": "feat/a", "live": "false"}},
				{Name: "pr-2", Attrs: map[string]string{"pr": "2", "branch": "feat/b", "live": "true"}, CreatedAt: created},
			}},
		{name: "a filter selects items", doc: doc,
			opts: HTTPJSONOptions{ItemsPath: "$.data.previews[?(@.state == 'up')]", NamePath: "$.id"},
			want: []Env{{Name: "pr-2", Attrs: map[string]string{}}}},
		{name: "a wildcard selects every item", doc: doc,
			opts: HTTPJSONOptions{ItemsPath: "$.data.previews[*]", NamePath: "$.pr"},
			want: []Env{{Name: "1", Attrs: map[string]string{}}, {Name: "2", Attrs: map[string]string{}}}},
		{name: "a root list of strings", doc: `["b", "a"]`, opts: HTTPJSONOptions{ItemsPath: "$", NamePath: "@"},
			want: []Env{{Name: "a", Attrs: map[string]string{}}, {Name: "b", Attrs: map[string]string{}}}},
		{name: "numbers as names", doc: `[{"n": 12}, {"n": 12345678901234567890}, {"n": 3.0}]`, opts: HTTPJSONOptions{ItemsPath: "$", NamePath: "$.n"},
			want: []Env{{Name: "12", Attrs: map[string]string{}}, {Name: "12345678901234567890", Attrs: map[string]string{}}, {Name: "3", Attrs: map[string]string{}}}},
		{name: "an empty list", doc: `{"data": {"previews": []}}`, opts: HTTPJSONOptions{ItemsPath: "$.data.previews", NamePath: "$.id"}, want: []Env{}},
		{name: "an empty list through a filter", doc: `{"data": {"previews": []}}`, opts: HTTPJSONOptions{ItemsPath: "$.data.previews[*]", NamePath: "$.id"}, want: []Env{}},

		{name: "a missing list is not an empty one", doc: `{"data": {}}`, opts: HTTPJSONOptions{ItemsPath: "$.data.previews", NamePath: "$.id"},
			wantErr: `items_path "$.data.previews": the response has no such list`},
		{name: "a missing list behind a wildcard", doc: `{"data": {}}`, opts: HTTPJSONOptions{ItemsPath: "$.data.previews[*]", NamePath: "$.id"},
			wantErr: `items_path "$.data.previews[*]": the response has no such list`},
		{name: "a null list", doc: `{"data": {"previews": null}}`, opts: HTTPJSONOptions{ItemsPath: "$.data.previews", NamePath: "$.id"},
			wantErr: "the response has no such list"},
		{name: "not a list", doc: `{"data": {"previews": {"a": 1}}}`, opts: HTTPJSONOptions{ItemsPath: "$.data.previews", NamePath: "$.id"},
			wantErr: "selects an object, want a list"},
		{name: "an item without a name", doc: `[{"id": "a"}, {"x": 1}]`, opts: HTTPJSONOptions{ItemsPath: "$", NamePath: "$.id"},
			wantErr: "item 1: name_path $.id finds no name"},
		{name: "a name that is an object", doc: `[{"id": {}}]`, opts: HTTPJSONOptions{ItemsPath: "$", NamePath: "$.id"},
			wantErr: "selects an object, want a string or an integer"},
		{name: "a fractional name", doc: `[{"id": 1.5}]`, opts: HTTPJSONOptions{ItemsPath: "$", NamePath: "$.id"},
			wantErr: "selects the number 1.5, want a string or an integer"},
		{name: "a name with whitespace", doc: `[{"id": "a b"}]`, opts: HTTPJSONOptions{ItemsPath: "$", NamePath: "$.id"},
			wantErr: `item 0: name "a b" contains whitespace`},
		{name: "a duplicate name", doc: `[{"id": "a"}, {"id": "b"}, {"id": "a"}]`, opts: HTTPJSONOptions{ItemsPath: "$", NamePath: "$.id"},
			wantErr: `item 2: name "a" is already the name of item 0`},
		{name: "an attr that is a list", doc: `[{"id": "a", "tags": [1]}]`, opts: HTTPJSONOptions{ItemsPath: "$", NamePath: "$.id", AttrPaths: map[string]string{"tags": "$.tags"}},
			wantErr: `item "a": attr_paths.tags selects a list, want a string, number or boolean`},
		{name: "a bad time", doc: `[{"id": "a", "t": "yesterday"}]`, opts: HTTPJSONOptions{ItemsPath: "$", NamePath: "$.id", CreatedAtPath: "$.t"},
			wantErr: `item "a": created_at_path selects the string "yesterday", want an RFC 3339 time`},
		{name: "not JSON", doc: `<html>`, opts: HTTPJSONOptions{ItemsPath: "$", NamePath: "$.id"},
			wantErr: "parsing the response as JSON"},
		{name: "truncated JSON", doc: `[{"id": "a"}, {"id": "b"`, opts: HTTPJSONOptions{ItemsPath: "$", NamePath: "$.id"},
			wantErr: "parsing the response as JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &jsonFake{}
			fake.set(tt.doc)
			h, _ := newTestHTTPJSON(t, fake, tt.opts)
			got, err := h.List(t.Context())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got.Complete || len(got.Items) != 0 {
					t.Fatalf("List = %+v, %v; want an incomplete snapshot and an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(Snapshot{Source: "api", Items: tt.want, Complete: true}, got); diff != "" {
				t.Errorf("List (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileHTTPJSONPaths(t *testing.T) {
	tests := []struct {
		name                     string
		items, nameP, createdAtP string
		attrs                    map[string]string
		wantErr                  string
	}{
		{name: "plain", items: "$.a", nameP: "$.id"},
		{name: "bracket notation", items: "$['a']['b'][0]", nameP: "$['id']"},
		{name: "filter", items: "$.a[?(@.x > 1)]", nameP: "$.id"},
		{name: "items required", items: "", nameP: "$.id", wantErr: "items_path: required"},
		{name: "name required", items: "$.a", nameP: " ", wantErr: "name_path: required"},
		{name: "items unparsable", items: "$.a[", nameP: "$.id", wantErr: `items_path: parsing "$.a["`},
		{name: "descent in items", items: "$..a", nameP: "$.id", wantErr: `items_path: "$..a" must name the list itself`},
		{name: "two wildcards", items: "$.a[*].b[*]", nameP: "$.id", wantErr: "must name the list itself"},
		{name: "a wildcard in the name", items: "$.a", nameP: "$.names[*]", wantErr: `name_path: "$.names[*]" must select one value`},
		{name: "an attr with an empty key", items: "$.a", nameP: "$.id", attrs: map[string]string{"": "$.x"}, wantErr: "attr_paths: attrs has an empty key"},
		{name: "an attr with a union", items: "$.a", nameP: "$.id", attrs: map[string]string{"x": "$['a','b']"}, wantErr: "attr_paths.x:"},
		{name: "created_at unparsable", items: "$.a", nameP: "$.id", createdAtP: "$.[", wantErr: "created_at_path: parsing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileHTTPJSONPaths(tt.items, tt.nameP, tt.attrs, tt.createdAtP)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if tt.wantErr == "" && got != "" || !strings.Contains(got, tt.wantErr) {
				t.Errorf("compileHTTPJSONPaths error = %q, want it to contain %q", got, tt.wantErr)
			}
		})
	}
}

func httpJSONFailures() []failureCase {
	return []failureCase{
		{name: "ok", wantRequests: 1},
		{name: "429 honours Retry-After", faults: []fault{{status: 429, header: map[string]string{"Retry-After": "4"}, body: `{"message":"slow down"}`}},
			wantWaits: []time.Duration{4 * time.Second}, wantRequests: 2},
		{name: "429 honours a draft RateLimit-Reset", faults: []fault{{status: 429, header: map[string]string{"RateLimit-Reset": "6"}}},
			wantWaits: []time.Duration{6 * time.Second}, wantRequests: 2},
		{name: "429 without headers backs off", faults: []fault{{status: 429}},
			wantWaits: []time.Duration{250 * time.Millisecond}, wantRequests: 2},
		{name: "5xx is retried", faults: []fault{{status: 500}, {status: 504}},
			wantWaits: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond}, wantRequests: 3},
		{name: "5xx until the retries run out", faults: []fault{{status: 500}, {status: 500}, {status: 500}, {status: 500, body: "upstream down"}},
			wantErr: "giving up after 4 attempts: GET http://", wantWaits: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}, wantRequests: 4},
		{name: "404", faults: []fault{{status: 404, body: "404 page not found"}}, wantErr: "404 Not Found: 404 page not found", wantRequests: 1},
	}
}

func TestHTTPJSONFailures(t *testing.T) {
	for _, tt := range httpJSONFailures() {
		t.Run(tt.name, func(t *testing.T) {
			fake := &jsonFake{token: httpTestToken}
			fake.set(`{"items": [{"id": "a"}]}`)
			fake.fail(tt.faults...)
			h, clock := newTestHTTPJSON(t, fake, HTTPJSONOptions{ItemsPath: "$.items", NamePath: "$.id"})
			got, err := h.List(t.Context())
			checkFailureCase(t, tt, got, err, clock, len(fake.seen()), 1)
		})
	}
}

func TestHTTPJSONAuth(t *testing.T) {
	fake := &jsonFake{token: httpTestToken}
	fake.set(`[]`)
	tests := []struct {
		name, token, tokenEnv string
		wantErr               string
	}{
		{name: "right token", token: httpTestToken, tokenEnv: "PREVIEWS_TOKEN"},
		{name: "wrong token", token: "nope", tokenEnv: "PREVIEWS_TOKEN", wantErr: "401 Unauthorized (check the token in $PREVIEWS_TOKEN): invalid token"},
		{name: "no token configured", wantErr: "401 Unauthorized (the endpoint wants credentials: set token_env): invalid token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHTTPJSON(HTTPJSONOptions{Name: "api", URL: serveFake(t, fake) + "/previews", Token: tt.token, TokenEnv: tt.tokenEnv, ItemsPath: "$", NamePath: "$.id"})
			if err != nil {
				t.Fatal(err)
			}
			instant(h.api)
			got, err := h.List(t.Context())
			if tt.wantErr == "" {
				if err != nil || !got.Complete {
					t.Fatalf("List = %+v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got.Complete {
				t.Fatalf("List = %+v, %v; want an incomplete snapshot and %q", got, err, tt.wantErr)
			}
		})
	}
	var sawNoAuth bool
	for _, r := range fake.seen() {
		sawNoAuth = sawNoAuth || r.Auth == ""
	}
	if !sawNoAuth {
		t.Error("the source without a token sent an Authorization header")
	}
}

// A document that has not changed is served from the cache after a 304.
func TestHTTPJSONConditionalRequests(t *testing.T) {
	fake := &jsonFake{}
	fake.set(`[{"id": "a"}]`)
	h, _ := newTestHTTPJSON(t, fake, HTTPJSONOptions{ItemsPath: "$", NamePath: "$.id"})
	for range 2 {
		got, err := h.List(t.Context())
		if err != nil || len(got.Items) != 1 || got.Items[0].Name != "a" {
			t.Fatalf("List = %+v, %v", got, err)
		}
	}
	var conditional []bool
	for _, r := range fake.seen() {
		conditional = append(conditional, r.IfNoneMatch != "")
	}
	if diff := cmp.Diff([]bool{false, true}, conditional); diff != "" {
		t.Errorf("conditional requests (-want +got):\n%s", diff)
	}
}

func FuzzHTTPJSONExtract(f *testing.F) {
	f.Add(`{"items": [{"id": "a", "pr": 1, "t": "2025-01-02T03:04:05Z"}, {"id": 7}]}`)
	f.Add(`{"items": null}`)
	f.Add(`{"items": [{"id": "a"}, {"id": "a"}]}`)
	f.Add(`{"items": [{"id": 1e400}]}`)
	f.Add(`[`)
	paths, err := compileHTTPJSONPaths("$.items", "$.id", map[string]string{"pr": "$.pr"}, "$.t")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		items, err := paths.extract([]byte(body))
		if err != nil {
			if items != nil {
				t.Fatalf("error %v with items", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, item := range items {
			if err := checkName(item.Name); err != nil {
				t.Errorf("invalid name: %v", err)
			}
			if seen[item.Name] {
				t.Errorf("duplicate name %q", item.Name)
			}
			seen[item.Name] = true
			if item.Attrs == nil {
				t.Errorf("nil attrs for %q", item.Name)
			}
		}
	})
}
