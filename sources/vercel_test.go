package sources

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const vercelTestToken = "vercel-secret-token-5c1d"

// ago is a Vercel timestamp (ms) d before testNow.
func ago(d time.Duration) int64 { return testNow.Add(-d).UnixMilli() }

func gitMeta(branch, sha, pr string) map[string]string {
	m := map[string]string{"githubCommitRef": branch, "githubCommitSha": sha, "githubOrg": "acme", "githubRepo": "web"}
	if pr != "" {
		m["githubPrId"] = pr
	}
	return m
}

// newTestVercel serves fake and returns a source for it with instant waits.
func newTestVercel(t *testing.T, fake *vercelFake, o VercelOptions) (*Vercel, *fakeClock) {
	t.Helper()
	o.Name = "previews"
	o.BaseURL = serveFake(t, fake)
	o.Token = vercelTestToken
	o.TokenEnv = "VERCEL_TOKEN"
	o.ProjectID = "prj_1"
	o.TeamID = "team_1"
	v, err := NewVercel(o)
	if err != nil {
		t.Fatal(err)
	}
	return v, instant(v.api)
}

func TestVercelListPicksTheLatestLivePreviewPerBranch(t *testing.T) {
	all := []vercelFakeDeployment{
		// feat-a: the newest READY wins over an older one; an ERROR build
		// is filtered out by the state query.
		{uid: "dpl_a1", created: ago(3 * time.Hour), state: "READY", url: "web-a1.vercel.app", meta: gitMeta("feat-a", "aaa1", "")},
		{uid: "dpl_a2", created: ago(2 * time.Hour), state: "READY", url: "web-a2.vercel.app", meta: gitMeta("feat-a", "aaa2", "12")},
		{uid: "dpl_a3", created: ago(1 * time.Hour), state: "ERROR", url: "web-a3.vercel.app", meta: gitMeta("feat-a", "aaa3", "12")},
		// feat-b: only building.
		{uid: "dpl_b1", created: ago(30 * time.Minute), state: "BUILDING", url: "web-b1.vercel.app", meta: gitMeta("feat-b", "bbb1", "")},
		// Not live: production, a custom environment, no branch (CLI
		// deploy), deleted, soft-deleted, expired, outside the lookback, a
		// PR id that is not a number is dropped but the branch stays.
		{uid: "dpl_prod", created: ago(time.Hour), state: "READY", target: "production", meta: gitMeta("main", "ppp", "")},
		{uid: "dpl_custom", created: ago(time.Hour), state: "READY", meta: gitMeta("qa", "q", ""), extra: map[string]any{"customEnvironment": map[string]any{"id": "env_1"}}},
		{uid: "dpl_cli", created: ago(time.Hour), state: "READY", meta: map[string]string{}},
		{uid: "dpl_del", created: ago(time.Hour), state: "READY", meta: gitMeta("gone-1", "d", ""), extra: map[string]any{"deleted": ago(time.Minute)}},
		{uid: "dpl_soft", created: ago(time.Hour), state: "READY", meta: gitMeta("gone-2", "s", ""), extra: map[string]any{"softDeletedByRetention": true}},
		{uid: "dpl_exp", created: ago(time.Hour), state: "READY", meta: gitMeta("gone-3", "e", ""), extra: map[string]any{"expiration": ago(time.Minute)}},
		{uid: "dpl_old", created: ago(40 * 24 * time.Hour), state: "READY", meta: gitMeta("stale", "o", "")},
		{uid: "dpl_weird", created: ago(time.Hour), state: "READY", url: "w.vercel.app", meta: gitMeta("weird-pr", "w", "12a")},
		{uid: "dpl_dep", created: ago(time.Hour), state: "READY", meta: gitMeta("dependabot/npm/x", "x", "")},
	}
	featA := Env{Name: "feat-a", CreatedAt: time.UnixMilli(ago(2 * time.Hour)).UTC(), Attrs: map[string]string{
		"branch": "feat-a", "deployment": "dpl_a2", "pr": "12", "sha": "aaa2", "state": "READY", "url": "https://web-a2.vercel.app"}}
	featB := Env{Name: "feat-b", CreatedAt: time.UnixMilli(ago(30 * time.Minute)).UTC(), Attrs: map[string]string{
		"branch": "feat-b", "deployment": "dpl_b1", "sha": "bbb1", "state": "BUILDING", "url": "https://web-b1.vercel.app"}}
	weird := Env{Name: "weird-pr", CreatedAt: time.UnixMilli(ago(time.Hour)).UTC(), Attrs: map[string]string{
		"branch": "weird-pr", "deployment": "dpl_weird", "sha": "w", "state": "READY", "url": "https://w.vercel.app"}}

	tests := []struct {
		name      string
		opts      VercelOptions
		wantState string
		want      []Env
	}{
		{name: "ready only", opts: VercelOptions{ExcludeBranches: []string{"dependabot/*/*"}}, wantState: "READY", want: []Env{featA, weird}},
		{name: "ready or building", opts: VercelOptions{IncludeBuilding: true, ExcludeBranches: []string{"dependabot/*/*"}}, wantState: "BUILDING,READY", want: []Env{featA, featB, weird}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newVercelFake(vercelTestToken, "team_1", "prj_1")
			fake.add(all...)
			v, _ := newTestVercel(t, fake, tt.opts)
			got, err := v.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(Snapshot{Source: "previews", Items: tt.want, Complete: true}, got); diff != "" {
				t.Errorf("List (-want +got):\n%s", diff)
			}
			reqs := fake.seen()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			q := reqs[0].Query
			wantQuery := map[string]string{
				"projectId": "prj_1", "teamId": "team_1", "target": "preview", "state": tt.wantState, "limit": "100",
				"since": strconv.FormatInt(ago(30*24*time.Hour), 10),
			}
			gotQuery := map[string]string{}
			for k := range q {
				gotQuery[k] = q.Get(k)
			}
			if diff := cmp.Diff(wantQuery, gotQuery); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
			if reqs[0].Auth != "Bearer "+vercelTestToken {
				t.Errorf("Authorization = %q", reqs[0].Auth)
			}
		})
	}
}

func TestVercelPagingFollowsUntil(t *testing.T) {
	fake := newVercelFake(vercelTestToken, "team_1", "prj_1")
	for i := range 250 {
		branch := fmt.Sprintf("b-%03d", i)
		fake.add(vercelFakeDeployment{uid: "dpl_" + branch, created: ago(time.Duration(i+1) * time.Minute), state: "READY", meta: gitMeta(branch, "s", "")})
	}
	v, clock := newTestVercel(t, fake, VercelOptions{})
	got, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Complete || len(got.Items) != 250 {
		t.Fatalf("got %d items, complete %v; want 250, complete", len(got.Items), got.Complete)
	}
	var untils []string
	for _, r := range fake.seen() {
		untils = append(untils, r.Query.Get("until"))
	}
	want := []string{"", strconv.FormatInt(ago(100*time.Minute), 10), strconv.FormatInt(ago(200*time.Minute), 10)}
	if diff := cmp.Diff(want, untils); diff != "" {
		t.Errorf("until per request (-want +got):\n%s", diff)
	}
	if len(clock.Waits()) != 0 {
		t.Errorf("waited %v without a rate limit", clock.Waits())
	}
}

// vercelFailures are the failure cases; the fake holds one live deployment.
func vercelFailures() []failureCase {
	resetIn90s := strconv.FormatInt(testNow.Add(90*time.Second).Unix(), 10)
	resetIn20s := strconv.FormatInt(testNow.Add(20*time.Second).Unix(), 10)
	vercel429 := `{"error":{"code":"too_many_requests","message":"Rate limit exceeded"}}`
	return []failureCase{
		{name: "ok", wantRequests: 1},
		{name: "429 honours Retry-After", faults: []fault{{status: 429, header: map[string]string{"Retry-After": "7", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": resetIn90s}, body: vercel429}},
			wantWaits: []time.Duration{7 * time.Second}, wantRequests: 2},
		{name: "429 without Retry-After waits for X-RateLimit-Reset", faults: []fault{{status: 429, header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": resetIn20s}, body: vercel429}},
			wantWaits: []time.Duration{20 * time.Second}, wantRequests: 2},
		{name: "429 longer than the cap fails now", faults: []fault{{status: 429, header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": resetIn90s}, body: vercel429}},
			wantErr: "429 rate limited: the API asks to wait 1m30s, longer than the 1m0s ldreaper waits", wantRequests: 1},
		{name: "5xx is retried with backoff", faults: []fault{{status: 502, body: "bad gateway"}, {status: 500, body: `{"error":{"code":"internal_server_error","message":"oops"}}`}},
			wantWaits: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond}, wantRequests: 3},
		{name: "5xx until the retries run out", faults: []fault{{status: 500}, {status: 500}, {status: 503}, {status: 500, body: `{"error":{"code":"internal_server_error","message":"An unexpected internal error occurred"}}`}},
			wantErr: "giving up after 4 attempts: GET ", wantWaits: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}, wantRequests: 4},
		{name: "bad request is not retried", faults: []fault{{status: 400, body: `{"error":{"code":"bad_request","message":"Invalid request: projectId"}}`}},
			wantErr: "400 Bad Request: Invalid request: projectId", wantRequests: 1},
		{name: "a page whose count disagrees", faults: []fault{{status: 200, body: `{"pagination":{"count":2,"next":null,"prev":null},"deployments":[]}`}},
			wantErr: "pagination.count is 2 but the page holds 0 deployments", wantRequests: 1},
		{name: "an object without deployments", faults: []fault{{status: 200, body: `{"pagination":{"count":0,"next":null,"prev":null}}`}},
			wantErr: `response lacks "pagination" or "deployments"`, wantRequests: 1},
		{name: "truncated JSON", faults: []fault{{status: 200, body: `{"pagination":{"count":1,"next":null},"deployments":[{"uid":"d`}},
			wantErr: "decoding deployments: unexpected end of JSON input", wantRequests: 1},
		{name: "a cursor that does not move", faults: []fault{
			{status: 200, body: fmt.Sprintf(`{"pagination":{"count":0,"next":%d,"prev":null},"deployments":[]}`, ago(time.Minute))},
			{status: 200, body: fmt.Sprintf(`{"pagination":{"count":0,"next":%d,"prev":null},"deployments":[]}`, ago(time.Minute))},
		}, wantErr: "does not move past until", wantRequests: 2},
	}
}

func TestVercelFailures(t *testing.T) {
	for _, tt := range vercelFailures() {
		t.Run(tt.name, func(t *testing.T) {
			fake := newVercelFake(vercelTestToken, "team_1", "prj_1")
			fake.add(vercelFakeDeployment{uid: "dpl_1", created: ago(time.Hour), state: "READY", meta: gitMeta("feat", "s", "")})
			fake.fail(tt.faults...)
			v, clock := newTestVercel(t, fake, VercelOptions{})
			got, err := v.List(t.Context())
			checkFailureCase(t, tt, got, err, clock, len(fake.seen()), 1)
			if err != nil && strings.Contains(err.Error(), vercelTestToken) {
				t.Errorf("error contains the token: %v", err)
			}
		})
	}
}

// checkFailureCase checks a List result against a failure case: an error
// always comes with an incomplete, empty snapshot.
func checkFailureCase(t *testing.T, tt failureCase, got Snapshot, err error, clock *fakeClock, requests, wantItems int) {
	t.Helper()
	if tt.wantErr == "" {
		if err != nil || !got.Complete || len(got.Items) != wantItems {
			t.Fatalf("List = %d items, complete %v, %v; want %d items, complete", len(got.Items), got.Complete, err, wantItems)
		}
	} else {
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Fatalf("List error = %v, want it to contain %q", err, tt.wantErr)
		}
		if got.Complete || len(got.Items) != 0 {
			t.Errorf("a failed List returned %+v, want an incomplete, empty snapshot", got)
		}
	}
	if diff := cmp.Diff(tt.wantWaits, clock.Waits()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if requests != tt.wantRequests {
		t.Errorf("%d requests, want %d", requests, tt.wantRequests)
	}
}

func TestVercelAuthFailures(t *testing.T) {
	tests := []struct {
		name, token, team string
		wantErr           string
	}{
		{name: "wrong token", token: "nope", team: "team_1", wantErr: "403 Forbidden (check the token in $VERCEL_TOKEN): Not authorized"},
		{name: "no token", token: "", team: "team_1", wantErr: "401 Unauthorized (check the token in $VERCEL_TOKEN): Missing authorization"},
		{name: "wrong team", token: vercelTestToken, team: "team_2", wantErr: "403 Forbidden (check the token in $VERCEL_TOKEN): You don't have permission to access this team"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newVercelFake(vercelTestToken, "team_1", "prj_1")
			v, err := NewVercel(VercelOptions{Name: "previews", BaseURL: serveFake(t, fake), Token: tt.token, TokenEnv: "VERCEL_TOKEN", ProjectID: "prj_1", TeamID: tt.team})
			if err != nil {
				t.Fatal(err)
			}
			clock := instant(v.api)
			got, err := v.List(t.Context())
			checkFailureCase(t, failureCase{wantErr: tt.wantErr, wantRequests: 1}, got, err, clock, len(fake.seen()), 0)
		})
	}
}

func TestVercelEmptyProjectIsCompleteAndEmpty(t *testing.T) {
	fake := newVercelFake(vercelTestToken, "team_1", "prj_1")
	v, _ := newTestVercel(t, fake, VercelOptions{})
	got, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Snapshot{Source: "previews", Items: []Env{}, Complete: true}, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

// prListerFunc is a hand-written stand-in for the GitHub cross-check.
type prListerFunc func() ([]pullRequest, error)

func (f prListerFunc) openPullRequests(context.Context) ([]pullRequest, error) { return f() }

func TestVercelOpenPRCrossCheck(t *testing.T) {
	fake := newVercelFake(vercelTestToken, "team_1", "prj_1")
	fake.add(
		// Open PR, matched by branch; Vercel did not record the PR id.
		vercelFakeDeployment{uid: "dpl_open", created: ago(time.Hour), state: "READY", meta: gitMeta("feat-open", "s1", "")},
		// Matched by PR id although the PR's head ref differs.
		vercelFakeDeployment{uid: "dpl_id", created: ago(time.Hour), state: "READY", meta: gitMeta("renamed", "s2", "8")},
		// The PR was closed: Vercel keeps the preview, ldreaper must not.
		vercelFakeDeployment{uid: "dpl_closed", created: ago(time.Hour), state: "READY", meta: gitMeta("feat-closed", "s3", "9")},
		// The branch has an open PR, but in another repository.
		vercelFakeDeployment{uid: "dpl_other", created: ago(time.Hour), state: "READY", meta: map[string]string{
			"githubCommitRef": "feat-api", "githubOrg": "acme", "githubRepo": "api"}},
	)
	prs := []pullRequest{
		{Repo: "acme/web", Number: 7, Branch: "feat-open"},
		{Repo: "acme/web", Number: 8, Branch: "feat-original"},
		{Repo: "acme/web", Number: 10, Branch: "feat-api"},
	}
	tests := []struct {
		name      string
		lister    prListerFunc
		wantNames []string
		wantPR    map[string]string
		wantErr   string
	}{
		{name: "keeps branches with an open PR", lister: func() ([]pullRequest, error) { return prs, nil },
			wantNames: []string{"feat-open", "renamed"}, wantPR: map[string]string{"feat-open": "7", "renamed": "8"}},
		{name: "no open PRs", lister: func() ([]pullRequest, error) { return nil, nil }, wantNames: nil, wantPR: map[string]string{}},
		{name: "a failed cross-check fails the list", lister: func() ([]pullRequest, error) { return nil, errors.New("github: 502") },
			wantErr: `listing vercel source "previews": cross-checking open pull requests: github: 502`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := newTestVercel(t, fake, VercelOptions{})
			v.openPRs = tt.lister
			got, err := v.List(t.Context())
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || got.Complete || len(got.Items) != 0 {
					t.Fatalf("List = %+v, %v; want an incomplete snapshot and %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			prByName := map[string]string{}
			for _, item := range got.Items {
				names = append(names, item.Name)
				prByName[item.Name] = item.Attrs["pr"]
			}
			if diff := cmp.Diff(tt.wantNames, names); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantPR, prByName); diff != "" {
				t.Errorf("pr attrs (-want +got):\n%s", diff)
			}
		})
	}
}

// The cross-check against a real GitHub fake: a GitHub failure is a Vercel
// failure, and the GitHub token goes only to GitHub.
func TestVercelOpenPRCrossCheckWithGitHub(t *testing.T) {
	vf := newVercelFake(vercelTestToken, "team_1", "prj_1")
	vf.add(
		vercelFakeDeployment{uid: "dpl_1", created: ago(time.Hour), state: "READY", meta: gitMeta("feat-1", "s", "")},
		vercelFakeDeployment{uid: "dpl_2", created: ago(time.Hour), state: "READY", meta: gitMeta("feat-2", "s", "")},
	)
	gf := newGitHubFake(githubTestToken)
	gf.addPull("acme/web", githubFakePull{number: 1, head: "feat-1", base: "main", author: "dev"})
	gh, err := NewGitHub(GitHubOptions{Name: "previews", BaseURL: serveFake(t, gf), Token: githubTestToken, Repos: []string{"acme/web"}})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := newTestVercel(t, vf, VercelOptions{OpenPRs: gh})
	instant(gh.api)
	got, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Items) != 1 || got.Items[0].Name != "feat-1" || got.Items[0].Attrs["pr"] != "1" {
		t.Errorf("items = %+v, want feat-1 with pr 1", got.Items)
	}
	for _, r := range vf.seen() {
		if strings.Contains(r.Auth, githubTestToken) {
			t.Errorf("Vercel received the GitHub token")
		}
	}

	gf.fail(fault{status: http.StatusUnauthorized, body: `{"message":"Bad credentials"}`})
	got, err = v.List(t.Context())
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") || got.Complete {
		t.Errorf("List with GitHub failing = %+v, %v; want an incomplete snapshot and a 401 error", got, err)
	}
}

func FuzzParseVercelPage(f *testing.F) {
	f.Add(`{"pagination":{"count":0,"next":null,"prev":null},"deployments":[]}`)
	f.Add(`{"pagination":{"count":1,"next":1700000000000,"prev":null},"deployments":[{"uid":"d","created":1,"meta":{"githubCommitRef":"b","githubPrId":"3"},"target":null}]}`)
	f.Add(`{"pagination":{"count":1,"next":1.5},"deployments":[{"uid":"d","createdAt":2,"customEnvironment":{"id":"x"}}]}`)
	f.Add(`{"pagination":null,"deployments":null}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		ds, next, err := parseVercelPage([]byte(body))
		if err != nil {
			if ds != nil || next != nil {
				t.Fatalf("error %v with a result", err)
			}
			return
		}
		if next != nil && *next <= 0 {
			t.Errorf("next %d is not a timestamp", *next)
		}
		for _, d := range ds {
			if d.uid == "" || d.created.IsZero() {
				t.Errorf("deployment without uid or creation time: %+v", d)
			}
			if d.pr != "" && !isPRNumber(d.pr) {
				t.Errorf("pr %q is not a number", d.pr)
			}
		}
	})
}
