package sources

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const githubTestToken = "ghp_test-secret-0d9e"

func newTestGitHub(t *testing.T, fake *githubFake, o GitHubOptions) (*GitHub, *fakeClock) {
	t.Helper()
	o.Name = "prs"
	o.BaseURL = serveFake(t, fake)
	o.Token = githubTestToken
	o.TokenEnv = "GITHUB_TOKEN"
	if o.Repos == nil {
		o.Repos = []string{"acme/web"}
	}
	g, err := NewGitHub(o)
	if err != nil {
		t.Fatal(err)
	}
	clock := instant(g.api)
	fake.setClock(clock.Now)
	return g, clock
}

func TestGitHubListFiltersAndAttrs(t *testing.T) {
	fake := newGitHubFake(githubTestToken)
	fake.addPull("acme/web",
		githubFakePull{number: 1, head: "feat-1", base: "main", author: "ann", labels: []string{"Preview"}},
		githubFakePull{number: 2, head: "feat-2", base: "release", author: "bob"},
		githubFakePull{number: 3, head: "feat-3", base: "main", author: "cy", state: "closed"},
		githubFakePull{number: 4, head: "feat-4", base: "main", author: "dee", labels: []string{"wip"}},
	)
	fake.addPull("acme/api", githubFakePull{number: 1, head: "fix", base: "main", author: "eve", labels: []string{"preview"}})
	pr1 := Env{Name: "acme/web#1", CreatedAt: testNow.Add(-999 * time.Minute), Attrs: map[string]string{
		"pr": "1", "repo": "acme/web", "branch": "feat-1", "base": "main", "author": "ann",
		"url": "https://github.com/acme/web/pull/1", "sha": fmt.Sprintf("%040d", 1)}}
	names := func(items []Env) []string {
		var out []string
		for _, e := range items {
			out = append(out, e.Name)
		}
		return out
	}
	tests := []struct {
		name      string
		opts      GitHubOptions
		wantNames []string
	}{
		{name: "all open", opts: GitHubOptions{}, wantNames: []string{"acme/web#1", "acme/web#2", "acme/web#4"}},
		{name: "two repositories", opts: GitHubOptions{Repos: []string{"acme/web", "acme/api"}}, wantNames: []string{"acme/api#1", "acme/web#1", "acme/web#2", "acme/web#4"}},
		{name: "label, case-insensitive", opts: GitHubOptions{Repos: []string{"acme/web", "acme/api"}, Labels: []string{"PREVIEW"}}, wantNames: []string{"acme/api#1", "acme/web#1"}},
		{name: "any of several labels", opts: GitHubOptions{Labels: []string{"preview", "wip"}}, wantNames: []string{"acme/web#1", "acme/web#4"}},
		{name: "base branch", opts: GitHubOptions{BaseBranches: []string{"release"}}, wantNames: []string{"acme/web#2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _ := newTestGitHub(t, fake, tt.opts)
			got, err := g.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !got.Complete || got.Source != "prs" {
				t.Errorf("snapshot source %q complete %v", got.Source, got.Complete)
			}
			if diff := cmp.Diff(tt.wantNames, names(got.Items)); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			for _, item := range got.Items {
				if item.Name == pr1.Name {
					if diff := cmp.Diff(pr1, item); diff != "" {
						t.Errorf("item (-want +got):\n%s", diff)
					}
				}
			}
		})
	}
}

func TestGitHubPagingAndConditionalRequests(t *testing.T) {
	fake := newGitHubFake(githubTestToken)
	for i := 1; i <= 250; i++ {
		fake.addPull("acme/web", githubFakePull{number: i, head: "b" + strconv.Itoa(i), base: "main", author: "a"})
	}
	g, clock := newTestGitHub(t, fake, GitHubOptions{})
	got, err := g.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Complete || len(got.Items) != 250 {
		t.Fatalf("got %d items, complete %v; want 250", len(got.Items), got.Complete)
	}
	type req struct {
		Page        string
		Conditional bool
	}
	var reqs []req
	for _, r := range fake.seen() {
		reqs = append(reqs, req{Page: r.Query.Get("page"), Conditional: r.IfNoneMatch != ""})
		if r.Query.Get("per_page") != "100" || r.Query.Get("state") != "open" || r.Auth != "Bearer "+githubTestToken {
			t.Errorf("request %+v lacks per_page=100, state=open or the token", r)
		}
	}
	// Three pages, then pages 1 and 2 again, conditionally, to prove the walk
	// was consistent.
	want := []req{{"", false}, {"2", false}, {"3", false}, {"", true}, {"2", true}}
	if diff := cmp.Diff(want, reqs); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if q := fake.quota(); q != 4997 {
		t.Errorf("quota left %d, want 4997: only the three 200s count", q)
	}

	// An unchanged list costs no quota at all the second time.
	if _, err := g.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if q := fake.quota(); q != 4997 {
		t.Errorf("quota left %d after an unchanged List, want 4997", q)
	}
	if len(clock.Waits()) != 0 {
		t.Errorf("waited %v", clock.Waits())
	}
}

// A pull request closed while the pages are read shifts the next page's
// first item onto the page already read. The walk must notice and start
// again instead of returning a list without it.
func TestGitHubPagingNoticesChangesBetweenPages(t *testing.T) {
	fake := newGitHubFake(githubTestToken)
	for i := 1; i <= 150; i++ {
		fake.addPull("acme/web", githubFakePull{number: i, head: "b" + strconv.Itoa(i), base: "main", author: "a"})
	}
	closed := false
	fake.setOnPage(func(repo string, page int) {
		if page == 1 && !closed {
			closed = true
			fake.closePull("acme/web", 150) // on page 1; #50 moves up from page 2
		}
	})
	g, _ := newTestGitHub(t, fake, GitHubOptions{})
	got, err := g.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, item := range got.Items {
		seen[item.Name] = true
	}
	if len(got.Items) != 149 || !seen["acme/web#50"] || seen["acme/web#150"] {
		t.Errorf("got %d items (#50 %v, #150 %v); want 149 with #50 and without #150", len(got.Items), seen["acme/web#50"], seen["acme/web#150"])
	}

	// A list that changes on every walk fails rather than guessing.
	opened := 1000
	open := func() {
		opened++
		fake.addPull("acme/web", githubFakePull{number: opened, head: "n", base: "main"})
	}
	open()
	fake.setOnPage(func(repo string, page int) {
		if page == 1 {
			open()
		}
	})
	got, err = g.List(t.Context())
	if err == nil || !strings.Contains(err.Error(), "changed while their 2 pages were read, 3 times in a row") || got.Complete {
		t.Errorf("List of an ever-changing repository = %v complete %v", err, got.Complete)
	}
}

func githubFailures() []failureCase {
	reset := func(d time.Duration) string { return strconv.FormatInt(testNow.Add(d).Unix(), 10) }
	limited := `{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}`
	return []failureCase{
		{name: "ok", wantRequests: 1},
		{name: "403 primary rate limit waits for x-ratelimit-reset", faults: []fault{{status: 403,
			header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset(45 * time.Second)}, body: limited}},
			wantWaits: []time.Duration{45 * time.Second}, wantRequests: 2},
		{name: "403 secondary rate limit honours retry-after", faults: []fault{{status: 403,
			header: map[string]string{"Retry-After": "3", "X-RateLimit-Remaining": "4000"}, body: `{"message":"You have exceeded a secondary rate limit."}`}},
			wantWaits: []time.Duration{3 * time.Second}, wantRequests: 2},
		{name: "429 honours retry-after", faults: []fault{{status: 429, header: map[string]string{"Retry-After": "2"}, body: limited}},
			wantWaits: []time.Duration{2 * time.Second}, wantRequests: 2},
		{name: "a reset an hour away fails now", faults: []fault{{status: 403,
			header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset(time.Hour)}, body: limited}},
			wantErr: "403 rate limited: the API asks to wait 1h0m0s", wantRequests: 1},
		{name: "403 without rate-limit signs is a permission error", faults: []fault{{status: 403,
			header: map[string]string{"X-RateLimit-Remaining": "4999"}, body: `{"message":"Resource not accessible by integration"}`}},
			wantErr: "403 Forbidden (check the token in $GITHUB_TOKEN): Resource not accessible by integration", wantRequests: 1},
		{name: "5xx is retried", faults: []fault{{status: 502, body: "<html>bad gateway</html>"}},
			wantWaits: []time.Duration{250 * time.Millisecond}, wantRequests: 2},
		{name: "5xx until the retries run out", faults: []fault{{status: 500}, {status: 500}, {status: 500}, {status: 500}},
			wantErr: "giving up after 4 attempts", wantWaits: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}, wantRequests: 4},
		{name: "an error object instead of a list", faults: []fault{{status: 200, body: `{"message":"Moved Permanently"}`}},
			wantErr: "response is not a JSON list", wantRequests: 1},
		{name: "null instead of a list", faults: []fault{{status: 200, body: `null`}},
			wantErr: "response is not a JSON list", wantRequests: 1},
		{name: "a next link to another host", faults: []fault{{status: 200, header: map[string]string{"Link": `<https://evil.example/repos/acme/web/pulls?page=2>; rel="next"`}, body: `[]`}},
			wantErr: "leaves 127.0.0.1", wantRequests: 1},
		{name: "a next link back to the same page", faults: []fault{
			{status: 200, header: map[string]string{"Link": `</repos/acme/web/pulls?page=2>; rel="next"`}, body: `[]`},
			{status: 200, header: map[string]string{"Link": `</repos/acme/web/pulls?page=2>; rel="next"`}, body: `[]`},
		}, wantErr: "pagination loops back to", wantRequests: 2},
	}
}

func TestGitHubFailures(t *testing.T) {
	for _, tt := range githubFailures() {
		t.Run(tt.name, func(t *testing.T) {
			fake := newGitHubFake(githubTestToken)
			fake.addPull("acme/web", githubFakePull{number: 1, head: "feat", base: "main", author: "a"})
			fake.fail(tt.faults...)
			g, clock := newTestGitHub(t, fake, GitHubOptions{})
			got, err := g.List(t.Context())
			checkFailureCase(t, tt, got, err, clock, len(fake.seen()), 1)
		})
	}
}

// The fake's own quota: spent after one page, refilled at its reset. The
// source waits for the reset on the fake clock and carries on.
func TestGitHubWaitsOutTheQuota(t *testing.T) {
	fake := newGitHubFake(githubTestToken)
	for i := 1; i <= 150; i++ {
		fake.addPull("acme/web", githubFakePull{number: i, head: "b", base: "main"})
	}
	fake.remaining, fake.reset = 1, testNow.Add(40*time.Second)
	g, clock := newTestGitHub(t, fake, GitHubOptions{})
	got, err := g.List(t.Context())
	if err != nil || len(got.Items) != 150 {
		t.Fatalf("List = %d items, %v", len(got.Items), err)
	}
	if diff := cmp.Diff([]time.Duration{40 * time.Second}, clock.Waits()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

func TestGitHubAuthAndMissingRepo(t *testing.T) {
	fake := newGitHubFake(githubTestToken)
	fake.addPull("acme/web", githubFakePull{number: 1, head: "feat", base: "main"})
	tests := []struct {
		name, token, repo, wantErr string
	}{
		{name: "bad credentials", token: "wrong", repo: "acme/web", wantErr: `listing github source "prs": repository acme/web: GET `},
		{name: "unknown repository", token: githubTestToken, repo: "acme/nope", wantErr: "404 Not Found: Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGitHub(GitHubOptions{Name: "prs", BaseURL: serveFake(t, fake), Token: tt.token, TokenEnv: "GITHUB_TOKEN", Repos: []string{tt.repo}})
			if err != nil {
				t.Fatal(err)
			}
			instant(g.api)
			got, err := g.List(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got.Complete {
				t.Fatalf("List = %+v, %v; want an incomplete snapshot and %q", got, err, tt.wantErr)
			}
			if tt.token == "wrong" && !strings.Contains(err.Error(), "401 Unauthorized (check the token in $GITHUB_TOKEN): Bad credentials") {
				t.Errorf("auth error = %v", err)
			}
		})
	}
}

func TestGitHubEmptyRepositoryIsCompleteAndEmpty(t *testing.T) {
	fake := newGitHubFake(githubTestToken)
	fake.addPull("acme/web")
	g, _ := newTestGitHub(t, fake, GitHubOptions{})
	got, err := g.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Snapshot{Source: "prs", Items: []Env{}, Complete: true}, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if h := fake.seen()[0]; h.Auth != "Bearer "+githubTestToken {
		t.Errorf("Authorization %q", h.Auth)
	}
}

func TestParseLinkNext(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string
		wantOK bool
	}{
		{name: "github first page", values: []string{`<https://api.github.com/repositories/1/pulls?page=2>; rel="next", <https://api.github.com/repositories/1/pulls?page=5>; rel="last"`},
			want: "https://api.github.com/repositories/1/pulls?page=2", wantOK: true},
		{name: "middle page", values: []string{`<https://x/p?page=1>; rel="prev", <https://x/p?page=3>; rel="next", <https://x/p?page=5>; rel="last", <https://x/p?page=1>; rel="first"`},
			want: "https://x/p?page=3", wantOK: true},
		{name: "last page", values: []string{`<https://x/p?page=4>; rel="prev", <https://x/p?page=1>; rel="first"`}},
		{name: "no header"},
		{name: "comma inside the target", values: []string{`<https://x/p?a=1,2&page=2>; rel="next"`}, want: "https://x/p?a=1,2&page=2", wantOK: true},
		{name: "unquoted rel and several rel types", values: []string{`<https://x/a>; rel=prev, <https://x/b>; rel="last next"`}, want: "https://x/b", wantOK: true},
		{name: "split over two header lines", values: []string{`<https://x/a>; rel="prev"`, `<https://x/b>; rel="next"`}, want: "https://x/b", wantOK: true},
		{name: "case-insensitive", values: []string{`<https://x/b>; REL="Next"`}, want: "https://x/b", wantOK: true},
		{name: "garbage", values: []string{`https://x/b; rel="next"`}},
		{name: "unterminated target", values: []string{`<https://x/b; rel="next"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseLinkNext(tt.values)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseLinkNext = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzParseLinkNext(f *testing.F) {
	f.Add(`<https://api.github.com/r?page=2>; rel="next", <https://api.github.com/r?page=5>; rel="last"`)
	f.Add(`<a>; rel=next`)
	f.Add(`<a,b>; title="x, y"; rel="next"`)
	f.Add(`<<>>;;rel==next,`)
	f.Fuzz(func(t *testing.T, v string) {
		target, ok := parseLinkNext([]string{v})
		if !ok && target != "" {
			t.Errorf("no next link but target %q", target)
		}
		if ok && strings.ContainsAny(target, ">") {
			t.Errorf("target %q runs past its closing >", target)
		}
	})
}

func FuzzParseGitHubPulls(f *testing.F) {
	f.Add(`[]`)
	f.Add(`[{"number":1,"state":"open","head":{"ref":"a","sha":"s"},"base":{"ref":"main"},"user":{"login":"u"},"labels":[{"name":"x"}],"created_at":"2025-01-02T03:04:05Z"}]`)
	f.Add(`[{"number":0}]`)
	f.Add(`{"message":"Not Found"}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, body string) {
		prs, err := parseGitHubPulls([]byte(body))
		if err != nil {
			return
		}
		for _, pr := range prs {
			if pr.Number <= 0 {
				t.Errorf("pull request without a number: %+v", pr)
			}
		}
	})
}
