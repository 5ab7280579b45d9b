package ldfake_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

func TestAuditAndMutationLogs(t *testing.T) {
	clock := newClock()
	s := ldfake.New(ldfake.Options{Now: clock.Now})
	writerID := s.AddToken(writerToken, ldfake.RoleWriter)
	readerID := s.AddToken(readerToken, ldfake.RoleReader)
	s.AddProject(project)
	if _, err := s.Seed(project, ldfake.Environment{Key: "production"}); err != nil {
		t.Fatal(err)
	}
	requests := []struct {
		method, target, token, body, contentType string
	}{
		{http.MethodGet, envsPath + "?filter=tags:a%2Bb&limit=100", readerToken, "", ""},
		{http.MethodPost, envsPath, writerToken, `{"key":"pr-1","name":"PR","color":"F5A623","source":{"key":"production","version":1}}`, "application/json"},
		{http.MethodPatch, envsPath + "/pr-1", writerToken, `[{"op":"replace","path":"/name","value":"P"}]`, "application/json"},
		{http.MethodDelete, envsPath + "/pr%2D1", writerToken, "", ""},
		{http.MethodGet, "/nowhere", "secret-token", "", ""},
	}
	for _, rq := range requests {
		clock.Advance(time.Second)
		req := httptest.NewRequest(rq.method, rq.target, strings.NewReader(rq.body))
		req.Header.Set("Authorization", rq.token)
		req.Header.Set("LD-API-Version", "20240415")
		req.Header.Set("User-Agent", "launchdarkly-ldreaper-int/test")
		if rq.contentType != "" {
			req.Header.Set("Content-Type", rq.contentType)
		}
		s.ServeHTTP(httptest.NewRecorder(), req)
	}
	at := func(sec int) time.Time { return epoch.Add(time.Duration(sec) * time.Second) }
	entry := func(sec int, method, path, rawQuery string, status int, tokenID, route, contentType string) ldfake.AuditEntry {
		return ldfake.AuditEntry{Time: at(sec), Method: method, Path: path, RawQuery: rawQuery, Status: status, TokenID: tokenID,
			Route: route, APIVersion: "20240415", UserAgent: "launchdarkly-ldreaper-int/test", ContentType: contentType}
	}
	wantAudit := []ldfake.AuditEntry{
		entry(1, "GET", envsPath, "filter=tags:a%2Bb&limit=100", 200, readerID, ldfake.RouteListEnvironments, ""),
		entry(2, "POST", envsPath, "", 201, writerID, ldfake.RouteCreateEnvironment, "application/json"),
		entry(3, "PATCH", envsPath+"/pr-1", "", 200, writerID, ldfake.RoutePatchEnvironment, "application/json"),
		entry(4, "DELETE", envsPath+"/pr%2D1", "", 204, writerID, ldfake.RouteDeleteEnvironment, ""),
		entry(5, "GET", "/nowhere", "", 404, "", "", ""),
	}
	if diff := cmp.Diff(wantAudit, s.Audit()); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
	wantMutations := []ldfake.Mutation{
		{Time: at(2), Op: ldfake.OpCreate, Project: project, Key: "pr-1", TokenID: writerID, ClonedFrom: "production", SourceVersion: 1},
		{Time: at(3), Op: ldfake.OpUpdate, Project: project, Key: "pr-1", TokenID: writerID},
		{Time: at(4), Op: ldfake.OpDelete, Project: project, Key: "pr-1", TokenID: writerID},
	}
	if diff := cmp.Diff(wantMutations, s.Mutations()); diff != "" {
		t.Errorf("mutations (-want +got):\n%s", diff)
	}

	// The logs are copies.
	s.Audit()[0].Status = 999
	s.Mutations()[0].Key = "changed"
	if s.Audit()[0].Status != 200 || s.Mutations()[0].Key != "pr-1" {
		t.Error("changing a returned log changed the server's log")
	}
}

func TestLogLimitKeepsTheNewest(t *testing.T) {
	s := newServer(t, ldfake.Options{LogLimit: 3}, "production")
	for i := range 10 {
		call(t, s, http.MethodGet, envsPath+"?offset="+strconv.Itoa(i), readerToken, "")
	}
	var got []string
	for _, e := range s.Audit() {
		got = append(got, e.RawQuery)
	}
	if diff := cmp.Diff([]string{"offset=7", "offset=8", "offset=9"}, got); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}
