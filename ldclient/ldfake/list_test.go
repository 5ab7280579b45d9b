package ldfake_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

func links(pairs ...string) map[string]ldfake.Link {
	m := map[string]ldfake.Link{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i]] = ldfake.Link{Href: pairs[i+1], Type: "application/json"}
	}
	return m
}

func TestListPaging(t *testing.T) {
	keys := envKeys("e", 45)
	page := func(limit, offset int) string {
		return fmt.Sprintf("%s?limit=%d&offset=%d", envsPath, limit, offset)
	}
	tests := []struct {
		name      string
		opts      ldfake.Options
		query     string
		wantKeys  []string
		wantLinks map[string]ldfake.Link
	}{
		{
			name:     "LD's default limit is 20",
			query:    "",
			wantKeys: keys[:20],
			wantLinks: links("self", page(20, 0), "parent", "/api/v2/projects/proj",
				"next", page(20, 20), "last", page(20, 40)),
		},
		{
			name:     "first page has no first or prev; limit clamped to MaxPageSize",
			opts:     ldfake.Options{MaxPageSize: 20},
			query:    "?limit=100",
			wantKeys: keys[:20],
			wantLinks: links("self", page(20, 0), "parent", "/api/v2/projects/proj",
				"next", page(20, 20), "last", page(20, 40)),
		},
		{
			name:     "middle page has every link",
			opts:     ldfake.Options{MaxPageSize: 20},
			query:    "?limit=20&offset=20",
			wantKeys: keys[20:40],
			wantLinks: links("self", page(20, 20), "parent", "/api/v2/projects/proj",
				"first", page(20, 0), "prev", page(20, 0), "next", page(20, 40), "last", page(20, 40)),
		},
		{
			name:     "last page has no next or last",
			opts:     ldfake.Options{MaxPageSize: 20},
			query:    "?limit=20&offset=40",
			wantKeys: keys[40:],
			wantLinks: links("self", page(20, 40), "parent", "/api/v2/projects/proj",
				"first", page(20, 0), "prev", page(20, 20)),
		},
		{
			name:     "unaligned offset steps from the offset",
			query:    "?limit=20&offset=5",
			wantKeys: keys[5:25],
			wantLinks: links("self", page(20, 5), "parent", "/api/v2/projects/proj",
				"first", page(20, 0), "prev", page(20, 0), "next", page(20, 25), "last", page(20, 25)),
		},
		{
			name:     "custom default limit",
			opts:     ldfake.Options{DefaultLimit: 30},
			query:    "?offset=30",
			wantKeys: keys[30:],
			wantLinks: links("self", page(30, 30), "parent", "/api/v2/projects/proj",
				"first", page(30, 0), "prev", page(30, 0)),
		},
		{
			name:     "past the end is empty with a way back",
			query:    "?limit=20&offset=60",
			wantKeys: []string{},
			wantLinks: links("self", page(20, 60), "parent", "/api/v2/projects/proj",
				"first", page(20, 0), "prev", page(20, 40)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.opts, keys...)
			got := decodePage(t, call(t, s, http.MethodGet, envsPath+tt.query, writerToken, ""))
			if diff := cmp.Diff(tt.wantKeys, itemKeys(got.Items)); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLinks, got.Links); diff != "" {
				t.Errorf("links (-want +got):\n%s", diff)
			}
			if got.TotalCount == nil || *got.TotalCount != len(keys) {
				t.Errorf("totalCount = %v, want %d", got.TotalCount, len(keys))
			}
		})
	}
}

func TestListEmptyItemsIsAnArray(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production")
	r := call(t, s, http.MethodGet, envsPath+"?filter=query:nomatch", writerToken, "")
	want := `{"_links":{"parent":{"href":"/api/v2/projects/proj","type":"application/json"},` +
		`"self":{"href":"/api/v2/projects/proj/environments?filter=query%3Anomatch\u0026limit=20\u0026offset=0","type":"application/json"}},` +
		`"totalCount":0,"items":[]}`
	if diff := cmp.Diff(want, string(r.body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestListFollowingNextVisitsEveryItemOnce(t *testing.T) {
	keys := envKeys("e", 45)
	s := newServer(t, ldfake.Options{MaxPageSize: 7}, keys...)
	var got []string
	requests := 0
	for next := envsPath + "?limit=100&filter=tags:&sort=createdOn"; next != ""; requests++ {
		p := decodePage(t, call(t, s, http.MethodGet, next, readerToken, ""))
		got = append(got, itemKeys(p.Items)...)
		next = p.Links["next"].Href
	}
	if diff := cmp.Diff(keys, got); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if requests != 7 {
		t.Errorf("requests = %d, want 7 pages of 7", requests)
	}
}

func TestListOmitTotalCount(t *testing.T) {
	s := newServer(t, ldfake.Options{OmitTotalCount: true}, "a", "b")
	got := decodePage(t, call(t, s, http.MethodGet, envsPath, writerToken, ""))
	if got.TotalCount != nil {
		t.Errorf("totalCount = %d, want it omitted", *got.TotalCount)
	}
	if diff := cmp.Diff([]string{"a", "b"}, itemKeys(got.Items)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}

func TestListRejectsBadParameters(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "a")
	for _, query := range []string{
		"limit=0", "limit=-1", "limit=abc", "limit=", "offset=-1", "offset=x",
		"filter=owner:me", "filter=tags", "filter=critical:maybe", "sort=key", "sort=name,", "a=1;b=2",
	} {
		t.Run(query, func(t *testing.T) {
			r := call(t, s, http.MethodGet, envsPath+"?"+query, writerToken, "")
			if r.status != http.StatusBadRequest || r.errorCode() != "invalid_request" {
				t.Errorf("got %d %s, want 400 invalid_request", r.status, r.body)
			}
		})
	}
}

func TestListUnknownProject(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "a")
	r := call(t, s, http.MethodGet, "/api/v2/projects/nope/environments", writerToken, "")
	if r.status != http.StatusNotFound || r.errorCode() != "not_found" {
		t.Errorf("got %d %s, want 404 not_found", r.status, r.body)
	}
}

// filterFixture seeds environments with tags, names and criticality.
func filterFixture(t *testing.T) *ldfake.Server {
	t.Helper()
	s := newServer(t, ldfake.Options{})
	for i, e := range []ldfake.Environment{
		{Key: "production", Name: "Production", Tags: []string{"prod"}, Critical: true},
		{Key: "staging", Name: "Staging", Tags: []string{"Ephemeral"}},
		{Key: "pr-1", Name: "Preview one", Tags: []string{"ldreaper", "ephemeral"}},
		{Key: "pr-2", Name: "Preview two", Tags: []string{"LDReaper", "ephemeral", "ldreaper-src.previews"}},
		{Key: "pr-3", Name: "Staging copy", Tags: []string{"ldreaper"}},
	} {
		e.CreatedOn = epoch.Add(time.Duration(i) * time.Minute)
		if _, err := s.Seed(project, e); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestListFilter(t *testing.T) {
	s := filterFixture(t)
	tests := []struct {
		name     string
		rawQuery string
		want     []string
	}{
		{"one tag, case-insensitive", "filter=tags:EPHEMERAL", []string{"staging", "pr-1", "pr-2"}},
		{"tags ANDed, + sent as %2B", "filter=tags:ldreaper%2Bephemeral", []string{"pr-1", "pr-2"}},
		{"unescaped + decodes to a space and still ANDs", "filter=tags:ldreaper+ephemeral", []string{"pr-1", "pr-2"}},
		{"three tags", "filter=tags%3Aldreaper%2Bephemeral%2Bldreaper-src.previews", []string{"pr-2"}},
		{"query matches key", "filter=query:PR-", []string{"pr-1", "pr-2", "pr-3"}},
		{"query matches name", "filter=query:staging", []string{"staging", "pr-3"}},
		{"critical true", "filter=critical:true", []string{"production"}},
		{"critical false", "filter=critical:false", []string{"staging", "pr-1", "pr-2", "pr-3"}},
		{"filters combine", "filter=query:staging,tags:ldreaper", []string{"pr-3"}},
		{"repeated tags filters AND", "filter=tags:ldreaper,tags:ephemeral", []string{"pr-1", "pr-2"}},
		{"no match", "filter=tags:nope", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodePage(t, call(t, s, http.MethodGet, envsPath+"?"+tt.rawQuery, readerToken, ""))
			if diff := cmp.Diff(tt.want, itemKeys(got.Items)); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if *got.TotalCount != len(tt.want) {
				t.Errorf("totalCount = %d, want %d", *got.TotalCount, len(tt.want))
			}
		})
	}
}

func TestListSort(t *testing.T) {
	s := newServer(t, ldfake.Options{})
	for i, e := range []ldfake.Environment{
		{Key: "b", Name: "Zulu"},
		{Key: "a", Name: "Alpha", Critical: true},
		{Key: "c", Name: "Mike"},
		{Key: "d", Name: "Alpha"},
	} {
		e.CreatedOn = epoch.Add(time.Duration(i) * time.Minute)
		if _, err := s.Seed(project, e); err != nil {
			t.Fatal(err)
		}
	}
	// e is created in the same instant as a: the tie falls back to the key.
	if _, err := s.Seed(project, ldfake.Environment{Key: "0e", Name: "Echo", CreatedOn: epoch.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sort string
		want []string
	}{
		{"", []string{"b", "0e", "a", "c", "d"}},
		{"createdOn", []string{"b", "0e", "a", "c", "d"}},
		{"-createdOn", []string{"d", "c", "0e", "a", "b"}},
		{"name", []string{"a", "d", "0e", "c", "b"}},
		{"-name", []string{"b", "c", "0e", "a", "d"}},
		{"critical", []string{"b", "0e", "c", "d", "a"}},
		{"-critical,-name", []string{"a", "b", "c", "0e", "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.sort, func(t *testing.T) {
			got := decodePage(t, call(t, s, http.MethodGet, envsPath+"?sort="+url.QueryEscape(tt.sort), readerToken, ""))
			if diff := cmp.Diff(tt.want, itemKeys(got.Items)); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListLinksKeepFilterAndSortEscaped(t *testing.T) {
	s := newServer(t, ldfake.Options{}, envKeys("e", 5)...)
	for _, k := range []string{"e000", "e001", "e002"} {
		patch := `[{"op":"replace","path":"/tags","value":["a","b"]}]`
		if r := call(t, s, http.MethodPatch, envsPath+"/"+k, writerToken, patch); r.status != http.StatusOK {
			t.Fatalf("patching %s: %d %s", k, r.status, r.body)
		}
	}
	got := decodePage(t, call(t, s, http.MethodGet, envsPath+"?filter=tags:a%2Bb&sort=-name&limit=1&offset=1", readerToken, ""))
	href := func(offset int) string {
		return envsPath + "?filter=tags%3Aa%2Bb&limit=1&offset=" + fmt.Sprint(offset) + "&sort=-name"
	}
	want := links("self", href(1), "parent", "/api/v2/projects/proj",
		"first", href(0), "prev", href(0), "next", href(2), "last", href(2))
	if diff := cmp.Diff(want, got.Links); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"e001"}, itemKeys(got.Items)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}

// A cached listing must not outlive the change that invalidates it.
func TestListSeesEveryChange(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production")
	list := func() []string {
		return itemKeys(decodePage(t, call(t, s, http.MethodGet, envsPath+"?filter=tags:eph", writerToken, "")).Items)
	}
	steps := []struct {
		name   string
		method string
		target string
		body   string
		want   []string
	}{
		{"create", http.MethodPost, envsPath, createBody("pr-1", "eph"), []string{"pr-1"}},
		{"create another", http.MethodPost, envsPath, createBody("pr-2", "eph"), []string{"pr-1", "pr-2"}},
		{"untag by patch", http.MethodPatch, envsPath + "/pr-1", `{"comment":"x","patch":[{"op":"replace","path":"/tags","value":[]}]}`, []string{"pr-2"}},
		{"delete", http.MethodDelete, envsPath + "/pr-2", "", []string{}},
	}
	if diff := cmp.Diff([]string{}, list()); diff != "" {
		t.Fatalf("initial keys (-want +got):\n%s", diff)
	}
	for _, st := range steps {
		if r := call(t, s, st.method, st.target, writerToken, st.body); r.status >= 300 {
			t.Fatalf("%s: %d %s", st.name, r.status, r.body)
		}
		if diff := cmp.Diff(st.want, list()); diff != "" {
			t.Errorf("after %s, keys (-want +got):\n%s", st.name, diff)
		}
	}
}
