package ldclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// listServer serves keys the way LD's list endpoint does: limit (default
// 20, capped at maxPage), offset, and a relative next link that keeps the
// other parameters.
type listServer struct {
	keys    []string
	maxPage int
	// total is how totalCount is reported: "total" (the collection), "page"
	// (the items on this page) or "absent".
	total string
	// emptyTail sends a next link from every page, also past the end, so
	// only an empty page can end the list; noNext never sends one.
	emptyTail, noNext bool
}

func (s listServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		limit = 20
	}
	if s.maxPage > 0 {
		limit = min(limit, s.maxPage)
	}
	offset, _ := strconv.Atoi(q.Get("offset"))
	lo, hi := min(offset, len(s.keys)), min(offset+limit, len(s.keys))
	items := []json.RawMessage{}
	for _, k := range s.keys[lo:hi] {
		items = append(items, json.RawMessage(envJSON(k, "Env "+k)))
	}
	links := map[string]any{"self": map[string]string{"href": r.URL.RequestURI(), "type": "application/json"}}
	if !s.noNext && (hi < len(s.keys) || s.emptyTail) {
		q.Set("limit", strconv.Itoa(limit))
		q.Set("offset", strconv.Itoa(hi))
		links["next"] = map[string]string{"href": r.URL.Path + "?" + q.Encode(), "type": "application/json"}
	}
	page := map[string]any{"items": items, "_links": links}
	switch s.total {
	case "total":
		page["totalCount"] = len(s.keys)
	case "page":
		page["totalCount"] = len(items)
	}
	b, _ := json.Marshal(page)
	reply(200, string(b))(w, r)
}

func keysN(n int) []string {
	var keys []string
	for i := range n {
		keys = append(keys, fmt.Sprintf("env-%03d", i))
	}
	return keys
}

func keysOf(envs []Environment) []string {
	var keys []string
	for _, e := range envs {
		keys = append(keys, e.Key)
	}
	return keys
}

// queries lists the raw query of each request seen.
func queries(rec *recorder) []string {
	var out []string
	for _, r := range rec.requests() {
		_, q, _ := strings.Cut(r.RequestURI, "?")
		out = append(out, q)
	}
	return out
}

func pageQueries(limit int, offsets ...int) []string {
	var out []string
	for _, o := range offsets {
		out = append(out, fmt.Sprintf("limit=%d&offset=%d&sort=createdOn", limit, o))
	}
	return out
}

func TestListPagination(t *testing.T) {
	tests := []struct {
		name        string
		server      listServer
		pageSize    int
		wantKeys    []string
		wantQueries []string
	}{
		{name: "server caps pages below the size asked", server: listServer{keys: keysN(250), maxPage: 20}, wantKeys: keysN(250),
			wantQueries: append(pageQueries(100, 0), pageQueries(20, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 220, 240)...)},
		{name: "server honours the size asked", server: listServer{keys: keysN(250), maxPage: 100}, wantKeys: keysN(250),
			wantQueries: pageQueries(100, 0, 100, 200)},
		{name: "an empty page ends the list", server: listServer{keys: keysN(40), maxPage: 20, emptyTail: true}, wantKeys: keysN(40),
			wantQueries: append(pageQueries(100, 0), pageQueries(20, 20, 40)...)},
		{name: "a missing next link ends the list", server: listServer{keys: keysN(40), maxPage: 20, noNext: true}, wantKeys: keysN(20),
			wantQueries: pageQueries(100, 0)},
		{name: "configured page size", server: listServer{keys: keysN(10)}, pageSize: 7, wantKeys: keysN(10),
			wantQueries: pageQueries(7, 0, 7)},
		{name: "page size above 100 is cut", server: listServer{keys: keysN(3)}, pageSize: 1000, wantKeys: keysN(3),
			wantQueries: pageQueries(100, 0)},
		{name: "empty project", server: listServer{}, wantQueries: pageQueries(100, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.server, func(o *Options) { o.PageSize = tt.pageSize })
			envs, err := h.client.ListEnvironments(context.Background(), "p", ListFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantKeys, keysOf(envs)); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantQueries, queries(h.rec)); diff != "" {
				t.Errorf("queries (-want +got):\n%s", diff)
			}
		})
	}
}

// pages answers by raw query; an unknown query is a test bug and gets 418.
type pages map[string]string

func (p pages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := p[r.URL.RawQuery]
	if !ok {
		reply(http.StatusTeapot, `{"message":"no page for `+r.URL.RawQuery+`"}`)(w, r)
		return
	}
	reply(200, strings.ReplaceAll(body, "HOST", r.Host))(w, r)
}

const firstPage = "limit=100&offset=0&sort=createdOn"

func page(next string, items ...string) string {
	links := `{}`
	if next != "" {
		links = fmt.Sprintf(`{"next":{"href":%q}}`, next)
	}
	return fmt.Sprintf(`{"items":[%s],"_links":%s}`, strings.Join(items, ","), links)
}

func TestListDropsRepeatsAndKeylessItems(t *testing.T) {
	// A create between the two requests shifted b onto the second page too.
	h := newHarness(t, pages{
		firstPage:  page("/api/v2/projects/p/environments?offset=2", envJSON("a", "A"), envJSON("b", "B")),
		"offset=2": page("", envJSON("b", "B"), envJSON("c", "C"), `{"name":"no key"}`),
	})
	envs, err := h.client.ListEnvironments(context.Background(), "p", ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, keysOf(envs)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}

func TestListRejectsBadNextLinks(t *testing.T) {
	other := &recorder{next: reply(200, page(""))}
	otherServer := newHarness(t, other).server
	tests := []struct {
		name     string
		pages    pages
		wantErr  string
		wantKeys []string
	}{
		{name: "next link repeats the page", wantErr: "does not advance",
			pages: pages{firstPage: page("/api/v2/projects/p/environments?"+firstPage, envJSON("a", "A"))}},
		{name: "next link keeps the offset", wantErr: "does not advance",
			pages: pages{firstPage: page("/api/v2/projects/p/environments?limit=20&offset=0", envJSON("a", "A"))}},
		{name: "next link goes back", wantErr: "does not advance",
			pages: pages{
				firstPage:  page("/api/v2/projects/p/environments?offset=2", envJSON("a", "A")),
				"offset=2": page("/api/v2/projects/p/environments?offset=1", envJSON("b", "B")),
			}},
		{name: "next link without an offset loops", wantErr: "does not advance",
			pages: pages{
				firstPage:  page("/api/v2/projects/p/environments?cursor=x", envJSON("a", "A")),
				"cursor=x": page("/api/v2/projects/p/environments?cursor=x", envJSON("b", "B")),
			}},
		{name: "next link to another host", wantErr: "leaves",
			pages: pages{firstPage: page(otherServer.URL+"/api/v2/projects/p/environments?offset=1", envJSON("a", "A"))}},
		{name: "next link with another scheme", wantErr: "leaves",
			pages: pages{firstPage: page("https://HOST/api/v2/projects/p/environments?offset=1", envJSON("a", "A"))}},
		{name: "unparsable next link", wantErr: "not a valid URL",
			pages: pages{firstPage: page("/%zz", envJSON("a", "A"))}},
		{name: "absolute link to the same host is followed", wantKeys: []string{"a", "b"},
			pages: pages{
				firstPage:  page("http://HOST/api/v2/projects/p/environments?offset=1", envJSON("a", "A")),
				"offset=1": page("", envJSON("b", "B")),
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.pages)
			envs, err := h.client.ListEnvironments(context.Background(), "p", ListFilter{})
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantKeys, keysOf(envs)); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
		})
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("the other host got %d requests; the token must not follow a foreign link", n)
	}
}

func TestListStopsAfterMaxPages(t *testing.T) {
	endless := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		reply(200, page(fmt.Sprintf("/api/v2/projects/p/environments?offset=%d", offset+1), envJSON(fmt.Sprint(offset), "x")))(w, r)
	})
	h := newHarness(t, endless)
	h.client.maxListPages = 5
	_, err := h.client.ListEnvironments(context.Background(), "p", ListFilter{})
	if err == nil || !strings.Contains(err.Error(), "more than 5 pages") {
		t.Fatalf("error = %v, want a page limit error", err)
	}
	if n := len(h.rec.requests()); n != 5 {
		t.Errorf("%d requests, want 5", n)
	}
}

func TestListFollowsLinksUnderPathPrefix(t *testing.T) {
	inner := pages{
		firstPage:  page("/api/v2/projects/p/environments?offset=1", envJSON("a", "A")),
		"offset=1": page("", envJSON("b", "B")),
	}
	h := newHarness(t, http.StripPrefix("/ld", inner), func(o *Options) { o.BaseURL += "/ld" })
	envs, err := h.client.ListEnvironments(context.Background(), "p", ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b"}, keysOf(envs)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	var uris []string
	for _, r := range h.rec.requests() {
		uris = append(uris, r.RequestURI)
	}
	want := []string{"/ld/api/v2/projects/p/environments?" + firstPage, "/ld/api/v2/projects/p/environments?offset=1"}
	if diff := cmp.Diff(want, uris); diff != "" {
		t.Errorf("request URIs (-want +got):\n%s", diff)
	}
}

func TestListQueryOnTheWire(t *testing.T) {
	tests := []struct {
		name       string
		filter     ListFilter
		wantRaw    string
		wantFilter string // as the server decodes it
		wantSort   string
	}{
		{name: "no filter sorts by creation", filter: ListFilter{},
			wantRaw: "limit=100&offset=0&sort=createdOn", wantSort: "createdOn"},
		{name: "tags joined by an escaped plus", filter: ListFilter{Tags: []string{"ldreaper", "ephemeral"}},
			wantRaw:    "filter=tags%3Aldreaper%2Bephemeral&limit=100&offset=0&sort=createdOn",
			wantFilter: "tags:ldreaper+ephemeral", wantSort: "createdOn"},
		{name: "tags, query and sort", filter: ListFilter{Tags: []string{"ldreaper"}, Query: "pr 1", Sort: "-name"},
			wantRaw:    "filter=tags%3Aldreaper%2Cquery%3Apr%201&limit=100&offset=0&sort=-name",
			wantFilter: "tags:ldreaper,query:pr 1", wantSort: "-name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotFilter, gotSort string
			h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotFilter, gotSort = r.URL.Query().Get("filter"), r.URL.Query().Get("sort")
				reply(200, page(""))(w, r)
			}))
			if _, err := h.client.ListEnvironments(context.Background(), "p", tt.filter); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tt.wantRaw}, queries(h.rec)); diff != "" {
				t.Errorf("raw query (-want +got):\n%s", diff)
			}
			if gotFilter != tt.wantFilter || gotSort != tt.wantSort {
				t.Errorf("server decoded filter %q sort %q, want %q %q", gotFilter, gotSort, tt.wantFilter, tt.wantSort)
			}
		})
	}
}

func TestListRejectsBadFilters(t *testing.T) {
	h := newHarness(t, reply(200, page("")))
	for _, f := range []ListFilter{
		{Tags: []string{"a+b"}},
		{Tags: []string{"a,b"}},
		{Tags: []string{""}},
		{Tags: []string{"a b"}},
		{Query: "a,tags:b"},
	} {
		if _, err := h.client.ListEnvironments(context.Background(), "p", f); err == nil {
			t.Errorf("filter %+v: no error", f)
		}
	}
	if n := len(h.rec.requests()); n != 0 {
		t.Errorf("%d requests, want 0", n)
	}
}

func TestCountEnvironments(t *testing.T) {
	const countQuery = "limit=1&offset=0"
	tests := []struct {
		name        string
		handler     http.Handler
		want        int
		wantQueries []string
	}{
		{name: "totalCount is the collection total", handler: listServer{keys: keysN(5), total: "total"}, want: 5,
			wantQueries: []string{countQuery}},
		{name: "totalCount is the page size", handler: listServer{keys: keysN(5), total: "page"}, want: 5,
			wantQueries: []string{countQuery, firstPage}},
		{name: "totalCount absent", handler: listServer{keys: keysN(5), total: "absent"}, want: 5,
			wantQueries: []string{countQuery, firstPage}},
		{name: "one environment, page-sized totalCount", handler: listServer{keys: keysN(1), total: "page"}, want: 1,
			wantQueries: []string{countQuery}},
		{name: "empty project", handler: listServer{total: "total"}, want: 0,
			wantQueries: []string{countQuery}},
		{name: "totalCount below the items seen", want: 2, wantQueries: []string{countQuery, firstPage},
			handler: pages{
				countQuery: `{"items":[` + envJSON("a", "A") + `],"totalCount":0}`,
				firstPage:  page("", envJSON("a", "A"), envJSON("b", "B")),
			}},
		{name: "totalCount above the items without a next link", want: 2, wantQueries: []string{countQuery, firstPage},
			handler: pages{
				countQuery: `{"items":[` + envJSON("a", "A") + `],"totalCount":7}`,
				firstPage:  page("", envJSON("a", "A"), envJSON("b", "B")),
			}},
		{name: "negative totalCount", want: 1, wantQueries: []string{countQuery, firstPage},
			handler: pages{
				countQuery: `{"items":[],"totalCount":-1}`,
				firstPage:  page("", envJSON("a", "A")),
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.handler)
			got, err := h.client.CountEnvironments(context.Background(), "p")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("count = %d, want %d", got, tt.want)
			}
			if diff := cmp.Diff(tt.wantQueries, queries(h.rec)); diff != "" {
				t.Errorf("queries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCountEnvironmentsReportsErrors(t *testing.T) {
	h := newHarness(t, reply(404, `{"code":"not_found","message":"Unknown project"}`))
	_, err := h.client.CountEnvironments(context.Background(), "nope")
	if !IsNotFound(err) || !strings.Contains(err.Error(), `count environments in project "nope"`) {
		t.Fatalf("error = %v, want a wrapped 404", err)
	}
}

func FuzzListQuery(f *testing.F) {
	f.Add("ldreaper", "ephemeral", "pr 1", "-name")
	f.Add("a.b_c-d", "", "", "")
	f.Add("x", "y", "100% & more=", "createdOn,name")
	f.Fuzz(func(t *testing.T, tag1, tag2, query, sort string) {
		var tags []string
		for _, tag := range []string{tag1, tag2} {
			if tag != "" {
				tags = append(tags, tag)
			}
		}
		raw, err := listQuery(ListFilter{Tags: tags, Query: query, Sort: sort}, 100)
		if err != nil {
			return
		}
		if strings.Contains(raw, "+") {
			t.Fatalf("literal '+' on the wire: %s", raw)
		}
		v, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatalf("unparsable query %q: %v", raw, err)
		}
		var wantFilters []string
		if len(tags) > 0 {
			wantFilters = append(wantFilters, "tags:"+strings.Join(tags, "+"))
		}
		if query != "" {
			wantFilters = append(wantFilters, "query:"+query)
		}
		if got, want := v.Get("filter"), strings.Join(wantFilters, ","); got != want {
			t.Fatalf("filter decodes to %q, want %q", got, want)
		}
		if got, want := v.Get("sort"), cmpOr(sort, "createdOn"); got != want {
			t.Fatalf("sort decodes to %q, want %q", got, want)
		}
	})
}

func FuzzResolveNext(f *testing.F) {
	f.Add("/api/v2/projects/p/environments?limit=20&offset=20")
	f.Add("https://evil.example/api/v2/projects/p/environments?offset=20")
	f.Add("//evil.example/x?offset=40")
	f.Add("?offset=0")
	f.Add("%zz")
	f.Add("http://user:pw@127.0.0.1:8080/api?offset=99")
	c, err := New(Options{BaseURL: "http://127.0.0.1:8080/ld", Token: testToken})
	if err != nil {
		f.Fatal(err)
	}
	current := c.environmentsURL("p")
	current.RawQuery = "limit=100&offset=10"
	f.Fuzz(func(t *testing.T, href string) {
		next, err := c.resolveNext(current, href)
		if err != nil {
			return
		}
		if next.Scheme != "http" || next.Host != "127.0.0.1:8080" || next.User != nil {
			t.Fatalf("resolved %q to %s, off the base URL", href, next)
		}
		if offset, err := strconv.Atoi(next.Query().Get("offset")); err == nil && offset <= 10 {
			t.Fatalf("resolved %q to offset %d, not past 10", href, offset)
		}
	})
}
