package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/reconciler"
)

// These tests build the real binary and run `--once` against ldfake served
// on loopback, as a user would.

const e2eToken = "api-e2e-secret-7f3a9c1d-0000-4000-8000-000000000001"

var (
	onceBinaryOnce sync.Once
	onceBinaryPath string
	onceBinaryErr  error
)

func onceBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	onceBinaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ldreaper-e2e-bin-")
		if err != nil {
			onceBinaryErr = err
			return
		}
		onceBinaryPath = filepath.Join(dir, "ldreaper")
		out, err := exec.Command("go", "build", "-o", onceBinaryPath, ".").CombinedOutput()
		if err != nil {
			onceBinaryErr = errors.New(string(out))
		}
	})
	if onceBinaryErr != nil {
		t.Fatalf("build ldreaper: %v", onceBinaryErr)
	}
	return onceBinaryPath
}

type onceEnv struct {
	t       *testing.T
	fake    *ldfake.Server
	baseURL string
	dir     string
}

// newOnceEnv serves a fake LD with project "proj": the source environment,
// an unmanaged environment, and owned environments from two sources.
func newOnceEnv(t *testing.T) *onceEnv {
	t.Helper()
	fake := ldfake.New(ldfake.Options{})
	fake.AddToken(e2eToken, ldfake.RoleWriter)
	fake.AddToken("api-e2e-reader", ldfake.RoleReader)
	fake.AddProject("proj")
	seed := []ldfake.Environment{
		{Key: "staging", Name: "Staging", Color: "000000"},
		{Key: "production", Name: "Production", Color: "000000", Critical: true},
		{Key: "manual", Name: "Manual", Color: "000000", Tags: []string{"team"}},
		{Key: "pr-1", Name: "PR 1", Color: "7B42BC", Tags: []string{"ldreaper", "ldreaper-src.prs"}},
		{Key: "pr-2", Name: "PR 2", Color: "7B42BC", Tags: []string{"ldreaper", "ldreaper-src.prs"}},
		{Key: "ns-a", Name: "ns a", Color: "7B42BC", Tags: []string{"ldreaper", "ldreaper-src.namespaces"}},
	}
	return &onceEnv{t: t, fake: fake, baseURL: serveFakeLD(t, fake, "proj", seed...), dir: t.TempDir()}
}

// serveFakeLD seeds project with envs and serves fake on loopback until the
// test ends; it returns the base URL.
func serveFakeLD(t *testing.T, fake *ldfake.Server, project string, envs ...ldfake.Environment) string {
	t.Helper()
	for _, e := range envs {
		if _, err := fake.Seed(project, e); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url, err := fake.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return url
}

func (e *onceEnv) writeFile(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// config writes a config with two file sources, prs.txt and namespaces.txt,
// and returns its path. extra is appended to [safety].
func (e *onceEnv) config(safety string) string {
	return e.writeFile("ldreaper.toml", `
[launchdarkly]
project = "proj"
base_url = "`+e.baseURL+`"
source_environment = "staging"
extra_tags = ["ephemeral"]
key_template = "{{ .Name | slug }}"

[safety]
max_deletes = 10
max_delete_percent = 100
`+safety+`

[[source]]
name = "prs"
type = "file"
path = "prs.txt"

[[source]]
name = "namespaces"
type = "file"
path = "namespaces.txt"
`)
}

type onceResult struct {
	code           int
	stdout, stderr string
}

func (e *onceEnv) run(token string, args ...string) onceResult {
	e.t.Helper()
	cmd := exec.Command(onceBinary(e.t), args...)
	cmd.Dir = e.dir
	cmd.Env = []string{"LD_API_TOKEN=" + token, "PATH=" + os.Getenv("PATH")}
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
	if token != "" && (strings.Contains(stdout.String(), token) || strings.Contains(stderr.String(), token)) {
		e.t.Fatalf("the API token appears in the output:\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	return onceResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (e *onceEnv) keys() []string {
	var out []string
	for _, env := range e.fake.Environments("proj") {
		out = append(out, env.Key)
	}
	return out
}

func (e *onceEnv) mutationsSince(n int) []string {
	var out []string
	for _, m := range e.fake.Mutations()[n:] {
		out = append(out, string(m.Op)+" "+m.Key)
	}
	return out
}

func decodeReport(t *testing.T, s string) reconciler.Report {
	t.Helper()
	var r reconciler.Report
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, s)
	}
	return r
}

func TestOnceEndToEnd(t *testing.T) {
	e := newOnceEnv(t)
	e.writeFile("prs.txt", "pr-1\npr-3\n")
	e.writeFile("namespaces.txt", "ns-a\nns-b\n")
	cfg := e.config("")

	// A dry run with a Reader token: exit 2 (drift), only GETs, nothing changed.
	before := len(e.fake.Audit())
	r := e.run("api-e2e-reader", "--config", cfg, "--once", "--dry-run", "--detailed-exitcode", "--report", "json")
	if r.code != reconciler.ExitDrift {
		t.Fatalf("dry run exit %d, want 2\nstdout:%s\nstderr:%s", r.code, r.stdout, r.stderr)
	}
	for _, a := range e.fake.Audit()[before:] {
		if a.Method != "GET" {
			t.Errorf("dry run sent %s %s", a.Method, a.Path)
		}
	}
	if len(e.fake.Mutations()) != 0 {
		t.Fatalf("dry run mutated: %v", e.mutationsSince(0))
	}
	rep := decodeReport(t, r.stdout)
	if diff := cmp.Diff(reconciler.Summary{Create: 2, Delete: 1, Keep: 2, Owned: 3}, rep.Summary); diff != "" {
		t.Errorf("dry-run summary (-want +got):\n%s", diff)
	}

	// The real run, with a report file as well.
	r = e.run(e2eToken, "--config", cfg, "--once", "--log-level", "debug", "--report-file", filepath.Join(e.dir, "report.md"))
	if r.code != 0 {
		t.Fatalf("apply exit %d\nstdout:%s\nstderr:%s", r.code, r.stdout, r.stderr)
	}
	wantKeys := []string{"manual", "ns-a", "ns-b", "pr-1", "pr-3", "production", "staging"}
	if diff := cmp.Diff(wantKeys, e.keys()); diff != "" {
		t.Errorf("environments after apply (-want +got):\n%s", diff)
	}
	for _, m := range e.fake.Mutations() {
		if m.Op == ldfake.OpCreate && m.ClonedFrom != "staging" {
			t.Errorf("%s was not cloned from staging (cloned from %q)", m.Key, m.ClonedFrom)
		}
	}
	got, _ := e.fake.Environment("proj", "ns-b")
	if diff := cmp.Diff([]string{"ephemeral", "ldreaper", "ldreaper-src.namespaces"}, slices.Sorted(slices.Values(got.Tags))); diff != "" {
		t.Errorf("tags of a created environment (-want +got):\n%s", diff)
	}
	md, err := os.ReadFile(filepath.Join(e.dir, "report.md"))
	if err != nil || !strings.Contains(string(md), "| create | `ns-b` |") || strings.Contains(string(md), e2eToken) {
		t.Errorf("markdown report file: %v\n%s", err, md)
	}
	for _, a := range e.fake.Audit() {
		if a.UserAgent != "launchdarkly-ldreaper-int/dev" || a.APIVersion != "20240415" {
			t.Errorf("request %s %s: User-Agent %q, LD-API-Version %q", a.Method, a.Path, a.UserAgent, a.APIVersion)
		}
	}

	// Nothing drifts now: a detailed dry run exits 0.
	r = e.run(e2eToken, "--config", cfg, "--once", "--dry-run", "--detailed-exitcode")
	if r.code != 0 {
		t.Fatalf("converged dry run exit %d, want 0\nstdout:%s", r.code, r.stdout)
	}
	if !strings.Contains(r.stdout, "Summary: 0 to create, 0 to delete, 4 kept") {
		t.Errorf("text report:\n%s", r.stdout)
	}
}

func TestOnceGuardTripAndForce(t *testing.T) {
	e := newOnceEnv(t)
	e.writeFile("prs.txt", "pr-9\n")
	e.writeFile("namespaces.txt", "ns-z\n")
	cfg := e.config("")
	// Three owned environments are orphans; max_deletes 2 holds all of them.
	cfg = e.writeFile("ldreaper.toml", strings.Replace(mustRead(t, cfg), "max_deletes = 10", "max_deletes = 2", 1))

	r := e.run(e2eToken, "--config", cfg, "--once", "--report", "json")
	if r.code != reconciler.ExitGuarded {
		t.Fatalf("exit %d, want 3\nstdout:%s\nstderr:%s", r.code, r.stdout, r.stderr)
	}
	for _, m := range e.fake.Mutations() {
		if m.Op == ldfake.OpDelete {
			t.Errorf("deleted %s although the guard tripped", m.Key)
		}
	}
	rep := decodeReport(t, r.stdout)
	tripped := false
	for _, g := range rep.Guards {
		tripped = tripped || (g.Name == reconciler.GuardMaxDeletes && g.Tripped)
	}
	if !tripped || rep.Summary.Create != 2 || rep.Summary.Held != 3 {
		t.Errorf("report: guards %+v summary %+v", rep.Guards, rep.Summary)
	}

	n := len(e.fake.Mutations())
	r = e.run(e2eToken, "--config", cfg, "--once", "--force-deletes")
	if r.code != 0 {
		t.Fatalf("forced run exit %d\nstdout:%s\nstderr:%s", r.code, r.stdout, r.stderr)
	}
	if diff := cmp.Diff([]string{"delete ns-a", "delete pr-1", "delete pr-2"}, slices.Sorted(slices.Values(e.mutationsSince(n)))); diff != "" {
		t.Errorf("forced deletes (-want +got):\n%s", diff)
	}
	// --force-deletes is for one --once run only.
	if r := e.run(e2eToken, "--config", cfg, "--force-deletes"); r.code != 1 || !strings.Contains(r.stderr, "--once") {
		t.Errorf("--force-deletes without --once: exit %d, stderr %s", r.code, r.stderr)
	}
}

func TestOnceFailedSourceBlocksOnlyItsDeletes(t *testing.T) {
	e := newOnceEnv(t)
	// prs.txt is missing: that source fails. namespaces wants ns-b and not ns-a.
	e.writeFile("namespaces.txt", "ns-b\n")
	cfg := e.config("")
	r := e.run(e2eToken, "--config", cfg, "--once", "--report", "json")
	if r.code != reconciler.ExitError {
		t.Fatalf("exit %d, want 1\nstdout:%s\nstderr:%s", r.code, r.stdout, r.stderr)
	}
	if diff := cmp.Diff([]string{"create ns-b", "delete ns-a"}, slices.Sorted(slices.Values(e.mutationsSince(0)))); diff != "" {
		t.Errorf("mutations (-want +got):\n%s", diff)
	}
	rep := decodeReport(t, r.stdout)
	held := map[string]string{}
	for _, a := range rep.Actions {
		if a.Status == reconciler.StatusHeld {
			held[a.Key] = a.Reason
		}
	}
	if diff := cmp.Diff(map[string]string{"pr-1": reconciler.ReasonSourceFailed, "pr-2": reconciler.ReasonSourceFailed}, held); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}
	if rep.Sources[0].Error == "" || rep.Sources[0].Complete {
		t.Errorf("failed source not reported: %+v", rep.Sources[0])
	}
}

func TestOnceEmptySourceIsAGuard(t *testing.T) {
	e := newOnceEnv(t)
	e.writeFile("prs.txt", "# nothing live\n")
	e.writeFile("namespaces.txt", "ns-a\n")
	r := e.run(e2eToken, "--config", e.config(""), "--once")
	if r.code != reconciler.ExitGuarded {
		t.Fatalf("exit %d, want 3\nstdout:%s", r.code, r.stdout)
	}
	if len(e.fake.Mutations()) != 0 {
		t.Errorf("mutated: %v", e.mutationsSince(0))
	}
}

func TestOnceBadConfigNeverContactsLD(t *testing.T) {
	e := newOnceEnv(t)
	e.writeFile("prs.txt", "pr-1\n")
	e.writeFile("namespaces.txt", "ns-a\n")
	cfg := e.writeFile("ldreaper.toml", strings.Replace(mustRead(t, e.config("")), "max_deletes = 10", "max_deletes = 10\nmax_delets = 3", 1))
	r := e.run(e2eToken, "--config", cfg, "--once")
	if r.code != 1 || !strings.Contains(r.stderr, "safety.max_delets: unknown key") || !strings.Contains(r.stderr, "ldreaper.toml:11") {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	// A missing token is also caught before any request.
	r = e.run("", "--config", e.config(""), "--once")
	if r.code != 1 || !strings.Contains(r.stderr, "LD_API_TOKEN") {
		t.Fatalf("missing token: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if n := len(e.fake.Audit()); n != 0 {
		t.Errorf("LD was contacted %d times", n)
	}
}

func TestOnceUnreachableLD(t *testing.T) {
	e := newOnceEnv(t)
	e.writeFile("prs.txt", "pr-1\n")
	e.writeFile("namespaces.txt", "ns-a\n")
	cfg := e.writeFile("ldreaper.toml", strings.Replace(mustRead(t, e.config("")), e.baseURL, "http://127.0.0.1:1", 1))
	cfg = e.writeFile("ldreaper.toml", strings.Replace(mustRead(t, cfg), "[safety]", "max_retries = 0\n\n[safety]", 1))
	r := e.run(e2eToken, "--config", cfg, "--once", "--report", "json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:%s\nstderr:%s", r.code, r.stdout, r.stderr)
	}
	if rep := decodeReport(t, r.stdout); rep.Error == "" {
		t.Errorf("report has no error: %+v", rep)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
