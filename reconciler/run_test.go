package reconciler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/orphanstate"
	"github.com/ldreaper/ldreaper/sources"
)

const (
	testProject = "proj"
	writerToken = "api-writer-7f3a-must-never-print"
	readerToken = "api-reader-2b9c-must-never-print"
)

// ldHarness is the real ldclient talking to ldfake over loopback.
type ldHarness struct {
	fake *ldfake.Server
	url  string
}

// newLDHarness serves a fake LD project holding production and staging
// (unmanaged, as in a real project) plus envs.
func newLDHarness(t *testing.T, envs ...ldfake.Environment) *ldHarness {
	t.Helper()
	fake := ldfake.New(ldfake.Options{})
	fake.AddToken(writerToken, ldfake.RoleWriter)
	fake.AddToken(readerToken, ldfake.RoleReader)
	fake.AddProject(testProject)
	base := []ldfake.Environment{{Key: "production"}, {Key: "staging"}}
	for _, e := range append(base, envs...) {
		if _, err := fake.Seed(testProject, e); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return &ldHarness{fake: fake, url: srv.URL}
}

func (h *ldHarness) client(t *testing.T, token string) *ldclient.Client {
	t.Helper()
	c, err := ldclient.New(ldclient.Options{BaseURL: h.url, Token: token, MaxRetries: -1, RateLimitRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (h *ldHarness) keys() []string {
	var out []string
	for _, e := range h.fake.Environments(testProject) {
		out = append(out, e.Key)
	}
	return out
}

func managed(key, source string) ldfake.Environment {
	return ldfake.Environment{Key: key, Tags: []string{"ldreaper", ProvenanceTag("ldreaper", source)}}
}

// stubSource lists fixed item names, or fails, or panics.
type stubSource struct {
	name       string
	items      []string
	err        error
	panicValue any
}

func (s stubSource) Name() string { return s.name }

func (s stubSource) List(context.Context) (sources.Snapshot, error) {
	if s.panicValue != nil {
		panic(s.panicValue)
	}
	if s.err != nil {
		return sources.Snapshot{Source: s.name}, s.err
	}
	snap := sources.Snapshot{Source: s.name, Complete: true}
	for _, n := range s.items {
		snap.Items = append(snap.Items, sources.Env{Name: n})
	}
	return snap, nil
}

func specs(srcs ...sources.Source) []SourceSpec {
	out := make([]SourceSpec, 0, len(srcs))
	for _, s := range srcs {
		out = append(out, SourceSpec{Source: s, Type: "file", Render: renderByAttr})
	}
	return out
}

// runConfig deletes an orphan on first sight unless a test sets a grace.
func runConfig() Config {
	return Config{
		Project:           testProject,
		SourceEnvironment: "staging",
		Color:             "00FF00",
		ExtraTags:         []string{"ephemeral"},
		Plan: PlanConfig{
			Policy: PolicySync, ManagedTag: "ldreaper", SourceEnvironments: []string{"staging"},
			Protected: []string{"production"}, MaxDeletes: 10, MaxDeletePercent: 100, OrphanMinRuns: 1,
		},
		Concurrency: 2,
	}
}

// recordingStore is an OrphanStore that remembers every Save and can fail
// its Load.
type recordingStore struct {
	mem     *orphanstate.Memory
	loadErr error
	saveErr error
	saves   []savedState
}

type savedState struct {
	Upsert map[string]orphanstate.Record
	Remove []string
}

func newRecordingStore() *recordingStore { return &recordingStore{mem: orphanstate.NewMemory()} }

func (s *recordingStore) Load(ctx context.Context) (map[string]orphanstate.Record, error) {
	if s.loadErr != nil {
		return nil, s.loadErr
	}
	return s.mem.Load(ctx)
}

func (s *recordingStore) Save(ctx context.Context, upsert map[string]orphanstate.Record, remove []string) error {
	s.saves = append(s.saves, savedState{Upsert: upsert, Remove: slices.Clone(remove)})
	if s.saveErr != nil {
		return s.saveErr
	}
	return s.mem.Save(ctx, upsert, remove)
}

// testClock is the injected now; tests move it between runs only.
type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time { return c.now }

// actionLines condenses a report's actions to "op key status reason".
func actionLines(rep Report) []string {
	out := make([]string, 0, len(rep.Actions))
	for _, a := range rep.Actions {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", a.Op, a.Key, a.Status, a.Reason)))
	}
	return out
}

func TestRunOnceFailedSourceBlocksOnlyItsOwnDeletes(t *testing.T) {
	tests := []struct {
		name      string
		k8s       stubSource
		wantError string // in the k8s source line
	}{
		{name: "source returns an error", k8s: stubSource{name: "k8s", err: errors.New("list namespaces: connection refused")},
			wantError: "list namespaces: connection refused"},
		{name: "source panics", k8s: stubSource{name: "k8s", panicValue: "nil map"},
			wantError: `list source "k8s": panic: nil map`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newLDHarness(t, managed("old-preview", "previews"), managed("old-ns", "k8s"))
			w := h.client(t, writerToken)
			r := New(runConfig(), w, w, specs(stubSource{name: "previews", items: []string{"pr-1", "pr-2"}}, tt.k8s),
				newRecordingStore(), zerolog.Nop(), nil)
			rep, err := r.RunOnce(t.Context(), RunOptions{})
			if err != nil {
				t.Fatalf("RunOnce: %v", err)
			}
			wantActions := []string{
				"create pr-1 applied",
				"create pr-2 applied",
				"delete old-ns held source-failed",
				"delete old-preview applied",
			}
			if diff := cmp.Diff(wantActions, actionLines(rep)); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			wantSources := []SourceReport{
				{Name: "previews", Type: "file", Items: 2, Complete: true},
				{Name: "k8s", Type: "file", Error: tt.wantError},
			}
			if diff := cmp.Diff(wantSources, rep.Sources); diff != "" {
				t.Errorf("sources (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"old-ns", "pr-1", "pr-2", "production", "staging"}, h.keys()); diff != "" {
				t.Errorf("LD environments after the run (-want +got):\n%s", diff)
			}
			if got := rep.ExitCode(false); got != ExitError {
				t.Errorf("ExitCode = %d, want %d for a failed source", got, ExitError)
			}
		})
	}
}

func TestRunOnceDryRunOnlyReads(t *testing.T) {
	tests := []struct {
		name  string
		token string
		// withWriter gives the reconciler a writer it must not use.
		withWriter bool
	}{
		{name: "reader token, no writer", token: readerToken},
		{name: "writer token, writer present", token: writerToken, withWriter: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newLDHarness(t,
				managed("old-preview", "previews"),
				ldfake.Environment{Key: "pr-2", Tags: []string{"team-a"}}, // made by hand, not ours
			)
			c := h.client(t, tt.token)
			var w EnvironmentWriter
			if tt.withWriter {
				w = c
			}
			store := newRecordingStore()
			r := New(runConfig(), c, w, specs(stubSource{name: "previews", items: []string{"pr-1", "pr-2"}}), store, zerolog.Nop(), nil)
			rep, err := r.RunOnce(t.Context(), RunOptions{DryRun: true})
			if err != nil {
				t.Fatalf("RunOnce: %v", err)
			}
			want := []string{
				"create pr-1 planned",
				"create pr-2 held exists-unmanaged", // found by the GET probe
				"delete old-preview planned",
			}
			if diff := cmp.Diff(want, actionLines(rep)); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			audit := h.fake.Audit()
			if len(audit) == 0 {
				t.Fatal("no requests reached LD")
			}
			var probed bool
			for _, e := range audit {
				if e.Method != http.MethodGet || e.Status == http.StatusForbidden || e.Status == http.StatusUnauthorized {
					t.Errorf("dry run sent %s %s (status %d)", e.Method, e.Path, e.Status)
				}
				probed = probed || (e.Route == ldfake.RouteGetEnvironment && strings.HasSuffix(e.Path, "/pr-2"))
			}
			if !probed {
				t.Error("dry run did not GET the desired key pr-2 to find the unmanaged environment")
			}
			if m := h.fake.Mutations(); len(m) != 0 {
				t.Errorf("dry run mutated LD: %+v", m)
			}
			if len(store.saves) != 0 {
				t.Errorf("dry run saved orphan state: %+v", store.saves)
			}
			if got := rep.ExitCode(true); got != ExitDrift {
				t.Errorf("ExitCode(detailed) = %d, want %d", got, ExitDrift)
			}
		})
	}
}

func TestRunOnceCreatesTaggedClones(t *testing.T) {
	h := newLDHarness(t)
	w := h.client(t, writerToken)
	clock := &testClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.FixedZone("CET", 3600))}
	r := New(runConfig(), w, w, specs(stubSource{name: "previews", items: []string{"pr-1"}}), newRecordingStore(), zerolog.Nop(), clock.Now)
	rep, err := r.RunOnce(t.Context(), RunOptions{Generation: 7})
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	env, ok := h.fake.Environment(testProject, "pr-1")
	if !ok {
		t.Fatalf("pr-1 was not created; report actions %v", actionLines(rep))
	}
	got := ldfake.Environment{Key: env.Key, Name: env.Name, Color: env.Color, Tags: env.Tags, ClonedFrom: env.ClonedFrom}
	want := ldfake.Environment{Key: "pr-1", Name: "Preview pr-1", Color: "00FF00", ClonedFrom: "staging",
		Tags: []string{"ephemeral", "ldreaper", "ldreaper-src.previews"}}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("created environment (-want +got):\n%s", diff)
	}
	var creates []ldfake.Mutation
	for _, m := range h.fake.Mutations() {
		creates = append(creates, ldfake.Mutation{Op: m.Op, Key: m.Key, ClonedFrom: m.ClonedFrom})
	}
	if diff := cmp.Diff([]ldfake.Mutation{{Op: ldfake.OpCreate, Key: "pr-1", ClonedFrom: "staging"}}, creates); diff != "" {
		t.Errorf("mutations (-want +got):\n%s", diff)
	}

	wantStart := clock.now.UTC()
	header := Report{SchemaVersion: rep.SchemaVersion, Project: rep.Project, Policy: rep.Policy, DryRun: rep.DryRun,
		Generation: rep.Generation, StartedAt: rep.StartedAt, FinishedAt: rep.FinishedAt}
	wantHeader := Report{SchemaVersion: 1, Project: testProject, Policy: "sync", Generation: 7, StartedAt: wantStart, FinishedAt: wantStart}
	if diff := cmp.Diff(wantHeader, header); diff != "" {
		t.Errorf("report header (-want +got):\n%s", diff)
	}
	if len(rep.RunID) != 16 || strings.Trim(rep.RunID, "0123456789abcdef") != "" {
		t.Errorf("run id %q is not 16 hex digits", rep.RunID)
	}
}

func TestRunOnceKeepsOrphanState(t *testing.T) {
	h := newLDHarness(t, managed("pr-1", "previews"), managed("old-preview", "previews"))
	w := h.client(t, writerToken)
	cfg := runConfig()
	cfg.Plan.OrphanGrace = 10 * time.Minute
	cfg.Plan.OrphanMinRuns = 2
	clock := &testClock{now: t0}
	store := newRecordingStore()
	r := New(cfg, w, w, specs(stubSource{name: "previews", items: []string{"pr-1"}}), store, zerolog.Nop(), clock.Now)

	steps := []struct {
		at          time.Duration
		dryRun      bool
		wantActions []string
	}{
		{at: 0, wantActions: []string{"delete old-preview held orphan-grace"}},
		// A dry run sees the orphan too, but must not advance its count.
		{at: 5 * time.Minute, dryRun: true, wantActions: []string{"delete old-preview held orphan-grace"}},
		{at: 11 * time.Minute, wantActions: []string{"delete old-preview applied"}},
	}
	for _, step := range steps {
		clock.now = t0.Add(step.at)
		rep, err := r.RunOnce(t.Context(), RunOptions{DryRun: step.dryRun})
		if err != nil {
			t.Fatalf("run at +%s: %v", step.at, err)
		}
		if diff := cmp.Diff(step.wantActions, actionLines(rep)); diff != "" {
			t.Errorf("run at +%s: actions (-want +got):\n%s", step.at, diff)
		}
	}
	want := []savedState{
		{Upsert: map[string]orphanstate.Record{"old-preview": {FirstSeen: t0, Runs: 1}}},
		{Remove: []string{"old-preview"}},
	}
	if diff := cmp.Diff(want, store.saves, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("orphan state saves (-want +got):\n%s", diff)
	}
}

func TestRunOnceHoldsDeletesWhenOrphanStateIsUnavailable(t *testing.T) {
	h := newLDHarness(t, managed("old-preview", "previews"))
	w := h.client(t, writerToken)
	store := newRecordingStore()
	store.loadErr = errors.New("dial tcp 10.0.0.5:6379: connection refused")
	r := New(runConfig(), w, w, specs(stubSource{name: "previews", items: []string{"pr-1"}}), store, zerolog.Nop(), nil)
	rep, err := r.RunOnce(t.Context(), RunOptions{})
	// Creates go on, every delete is held, and the run is an error (exit 1):
	// deletes held forever must not pass as a clean run.
	if err == nil || !strings.Contains(rep.Error, "orphan state unavailable") {
		t.Fatalf("RunOnce: err %v, Report.Error %q; want the load failure in both", err, rep.Error)
	}
	want := []string{"create pr-1 applied", "delete old-preview held orphan-state-unavailable"}
	if diff := cmp.Diff(want, actionLines(rep)); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if !slices.Contains(h.keys(), "old-preview") {
		t.Error("old-preview was deleted although orphan state could not be read")
	}
	if len(store.saves) != 0 {
		t.Errorf("state saved after a failed load, which would overwrite what could not be read: %+v", store.saves)
	}
}

// A failed Save means the next run's grace is computed from stale state;
// the run must say so rather than pass as clean.
func TestRunOnceFailsWhenOrphanStateCannotBeSaved(t *testing.T) {
	h := newLDHarness(t, managed("old-preview", "previews"))
	w := h.client(t, writerToken)
	store := newRecordingStore()
	store.saveErr = errors.New("redis: READONLY You can't write against a read only replica")
	r := New(runConfig(), w, w, specs(stubSource{name: "previews", items: []string{"pr-1"}}), store, zerolog.Nop(), nil)
	rep, err := r.RunOnce(t.Context(), RunOptions{})
	if err == nil || !strings.Contains(rep.Error, "READONLY") {
		t.Fatalf("RunOnce: err %v, Report.Error %q; want the save failure in both", err, rep.Error)
	}
	// The report still says what was done before the save failed.
	want := []string{"create pr-1 applied", "delete old-preview applied"}
	if diff := cmp.Diff(want, actionLines(rep)); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if got := rep.ExitCode(false); got != ExitError {
		t.Errorf("ExitCode = %d, want %d", got, ExitError)
	}
}

func TestRunOnceFailsWhenLDCannotBeListed(t *testing.T) {
	h := newLDHarness(t)
	// LD answers 401 to a token it does not know.
	c := h.client(t, "api-revoked-token-must-never-print")
	store := newRecordingStore()
	r := New(runConfig(), c, c, specs(stubSource{name: "previews", items: []string{"pr-1"}}), store, zerolog.Nop(), nil)
	rep, err := r.RunOnce(t.Context(), RunOptions{})
	if err == nil {
		t.Fatal("RunOnce succeeded with LD refusing every request")
	}
	if rep.Error == "" || rep.Error != err.Error() {
		t.Errorf("Report.Error = %q, want the returned error %q", rep.Error, err.Error())
	}
	if strings.Contains(rep.Error, "must-never-print") {
		t.Errorf("token in the report error: %q", rep.Error)
	}
	if diff := cmp.Diff([]SourceReport{{Name: "previews", Type: "file", Items: 1, Complete: true}}, rep.Sources); diff != "" {
		t.Errorf("the report should say how far the run got; sources (-want +got):\n%s", diff)
	}
	if rep.FinishedAt.IsZero() {
		t.Error("FinishedAt not set on a failed run")
	}
	if got := rep.ExitCode(false); got != ExitError {
		t.Errorf("ExitCode = %d, want %d", got, ExitError)
	}
	if len(h.fake.Mutations()) != 0 || len(store.saves) != 0 {
		t.Errorf("a failed run mutated LD (%v) or saved state (%v)", h.fake.Mutations(), store.saves)
	}
}

func TestRunOnceWithoutWriterRefusesToApply(t *testing.T) {
	h := newLDHarness(t)
	c := h.client(t, readerToken)
	r := New(runConfig(), c, nil, specs(stubSource{name: "previews", items: []string{"pr-1"}}), nil, zerolog.Nop(), nil)
	rep, err := r.RunOnce(t.Context(), RunOptions{})
	if err == nil || rep.Error == "" {
		t.Fatalf("RunOnce without a writer: err %v, Report.Error %q; want both set", err, rep.Error)
	}
	if n := len(h.fake.Audit()); n != 0 {
		t.Errorf("%d requests sent by a run that cannot apply", n)
	}
}

func TestRunOnceStopsMutatingWhenLeaseIsLost(t *testing.T) {
	h := newLDHarness(t, managed("old-preview", "previews"))
	w := h.client(t, writerToken)
	cfg := runConfig()
	cfg.Concurrency = 1 // so the one allowed create ends before the lease is found lost
	r := New(cfg, w, w, specs(stubSource{name: "previews", items: []string{"pr-1", "pr-2"}}), newRecordingStore(), zerolog.Nop(), nil)
	rep, err := r.RunOnce(t.Context(), RunOptions{Lease: &leaseLostAfter{n: 1}})
	// The deposed leader must not save orphan state over the new leader's.
	if err == nil || !strings.Contains(err.Error(), "orphan state not saved") {
		t.Fatalf("RunOnce: err %v, want the run to fail without saving orphan state", err)
	}
	want := []string{"create pr-1 applied", "create pr-2 failed not-started", "delete old-preview failed not-started"}
	if diff := cmp.Diff(want, actionLines(rep)); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if n := len(h.fake.Mutations()); n != 1 {
		t.Errorf("%d mutations, want 1 (the lease allowed one)", n)
	}
	if got := rep.ExitCode(false); got != ExitError {
		t.Errorf("ExitCode = %d, want %d", got, ExitError)
	}
}

// staticReader is an in-memory EnvironmentReader for tests that must run
// inside a synctest bubble, where loopback I/O would stall the fake clock.
type staticReader struct{ envs []ldclient.Environment }

func (s staticReader) ListEnvironments(context.Context, string, ldclient.ListFilter) ([]ldclient.Environment, error) {
	return s.envs, nil
}

func (s staticReader) CountEnvironments(context.Context, string) (int, error) {
	return len(s.envs), nil
}

func (s staticReader) GetEnvironment(_ context.Context, project, key string) (ldclient.Environment, error) {
	return ldclient.Environment{}, &ldclient.APIError{Method: http.MethodGet, Path: "/api/v2/projects/" + project + "/environments/" + key, Status: http.StatusNotFound}
}

// slowSource ignores its deadline and then claims a complete list, the
// failure mode the source timeout exists for.
type slowSource struct{ name string }

func (s slowSource) Name() string { return s.name }

func (s slowSource) List(ctx context.Context) (sources.Snapshot, error) {
	<-ctx.Done()
	return sources.Snapshot{Source: s.name, Complete: true}, nil
}

func TestRunOnceFailsASourceThatOutlivesItsTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := staticReader{envs: []ldclient.Environment{
			{Key: "staging"},
			{Key: "old-preview", Tags: []string{"ldreaper", "ldreaper-src.previews"}},
			{Key: "other-preview", Tags: []string{"ldreaper", "ldreaper-src.k8s"}},
		}}
		cfg := runConfig()
		cfg.SourceTimeout = 30 * time.Second
		r := New(cfg, reader, nil, specs(slowSource{name: "previews"}, stubSource{name: "k8s", items: []string{"ns-1"}}), nil, zerolog.Nop(), nil)
		start := time.Now()
		rep, err := r.RunOnce(t.Context(), RunOptions{DryRun: true})
		if err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
		if elapsed := time.Since(start); elapsed != cfg.SourceTimeout {
			t.Errorf("run took %s, want the source timeout %s", elapsed, cfg.SourceTimeout)
		}
		want := []string{"create ns-1 planned", "delete old-preview held source-failed", "delete other-preview planned"}
		if diff := cmp.Diff(want, actionLines(rep)); diff != "" {
			t.Errorf("actions (-want +got):\n%s", diff)
		}
		if !strings.Contains(rep.Sources[0].Error, context.DeadlineExceeded.Error()) {
			t.Errorf("source error %q does not name the timeout", rep.Sources[0].Error)
		}
	})
}

// Concurrent sources must not be listed one after another: a run's length
// is the slowest source's, not the sum.
func TestRunOnceListsSourcesConcurrently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := runConfig()
		cfg.SourceTimeout = time.Minute
		var srcs []sources.Source
		for i := range 3 {
			srcs = append(srcs, slowSource{name: fmt.Sprintf("s%d", i)})
		}
		r := New(cfg, staticReader{envs: []ldclient.Environment{{Key: "staging"}}}, nil, specs(srcs...), nil, zerolog.Nop(), nil)
		start := time.Now()
		if _, err := r.RunOnce(t.Context(), RunOptions{DryRun: true}); err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
		if elapsed := time.Since(start); elapsed != time.Minute {
			t.Errorf("three sources timing out after 1m took %s together", elapsed)
		}
	})
}
