// Package ldclient is ldreaper's thin typed client for the environment
// endpoints of LaunchDarkly's REST API v2: list (paged, filtered), count, get,
// create (optionally cloned from a source environment) and delete.
//
// It exists instead of LD's generated api-client-go because that client
// rejects environments that lack the soon-deprecated apiKey/mobileKey fields,
// changes import path about monthly, and has no retry or rate-limit handling.
// This one decodes tolerantly and owns the unpleasant parts of the contract:
//
//   - GET and DELETE are retried on 5xx, connection resets and per-attempt
//     timeouts with capped exponential backoff and jitter.
//   - A POST whose outcome is unknown (5xx, reset, timeout) is never blindly
//     repeated: the client first GETs the key, so a create is neither
//     duplicated nor reported failed when it in fact happened.
//   - 429s wait for Retry-After or X-Ratelimit-Reset, and calls are paced
//     before they are sent: when the *-Remaining headers, less the requests
//     already in flight, are down to the configured headroom, the call waits
//     for the window's reset.
//   - The access token appears in no error, log line or String output.
//
// A Client is safe for concurrent use.
package ldclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Defaults for Options fields left at their zero value.
const (
	DefaultBaseURL          = "https://app.launchdarkly.com"
	DefaultUserAgent        = "launchdarkly-ldreaper-int/dev"
	DefaultRequestTimeout   = 30 * time.Second
	DefaultMaxRetries       = 5
	DefaultRateLimitRetries = 10
	DefaultMaxWait          = 60 * time.Second
	DefaultBaseBackoff      = 200 * time.Millisecond
	// MaxPageSize is the largest list page the client asks for. LD documents
	// no maximum for this endpoint; other LD lists cap at 50–100, so asking
	// for more would only be silently cut.
	MaxPageSize = 100
)

// APIVersion is sent as LD-API-Version on every request. LD recommends always
// sending it explicitly, since a token's default version may be an old one.
const APIVersion = "20240415"

// Route names, used for per-route pacing and in RequestRecord.
const (
	RouteListEnvironments  = "list_environments"
	RouteGetEnvironment    = "get_environment"
	RouteCreateEnvironment = "create_environment"
	RouteDeleteEnvironment = "delete_environment"
)

const (
	// maxSuccessBody bounds a decoded response; a list page of 100
	// environments with approval settings is well under 1 MiB.
	maxSuccessBody = 32 << 20
	// maxErrorBody is all of an error body the client reads: enough for any
	// JSON error, and an HTML error page is cut rather than buffered whole.
	maxErrorBody = 64 << 10
	// defaultMaxListPages stops a server whose next links advance forever.
	// At 100 per page it is a million environments, far beyond any project.
	defaultMaxListPages = 10000
)

// RequestRecord describes one HTTP attempt, for metrics.
type RequestRecord struct {
	Route  string
	Method string
	// Status is 0 when the attempt got no HTTP response (transport error,
	// timeout).
	Status   int
	Duration time.Duration
	// Attempt is 1 for the first try of a call and counts up across retries.
	Attempt int
}

// Options configures a Client. Zero values select the documented defaults.
type Options struct {
	// BaseURL is the LD instance: DefaultBaseURL, https://app.launchdarkly.us
	// (federal), https://app.eu.launchdarkly.com (EU), or a test server. It
	// may carry a path prefix (a proxy); it may not carry credentials, a query
	// or a fragment.
	BaseURL string
	// Token is the LD access token, sent raw as "Authorization: <token>";
	// LD rejects a "Bearer " prefix, so New does too.
	Token     string
	UserAgent string
	// HTTPClient defaults to a client whose transport bounds dialing, TLS
	// handshakes and waiting for response headers, and which does not follow
	// redirects. Its own Timeout should stay zero: RequestTimeout bounds each
	// attempt.
	HTTPClient *http.Client
	// RequestTimeout bounds one HTTP attempt, including reading the body.
	RequestTimeout time.Duration
	// MaxRetries is how many times a call is retried after 5xx answers,
	// connection errors and timeouts (attempts after the first). Negative
	// disables these retries.
	MaxRetries int
	// RateLimitRetries is a separate budget for retries after 429. LD asks
	// clients to wait and try again, and every such wait is bounded by
	// MaxWait and ctx, so rate limiting does not use up MaxRetries, which is
	// kept for real failures. Negative disables retries after 429.
	RateLimitRetries int
	// MaxWait caps any single wait: a 429 reset, a backoff, a pacing pause.
	MaxWait time.Duration
	// BaseBackoff is the first backoff after a failure; it doubles per retry.
	BaseBackoff time.Duration
	// Headroom is how many requests of each LD rate-limit window the client
	// leaves for other users of the account. A call waits for the window's
	// reset when X-Ratelimit-Global-Remaining, or its route's
	// X-Ratelimit-Route-Remaining, minus the requests already in flight is
	// <= Headroom. Counting the requests in flight keeps concurrent callers
	// from overshooting the window together. The default 0 pauses only once
	// the budget is spent. Negative disables pacing.
	Headroom int
	// PageSize is the list page size asked for; 0 means MaxPageSize, larger
	// values are cut to MaxPageSize.
	PageSize int
	// Clock is used for every wait and timestamp; defaults to the system
	// clock.
	Clock Clock
	// Rand is the jitter source in [0,1); defaults to math/rand/v2.Float64.
	Rand func() float64
	// Logger gets retries and waits; its zero value discards.
	Logger zerolog.Logger
	// Observe, if set, is called synchronously after every HTTP attempt.
	Observe func(RequestRecord)
}

// Format keeps the token out of every fmt verb.
func (o Options) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "ldclient.Options{BaseURL:%q Token:[redacted] UserAgent:%q PageSize:%d MaxRetries:%d}",
		o.BaseURL, o.UserAgent, o.PageSize, o.MaxRetries)
}

// Client talks to one LD instance with one token.
type Client struct {
	base             *url.URL
	token            string
	userAgent        string
	httpClient       *http.Client
	requestTimeout   time.Duration
	maxRetries       int
	rateLimitRetries int
	maxWait          time.Duration
	baseBackoff      time.Duration
	headroom         int
	pageSize         int
	maxListPages     int
	clock            Clock
	rand             func() float64
	log              zerolog.Logger
	observe          func(RequestRecord)
	limits           *rateLimits
}

// New checks o and returns a Client. The errors never contain the token.
func New(o Options) (*Client, error) {
	base, err := parseBaseURL(o.BaseURL)
	if err != nil {
		return nil, err
	}
	if err := checkToken(o.Token); err != nil {
		return nil, err
	}
	c := &Client{
		base:             base,
		token:            o.Token,
		userAgent:        cmpOr(o.UserAgent, DefaultUserAgent),
		httpClient:       o.HTTPClient,
		requestTimeout:   cmpOr(o.RequestTimeout, DefaultRequestTimeout),
		maxRetries:       retryBudget(o.MaxRetries, DefaultMaxRetries),
		rateLimitRetries: retryBudget(o.RateLimitRetries, DefaultRateLimitRetries),
		maxWait:          cmpOr(o.MaxWait, DefaultMaxWait),
		baseBackoff:      cmpOr(o.BaseBackoff, DefaultBaseBackoff),
		headroom:         o.Headroom,
		pageSize:         o.PageSize,
		maxListPages:     defaultMaxListPages,
		clock:            o.Clock,
		rand:             o.Rand,
		log:              o.Logger,
		observe:          o.Observe,
		limits:           newRateLimits(),
	}
	if c.httpClient == nil {
		c.httpClient = defaultHTTPClient(c.requestTimeout)
	}
	if c.pageSize <= 0 || c.pageSize > MaxPageSize {
		c.pageSize = MaxPageSize
	}
	if c.clock == nil {
		c.clock = systemClock{}
	}
	if c.rand == nil {
		c.rand = rand.Float64
	}
	return c, nil
}

// Format keeps the token out of every fmt verb. It has a value receiver so
// that a dereferenced Client is covered too.
func (c Client) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "ldclient.Client{BaseURL:%q}", c.base.String())
}

func cmpOr[T comparable](v, fallback T) T {
	var zero T
	if v == zero {
		return fallback
	}
	return v
}

func retryBudget(n, fallback int) int {
	switch {
	case n < 0:
		return 0
	case n == 0:
		return fallback
	}
	return n
}

func parseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse base URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("base URL %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("base URL %q: no host", u.Redacted())
	case u.User != nil:
		// Credentials in the URL would end up in every *url.Error.
		return nil, fmt.Errorf("base URL %q: must not contain credentials", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("base URL %q: must not contain a query or fragment", u.Redacted())
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	return u, nil
}

func checkToken(token string) error {
	switch {
	case token == "":
		return errors.New("access token is empty")
	case strings.HasPrefix(strings.ToLower(token), "bearer "):
		return errors.New("access token has a Bearer prefix: LD expects the raw token in Authorization")
	case strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		// Usually a trailing newline from a token file; net/http would refuse
		// the header on every request.
		return errors.New("access token contains whitespace or control characters")
	}
	return nil
}

func defaultHTTPClient(requestTimeout time.Duration) *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	transport.TLSHandshakeTimeout = 10 * time.Second
	transport.ResponseHeaderTimeout = requestTimeout
	transport.IdleConnTimeout = 90 * time.Second
	return &http.Client{
		Transport: transport,
		// LD's API does not redirect. Following one would turn a POST into a
		// GET whose 200 looks like a created environment, so a redirect is
		// answered as the non-2xx it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// call is one logical API operation, retried as a unit.
type call struct {
	route  string
	method string
	key    string // environment key, for errors and logs; empty for lists
	url    *url.URL
	body   []byte // nil sends no body
}

// response is a completed HTTP exchange with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) ok() bool { return r.status >= 200 && r.status < 300 }

// apiError builds the *APIError for a non-2xx response to cl.
func (c *Client) apiError(cl call, r response) *APIError {
	return decodeAPIError(cl.method, cl.url.EscapedPath(), cl.key, r.status, r.header, r.body, c.token)
}

// attempt paces, then sends cl once. A *transportError means no response
// arrived (or its body was cut off); any other error is final.
func (c *Client) attempt(ctx context.Context, cl call, n int) (response, error) {
	if err := c.pace(ctx, cl); err != nil {
		return response{}, err
	}
	if err := ctx.Err(); err != nil {
		c.limits.complete(cl.route, nil)
		return response{}, err
	}
	attemptCtx, cancel := context.WithTimeout(ctx, c.requestTimeout)
	defer cancel()

	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(attemptCtx, cl.method, cl.url.String(), body)
	if err != nil {
		c.limits.complete(cl.route, nil)
		return response{}, fmt.Errorf("build %s %s: %w", cl.method, cl.url.EscapedPath(), err)
	}
	req.Header.Set("Authorization", c.token)
	req.Header.Set("LD-API-Version", APIVersion)
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	start := c.clock.Now()
	resp, err := c.httpClient.Do(req)
	if err != nil {
		c.limits.complete(cl.route, nil)
		c.record(cl, 0, start, n)
		return response{}, c.transportError(cl, err)
	}
	defer resp.Body.Close()
	c.limits.complete(cl.route, resp.Header)

	limit := int64(maxSuccessBody)
	if resp.StatusCode >= 300 {
		limit = maxErrorBody
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	c.record(cl, resp.StatusCode, start, n)
	if err != nil {
		return response{}, c.transportError(cl, fmt.Errorf("read response body: %w", err))
	}
	if int64(len(data)) > limit {
		if resp.StatusCode < 300 {
			return response{}, fmt.Errorf("%s %s: response body exceeds %d bytes", cl.method, cl.url.EscapedPath(), limit)
		}
		data = data[:limit]
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

func (c *Client) record(cl call, status int, start time.Time, n int) {
	if c.observe == nil {
		return
	}
	c.observe(RequestRecord{
		Route:    cl.route,
		Method:   cl.method,
		Status:   status,
		Duration: c.clock.Now().Sub(start),
		Attempt:  n,
	})
}

// sendIdempotent sends a GET or DELETE, retrying 5xx, transport errors and
// 429 within the budgets. It returns the first other response, and whether
// an earlier attempt may have reached LD without its answer reaching us,
// which turns a DELETE's later 404 into "we deleted it".
func (c *Client) sendIdempotent(ctx context.Context, cl call) (response, bool, error) {
	retry := c.newRetrier(cl)
	ambiguous := false
	for {
		resp, err := c.attempt(ctx, cl, retry.nextAttempt())
		switch {
		case err != nil:
			if !isTransportError(err) || ctx.Err() != nil {
				return response{}, ambiguous, contextFirst(ctx, err)
			}
			ambiguous = true
			if err := retry.afterFailure(ctx, err); err != nil {
				return response{}, ambiguous, err
			}
		case resp.status == http.StatusTooManyRequests:
			if err := retry.afterRateLimit(ctx, resp.header, c.apiError(cl, resp)); err != nil {
				return response{}, ambiguous, err
			}
		case resp.status >= 500:
			ambiguous = true
			if err := retry.afterFailure(ctx, c.apiError(cl, resp)); err != nil {
				return response{}, ambiguous, err
			}
		default:
			return resp, ambiguous, nil
		}
	}
}

// contextFirst prefers the caller's cancellation over the per-attempt error
// it caused, so callers can test errors.Is(err, context.Canceled).
func contextFirst(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w: %w", ctxErr, err)
	}
	return err
}

func (c *Client) environmentsURL(project string) *url.URL {
	return c.endpoint("api", "v2", "projects", project, "environments")
}

func (c *Client) environmentURL(project, key string) *url.URL {
	return c.endpoint("api", "v2", "projects", project, "environments", key)
}

// endpoint joins path-escaped segments onto the base URL. Escaping each
// segment keeps a key such as "a/b?c" one segment of the path.
func (c *Client) endpoint(segments ...string) *url.URL {
	u := *c.base
	rawPath := u.EscapedPath()
	decodedPath := u.Path
	for _, s := range segments {
		rawPath += "/" + url.PathEscape(s)
		decodedPath += "/" + s
	}
	u.Path, u.RawPath = decodedPath, rawPath
	return &u
}

// checkKey rejects keys that cannot name one path segment. LD's own rules
// (letters, digits, '.', '_', '-') are left to LD, which answers 400.
func checkKey(what, key string) error {
	if key == "" || key == "." || key == ".." {
		return fmt.Errorf("%s key %q is not a valid path segment", what, key)
	}
	return nil
}

// GetEnvironment returns one environment. A missing one is an *APIError for
// which IsNotFound is true.
func (c *Client) GetEnvironment(ctx context.Context, project, key string) (Environment, error) {
	if err := errors.Join(checkKey("project", project), checkKey("environment", key)); err != nil {
		return Environment{}, fmt.Errorf("get environment: %w", err)
	}
	env, err := c.getEnvironment(ctx, project, key)
	if err != nil {
		return Environment{}, fmt.Errorf("get environment %q in project %q: %w", key, project, err)
	}
	return env, nil
}

func (c *Client) getEnvironment(ctx context.Context, project, key string) (Environment, error) {
	cl := call{route: RouteGetEnvironment, method: http.MethodGet, key: key, url: c.environmentURL(project, key)}
	resp, _, err := c.sendIdempotent(ctx, cl)
	if err != nil {
		return Environment{}, err
	}
	if !resp.ok() {
		return Environment{}, c.apiError(cl, resp)
	}
	return decodeEnvironment(resp.body)
}

func decodeEnvironment(body []byte) (Environment, error) {
	var env Environment
	if err := json.Unmarshal(body, &env); err != nil {
		return Environment{}, fmt.Errorf("decode environment: %w", err)
	}
	return env, nil
}

// CreateEnvironment POSTs body. On 201 the result is the new environment with
// Existed false. On 409 the key is looked up: an existing environment is
// returned with Existed true; a missing one means the 409 was an optimistic
// lock race, and the POST is retried.
//
// When a POST's outcome is unknown (5xx, reset connection, timeout), the key
// is looked up before anything is retried. If the environment is there and
// matches body (same key, name and tag set), this call made it: Existed is
// false. If it is there but differs, someone else made it: Existed is true.
// If it is not there, the POST is retried. The same rule decides a 409 that
// follows such an unknown outcome. So a POST is never repeated once LD has
// the environment, and a create that happened is never reported failed —
// unless ctx ends before the lookup can run, and then the error says the
// outcome is unknown.
func (c *Client) CreateEnvironment(ctx context.Context, project string, body EnvironmentPost) (CreateResult, error) {
	if err := errors.Join(checkKey("project", project), checkKey("environment", body.Key)); err != nil {
		return CreateResult{}, fmt.Errorf("create environment: %w", err)
	}
	res, err := c.createEnvironment(ctx, project, body)
	if err != nil {
		return CreateResult{}, fmt.Errorf("create environment %q in project %q: %w", body.Key, project, err)
	}
	return res, nil
}

func (c *Client) createEnvironment(ctx context.Context, project string, body EnvironmentPost) (CreateResult, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return CreateResult{}, fmt.Errorf("encode request body: %w", err)
	}
	cl := call{route: RouteCreateEnvironment, method: http.MethodPost, key: body.Key, url: c.environmentsURL(project), body: payload}
	retry := c.newRetrier(cl)
	ambiguous := false
	for {
		resp, err := c.attempt(ctx, cl, retry.nextAttempt())
		// unsettled is why the outcome must be looked up before going on.
		var unsettled error
		switch {
		case err != nil:
			if !isTransportError(err) {
				return CreateResult{}, err
			}
			if ctx.Err() != nil {
				return CreateResult{}, fmt.Errorf("outcome unknown, LD may have created it: %w", contextFirst(ctx, err))
			}
			ambiguous, unsettled = true, err
		case resp.status == http.StatusTooManyRequests:
			// LD refused before acting, so a plain retry is safe.
			if err := retry.afterRateLimit(ctx, resp.header, c.apiError(cl, resp)); err != nil {
				return CreateResult{}, err
			}
			continue
		case resp.status >= 500:
			ambiguous, unsettled = true, c.apiError(cl, resp)
		case resp.ok():
			env, decodeErr := decodeEnvironment(resp.body)
			if decodeErr == nil {
				return CreateResult{Environment: env}, nil
			}
			// LD created it; only its answer is unreadable. Reporting a
			// failure would make the caller try again, so read it back.
			env, err := c.getEnvironment(ctx, project, body.Key)
			if err != nil {
				return CreateResult{}, fmt.Errorf("created, but %w, and reading it back: %w", decodeErr, err)
			}
			return CreateResult{Environment: env}, nil
		case resp.status == http.StatusConflict:
			unsettled = c.apiError(cl, resp)
		default:
			return CreateResult{}, c.apiError(cl, resp)
		}

		existing, err := c.getEnvironment(ctx, project, body.Key)
		switch {
		case err == nil:
			existed := !ambiguous || !matchesPost(existing, body)
			c.log.Debug().Str("route", cl.route).Str("key", body.Key).AnErr("after", unsettled).
				Bool("existed", existed).Msg("create settled by lookup")
			return CreateResult{Environment: existing, Existed: existed}, nil
		case !IsNotFound(err):
			// The lookup's error is the one to act on; the cause is context.
			return CreateResult{}, fmt.Errorf("outcome unknown after %v; looking it up: %w", unsettled, err)
		}
		if err := retry.afterFailure(ctx, unsettled); err != nil {
			return CreateResult{}, err
		}
	}
}

// matchesPost reports whether env is what posting body would have created.
// LD treats tags case-insensitively and may store them in another case or
// order, so tags compare as case-folded sets.
func matchesPost(env Environment, body EnvironmentPost) bool {
	return strings.EqualFold(env.Key, body.Key) && env.Name == body.Name && sameTagSet(env.Tags, body.Tags)
}

func sameTagSet(a, b []string) bool {
	set := func(tags []string) map[string]bool {
		m := make(map[string]bool, len(tags))
		for _, t := range tags {
			m[strings.ToLower(t)] = true
		}
		return m
	}
	sa, sb := set(a), set(b)
	if len(sa) != len(sb) {
		return false
	}
	for t := range sa {
		if !sb[t] {
			return false
		}
	}
	return true
}

// DeleteEnvironment deletes one environment. 204 is Deleted and 404 is
// AlreadyGone, except that a 404 after an attempt whose outcome was unknown
// (5xx, reset, timeout) is Deleted: that attempt most likely did it. The
// result means nothing when err is not nil.
func (c *Client) DeleteEnvironment(ctx context.Context, project, key string) (DeleteResult, error) {
	if err := errors.Join(checkKey("project", project), checkKey("environment", key)); err != nil {
		return 0, fmt.Errorf("delete environment: %w", err)
	}
	cl := call{route: RouteDeleteEnvironment, method: http.MethodDelete, key: key, url: c.environmentURL(project, key)}
	resp, ambiguous, err := c.sendIdempotent(ctx, cl)
	switch {
	case err != nil:
		return 0, fmt.Errorf("delete environment %q in project %q: %w", key, project, err)
	case resp.ok():
		return Deleted, nil
	case resp.status == http.StatusNotFound && ambiguous:
		return Deleted, nil
	case resp.status == http.StatusNotFound:
		return AlreadyGone, nil
	}
	return 0, fmt.Errorf("delete environment %q in project %q: %w", key, project, c.apiError(cl, resp))
}
