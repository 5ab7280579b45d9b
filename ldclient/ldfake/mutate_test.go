package ldfake_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

func TestCreateValidation(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantCode   string
	}{
		{"minimal", `{"key":"pr-1","name":"PR 1","color":"F5A623"}`, 201, ""},
		{"every field", `{"key":"Pr_1.x-y","name":"PR","color":"abcdef","defaultTtl":60,"secureMode":true,"defaultTrackEvents":true,"confirmChanges":true,"requireComments":true,"tags":["a.b_c-D"],"critical":false,"source":{"key":"production"}}`, 201, ""},
		{"unknown fields are ignored", `{"key":"pr-1","name":"PR 1","color":"F5A623","futureField":1}`, 201, ""},
		{"empty source key is no clone", `{"key":"pr-1","name":"PR 1","color":"F5A623","source":{"key":""}}`, 201, ""},
		{"missing key", `{"name":"PR 1","color":"F5A623"}`, 400, "invalid_request"},
		{"missing name", `{"key":"pr-1","color":"F5A623"}`, 400, "invalid_request"},
		{"blank name", `{"key":"pr-1","name":"  ","color":"F5A623"}`, 400, "invalid_request"},
		{"missing color", `{"key":"pr-1","name":"PR 1"}`, 400, "invalid_request"},
		{"key starting with dash", `{"key":"-pr","name":"PR","color":"F5A623"}`, 400, "invalid_request"},
		{"key with slash", `{"key":"pr/1","name":"PR","color":"F5A623"}`, 400, "invalid_request"},
		{"key with space", `{"key":"pr 1","name":"PR","color":"F5A623"}`, 400, "invalid_request"},
		{"key non-ASCII", `{"key":"pré","name":"PR","color":"F5A623"}`, 400, "invalid_request"},
		{"color with #", `{"key":"pr-1","name":"PR","color":"#F5A623"}`, 400, "invalid_request"},
		{"color not hex", `{"key":"pr-1","name":"PR","color":"GGGGGG"}`, 400, "invalid_request"},
		{"color too short", `{"key":"pr-1","name":"PR","color":"FFF"}`, 400, "invalid_request"},
		{"tag with space", `{"key":"pr-1","name":"PR","color":"F5A623","tags":["a b"]}`, 400, "invalid_request"},
		{"tag with plus", `{"key":"pr-1","name":"PR","color":"F5A623","tags":["a+b"]}`, 400, "invalid_request"},
		{"empty tag", `{"key":"pr-1","name":"PR","color":"F5A623","tags":[""]}`, 400, "invalid_request"},
		{"65-char tag", `{"key":"pr-1","name":"PR","color":"F5A623","tags":["` + strings.Repeat("t", 65) + `"]}`, 400, "invalid_request"},
		{"defaultTtl negative", `{"key":"pr-1","name":"PR","color":"F5A623","defaultTtl":-1}`, 400, "invalid_request"},
		{"defaultTtl 61", `{"key":"pr-1","name":"PR","color":"F5A623","defaultTtl":61}`, 400, "invalid_request"},
		{"wrong type", `{"key":"pr-1","name":"PR","color":"F5A623","defaultTtl":"5"}`, 400, "invalid_request"},
		{"malformed JSON", `{"key":"pr-1",`, 400, "invalid_request"},
		{"trailing data", `{"key":"pr-1","name":"PR","color":"F5A623"} {}`, 400, "invalid_request"},
		{"not an object", `["pr-1"]`, 400, "invalid_request"},
		{"duplicate key", `{"key":"production","name":"P","color":"F5A623"}`, 409, "conflict"},
		{"unknown source", `{"key":"pr-1","name":"PR","color":"F5A623","source":{"key":"nope"}}`, 404, "not_found"},
		{"stale source version", `{"key":"pr-1","name":"PR","color":"F5A623","source":{"key":"production","version":7}}`, 409, "optimistic_locking_error"},
		{"zero source version", `{"key":"pr-1","name":"PR","color":"F5A623","source":{"key":"production","version":0}}`, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, ldfake.Options{}, "production")
			r := call(t, s, http.MethodPost, envsPath, writerToken, tt.body)
			if r.status != tt.wantStatus || r.errorCode() != tt.wantCode {
				t.Errorf("got %d %s, want %d %q", r.status, r.body, tt.wantStatus, tt.wantCode)
			}
			wantEnvs := 1
			if tt.wantStatus == http.StatusCreated {
				wantEnvs = 2
			}
			if got := len(s.Environments(project)); got != wantEnvs {
				t.Errorf("project has %d environments, want %d", got, wantEnvs)
			}
		})
	}
}

func TestCreateRequestShape(t *testing.T) {
	tests := []struct {
		name        string
		project     string
		contentType string
		wantStatus  int
	}{
		{"JSON with charset", project, "application/json; charset=utf-8", 201},
		{"no content type", project, "", 400},
		{"form content type", project, "application/x-www-form-urlencoded", 400},
		{"unknown project", "nope", "application/json", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, ldfake.Options{}, "production")
			req := httptest.NewRequest(http.MethodPost, "/api/v2/projects/"+tt.project+"/environments", strings.NewReader(createBody("pr-1")))
			req.Header.Set("Authorization", writerToken)
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d (%s), want %d", rec.Code, rec.Body, tt.wantStatus)
			}
		})
	}
}

// checkEnvironmentJSON asserts the 14 fields LD's spec requires, with LD's
// formats, and that tags is an array.
func checkEnvironmentJSON(t *testing.T, raw []byte, key string) {
	t.Helper()
	const uuid = `[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`
	hex24 := regexp.MustCompile(`^[0-9a-f]{24}$`)
	sdkKey := regexp.MustCompile(`^sdk-` + uuid)
	mobKey := regexp.MustCompile(`^mob-` + uuid)
	reqKeys := []string{"_id", "_links", "apiKey", "color", "confirmChanges", "critical", "defaultTrackEvents",
		"defaultTtl", "key", "mobileKey", "name", "requireComments", "secureMode", "tags"}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	if diff := cmp.Diff(reqKeys, got); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	var e ldfake.Environment
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	if !hex24.MatchString(e.ID) || !sdkKey.MatchString(e.APIKey) || !mobKey.MatchString(e.MobileKey) {
		t.Errorf("ids _id=%q apiKey=%q mobileKey=%q do not look like LD's", e.ID, e.APIKey, e.MobileKey)
	}
	if !strings.HasPrefix(string(m["tags"]), "[") {
		t.Errorf("tags = %s, want an array", m["tags"])
	}
	want := map[string]ldfake.Link{"self": {Href: envsPath + "/" + key, Type: "application/json"}}
	if diff := cmp.Diff(want, e.Links); diff != "" {
		t.Errorf("_links (-want +got):\n%s", diff)
	}
}

func TestCreateAnswersTheFullEnvironment(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production")
	r := call(t, s, http.MethodPost, envsPath, writerToken,
		`{"key":"pr-1","name":"PR 1","color":"F5A623","defaultTtl":5,"secureMode":true,"tags":["ldreaper","LDREAPER","eph"],"source":{"key":"production","version":1}}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	checkEnvironmentJSON(t, r.body, "pr-1")
	var got ldfake.Environment
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	want := ldfake.Environment{Key: "pr-1", Name: "PR 1", Color: "F5A623", DefaultTTL: 5, SecureMode: true, Tags: []string{"ldreaper", "eph"}}
	ignoreIDs := cmpopts.IgnoreFields(ldfake.Environment{}, "ID", "APIKey", "MobileKey", "Links")
	if diff := cmp.Diff(want, got, ignoreIDs); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
	stored, ok := s.Environment(project, "pr-1")
	want.ClonedFrom, want.Version, want.CreatedOn = "production", 1, epoch
	if diff := cmp.Diff(want, stored, ignoreIDs); !ok || diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	for _, key := range []string{"production", "pr-1"} {
		r := call(t, s, http.MethodGet, envsPath+"/"+key, readerToken, "")
		if r.status != http.StatusOK {
			t.Fatalf("get %s: %d %s", key, r.status, r.body)
		}
		checkEnvironmentJSON(t, r.body, key)
	}
	for _, item := range decodePage(t, call(t, s, http.MethodGet, envsPath, readerToken, "")).Items {
		raw, _ := json.Marshal(item)
		checkEnvironmentJSON(t, raw, item.Key)
	}
}

func TestGet(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production")
	tests := []struct {
		target     string
		wantStatus int
	}{
		{envsPath + "/production", 200},
		{envsPath + "/nope", 404},
		{"/api/v2/projects/nope/environments/production", 404},
	}
	for _, tt := range tests {
		if r := call(t, s, http.MethodGet, tt.target, readerToken, ""); r.status != tt.wantStatus {
			t.Errorf("GET %s = %d, want %d", tt.target, r.status, tt.wantStatus)
		}
	}
}

func TestDelete(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production", "pr-1")
	steps := []struct {
		name       string
		target     string
		token      string
		wantStatus int
		wantCode   string
		wantKeys   []string
	}{
		{"reader may not", envsPath + "/pr-1", readerToken, 403, "forbidden", []string{"pr-1", "production"}},
		{"deleted", envsPath + "/pr-1", writerToken, 204, "", []string{"production"}},
		{"already gone", envsPath + "/pr-1", writerToken, 404, "not_found", []string{"production"}},
		{"unknown project", "/api/v2/projects/nope/environments/production", writerToken, 404, "not_found", []string{"production"}},
		{"last environment", envsPath + "/production", writerToken, 400, "invalid_request", []string{"production"}},
	}
	for _, st := range steps {
		r := call(t, s, http.MethodDelete, st.target, st.token, "")
		if r.status != st.wantStatus || r.errorCode() != st.wantCode {
			t.Errorf("%s: got %d %s, want %d %q", st.name, r.status, r.body, st.wantStatus, st.wantCode)
		}
		if st.wantStatus == http.StatusNoContent && len(r.body) != 0 {
			t.Errorf("%s: 204 with body %q", st.name, r.body)
		}
		var keys []string
		for _, e := range s.Environments(project) {
			keys = append(keys, e.Key)
		}
		if diff := cmp.Diff(st.wantKeys, keys); diff != "" {
			t.Errorf("%s: keys (-want +got):\n%s", st.name, diff)
		}
	}
}

func TestPatch(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		want       ldfake.Environment
	}{
		{"replace tags, name and color", `[{"op":"replace","path":"/tags","value":["a","A","b"]},{"op":"replace","path":"/name","value":"New"},{"op":"replace","path":"/color","value":"000000"}]`,
			200, ldfake.Environment{Key: "pr-1", Name: "New", Color: "000000", Tags: []string{"a", "b"}, Version: 2}},
		{"wrapped with a comment", `{"comment":"why","patch":[{"op":"add","path":"/critical","value":true},{"op":"replace","path":"/defaultTtl","value":30}]}`,
			200, ldfake.Environment{Key: "pr-1", Name: "pr-1", Color: "7B42BC", Tags: []string{}, Critical: true, DefaultTTL: 30, Version: 2}},
		{"key is immutable", `[{"op":"replace","path":"/key","value":"x"}]`, 400, ldfake.Environment{}},
		{"remove unsupported", `[{"op":"remove","path":"/tags"}]`, 400, ldfake.Environment{}},
		{"invalid tag", `[{"op":"replace","path":"/tags","value":["a b"]}]`, 400, ldfake.Environment{}},
		{"invalid color", `[{"op":"replace","path":"/color","value":"#000"}]`, 400, ldfake.Environment{}},
		{"empty name", `[{"op":"replace","path":"/name","value":""}]`, 400, ldfake.Environment{}},
		{"no value", `[{"op":"replace","path":"/name"}]`, 400, ldfake.Environment{}},
		{"all or nothing", `[{"op":"replace","path":"/name","value":"ok"},{"op":"replace","path":"/defaultTtl","value":99}]`, 400, ldfake.Environment{}},
		{"empty patch", `[]`, 400, ldfake.Environment{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, ldfake.Options{}, "production", "pr-1")
			before, _ := s.Environment(project, "pr-1")
			r := call(t, s, http.MethodPatch, envsPath+"/pr-1", writerToken, tt.body)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", r.status, r.body, tt.wantStatus)
			}
			after, _ := s.Environment(project, "pr-1")
			if tt.wantStatus != http.StatusOK {
				if diff := cmp.Diff(before, after); diff != "" {
					t.Errorf("a rejected patch changed the environment (-before +after):\n%s", diff)
				}
				return
			}
			checkEnvironmentJSON(t, r.body, "pr-1")
			opts := cmpopts.IgnoreFields(ldfake.Environment{}, "ID", "APIKey", "MobileKey", "Links", "CreatedOn")
			if diff := cmp.Diff(tt.want, after, opts); diff != "" {
				t.Errorf("stored (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCloneWithSourceVersionAfterPatch(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production")
	call(t, s, http.MethodPatch, envsPath+"/production", writerToken, `[{"op":"replace","path":"/name","value":"Prod"}]`)
	body := func(key string, version int) string {
		b, _ := json.Marshal(map[string]any{"key": key, "name": key, "color": "F5A623", "source": map[string]any{"key": "production", "version": version}})
		return string(b)
	}
	if r := call(t, s, http.MethodPost, envsPath, writerToken, body("pr-1", 1)); r.status != http.StatusConflict {
		t.Errorf("clone at stale version 1: %d %s, want 409", r.status, r.body)
	}
	if r := call(t, s, http.MethodPost, envsPath, writerToken, body("pr-2", 2)); r.status != http.StatusCreated {
		t.Errorf("clone at current version 2: %d %s, want 201", r.status, r.body)
	}
}

func TestAuth(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production", "pr-1")
	tests := []struct {
		name       string
		method     string
		target     string
		token      string
		body       string
		wantStatus int
		wantCode   string
	}{
		{"no token", http.MethodGet, envsPath, "", "", 401, "unauthorized"},
		{"unknown token", http.MethodGet, envsPath, "api-other", "", 401, "unauthorized"},
		{"Bearer prefix is not LD's scheme", http.MethodGet, envsPath, "Bearer " + writerToken, "", 401, "unauthorized"},
		{"reader lists", http.MethodGet, envsPath, readerToken, "", 200, ""},
		{"reader gets", http.MethodGet, envsPath + "/pr-1", readerToken, "", 200, ""},
		{"reader creates", http.MethodPost, envsPath, readerToken, createBody("pr-2"), 403, "forbidden"},
		{"reader patches", http.MethodPatch, envsPath + "/pr-1", readerToken, `[{"op":"replace","path":"/name","value":"x"}]`, 403, "forbidden"},
		{"reader deletes", http.MethodDelete, envsPath + "/pr-1", readerToken, "", 403, "forbidden"},
		{"writer creates", http.MethodPost, envsPath, writerToken, createBody("pr-2"), 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, s, tt.method, tt.target, tt.token, tt.body)
			if r.status != tt.wantStatus || r.errorCode() != tt.wantCode {
				t.Errorf("got %d %s, want %d %q", r.status, r.body, tt.wantStatus, tt.wantCode)
			}
		})
	}
	if r := call(t, s, http.MethodGet, envsPath, "", ""); string(r.body) == "" || !strings.Contains(string(r.body), `"message":"Invalid access token"`) {
		t.Errorf("401 body = %s, want LD's message", r.body)
	}
}

func TestAddTokenChangesRoleKeepsID(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production", "pr-1")
	id := s.AddToken(readerToken, ldfake.RoleWriter)
	if again := s.AddToken(readerToken, ldfake.RoleWriter); again != id {
		t.Errorf("token id changed from %q to %q", id, again)
	}
	if r := call(t, s, http.MethodDelete, envsPath+"/pr-1", readerToken, ""); r.status != http.StatusNoContent {
		t.Errorf("promoted token delete = %d, want 204", r.status)
	}
}

func TestRequireAPIVersion(t *testing.T) {
	s := newServer(t, ldfake.Options{RequireAPIVersion: "20240415"}, "production")
	for _, tt := range []struct {
		version    string
		wantStatus int
	}{{"20240415", 200}, {"", 400}, {"beta", 400}} {
		req := httptest.NewRequest(http.MethodGet, envsPath, nil)
		req.Header.Set("Authorization", writerToken)
		if tt.version != "" {
			req.Header.Set("LD-API-Version", tt.version)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != tt.wantStatus {
			t.Errorf("LD-API-Version %q: %d, want %d", tt.version, rec.Code, tt.wantStatus)
		}
	}
}

func TestUnknownRoutes(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production")
	tests := []struct {
		method, target string
		wantStatus     int
		wantCode       string
	}{
		{http.MethodGet, "/api/v2/projects", 404, "not_found"},
		{http.MethodGet, "/api/v2/projects/proj", 404, "not_found"},
		{http.MethodGet, "/api/v2/flags/proj", 404, "not_found"},
		{http.MethodGet, envsPath + "/", 404, "not_found"},
		{http.MethodGet, envsPath + "/production/extra", 404, "not_found"},
		{http.MethodGet, "/api/v2/projects//environments", 404, "not_found"},
		{http.MethodPut, envsPath, 405, "method_not_allowed"},
		{http.MethodPost, envsPath + "/production", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		r := call(t, s, tt.method, tt.target, writerToken, "")
		if r.status != tt.wantStatus || r.errorCode() != tt.wantCode || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: got %d %q %s, want %d %q JSON", tt.method, tt.target, r.status, r.header.Get("Content-Type"), r.body, tt.wantStatus, tt.wantCode)
		}
	}
}

func TestEscapedPathSegments(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production")
	s.AddProject("my.proj")
	if _, err := s.Seed("my.proj", ldfake.Environment{Key: "a.b_c"}); err != nil {
		t.Fatal(err)
	}
	if r := call(t, s, http.MethodGet, "/api/v2/projects/my%2Eproj/environments/a%2Eb_c", readerToken, ""); r.status != http.StatusOK {
		t.Errorf("escaped segments: %d %s", r.status, r.body)
	}
}
