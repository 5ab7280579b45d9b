package ldfake

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{"", "tags:a+b", "tags:a b", "query:abc,tags:tag-1+tag-2", "critical:TRUE", "tags:", ":", "a:b:c", "query:x:y", ",", "tags:+++"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseFilter(raw)
		if err != nil {
			return
		}
		for _, tag := range got.tags {
			if tag == "" || tag != strings.ToLower(tag) || strings.ContainsAny(tag, "+ ") {
				t.Fatalf("parseFilter(%q) produced tag %q", raw, tag)
			}
		}
		if got.query != strings.ToLower(got.query) {
			t.Fatalf("parseFilter(%q) kept a mixed-case query %q", raw, got.query)
		}
		if got.query != "" && strings.Contains(got.query, ",") {
			t.Fatalf("parseFilter(%q) query %q spans a comma", raw, got.query)
		}
		// Re-rendering the parsed filter selects the same items.
		var parts []string
		if len(got.tags) > 0 {
			parts = append(parts, "tags:"+strings.Join(got.tags, "+"))
		}
		if got.query != "" {
			parts = append(parts, "query:"+got.query)
		}
		if got.critical != nil {
			parts = append(parts, "critical:"+strconv.FormatBool(*got.critical))
		}
		again, err := parseFilter(strings.Join(parts, ","))
		if err != nil || again.canonical() != got.canonical() {
			t.Fatalf("parseFilter(%q) = %q, re-parsed %q (err %v)", raw, got.canonical(), again.canonical(), err)
		}
	})
}

func FuzzParseSort(f *testing.F) {
	for _, seed := range []string{"", "name", "-createdOn", "critical,-name", "-", "name,", "Name"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		keys, err := parseSort(raw)
		if err != nil {
			return
		}
		if raw != "" && len(keys) != strings.Count(raw, ",")+1 {
			t.Fatalf("parseSort(%q) = %d keys", raw, len(keys))
		}
		for _, k := range keys {
			if k.field < sortCreatedOn || k.field > sortCritical {
				t.Fatalf("parseSort(%q) produced field %d", raw, k.field)
			}
		}
	})
}

func FuzzParseListQuery(f *testing.F) {
	for _, seed := range []string{"", "limit=5&offset=10", "filter=tags:a%2Bb&sort=-name&limit=1000", "limit=0", "offset=-1", "a;b", "filter=query:%", "limit=99999999999999999999"} {
		f.Add(seed, 7)
	}
	f.Fuzz(func(t *testing.T, rawQuery string, total int) {
		const defaultLimit, maxLimit = 20, 50
		p, err := parseListQuery(rawQuery, defaultLimit, maxLimit)
		if err != nil {
			return
		}
		if p.limit < 1 || p.limit > maxLimit || p.offset < 0 {
			t.Fatalf("parseListQuery(%q) = limit %d offset %d", rawQuery, p.limit, p.offset)
		}
		total = max(0, total%10_000)
		for rel, link := range p.pageLinks("p", total) {
			if rel == "parent" {
				continue
			}
			u, err := url.Parse(link.Href)
			if err != nil {
				t.Fatalf("%s link %q does not parse: %v", rel, link.Href, err)
			}
			q, err := parseListQuery(u.RawQuery, defaultLimit, maxLimit)
			if err != nil || q.rawFilter != p.rawFilter || q.rawSort != p.rawSort || q.limit != p.limit {
				t.Fatalf("%s link %q re-parses as %+v (err %v), want the request's %+v", rel, link.Href, q, err, p)
			}
			if rel == "next" && q.offset <= p.offset {
				t.Fatalf("next link %q does not advance from offset %d", link.Href, p.offset)
			}
		}
	})
}

func FuzzDecodeEnvironmentPost(f *testing.F) {
	for _, seed := range []string{
		`{"key":"pr-1","name":"PR","color":"F5A623"}`,
		`{"key":"pr-1","name":"PR","color":"F5A623","tags":["a"],"source":{"key":"s","version":2},"defaultTtl":60}`,
		`{"key":"-","name":"PR","color":"F5A623"}`, `{}`, `null`, `[]`, `{"key":"a","name":"b","color":"c"} x`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		post, err := decodeEnvironmentPost(body)
		if err != nil {
			return
		}
		env, src := post.environment()
		if !validKey(env.Key) || !validColor(env.Color) || strings.TrimSpace(env.Name) == "" || validateTags(env.Tags) != "" || env.Tags == nil {
			t.Fatalf("accepted an invalid environment %+v from %s", env, body)
		}
		if env.DefaultTTL < 0 || env.DefaultTTL > maxDefaultTTL || src.version < 0 {
			t.Fatalf("accepted out-of-range numbers %+v %+v from %s", env, src, body)
		}
		if _, err := json.Marshal(env); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzPatch(f *testing.F) {
	for _, seed := range []string{
		`[{"op":"replace","path":"/tags","value":["a"]}]`,
		`{"comment":"c","patch":[{"op":"add","path":"/name","value":"n"}]}`,
		`[{"op":"replace","path":"/color","value":"000000"},{"op":"replace","path":"/defaultTtl","value":3}]`,
		`[{"op":"replace","path":"/key","value":"k"}]`, `[]`, `{}`, `[{"op":"replace","path":"/name","value":null}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ops, err := decodePatch(body)
		if err != nil {
			return
		}
		before := Environment{Key: "k", Name: "n", Color: "000000", Tags: []string{}}
		after, err := applyPatch(before.clone(), ops)
		if err != nil {
			return
		}
		if after.Key != before.Key || !validColor(after.Color) || strings.TrimSpace(after.Name) == "" ||
			validateTags(after.Tags) != "" || after.DefaultTTL < 0 || after.DefaultTTL > maxDefaultTTL {
			t.Fatalf("patch %s produced an invalid environment %+v", body, after)
		}
	})
}

func FuzzParseRoute(f *testing.F) {
	for _, seed := range []string{"/api/v2/projects/p/environments", "/api/v2/projects/p/environments/e", "/api/v2/projects/a%2Fb/environments/%zz", "/api/v2/projects//environments", "/"} {
		f.Add(http.MethodGet, seed)
	}
	f.Fuzz(func(t *testing.T, method, escapedPath string) {
		rt, status := parseRoute(method, escapedPath)
		if status != 0 {
			if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
				t.Fatalf("parseRoute(%q, %q) status %d", method, escapedPath, status)
			}
			return
		}
		if rt.project == "" || rt.name == "" {
			t.Fatalf("parseRoute(%q, %q) = %+v", method, escapedPath, rt)
		}
		canonical := environmentsPath(rt.project)
		if rt.environment != "" {
			canonical = environmentPath(rt.project, rt.environment)
		}
		if again, status := parseRoute(method, canonical); status != 0 || again != rt {
			t.Fatalf("route %+v re-rendered as %q parses to %+v (status %d)", rt, canonical, again, status)
		}
	})
}
