package ldclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// APIError is a non-2xx answer from LD. Every field is safe to log: the token
// is redacted from whatever the server sent back.
type APIError struct {
	Method string
	Path   string // escaped request path, without the query
	Key    string // environment key, empty for list calls
	Status int
	// Code is LD's error class ("not_found", "rate_limited", …); empty when
	// the body had none, as some real 400s do.
	Code string
	// Message is LD's message, or for a non-JSON body (an HTML 502 from a
	// proxy) a short excerpt of it, or the HTTP status text.
	Message string
	// RequestID is LD's support correlation ID ("id" in the body).
	RequestID string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "launchdarkly %s %s", e.Method, e.Path)
	if e.Key != "" {
		fmt.Fprintf(&b, " (key %q)", e.Key)
	}
	fmt.Fprintf(&b, ": status %d", e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	return b.String()
}

// IsNotFound reports whether err is, or wraps, an LD 404.
func IsNotFound(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound
}

const (
	// maxMessageLen keeps one error line readable; LD's messages are short.
	maxMessageLen = 300
	redacted      = "[redacted]"
)

var htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// decodeAPIError reads LD's {"code","message","id"} error body tolerantly:
// either field may be missing or of another JSON type, and the body may be
// HTML, empty or cut off at maxErrorBody. token is redacted from every field
// because a server or proxy may echo request headers back.
func decodeAPIError(method, path, key string, status int, header http.Header, body []byte, token string) *APIError {
	e := &APIError{Method: method, Path: path, Key: key, Status: status}
	var rep struct {
		Code    json.RawMessage `json:"code"`
		Message json.RawMessage `json:"message"`
		ID      json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &rep) == nil {
		e.Code = jsonText(rep.Code)
		e.Message = jsonText(rep.Message)
		e.RequestID = jsonText(rep.ID)
	}
	if e.Message == "" && e.Code == "" {
		e.Message = excerpt(body)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	if e.RequestID == "" {
		e.RequestID = header.Get("X-Request-Id")
	}
	e.Code = clean(e.Code, token)
	e.Message = clean(e.Message, token)
	e.RequestID = clean(e.RequestID, token)
	return e
}

// jsonText renders a JSON value as text: a string as itself, null as
// nothing, anything else as its JSON.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if string(raw) == "null" {
		return ""
	}
	return string(raw)
}

// excerpt summarises a non-JSON body: an HTML page by its title, anything
// else by its first characters.
func excerpt(body []byte) string {
	text := string(body)
	if m := htmlTitle.FindStringSubmatch(text); m != nil {
		text = html.UnescapeString(m[1])
	}
	return text
}

// clean makes server-supplied text safe for one log line: the token is
// removed before anything else (so truncation cannot leave half of it),
// then invalid UTF-8 and control characters go and runs of space collapse.
func clean(s, token string) string {
	if token != "" {
		s = strings.ReplaceAll(s, token, redacted)
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029
	}), " ")
	if len(s) > maxMessageLen {
		cut := maxMessageLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// transportError is an attempt that got no complete HTTP response:
// connection refused or reset, a per-attempt timeout, a body cut off. For a
// mutation its outcome is unknown.
type transportError struct {
	msg string
	err error
}

func (e *transportError) Error() string { return e.msg }
func (e *transportError) Unwrap() error { return e.err }

func isTransportError(err error) bool {
	var te *transportError
	return errors.As(err, &te)
}

// transportError wraps err from sending cl. A *url.Error is unwrapped because
// its text repeats the whole URL; the message names the method and path
// instead. net/http's own errors never quote request headers, but a custom
// transport might: such an error is replaced by its redacted text, since
// keeping it in the chain would keep the token reachable.
func (c *Client) transportError(cl call, err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	if strings.Contains(err.Error(), c.token) {
		err = errors.New(strings.ReplaceAll(err.Error(), c.token, redacted))
	}
	msg := fmt.Sprintf("%s %s: %s", cl.method, cl.url.EscapedPath(), err.Error())
	if cl.key != "" {
		msg = fmt.Sprintf("%s %s (key %q): %s", cl.method, cl.url.EscapedPath(), cl.key, err.Error())
	}
	return &transportError{msg: msg, err: err}
}
