package sources

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const renderTestToken = "rnd_test-secret-77aa"

func newTestRender(t *testing.T, fake *renderFake, o RenderOptions) (*Render, *fakeClock) {
	t.Helper()
	o.Name = "render"
	o.BaseURL = serveFake(t, fake)
	o.Token = renderTestToken
	o.TokenEnv = "RENDER_API_KEY"
	r, err := NewRender(o)
	if err != nil {
		t.Fatal(err)
	}
	return r, instant(r.api)
}

func TestRenderListGroupsPreviews(t *testing.T) {
	hours := func(n int) time.Time { return testNow.Add(-time.Duration(n) * time.Hour) }
	fake := newRenderFake(renderTestToken)
	fake.add(
		renderFakeService{id: "srv-web", name: "web", slug: "web", branch: "main", url: "https://web.onrender.com"},
		renderFakeService{id: "srv-api", name: "api", slug: "api", branch: "main"},
		// Service previews of PR 12 in two services: one item.
		renderFakeService{id: "srv-p1", name: "web PR #12", slug: "web-pr-12", parentID: "srv-web", parentName: "web",
			branch: "feat-12", url: "https://web-pr-12.onrender.com", created: hours(2)},
		renderFakeService{id: "srv-p2", name: "api PR #12", slug: "api-pr-12", parentID: "srv-api", parentName: "api",
			branch: "feat-12", created: hours(3)},
		renderFakeService{id: "srv-p3", name: "web PR #13", slug: "web-pr-13", parentID: "srv-web", parentName: "web", branch: "feat-13"},
		// Service previews whose PR cannot be told: an image preview, and
		// a name and slug that disagree. Each is its own item.
		renderFakeService{id: "srv-img", name: "web image preview", slug: "web-img-ab12", parentID: "srv-web", parentName: "web"},
		renderFakeService{id: "srv-dis", name: "web PR #14", slug: "web-pr-15", parentID: "srv-web", parentName: "web"},
		// A Blueprint preview environment of PR 20: two services, no parent.
		renderFakeService{id: "srv-e1", name: "worker PR #20", slug: "worker-pr-20", branch: "feat-20", created: hours(5)},
		renderFakeService{id: "srv-e2", name: "db-sync PR #20", slug: "db-sync-pr-20", branch: "feat-20", created: hours(4)},
		// Not a preview: "PR #3" is not the name's suffix.
		renderFakeService{id: "srv-fix", name: "Fix PR #3 regression", slug: "fix-pr-3-regression"},
	)
	pr12 := Env{Name: "pr-12", CreatedAt: hours(3), Attrs: map[string]string{"pr": "12", "branch": "feat-12",
		"url": "https://web-pr-12.onrender.com", "service": "api PR #12,web PR #12", "service_id": "srv-p2,srv-p1"}}
	pr12web := Env{Name: "pr-12", CreatedAt: hours(2), Attrs: map[string]string{"pr": "12", "branch": "feat-12",
		"url": "https://web-pr-12.onrender.com", "service": "web PR #12", "service_id": "srv-p1"}}
	pr12api := Env{Name: "pr-12", CreatedAt: hours(3), Attrs: map[string]string{"pr": "12", "branch": "feat-12",
		"service": "api PR #12", "service_id": "srv-p2"}}
	pr13 := Env{Name: "pr-13", CreatedAt: hours(1), Attrs: map[string]string{"pr": "13", "branch": "feat-13", "service": "web PR #13", "service_id": "srv-p3"}}
	pr20 := Env{Name: "pr-20", CreatedAt: hours(5), Attrs: map[string]string{"pr": "20", "branch": "feat-20",
		"service": "db-sync PR #20,worker PR #20", "service_id": "srv-e2,srv-e1"}}
	dis := Env{Name: "srv-dis", CreatedAt: hours(1), Attrs: map[string]string{"service": "web PR #14", "service_id": "srv-dis"}}
	img := Env{Name: "srv-img", CreatedAt: hours(1), Attrs: map[string]string{"service": "web image preview", "service_id": "srv-img"}}

	tests := []struct {
		name string
		opts RenderOptions
		want []Env
	}{
		{name: "both kinds by default", want: []Env{pr12, pr13, pr20, dis, img}},
		{name: "service previews only", opts: RenderOptions{PreviewTypes: []string{"service"}}, want: []Env{pr12, pr13, dis, img}},
		{name: "preview environments only", opts: RenderOptions{PreviewTypes: []string{"environment"}}, want: []Env{pr20}},
		{name: "parent by name", opts: RenderOptions{ParentServices: []string{"web"}}, want: []Env{pr12web, pr13, pr20, dis, img}},
		{name: "parent by id", opts: RenderOptions{ParentServices: []string{"srv-api"}}, want: []Env{pr12api, pr20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newTestRender(t, fake, tt.opts)
			got, err := r.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(Snapshot{Source: "render", Items: tt.want, Complete: true}, got); diff != "" {
				t.Errorf("List (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRenderPagingFollowsCursors(t *testing.T) {
	fake := newRenderFake(renderTestToken)
	for i := range 230 {
		fake.add(renderFakeService{id: fmt.Sprintf("srv-%03d", i), name: fmt.Sprintf("web PR #%d", i+1), slug: fmt.Sprintf("web-pr-%d", i+1), parentID: "srv-web", parentName: "web"})
	}
	fake.add(renderFakeService{id: "srv-other", name: "other PR #1", slug: "other-pr-1", parentID: "srv-o", owner: "tea-2"})
	r, clock := newTestRender(t, fake, RenderOptions{OwnerID: "tea-1"})
	got, err := r.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Complete || len(got.Items) != 230 {
		t.Fatalf("got %d items, complete %v; want 230", len(got.Items), got.Complete)
	}
	var cursors []string
	for _, req := range fake.seen() {
		cursors = append(cursors, req.Query.Get("cursor"))
		if req.Query.Get("limit") != "100" || req.Query.Get("includePreviews") != "true" || req.Query.Get("ownerId") != "tea-1" || req.Auth != "Bearer "+renderTestToken {
			t.Errorf("request %+v lacks limit=100, includePreviews=true, ownerId or the key", req)
		}
	}
	if diff := cmp.Diff([]string{"", "c099", "c199"}, cursors); diff != "" {
		t.Errorf("cursors (-want +got):\n%s", diff)
	}
	if len(clock.Waits()) != 0 {
		t.Errorf("waited %v", clock.Waits())
	}
}

// A last page exactly as long as the limit needs one more, empty page.
func TestRenderPagingEndsOnAnEmptyPage(t *testing.T) {
	fake := newRenderFake(renderTestToken)
	for i := range 100 {
		fake.add(renderFakeService{id: fmt.Sprintf("srv-%03d", i), name: fmt.Sprintf("web PR #%d", i+1), slug: fmt.Sprintf("web-pr-%d", i+1), parentID: "srv-web"})
	}
	r, _ := newTestRender(t, fake, RenderOptions{})
	got, err := r.List(t.Context())
	if err != nil || len(got.Items) != 100 {
		t.Fatalf("List = %d items, %v", len(got.Items), err)
	}
	if n := len(fake.seen()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func renderFailures() []failureCase {
	limited := `{"id":"rate-limit","message":"rate limit exceeded"}`
	return []failureCase{
		{name: "ok", wantRequests: 1},
		{name: "401", faults: []fault{{status: 401, body: `{"id":"unauthorized","message":"unauthorized"}`}},
			wantErr: "401 Unauthorized (check the token in $RENDER_API_KEY): unauthorized", wantRequests: 1},
		{name: "429 honours Retry-After", faults: []fault{{status: 429, header: map[string]string{"Retry-After": "5", "Ratelimit-Reset": "40", "Ratelimit-Remaining": "0"}, body: limited}},
			wantWaits: []time.Duration{5 * time.Second}, wantRequests: 2},
		{name: "429 waits for Ratelimit-Reset in seconds from now", faults: []fault{{status: 429, header: map[string]string{"Ratelimit-Reset": "12", "Ratelimit-Remaining": "0"}, body: limited}},
			wantWaits: []time.Duration{12 * time.Second}, wantRequests: 2},
		{name: "429 with a reset past the cap fails now", faults: []fault{{status: 429, header: map[string]string{"Ratelimit-Reset": "90", "Ratelimit-Remaining": "0"}, body: limited}},
			wantErr: "429 rate limited: the API asks to wait 1m30s", wantRequests: 1},
		{name: "503 honours Retry-After", faults: []fault{{status: 503, header: map[string]string{"Retry-After": "1"}, body: `{"id":"unavailable","message":"service unavailable"}`}},
			wantWaits: []time.Duration{time.Second}, wantRequests: 2},
		{name: "500 until the retries run out", faults: []fault{{status: 500}, {status: 500}, {status: 500}, {status: 500, body: `{"id":"x","message":"internal server error"}`}},
			wantErr: "giving up after 4 attempts: GET ", wantWaits: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}, wantRequests: 4},
		{name: "406 is not retried", faults: []fault{{status: 406, body: `{"id":"x","message":"not acceptable"}`}},
			wantErr: "406 Not Acceptable: not acceptable", wantRequests: 1},
		{name: "an object instead of a list", faults: []fault{{status: 200, body: `{"services":[]}`}},
			wantErr: "response is not a JSON list", wantRequests: 1},
		{name: "an item without its cursor", faults: []fault{{status: 200, body: `[{"service":{"id":"srv-1","name":"a PR #1"}}]`}},
			wantErr: "item 0 of the page lacks its cursor or service id", wantRequests: 1},
	}
}

func TestRenderFailures(t *testing.T) {
	for _, tt := range renderFailures() {
		t.Run(tt.name, func(t *testing.T) {
			fake := newRenderFake(renderTestToken)
			fake.add(renderFakeService{id: "srv-1", name: "web PR #1", slug: "web-pr-1", parentID: "srv-web"})
			fake.fail(tt.faults...)
			r, clock := newTestRender(t, fake, RenderOptions{})
			got, err := r.List(t.Context())
			checkFailureCase(t, tt, got, err, clock, len(fake.seen()), 1)
			if err != nil && strings.Contains(err.Error(), renderTestToken) {
				t.Errorf("error contains the token: %v", err)
			}
		})
	}
}

func TestRenderEmptyWorkspaceIsCompleteAndEmpty(t *testing.T) {
	r, _ := newTestRender(t, newRenderFake(renderTestToken), RenderOptions{})
	got, err := r.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Snapshot{Source: "render", Items: []Env{}, Complete: true}, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func TestRenderPRNumber(t *testing.T) {
	tests := []struct {
		name, svcName, slug string
		want                int
	}{
		{name: "name and slug agree", svcName: "web PR #12", slug: "web-pr-12", want: 12},
		{name: "name only", svcName: "web PR #7", slug: "web-x1y2", want: 7},
		{name: "slug only", svcName: "web preview", slug: "web-pr-31", want: 31},
		{name: "disagree", svcName: "web PR #14", slug: "web-pr-15", want: 0},
		{name: "not a suffix", svcName: "Fix PR #3 regression", slug: "fix-pr-3-regression", want: 0},
		{name: "no space before PR", svcName: "webPR #3", slug: "web", want: 0},
		{name: "leading zero", svcName: "web PR #012", slug: "web-pr-012", want: 0},
		{name: "too many digits", svcName: "web PR #1234567890", slug: "", want: 0},
		{name: "just the suffix", svcName: "PR #5", slug: "", want: 5},
		{name: "nothing", svcName: "", slug: "", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := renderPRNumber(tt.svcName, tt.slug); got != tt.want {
				t.Errorf("renderPRNumber(%q, %q) = %d, want %d", tt.svcName, tt.slug, got, tt.want)
			}
		})
	}
}

func FuzzRenderPRNumber(f *testing.F) {
	f.Add("web PR #12", "web-pr-12")
	f.Add("web PR #12", "web-pr-13")
	f.Add("x", "-pr-999999999")
	f.Fuzz(func(t *testing.T, name, slug string) {
		n := renderPRNumber(name, slug)
		if n < 0 || n > 999_999_999 {
			t.Fatalf("renderPRNumber = %d, outside 0..999999999", n)
		}
		if n > 0 && !strings.HasSuffix(name, fmt.Sprintf("PR #%d", n)) && !strings.HasSuffix(slug, fmt.Sprintf("-pr-%d", n)) {
			t.Errorf("renderPRNumber(%q, %q) = %d, which neither ends with", name, slug, n)
		}
	})
}

func FuzzParseRenderPage(f *testing.F) {
	f.Add(`[]`)
	f.Add(`[{"cursor":"c1","service":{"id":"srv-1","name":"web PR #1","slug":"web-pr-1","createdAt":"2025-01-02T03:04:05Z","serviceDetails":{"url":"https://x","parentServer":{"id":"srv-0","name":"web"}}}}]`)
	f.Add(`[{"cursor":"","service":null}]`)
	f.Add(`{"id":"x","message":"unauthorized"}`)
	f.Fuzz(func(t *testing.T, body string) {
		services, cursor, err := parseRenderPage([]byte(body))
		if err != nil {
			return
		}
		if len(services) > 0 && cursor == "" {
			t.Errorf("%d services but no cursor", len(services))
		}
		for _, s := range services {
			if s.id == "" {
				t.Errorf("service without an id: %+v", s)
			}
		}
	})
}
