package ldclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

// The contract test holds both sides of the LD boundary to LD's published
// OpenAPI spec: every request the real client sends and every response the
// fake answers is validated, and the test fails unless each operation/status
// pair the suite means to exercise was actually seen.

const (
	contractProject = "contract"
	contractWriter  = "api-contract-writer"
	contractReader  = "api-contract-reader"
)

// specPath finds the environment subset of LD's spec: $LDREAPER_OPENAPI_SPEC,
// else ../shared/ld-openapi/ld-openapi.environments.json beside the module.
func specPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LDREAPER_OPENAPI_SPEC"); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("finding the working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "ld-openapi", "ld-openapi.environments.json")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// loadSpec loads and validates the spec, skipping the test when it is absent
// unless LDREAPER_REQUIRE_CONTRACT=1 (CI sets it so a missing spec cannot
// silently turn the contract off).
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	path := specPath(t)
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("LD OpenAPI spec not found at %s (set LDREAPER_OPENAPI_SPEC): %v", path, err)
		if os.Getenv("LDREAPER_REQUIRE_CONTRACT") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		t.Fatalf("loading spec %s: %v", path, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("validating spec %s: %v", path, err)
	}
	return doc
}

// contractLog collects what the validators saw, across servers.
type contractLog struct {
	mu       sync.Mutex
	failures []string
	seen     map[string]bool // "operationId status"
}

func (l *contractLog) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, fmt.Sprintf(format, args...))
}

func (l *contractLog) saw(operationID string, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[fmt.Sprintf("%s %d", operationID, status)] = true
}

// validating is middleware that checks each exchange against the spec.
type validating struct {
	router routers.Router
	next   http.Handler
	log    *contractLog
}

// startValidated serves fake behind the validator. The spec's servers are
// LD's absolute URLs, so they are replaced by the test server's before the
// router is built.
func startValidated(t *testing.T, spec *openapi3.T, fake http.Handler, log *contractLog) string {
	t.Helper()
	v := &validating{next: fake, log: log}
	srv := httptest.NewServer(v)
	t.Cleanup(srv.Close)
	doc := *spec
	doc.Servers = openapi3.Servers{{URL: srv.URL}}
	router, err := gorillamux.NewRouter(&doc)
	if err != nil {
		t.Fatalf("building the spec router: %v", err)
	}
	v.router = router
	return srv.URL
}

// requireAuthorizationHeader stands in for LD's token check: the spec's only
// scheme is an Authorization header, and the fake judges the token itself.
func requireAuthorizationHeader(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.RequestValidationInput.Request.Header.Get("Authorization") == "" {
		return errors.New("no Authorization header")
	}
	return nil
}

func (v *validating) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	exchange := r.Method + " " + r.URL.RequestURI()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		v.log.fail("%s: reading request body: %v", exchange, err)
	}
	route, pathParams, err := v.router.FindRoute(r)
	if err != nil {
		v.log.fail("%s: no such operation in the spec: %v", exchange, err)
		http.Error(w, "not in the spec", http.StatusNotImplemented)
		return
	}
	reqInput := &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: pathParams,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:                requireAuthorizationHeader,
			RejectWhenRequestBodyNotSpecified: true,
			MultiError:                        true,
		},
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := openapi3filter.ValidateRequest(r.Context(), reqInput); err != nil {
		v.log.fail("%s: request breaks the spec: %v", exchange, err)
	}

	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	v.next.ServeHTTP(rec, r)

	respInput := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqInput,
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	respInput.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(r.Context(), respInput); err != nil {
		v.log.fail("%s: %d response breaks the spec: %v\nbody: %s", exchange, rec.Code, err, rec.Body.Bytes())
	}
	v.log.saw(route.Operation.OperationID, rec.Code)

	for k, vals := range rec.Header() {
		w.Header()[k] = vals
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// sharedClock drives the fake's rate-limit windows and the client's waits,
// so a 429's wait passes instantly and lands in the next window.
type sharedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *sharedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *sharedClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(max(d, 0))
	return nil
}

func newContractClient(t *testing.T, baseURL, token string, clock *sharedClock, headroom int) *ldclient.Client {
	t.Helper()
	c, err := ldclient.New(ldclient.Options{
		BaseURL:   baseURL,
		Token:     token,
		UserAgent: "launchdarkly-ldreaper-int/contract",
		Clock:     clock,
		Rand:      func() float64 { return 0 },
		Headroom:  headroom,
	})
	if err != nil {
		t.Fatalf("creating client: %v", err)
	}
	return c
}

func newContractFake(t *testing.T, clock *sharedClock, o ldfake.Options) *ldfake.Server {
	t.Helper()
	o.Now = clock.Now
	o.RequireAPIVersion = ldclient.APIVersion
	fake := ldfake.New(o)
	fake.AddToken(contractWriter, ldfake.RoleWriter)
	fake.AddToken(contractReader, ldfake.RoleReader)
	fake.AddProject(contractProject)
	seed := func(e ldfake.Environment) {
		if _, err := fake.Seed(contractProject, e); err != nil {
			t.Fatalf("seeding %s: %v", e.Key, err)
		}
	}
	seed(ldfake.Environment{Key: "production", Name: "Production", Critical: true, CreatedOn: clock.Now()})
	seed(ldfake.Environment{Key: "staging", Name: "Staging", CreatedOn: clock.Now()})
	for i := range 55 {
		seed(ldfake.Environment{
			Key:       fmt.Sprintf("pr-%03d", i),
			Name:      fmt.Sprintf("Preview %d", i),
			Tags:      []string{"ldreaper", "ephemeral"},
			CreatedOn: clock.Now().Add(time.Duration(i+1) * time.Second),
		})
	}
	seed(ldfake.Environment{Key: "pr-untagged", Tags: []string{"ephemeral"}, CreatedOn: clock.Now()})
	return fake
}

func keysOfEnvs(envs []ldclient.Environment) []string {
	keys := make([]string, len(envs))
	for i, e := range envs {
		keys[i] = e.Key
	}
	return keys
}

func TestContractClientAndFakeFollowTheSpec(t *testing.T) {
	spec := loadSpec(t)
	log := &contractLog{seen: map[string]bool{}}
	ctx := t.Context()
	clock := &sharedClock{now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}

	// The fake serves at most 20 per page although the client asks for 100.
	fake := newContractFake(t, clock, ldfake.Options{MaxPageSize: 20})
	baseURL := startValidated(t, spec, fake, log)
	writer := newContractClient(t, baseURL, contractWriter, clock, 0)
	reader := newContractClient(t, baseURL, contractReader, clock, 0)
	stranger := newContractClient(t, baseURL, "api-unknown", clock, 0)

	t.Run("list many pages by tag", func(t *testing.T) {
		envs, err := writer.ListEnvironments(ctx, contractProject, ldclient.ListFilter{Tags: []string{"ldreaper", "ephemeral"}})
		if err != nil {
			t.Fatal(err)
		}
		want := make([]string, 55)
		for i := range want {
			want[i] = fmt.Sprintf("pr-%03d", i)
		}
		if diff := cmp.Diff(want, keysOfEnvs(envs)); diff != "" {
			t.Errorf("keys (-want +got):\n%s", diff)
		}
		var queries []string
		for _, e := range fake.Audit() {
			if e.Route == ldfake.RouteListEnvironments {
				queries = append(queries, e.RawQuery)
			}
		}
		if len(queries) != 3 || !strings.Contains(queries[0], "filter=tags%3Aldreaper%2Bephemeral") {
			t.Errorf("list queries %q, want 3 pages with the tag '+' sent as %%2B", queries)
		}
	})
	t.Run("list by query", func(t *testing.T) {
		envs, err := writer.ListEnvironments(ctx, contractProject, ldclient.ListFilter{Query: "PR-00"})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"pr-000", "pr-001", "pr-002", "pr-003", "pr-004", "pr-005", "pr-006", "pr-007", "pr-008", "pr-009"}
		if diff := cmp.Diff(want, keysOfEnvs(envs)); diff != "" {
			t.Errorf("keys (-want +got):\n%s", diff)
		}
	})
	t.Run("count", func(t *testing.T) {
		n, err := writer.CountEnvironments(ctx, contractProject)
		if err != nil || n != 58 {
			t.Errorf("CountEnvironments = %d, %v; want 58", n, err)
		}
	})
	t.Run("get", func(t *testing.T) {
		env, err := writer.GetEnvironment(ctx, contractProject, "production")
		if err != nil || env.Key != "production" || !env.Critical {
			t.Errorf("GetEnvironment(production) = %v, %v", env, err)
		}
		if _, err := writer.GetEnvironment(ctx, contractProject, "missing"); !ldclient.IsNotFound(err) {
			t.Errorf("GetEnvironment(missing) error = %v, want not found", err)
		}
	})
	t.Run("create", func(t *testing.T) {
		post := ldclient.EnvironmentPost{
			Key: "pr-new", Name: "Preview new", Color: "7B42BC",
			Tags: []string{"ldreaper", "ephemeral"}, Source: &ldclient.SourceEnv{Key: "staging"},
		}
		res, err := writer.CreateEnvironment(ctx, contractProject, post)
		if err != nil || res.Existed || res.Environment.Key != "pr-new" {
			t.Fatalf("create = %+v, %v; want a new pr-new", res, err)
		}
		if got, _ := fake.Environment(contractProject, "pr-new"); got.ClonedFrom != "staging" {
			t.Errorf("pr-new cloned from %q, want staging", got.ClonedFrom)
		}
		res, err = writer.CreateEnvironment(ctx, contractProject, post)
		if err != nil || !res.Existed {
			t.Errorf("create again = %+v, %v; want Existed after LD's 409", res, err)
		}
		wantStatus := func(err error, status int) {
			t.Helper()
			var apiErr *ldclient.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != status {
				t.Errorf("error %v, want an APIError with status %d", err, status)
			}
		}
		_, err = writer.CreateEnvironment(ctx, contractProject, ldclient.EnvironmentPost{Key: "bad key", Name: "Bad", Color: "7B42BC"})
		wantStatus(err, http.StatusBadRequest)
		_, err = writer.CreateEnvironment(ctx, "no-such-project", ldclient.EnvironmentPost{Key: "pr-x", Name: "X", Color: "7B42BC"})
		wantStatus(err, http.StatusNotFound)
		_, err = reader.CreateEnvironment(ctx, contractProject, ldclient.EnvironmentPost{Key: "pr-y", Name: "Y", Color: "7B42BC"})
		wantStatus(err, http.StatusForbidden)
	})
	t.Run("delete", func(t *testing.T) {
		if res, err := writer.DeleteEnvironment(ctx, contractProject, "pr-new"); err != nil || res != ldclient.Deleted {
			t.Errorf("delete = %v, %v; want deleted", res, err)
		}
		if res, err := writer.DeleteEnvironment(ctx, contractProject, "pr-new"); err != nil || res != ldclient.AlreadyGone {
			t.Errorf("delete again = %v, %v; want already gone", res, err)
		}
		var apiErr *ldclient.APIError
		if _, err := reader.DeleteEnvironment(ctx, contractProject, "pr-000"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
			t.Errorf("reader delete error %v, want 403", err)
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		var apiErr *ldclient.APIError
		if _, err := stranger.ListEnvironments(ctx, contractProject, ldclient.ListFilter{}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
			t.Errorf("list error %v, want 401", err)
		}
		if _, err := stranger.GetEnvironment(ctx, contractProject, "production"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
			t.Errorf("get error %v, want 401", err)
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		limited := newContractFake(t, clock, ldfake.Options{GlobalBudget: 2, RetryAfter: true})
		// Headroom -1 turns the client's pacing off, so it runs into the 429s.
		c := newContractClient(t, startValidated(t, spec, limited, log), contractWriter, clock, -1)
		for range 3 {
			if _, err := c.GetEnvironment(ctx, contractProject, "production"); err != nil {
				t.Fatalf("get under rate limit: %v", err)
			}
		}
		for range 2 {
			if _, err := c.CountEnvironments(ctx, contractProject); err != nil {
				t.Fatalf("count under rate limit: %v", err)
			}
		}
		var statuses []int
		for _, e := range limited.Audit() {
			statuses = append(statuses, e.Status)
		}
		if !slices.Contains(statuses, http.StatusTooManyRequests) {
			t.Errorf("statuses %v, want at least one 429", statuses)
		}
	})

	want := map[string]bool{}
	for _, pair := range []string{
		"getEnvironmentsByProject 200", "getEnvironmentsByProject 401", "getEnvironmentsByProject 429",
		"getEnvironment 200", "getEnvironment 401", "getEnvironment 404", "getEnvironment 429",
		"postEnvironment 201", "postEnvironment 400", "postEnvironment 403", "postEnvironment 404", "postEnvironment 409",
		"deleteEnvironment 204", "deleteEnvironment 403", "deleteEnvironment 404",
	} {
		want[pair] = true
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if diff := cmp.Diff(want, log.seen); diff != "" {
		t.Errorf("operation/status pairs exercised (-want +got):\n%s", diff)
	}
	for _, f := range log.failures {
		t.Error(f)
	}
}
