package sources

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// renderFake serves GET /v1/services as Render documents it (see
// /work/shared/vendor-api/render): Bearer auth with the error body
// {"id", "message"}; a JSON list of {"cursor", "service"}; limit 1 to 100
// (default 20, else 400); cursor = an item's cursor, the next page starting
// after it; includePreviews (default true) and ownerId (a comma list)
// filters; Ratelimit-* headers on every response, Ratelimit-Reset in
// seconds from now as Render's own example shows.
type renderFake struct {
	fakeAPI
	token string

	mu       sync.Mutex
	services []renderFakeService
}

type renderFakeService struct {
	id, name, slug, owner string
	branch, url           string
	parentID, parentName  string
	created               time.Time
}

func newRenderFake(token string) *renderFake { return &renderFake{token: token} }

func (f *renderFake) add(ss ...renderFakeService) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range ss {
		if s.owner == "" {
			s.owner = "tea-1"
		}
		if s.created.IsZero() {
			s.created = testNow.Add(-time.Hour)
		}
		f.services = append(f.services, s)
	}
}

func (s renderFakeService) json() map[string]any {
	details := map[string]any{
		"env": "node", "runtime": "node", "plan": "starter", "region": "oregon", "numInstances": 1,
		"buildPlan": "starter", "healthCheckPath": "", "openPorts": []any{}, "url": s.url,
		"previews": map[string]any{"generation": "automatic"},
	}
	if s.parentID != "" {
		details["parentServer"] = map[string]any{"id": s.parentID, "name": s.parentName}
	}
	svc := map[string]any{
		"id": s.id, "name": s.name, "ownerId": s.owner, "type": "web_service", "slug": s.slug,
		"createdAt": s.created.Format(time.RFC3339), "updatedAt": s.created.Format(time.RFC3339),
		"dashboardUrl": "https://dashboard.render.com/web/" + s.id, "suspended": "not_suspended",
		"suspenders": []any{}, "autoDeploy": "yes", "notifyOnFail": "default", "rootDir": "",
		"repo": "https://github.com/acme/web", "serviceDetails": details,
	}
	if s.branch != "" {
		svc["branch"] = s.branch
	}
	return svc
}

func renderError(w http.ResponseWriter, status int, message string) {
	writeFakeJSON(w, status, map[string]string{"id": "req-1", "message": message})
}

func (f *renderFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Ratelimit-Limit", "400")
	w.Header().Set("Ratelimit-Remaining", "399")
	w.Header().Set("Ratelimit-Reset", "45")
	if f.record(w, r) {
		return
	}
	if r.Method != http.MethodGet || r.URL.Path != "/v1/services" {
		renderError(w, http.StatusNotFound, "not found")
		return
	}
	if bearerToken(r) != f.token || f.token == "" {
		renderError(w, http.StatusUnauthorized, "unauthorized")
		return
	}
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			renderError(w, http.StatusBadRequest, "limit must be between 1 and 100")
			return
		}
		limit = n
	}
	includePreviews := q.Get("includePreviews") != "false"
	var owners []string
	if v := q.Get("ownerId"); v != "" {
		owners = strings.Split(v, ",")
	}

	f.mu.Lock()
	var match []renderFakeService
	for _, s := range f.services {
		if (includePreviews || s.parentID == "") && (owners == nil || slices.Contains(owners, s.owner)) {
			match = append(match, s)
		}
	}
	f.mu.Unlock()
	start := 0
	if c := q.Get("cursor"); c != "" {
		i := slices.IndexFunc(match, func(s renderFakeService) bool { return renderCursor(s) == c })
		if i < 0 {
			renderError(w, http.StatusBadRequest, "invalid cursor")
			return
		}
		start = i + 1
	}
	page := match[start:min(start+limit, len(match))]
	out := make([]map[string]any, 0, len(page))
	for _, s := range page {
		out = append(out, map[string]any{"cursor": renderCursor(s), "service": s.json()})
	}
	writeFakeJSON(w, http.StatusOK, out)
}

// renderCursor is opaque to clients; the fake derives it from the id.
func renderCursor(s renderFakeService) string { return "c" + strings.TrimPrefix(s.id, "srv-") }
