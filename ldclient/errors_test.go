package ldclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeAPIError(t *testing.T) {
	huge := `{"code":"x","message":"` + strings.Repeat("m", 2*maxErrorBody) + `"}`
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   APIError
	}{
		{name: "LD error body", status: 400, body: `{"code":"invalid_request","message":"Invalid request body","id":"30ce6058-87da-11e4-b116-123b93f75cba"}`,
			want: APIError{Status: 400, Code: "invalid_request", Message: "Invalid request body", RequestID: "30ce6058-87da-11e4-b116-123b93f75cba"}},
		{name: "message without code", status: 400, body: `{"message":"Unknown environment key: pr-1"}`,
			want: APIError{Status: 400, Message: "Unknown environment key: pr-1"}},
		{name: "code without message", status: 404, body: `{"code":"not_found"}`,
			want: APIError{Status: 404, Code: "not_found", Message: "Not Found"}},
		{name: "HTML 502 from a proxy", status: 502, body: "<html>\n<head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway</h1></center></body></html>",
			want: APIError{Status: 502, Message: "502 Bad Gateway"}},
		{name: "plain text", status: 503, body: "upstream connect error\nor disconnect/reset before headers",
			want: APIError{Status: 503, Message: "upstream connect error or disconnect/reset before headers"}},
		{name: "empty body", status: 503, want: APIError{Status: 503, Message: "Service Unavailable"}},
		{name: "unusual JSON types", status: 429, body: `{"code":429,"message":["slow","down"],"id":null}`,
			want: APIError{Status: 429, Code: "429", Message: `["slow","down"]`}},
		{name: "request id from header", status: 500, header: http.Header{"X-Request-Id": {"req-1"}}, body: `{"code":"internal","message":"oops"}`,
			want: APIError{Status: 500, Code: "internal", Message: "oops", RequestID: "req-1"}},
		{name: "echoed token is redacted", status: 401, body: `{"code":"unauthorized","message":"Invalid access token ` + testToken + `","id":"` + testToken + `"}`,
			want: APIError{Status: 401, Code: "unauthorized", Message: "Invalid access token [redacted]", RequestID: "[redacted]"}},
		{name: "control characters and bad UTF-8", status: 400, body: "{\"message\":\"a\\u0000b\\r\\nc\"}\xff",
			want: APIError{Status: 400, Message: "{\"message\":\"a\\u0000b\\r\\nc\"}\uFFFD"}},
		{name: "huge body is cut", status: 400, body: huge,
			want: APIError{Status: 400, Code: "x", Message: strings.Repeat("m", maxMessageLen) + "…"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := tt.header
			if header == nil {
				header = http.Header{}
			}
			got := decodeAPIError("GET", "/api/v2/projects/p/environments/k", "k", tt.status, header, []byte(tt.body), testToken)
			tt.want.Method, tt.want.Path, tt.want.Key = "GET", "/api/v2/projects/p/environments/k", "k"
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("decodeAPIError (-want +got):\n%s", diff)
			}
		})
	}
}

// TestErrorBodiesAreReadOnlyInPart shows the client reads at most
// maxErrorBody: a JSON error longer than that arrives cut off, so it does
// not parse and only an excerpt is kept.
func TestErrorBodiesAreReadOnlyInPart(t *testing.T) {
	long := `{"code":"invalid_request","message":"` + strings.Repeat("m", 4*maxErrorBody) + `"}`
	short := `{"code":"invalid_request","message":"` + strings.Repeat("m", maxErrorBody/2) + `"}`
	tests := []struct {
		name     string
		body     string
		wantCode string
	}{
		{"body under the limit is parsed", short, "invalid_request"},
		{"body over the limit is cut", long, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, reply(400, tt.body))
			_, err := h.client.GetEnvironment(context.Background(), "p", "k")
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error = %v, want *APIError", err)
			}
			if apiErr.Code != tt.wantCode || len(apiErr.Message) > maxMessageLen+len("…") {
				t.Errorf("code %q (want %q), message of %d bytes", apiErr.Code, tt.wantCode, len(apiErr.Message))
			}
		})
	}
}

func TestAPIErrorText(t *testing.T) {
	tests := []struct {
		err  APIError
		want string
	}{
		{APIError{Method: "DELETE", Path: "/api/v2/projects/p/environments/pr-1", Key: "pr-1", Status: 404, Code: "not_found", Message: "Invalid resource identifier", RequestID: "abc"},
			`launchdarkly DELETE /api/v2/projects/p/environments/pr-1 (key "pr-1"): status 404 not_found: Invalid resource identifier (request id abc)`},
		{APIError{Method: "GET", Path: "/api/v2/projects/p/environments", Status: 502, Message: "Bad Gateway"},
			`launchdarkly GET /api/v2/projects/p/environments: status 502: Bad Gateway`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %s\nwant      %s", got, tt.want)
		}
	}
}

func TestIsNotFound(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"404", &APIError{Status: 404}, true},
		{"wrapped 404", fmt.Errorf("get environment: %w", &APIError{Status: 404}), true},
		{"500", &APIError{Status: 500}, false},
		{"other error", errors.New("not found"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := IsNotFound(tt.err); got != tt.want {
			t.Errorf("%s: IsNotFound = %t, want %t", tt.name, got, tt.want)
		}
	}
}

func FuzzDecodeAPIError(f *testing.F) {
	f.Add(400, []byte(`{"code":"invalid_request","message":"Invalid request body","id":"x"}`))
	f.Add(400, []byte(`{"message":"Unknown environment key: pr-1"}`))
	f.Add(502, []byte("<html><title>502 Bad Gateway</title></html>"))
	f.Add(500, []byte(""))
	f.Add(401, []byte(`{"message":"`+testToken+`"}`))
	f.Add(418, []byte("\xff\xfe<title>\x00"+testToken+"</title>"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := decodeAPIError("GET", "/p", "k", status, http.Header{}, body, testToken)
		for name, field := range map[string]string{"code": e.Code, "message": e.Message, "request id": e.RequestID} {
			if strings.Contains(field, testToken) {
				t.Fatalf("%s contains the token: %q", name, field)
			}
			if !utf8.ValidString(field) || strings.ContainsAny(field, "\n\r\x00") {
				t.Fatalf("%s is not one clean line: %q", name, field)
			}
			if len(field) > maxMessageLen+len("…") {
				t.Fatalf("%s is %d bytes long", name, len(field))
			}
		}
	})
}

// leakyTransport fails with an error that quotes the request's
// Authorization header, as a misbehaving proxy library might.
type leakyTransport struct{}

func (leakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("proxy refused request with Authorization: %s", r.Header.Get("Authorization"))
}

// TestTokenNeverLeaks drives every error path with the distinctive token and
// checks every error text and every log line. newHarness also scans the log
// of each client it builds.
func TestTokenNeverLeaks(t *testing.T) {
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			auth := r.Header.Get("Authorization")
			reply(status, `{"code":"`+auth+`","message":"token `+auth+` rejected","id":"`+auth+`"}`, "X-Request-Id", auth)(w, r)
		}
	}
	htmlEcho := func(w http.ResponseWriter, r *http.Request) {
		reply(502, "<html><title>bad "+r.Header.Get("Authorization")+"</title></html>")(w, r)
	}
	foreignNext := func(w http.ResponseWriter, r *http.Request) {
		reply(200, page("http://elsewhere.example/?t="+r.Header.Get("Authorization"), envJSON("a", "A")))(w, r)
	}
	closed := newHarness(t, reply(200, ""))
	closed.server.Close()

	type scenario struct {
		name    string
		handler http.Handler
		mutate  func(*Options)
		// listOnly scenarios break only list calls.
		listOnly bool
	}
	scenarios := []scenario{
		{name: "401 echoing the token", handler: echo(401)},
		{name: "429 echoing the token", handler: echo(429)},
		{name: "500 echoing the token", handler: echo(500)},
		{name: "HTML 502 echoing the token", handler: http.HandlerFunc(htmlEcho)},
		{name: "dropped connections", handler: http.HandlerFunc(drop)},
		{name: "foreign next link quoting the token", handler: http.HandlerFunc(foreignNext), listOnly: true},
		{name: "connection refused", handler: reply(200, ""), mutate: func(o *Options) { o.BaseURL = closed.server.URL }},
		{name: "transport error quoting the token", handler: reply(200, ""), mutate: func(o *Options) { o.HTTPClient = &http.Client{Transport: leakyTransport{}} }},
	}
	var texts []string
	for _, sc := range scenarios {
		h := newHarness(t, sc.handler, func(o *Options) {
			o.MaxRetries, o.RateLimitRetries = 1, 1
			if sc.mutate != nil {
				sc.mutate(o)
			}
		})
		ctx := context.Background()
		_, errList := h.client.ListEnvironments(ctx, "p", ListFilter{Tags: []string{"ldreaper"}})
		_, errCount := h.client.CountEnvironments(ctx, "p")
		_, errGet := h.client.GetEnvironment(ctx, "p", "k")
		_, errCreate := h.client.CreateEnvironment(ctx, "p", EnvironmentPost{Key: "k", Name: "K", Tags: []string{"ldreaper"}})
		_, errDelete := h.client.DeleteEnvironment(ctx, "p", "k")
		for i, err := range []error{errList, errCount, errGet, errCreate, errDelete} {
			if err == nil && sc.listOnly && i > 0 {
				continue
			}
			if err == nil {
				t.Errorf("%s: call %d did not fail", sc.name, i)
				continue
			}
			texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
			var apiErr *APIError
			if errors.As(err, &apiErr) {
				texts = append(texts, fmt.Sprintf("%#v", *apiErr))
			}
		}
		texts = append(texts, h.logs.String())
	}
	_, err := New(Options{BaseURL: "https://x:" + testToken + "@ld.example", Token: testToken})
	texts = append(texts, err.Error())
	_, err = New(Options{Token: "Bearer " + testToken})
	texts = append(texts, err.Error())

	for _, text := range texts {
		if strings.Contains(text, testToken) {
			t.Errorf("token leaked: %s", text)
		}
	}
}
