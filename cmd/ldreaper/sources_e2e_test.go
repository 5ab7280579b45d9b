package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/reconciler"
)

// The API sources end to end: the real binary, ldfake, and small stand-ins
// for GitHub, Vercel, Render and a generic JSON endpoint on loopback. The
// vendor APIs' paging, rate limits and faults are tested against faithful
// fakes in package sources; here the point is the wiring: config keys,
// tokens from the environment, key_prefix, provenance, and one failing
// source blocking only its own deletes.

// Tokens the stand-ins demand; none may appear in any output.
var sourceTokens = map[string]string{
	"GITHUB_TOKEN":   "ghp-e2e-secret-1111",
	"VERCEL_TOKEN":   "vercel-e2e-secret-2222",
	"RENDER_API_KEY": "rnd-e2e-secret-3333",
	"PREVIEWS_TOKEN": "api-e2e-secret-4444",
}

// sourceStandIns serves the four APIs and counts calls to the failing one.
type sourceStandIns struct {
	github, vercel, render, api string
	apiCalls                    atomic.Int32
}

func newSourceStandIns(t *testing.T) *sourceStandIns {
	t.Helper()
	s := &sourceStandIns{}
	authorized := func(w http.ResponseWriter, r *http.Request, env string) bool {
		if r.Header.Get("Authorization") != "Bearer "+sourceTokens[env] {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"message":"Bad credentials"}`))
			return false
		}
		return true
	}
	start := func(h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	s.github = start(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r, "GITHUB_TOKEN") {
			return
		}
		if r.URL.Path != "/repos/acme/web/pulls" || r.URL.Query().Get("state") != "open" {
			http.NotFound(w, r)
			return
		}
		// PR 3 was closed: it is not listed.
		_, _ = w.Write([]byte(`[
			{"number": 2, "state": "open", "head": {"ref": "feat-2", "sha": "b2"}, "base": {"ref": "main"}, "user": {"login": "bob"}, "created_at": "2026-11-20T10:00:00Z"},
			{"number": 1, "state": "open", "head": {"ref": "feat-1", "sha": "a1"}, "base": {"ref": "main"}, "user": {"login": "ann"}, "created_at": "2026-11-19T10:00:00Z"}]`))
	})
	s.vercel = start(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r, "VERCEL_TOKEN") {
			return
		}
		if r.URL.Path != "/v6/deployments" || r.URL.Query().Get("projectId") != "prj_web" {
			http.NotFound(w, r)
			return
		}
		now := time.Now().UnixMilli()
		deployment := func(uid, branch string, age time.Duration) map[string]any {
			return map[string]any{"uid": uid, "url": uid + ".vercel.app", "created": now - age.Milliseconds(), "state": "READY", "target": nil,
				"meta": map[string]string{"githubCommitRef": branch, "githubOrg": "acme", "githubRepo": "web"}}
		}
		// feat-3's PR is closed; Vercel keeps its preview, the cross-check
		// drops it.
		_ = json.NewEncoder(w).Encode(map[string]any{
			"pagination":  map[string]any{"count": 2, "next": nil, "prev": nil},
			"deployments": []any{deployment("dpl-1", "feat-1", time.Hour), deployment("dpl-3", "feat-3", 2*time.Hour)},
		})
	})
	s.render = start(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r, "RENDER_API_KEY") {
			return
		}
		if r.URL.Path != "/v1/services" || r.URL.Query().Get("includePreviews") != "true" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`[
			{"cursor": "c1", "service": {"id": "srv-web", "name": "web", "slug": "web", "createdAt": "2026-01-01T00:00:00Z", "serviceDetails": {"url": "https://web.onrender.com"}}},
			{"cursor": "c2", "service": {"id": "srv-p1", "name": "web PR #1", "slug": "web-pr-1", "branch": "feat-1", "createdAt": "2026-11-19T11:00:00Z",
			 "serviceDetails": {"url": "https://web-pr-1.onrender.com", "parentServer": {"id": "srv-web", "name": "web"}}}}]`))
	})
	s.api = start(func(w http.ResponseWriter, r *http.Request) {
		s.apiCalls.Add(1)
		if !authorized(w, r, "PREVIEWS_TOKEN") {
			return
		}
		// Retry-After: 0 keeps the retries of this always-failing
		// endpoint from sleeping.
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error": "database unavailable"}`))
	})
	return s
}

// sourcesE2E is ldfake with owned environments from the prs and api
// sources, a config naming all four API sources, and a runner.
type sourcesE2E struct {
	t    *testing.T
	fake *ldfake.Server
	dir  string
	cfg  string
	apis *sourceStandIns
}

func newSourcesE2E(t *testing.T) *sourcesE2E {
	t.Helper()
	fake := ldfake.New(ldfake.Options{})
	fake.AddToken(e2eToken, ldfake.RoleWriter)
	fake.AddProject("proj")
	ldURL := serveFakeLD(t, fake, "proj", []ldfake.Environment{
		{Key: "staging", Name: "Staging", Color: "000000"},
		{Key: "production", Name: "Production", Color: "000000", Critical: true},
		// Owned by prs: PR 1 is still open, PR 3 is closed.
		{Key: "gh-pr-1", Name: "Preview acme/web#1", Color: "7B42BC", Tags: []string{"ldreaper", "ldreaper-src.prs"}},
		{Key: "gh-pr-3", Name: "Preview acme/web#3", Color: "7B42BC", Tags: []string{"ldreaper", "ldreaper-src.prs"}},
		// Owned by api, which will fail: it must survive.
		{Key: "api-x", Name: "Preview x", Color: "7B42BC", Tags: []string{"ldreaper", "ldreaper-src.api"}},
	}...)
	apis := newSourceStandIns(t)
	e := &sourcesE2E{t: t, fake: fake, dir: t.TempDir(), apis: apis}
	e.cfg = filepath.Join(e.dir, "ldreaper.toml")
	config := `
[launchdarkly]
project = "proj"
base_url = "` + ldURL + `"
source_environment = "staging"

[safety]
max_deletes = 10
max_delete_percent = 100

[[source]]
name = "prs"
type = "github"
base_url = "` + apis.github + `"
repos = ["acme/web"]
key_prefix = "gh-"
key_template = "pr-{{ .Attrs.pr }}"

[[source]]
name = "vercel"
type = "vercel"
base_url = "` + apis.vercel + `"
project_id = "prj_web"
open_pr_repos = ["acme/web"]
github_base_url = "` + apis.github + `"
key_prefix = "vc-"

[[source]]
name = "render"
type = "render"
base_url = "` + apis.render + `"
key_prefix = "rd-"

[[source]]
name = "api"
type = "http"
url = "` + apis.api + `/previews"
token_env = "PREVIEWS_TOKEN"
items_path = "$.previews"
name_path = "$.id"
key_prefix = "api-"
`
	if err := os.WriteFile(e.cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *sourcesE2E) run(args ...string) onceResult {
	e.t.Helper()
	cmd := exec.Command(onceBinary(e.t), args...)
	cmd.Dir = e.dir
	cmd.Env = []string{"LD_API_TOKEN=" + e2eToken, "PATH=" + os.Getenv("PATH")}
	for k, v := range sourceTokens {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	for _, secret := range append(slices.Collect(maps.Values(sourceTokens)), e2eToken) {
		if strings.Contains(stdout.String(), secret) || strings.Contains(stderr.String(), secret) {
			e.t.Fatalf("a token appears in the output:\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	}
	return onceResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestSourcesEndToEndMixedSources(t *testing.T) {
	e := newSourcesE2E(t)
	r := e.run("--config", e.cfg, "--once", "--report", "json")
	if r.code != reconciler.ExitError {
		t.Fatalf("exit %d, want 1 (a source failed)\nstdout:%s\nstderr:%s", r.code, r.stdout, r.stderr)
	}
	rep := decodeReport(t, r.stdout)

	type source struct {
		Name     string
		Items    int
		Complete bool
		Failed   bool
	}
	var sources []source
	for _, s := range rep.Sources {
		sources = append(sources, source{Name: s.Name, Items: s.Items, Complete: s.Complete, Failed: s.Error != ""})
	}
	wantSources := []source{
		{Name: "prs", Items: 2, Complete: true},
		{Name: "vercel", Items: 1, Complete: true},
		{Name: "render", Items: 1, Complete: true},
		{Name: "api", Items: 0, Complete: false, Failed: true},
	}
	if diff := cmp.Diff(wantSources, sources); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	for _, s := range rep.Sources {
		if s.Name == "api" && (!strings.Contains(s.Error, "500 Internal Server Error: database unavailable") || !strings.Contains(s.Error, "giving up after 4 attempts")) {
			t.Errorf("api source error = %q", s.Error)
		}
	}
	if n := e.apis.apiCalls.Load(); n != 4 {
		t.Errorf("the failing endpoint was called %d times, want 4 (bounded retries)", n)
	}

	// Healthy sources create (with their prefixes) and delete their own
	// orphan; the failed source's environment is held, not deleted.
	var mutations []string
	for _, m := range e.fake.Mutations() {
		mutations = append(mutations, string(m.Op)+" "+m.Key)
	}
	slices.Sort(mutations)
	wantMutations := []string{"create gh-pr-2", "create rd-pr-1", "create vc-feat-1", "delete gh-pr-3"}
	if diff := cmp.Diff(wantMutations, mutations); diff != "" {
		t.Errorf("mutations (-want +got):\n%s", diff)
	}
	held := map[string]string{}
	for _, a := range rep.Actions {
		if a.Status == reconciler.StatusHeld {
			held[a.Key] = a.Reason
		}
	}
	if diff := cmp.Diff(map[string]string{"api-x": reconciler.ReasonSourceFailed}, held); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}
	created, ok := e.fake.Environment("proj", "vc-feat-1")
	if !ok || !slices.Contains(created.Tags, "ldreaper-src.vercel") {
		t.Errorf("vc-feat-1 = %+v, want it tagged with its provenance", created)
	}

	// check reaches every source and reports its item count.
	r = e.run("check", "--config", e.cfg)
	if r.code != 1 {
		t.Fatalf("check exit %d, want 1\n%s", r.code, r.stdout)
	}
	for _, want := range []string{
		`ok   source "prs" (github): 2 item(s)`,
		`ok   source "vercel" (vercel): 1 item(s)`,
		`ok   source "render" (render): 1 item(s)`,
		`FAIL source "api" (http): listing http source "api": giving up after 4 attempts: GET ` + e.apis.api + `/previews: 500 Internal Server Error: database unavailable`,
	} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// A missing token is a config error before any request.
func TestSourcesEndToEndMissingToken(t *testing.T) {
	e := newSourcesE2E(t)
	cmd := exec.Command(onceBinary(t), "--config", e.cfg, "--once")
	cmd.Dir = e.dir
	cmd.Env = []string{"LD_API_TOKEN=" + e2eToken, "PATH=" + os.Getenv("PATH"), "GITHUB_TOKEN=" + sourceTokens["GITHUB_TOKEN"]}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 || !strings.Contains(string(out), "environment variable VERCEL_TOKEN is empty or unset") {
		t.Fatalf("exit %v, output:\n%s", err, out)
	}
	if n := len(e.fake.Audit()); n != 0 {
		t.Errorf("LD was contacted %d times", n)
	}
}
