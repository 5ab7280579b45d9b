package sources

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// githubFake serves GET /repos/{owner}/{repo}/pulls as GitHub documents it:
// Bearer (or "token") auth with {"message": "Bad credentials"} on failure;
// state (default open), per_page (default 30, at most 100) and page; newest
// first; a Link header with next, last, prev and first; a weak ETag, and 304
// to a matching If-None-Match, which costs no quota; x-ratelimit-* headers
// on every response, and 403 "API rate limit exceeded" when the quota is
// spent, refilled once the fake's clock passes the reset time.
type githubFake struct {
	fakeAPI
	token string

	mu        sync.Mutex
	repos     map[string][]githubFakePull
	limit     int
	remaining int
	reset     time.Time
	now       func() time.Time
	// onPage runs after a 200 page is served: tests change the pull
	// requests between the pages of one walk.
	onPage func(repo string, page int)
}

type githubFakePull struct {
	number       int
	head, base   string
	author       string
	state        string // "" is open
	labels       []string
	headRepoFull string
}

func newGitHubFake(token string) *githubFake {
	return &githubFake{
		token: token, repos: map[string][]githubFakePull{}, limit: 5000, remaining: 5000,
		reset: testNow.Add(time.Hour), now: func() time.Time { return testNow },
	}
}

func (f *githubFake) addPull(repo string, prs ...githubFakePull) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.repos[repo] = append(f.repos[repo], prs...)
}

// closePull marks a pull request closed.
func (f *githubFake) closePull(repo string, number int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.repos[repo] {
		if p.number == number {
			f.repos[repo][i].state = "closed"
		}
	}
}

// setClock makes the fake's rate-limit reset follow now.
func (f *githubFake) setClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

func (f *githubFake) setOnPage(fn func(repo string, page int)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onPage = fn
}

func (f *githubFake) quota() (remaining int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.remaining
}

func githubMessage(w http.ResponseWriter, status int, message string) {
	writeFakeJSON(w, status, map[string]string{"message": message, "documentation_url": "https://docs.github.com/rest"})
}

func (f *githubFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.record(w, r) {
		return
	}
	f.mu.Lock()
	if f.remaining == 0 && !f.now().Before(f.reset) {
		f.remaining, f.reset = f.limit, f.now().Add(time.Hour)
	}
	f.setRateHeaders(w)
	f.mu.Unlock()

	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 4 || parts[0] != "repos" || parts[3] != "pulls" || r.Method != http.MethodGet {
		githubMessage(w, http.StatusNotFound, "Not Found")
		return
	}
	auth := r.Header.Get("Authorization")
	token, _ := strings.CutPrefix(auth, "Bearer ")
	if t, ok := strings.CutPrefix(auth, "token "); ok {
		token = t
	}
	if token != f.token {
		githubMessage(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	repo := parts[1] + "/" + parts[2]
	q := r.URL.Query()
	perPage := 30
	if n, err := strconv.Atoi(q.Get("per_page")); err == nil && n > 0 {
		perPage = min(n, 100)
	}
	page := 1
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 {
		page = n
	}
	state := cmp.Or(q.Get("state"), "open")

	f.mu.Lock()
	pulls, known := f.repos[repo]
	var match []githubFakePull
	for _, p := range pulls {
		if state == "all" || cmp.Or(p.state, "open") == state {
			match = append(match, p)
		}
	}
	f.mu.Unlock()
	if !known {
		githubMessage(w, http.StatusNotFound, "Not Found")
		return
	}
	slices.SortFunc(match, func(a, b githubFakePull) int { return cmp.Compare(b.number, a.number) })
	last := max(1, (len(match)+perPage-1)/perPage)
	start := min((page-1)*perPage, len(match))
	body, _ := json.Marshal(githubPullsJSON(repo, match[start:min(start+perPage, len(match))]))
	sum := sha256.Sum256(body)
	etag := `W/"` + hex.EncodeToString(sum[:8]) + `"`

	w.Header().Set("ETag", etag)
	if links := githubLinks(r, page, last); links != "" {
		w.Header().Set("Link", links)
	}
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	f.mu.Lock()
	if f.remaining == 0 {
		f.mu.Unlock()
		githubMessage(w, http.StatusForbidden, "API rate limit exceeded for user ID 1.")
		return
	}
	f.remaining--
	f.setRateHeaders(w)
	onPage := f.onPage
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(body)
	if onPage != nil {
		onPage(repo, page)
	}
}

// setRateHeaders needs f.mu held.
func (f *githubFake) setRateHeaders(w http.ResponseWriter) {
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(f.limit))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(f.remaining))
	w.Header().Set("X-RateLimit-Used", strconv.Itoa(f.limit-f.remaining))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(f.reset.Unix(), 10))
	w.Header().Set("X-RateLimit-Resource", "core")
}

func githubLinks(r *http.Request, page, last int) string {
	link := func(n int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(n))
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	var links []string
	if page > 1 {
		links = append(links, link(page-1, "prev"))
	}
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"))
	}
	return strings.Join(links, ", ")
}

func githubPullsJSON(repo string, pulls []githubFakePull) []map[string]any {
	out := make([]map[string]any, 0, len(pulls))
	for _, p := range pulls {
		labels := make([]map[string]any, 0, len(p.labels))
		for i, l := range p.labels {
			labels = append(labels, map[string]any{"id": i + 1, "name": l, "color": "ededed"})
		}
		headRepo := cmp.Or(p.headRepoFull, repo)
		out = append(out, map[string]any{
			"url":        "https://api.github.com/repos/" + repo + "/pulls/" + strconv.Itoa(p.number),
			"id":         1000 + p.number,
			"number":     p.number,
			"state":      cmp.Or(p.state, "open"),
			"draft":      false,
			"title":      "Change " + strconv.Itoa(p.number),
			"html_url":   "https://github.com/" + repo + "/pull/" + strconv.Itoa(p.number),
			"created_at": testNow.Add(-time.Duration(1000-p.number) * time.Minute).Format(time.RFC3339),
			"updated_at": testNow.Format(time.RFC3339),
			"user":       map[string]any{"login": p.author, "id": 1},
			"labels":     labels,
			"head":       map[string]any{"ref": p.head, "sha": fmt.Sprintf("%040d", p.number), "repo": map[string]any{"full_name": headRepo}},
			"base":       map[string]any{"ref": p.base, "sha": strings.Repeat("b", 40), "repo": map[string]any{"full_name": repo}},
		})
	}
	return out
}
