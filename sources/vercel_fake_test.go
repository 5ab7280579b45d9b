package sources

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// vercelFake serves GET /v6/deployments as Vercel documents it (see
// /work/shared/vendor-api/vercel): Bearer auth with the error body
// {"error": {"code", "message"}}, team scope by teamId, filters projectId,
// target, state (a comma list), since and until (ms, exclusive), limit (at
// most 100, default 20), newest first, pagination {count, next, prev} where
// next is the created time of the page's last item, or null on the last page,
// and X-RateLimit-* headers on every response.
type vercelFake struct {
	fakeAPI
	token     string
	teamID    string
	projectID string

	mu          sync.Mutex
	deployments []vercelFakeDeployment
}

// vercelFakeDeployment is a deployment as the fake stores it; json() renders
// the API's shape.
type vercelFakeDeployment struct {
	uid, projectID string
	created        int64
	state          string
	target         string // "" is preview (null in the API)
	meta           map[string]string
	url            string
	extra          map[string]any // other fields, verbatim
}

func (d vercelFakeDeployment) json() map[string]any {
	m := map[string]any{
		"uid": d.uid, "name": "web", "projectId": d.projectID, "url": d.url, "created": d.created,
		"createdAt": d.created, "type": "LAMBDAS", "state": d.state, "readyState": d.state,
		"creator": map[string]any{"uid": "u1", "username": "dev"}, "inspectorUrl": "https://vercel.com/i/" + d.uid,
		"meta": d.meta, "target": nil,
	}
	if d.url == "" {
		m["url"] = nil
	}
	if d.target != "" {
		m["target"] = d.target
	}
	for k, v := range d.extra {
		m[k] = v
	}
	return m
}

func newVercelFake(token, teamID, projectID string) *vercelFake {
	return &vercelFake{token: token, teamID: teamID, projectID: projectID}
}

func (f *vercelFake) add(ds ...vercelFakeDeployment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range ds {
		d.projectID = cmp.Or(d.projectID, f.projectID)
		f.deployments = append(f.deployments, d)
	}
}

func vercelError(w http.ResponseWriter, status int, code, message string) {
	writeFakeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": message}})
}

func (f *vercelFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-RateLimit-Limit", "100")
	w.Header().Set("X-RateLimit-Remaining", "99")
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(testNow.Add(time.Minute).Unix(), 10))
	if f.record(w, r) {
		return
	}
	if r.Method != http.MethodGet || r.URL.Path != "/v6/deployments" {
		vercelError(w, http.StatusNotFound, "not_found", "The requested path was not found")
		return
	}
	switch bearerToken(r) {
	case "":
		vercelError(w, http.StatusUnauthorized, "unauthorized", "Missing authorization")
		return
	case f.token:
	default:
		writeFakeJSON(w, http.StatusForbidden, map[string]any{"error": map[string]any{
			"code": "forbidden", "message": "Not authorized", "invalidToken": true}})
		return
	}
	q := r.URL.Query()
	if q.Get("teamId") != f.teamID {
		vercelError(w, http.StatusForbidden, "forbidden", "You don't have permission to access this team")
		return
	}
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			vercelError(w, http.StatusBadRequest, "bad_request", "Invalid request: `limit` should be less than or equal to 100.")
			return
		}
		limit = n
	}
	since, _ := strconv.ParseInt(q.Get("since"), 10, 64)
	until, _ := strconv.ParseInt(q.Get("until"), 10, 64)
	states := strings.Split(q.Get("state"), ",")

	f.mu.Lock()
	var match []vercelFakeDeployment
	for _, d := range f.deployments {
		switch {
		case q.Has("projectId") && d.projectID != q.Get("projectId"):
		case q.Get("target") == "preview" && d.target != "":
		case q.Get("target") != "" && q.Get("target") != "preview" && d.target != q.Get("target"):
		case q.Get("state") != "" && !slices.Contains(states, d.state):
		case since != 0 && d.created <= since:
		case until != 0 && d.created >= until:
		default:
			match = append(match, d)
		}
	}
	f.mu.Unlock()
	slices.SortStableFunc(match, func(a, b vercelFakeDeployment) int { return cmp.Compare(b.created, a.created) })

	page := match[:min(limit, len(match))]
	items := make([]map[string]any, 0, len(page))
	for _, d := range page {
		items = append(items, d.json())
	}
	pagination := map[string]any{"count": len(page), "next": nil, "prev": nil}
	if len(page) > 0 {
		pagination["prev"] = page[0].created
		if len(match) > len(page) {
			pagination["next"] = page[len(page)-1].created
		}
	}
	writeFakeJSON(w, http.StatusOK, map[string]any{"pagination": pagination, "deployments": items})
}
