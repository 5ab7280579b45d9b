package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

// Defaults of the HTTP layer that the API sources (vercel, render, github,
// http) share.
const (
	defaultRequestTimeout = 30 * time.Second
	// defaultMaxRetries bounds the retries of one request. The schedule is the
	// outer retry, so a few quick inner ones are enough.
	defaultMaxRetries = 3
	// defaultMaxRateLimitWait is the longest rate-limit wait sat out within a
	// run: Vercel and Render count in one-minute windows. A longer one fails
	// the list now, because the run waits for every source and the next run
	// comes soon anyway. A context deadline shortens it further.
	defaultMaxRateLimitWait = time.Minute
	// maxResponseBytes caps one response body. A page of 100 items is well
	// under a megabyte; a bigger body is a wrong URL, not a list.
	maxResponseBytes = 32 << 20
	// maxPages caps one listing. Past it the list is reported as failed rather
	// than cut short.
	maxPages = 100
	// pageSize is what every paged vendor API allows as its maximum.
	pageSize = 100

	backoffBase = 500 * time.Millisecond
	backoffMax  = 8 * time.Second
	// etagCacheEntries bounds the conditional-request cache: one entry per
	// page URL, and a source lists a handful of pages.
	etagCacheEntries = 256
	userAgent        = "ldreaper"
)

// rateLimitHeaders names a vendor's rate-limit response headers.
type rateLimitHeaders struct {
	remaining string
	reset     string // epoch seconds, or seconds from now when small
}

// The rate-limit header names in use: GitHub's and Vercel's, and Render's,
// which the IETF draft that generic endpoints may follow also uses.
const (
	xRateLimitRemaining     = "X-RateLimit-Remaining"
	xRateLimitReset         = "X-RateLimit-Reset"
	draftRateLimitRemaining = "RateLimit-Remaining"
	draftRateLimitReset     = "RateLimit-Reset"
)

func xRateLimitHeaders() rateLimitHeaders {
	return rateLimitHeaders{remaining: xRateLimitRemaining, reset: xRateLimitReset}
}

func draftRateLimitHeaders() rateLimitHeaders {
	return rateLimitHeaders{remaining: draftRateLimitRemaining, reset: draftRateLimitReset}
}

// apiConfig is what a source tells newAPIClient about its vendor.
type apiConfig struct {
	vendor string // names the API in errors and logs
	token  string
	// tokenEnv names where the token came from, so that an auth error says
	// which variable to fix.
	tokenEnv   string
	header     http.Header // fixed request headers, such as Accept
	httpClient *http.Client
	timeout    time.Duration // per attempt; zero means defaultRequestTimeout
	limits     []rateLimitHeaders
	etags      bool // cache responses by ETag and send If-None-Match
	log        zerolog.Logger
}

// apiClient is the one HTTP layer the API sources share. It sends GETs with a
// per-attempt timeout, retries transport errors and 5xx a bounded number of
// times with capped, jittered backoff, sits out short rate-limit waits that
// the vendor's headers announce, and caps the body size. Everything that is
// not a clean success becomes an error, so a caller never mistakes a failed
// page for an empty one. The token goes only into the Authorization header.
type apiClient struct {
	vendor           string
	http             *http.Client
	token            string
	tokenEnv         string
	header           http.Header
	timeout          time.Duration
	maxRetries       int
	maxRateLimitWait time.Duration
	maxBody          int64
	limits           []rateLimitHeaders
	cache            *etagCache
	log              zerolog.Logger

	// Tests replace these to make waits instant and recorded.
	sleep  func(ctx context.Context, d time.Duration) error
	now    func() time.Time
	jitter func(d time.Duration) time.Duration // a random duration in [0, d)
}

func newAPIClient(cfg apiConfig) *apiClient {
	client := cfg.httpClient
	if client == nil {
		// Each attempt carries its own deadline, so the client needs none.
		client = &http.Client{}
	}
	timeout := cfg.timeout
	if timeout <= 0 {
		timeout = defaultRequestTimeout
	}
	c := &apiClient{
		vendor:           cfg.vendor,
		http:             client,
		token:            cfg.token,
		tokenEnv:         cfg.tokenEnv,
		header:           cfg.header,
		timeout:          timeout,
		maxRetries:       defaultMaxRetries,
		maxRateLimitWait: defaultMaxRateLimitWait,
		maxBody:          maxResponseBytes,
		limits:           cfg.limits,
		log:              cfg.log,
		sleep:            sleepContext,
		now:              time.Now,
		jitter:           randomJitter,
	}
	if cfg.etags {
		c.cache = newETagCache(etagCacheEntries)
	}
	return c
}

func sleepContext(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-timer.C:
		return nil
	}
}

func randomJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// apiResponse is a successful response.
type apiResponse struct {
	header http.Header
	body   []byte
	// notModified is true when the server answered 304 to a conditional
	// request and the body is the cached one.
	notModified bool
}

// apiError is a response that ends a request: a status that retrying does
// not fix, or one that the retries did not fix.
type apiError struct {
	url     string
	status  int
	message string // the vendor's own words, cleaned and shortened
	hint    string
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s: %d %s", e.url, e.status, http.StatusText(e.status))
	if e.hint != "" {
		b.WriteString(" (" + e.hint + ")")
	}
	if e.message != "" {
		b.WriteString(": " + e.message)
	}
	return b.String()
}

// rateLimitError is a rate limit whose wait is longer than ldreaper sits out.
type rateLimitError struct {
	url    string
	status int
	wait   time.Duration
	limit  time.Duration
}

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("GET %s: %d rate limited: the API asks to wait %s, longer than the %s ldreaper waits within a run",
		e.url, e.status, e.wait, e.limit)
}

// get fetches rawURL. Only a 2xx (or a 304 answered from the cache) is a
// success; anything else is an error.
func (c *apiClient) get(ctx context.Context, rawURL string) (apiResponse, error) {
	for attempt := 0; ; attempt++ {
		res, err := c.attempt(ctx, rawURL)
		if ctxErr := context.Cause(ctx); ctxErr != nil {
			return apiResponse{}, fmt.Errorf("GET %s: %w", rawURL, ctxErr)
		}
		wait, retry, err := c.judge(ctx, rawURL, res, err, attempt)
		if err == nil {
			return c.success(rawURL, res)
		}
		if !retry || attempt >= c.maxRetries {
			if retry {
				return apiResponse{}, fmt.Errorf("giving up after %d attempts: %w", attempt+1, err)
			}
			return apiResponse{}, err
		}
		c.log.Warn().Str("vendor", c.vendor).Str("url", rawURL).Int("attempt", attempt+1).
			Dur("wait", wait).AnErr("error", err).Msg("retrying request")
		if err := c.sleep(ctx, wait); err != nil {
			return apiResponse{}, fmt.Errorf("GET %s: waiting to retry: %w", rawURL, err)
		}
	}
}

// attemptResult is one HTTP exchange with its body read.
type attemptResult struct {
	status int
	header http.Header
	body   []byte
}

func (c *apiClient) attempt(ctx context.Context, rawURL string) (attemptResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return attemptResult{}, fmt.Errorf("building request for %s: %w", rawURL, err)
	}
	for name, values := range c.header {
		req.Header[name] = values
	}
	req.Header.Set("User-Agent", userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if cached, ok := c.cache.get(rawURL); ok {
		req.Header.Set("If-None-Match", cached.etag)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error names the method and URL; neither holds the token.
		return attemptResult{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return attemptResult{}, fmt.Errorf("GET %s: reading the response: %w", rawURL, err)
	}
	if int64(len(body)) > c.maxBody {
		return attemptResult{}, bodyTooLargeError{url: rawURL, limit: c.maxBody}
	}
	return attemptResult{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

type bodyTooLargeError struct {
	url   string
	limit int64
}

func (e bodyTooLargeError) Error() string {
	return fmt.Sprintf("GET %s: response body larger than the %d-byte limit", e.url, e.limit)
}

// judge decides what an attempt means: success (nil error), a retry after
// wait, or a final error.
func (c *apiClient) judge(ctx context.Context, rawURL string, res attemptResult, err error, attempt int) (wait time.Duration, retry bool, _ error) {
	if err != nil {
		var tooLarge bodyTooLargeError
		if errors.As(err, &tooLarge) {
			return 0, false, err
		}
		return c.backoff(attempt), true, err
	}
	switch {
	case res.status >= 200 && res.status < 300:
		return 0, false, nil
	case res.status == http.StatusNotModified:
		if _, ok := c.cache.get(rawURL); ok {
			return 0, false, nil
		}
		return 0, false, c.statusError(rawURL, res)
	case res.status == http.StatusTooManyRequests || res.status == http.StatusForbidden && c.isRateLimit(res.header):
		wait := c.rateLimitWait(res.header, attempt)
		if limit := c.waitLimit(ctx); wait > limit {
			return 0, false, &rateLimitError{url: rawURL, status: res.status, wait: wait, limit: limit}
		}
		return wait, true, c.statusError(rawURL, res)
	case res.status >= 500:
		wait, ok := parseRetryAfter(res.header.Get("Retry-After"), c.now())
		if !ok || wait > c.waitLimit(ctx) {
			wait = c.backoff(attempt)
		}
		return wait, true, c.statusError(rawURL, res)
	default:
		return 0, false, c.statusError(rawURL, res)
	}
}

func (c *apiClient) success(rawURL string, res attemptResult) (apiResponse, error) {
	if res.status == http.StatusNotModified {
		cached, _ := c.cache.get(rawURL)
		return apiResponse{header: cached.header, body: cached.body, notModified: true}, nil
	}
	if etag := res.header.Get("ETag"); etag != "" {
		c.cache.put(rawURL, cachedResponse{etag: etag, header: res.header, body: res.body})
	}
	return apiResponse{header: res.header, body: res.body}, nil
}

func (c *apiClient) statusError(rawURL string, res attemptResult) *apiError {
	e := &apiError{url: rawURL, status: res.status, message: vendorMessage(res.body, c.token)}
	switch res.status {
	case http.StatusUnauthorized, http.StatusForbidden:
		if c.tokenEnv != "" {
			e.hint = "check the token in $" + c.tokenEnv
		} else {
			e.hint = "the endpoint wants credentials: set token_env"
		}
	}
	return e
}

// isRateLimit tells a rate-limited 403 (GitHub's primary and secondary
// limits) from a permission error.
func (c *apiClient) isRateLimit(h http.Header) bool {
	if h.Get("Retry-After") != "" {
		return true
	}
	for _, l := range c.limits {
		if strings.TrimSpace(h.Get(l.remaining)) == "0" {
			return true
		}
	}
	return false
}

// rateLimitWait is how long the vendor asks us to wait: Retry-After first,
// then the vendor's reset header, then plain backoff.
func (c *apiClient) rateLimitWait(h http.Header, attempt int) time.Duration {
	now := c.now()
	if wait, ok := parseRetryAfter(h.Get("Retry-After"), now); ok {
		return wait
	}
	for _, l := range c.limits {
		if wait, ok := parseRateLimitReset(h.Get(l.reset), now); ok {
			return wait
		}
	}
	return c.backoff(attempt)
}

// waitLimit is the longest wait worth sitting out: the configured cap, or
// less when the context ends sooner.
func (c *apiClient) waitLimit(ctx context.Context) time.Duration {
	limit := c.maxRateLimitWait
	if deadline, ok := ctx.Deadline(); ok {
		limit = min(limit, deadline.Sub(c.now()))
	}
	return limit
}

// backoff is capped exponential backoff with jitter over its upper half, so
// that replicas started together drift apart.
func (c *apiClient) backoff(attempt int) time.Duration {
	d := backoffMax
	if attempt < 16 {
		d = min(backoffBase<<attempt, backoffMax)
	}
	return d/2 + c.jitter(d/2)
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 || secs > maxHeaderWaitSeconds {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	when, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	wait := when.Sub(now)
	if wait > maxHeaderWaitSeconds*time.Second {
		return 0, false
	}
	return max(wait, 0), true
}

// maxHeaderWaitSeconds rejects absurd header values before they overflow a
// Duration; any real wait is far below it.
const maxHeaderWaitSeconds = 7 * 24 * 3600

// epochThreshold separates the two meanings of a reset header: GitHub and
// Vercel send epoch seconds, while Render's documented example ("45") is
// seconds from now. No epoch time of interest is below 2001-09-09.
const epochThreshold = 1_000_000_000

// parseRateLimitReset reads a reset header as epoch seconds, or as seconds
// from now when the value is too small to be an epoch time.
func parseRateLimitReset(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	if n < epochThreshold {
		if n > maxHeaderWaitSeconds {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	wait := time.Unix(n, 0).Sub(now)
	if wait > maxHeaderWaitSeconds*time.Second {
		return 0, false
	}
	return max(wait, 0), true
}

// maxMessageLen keeps a vendor's error message readable in a report line.
const maxMessageLen = 200

// vendorMessage extracts a human message from an error body: the "message"
// of the JSON shapes GitHub, Render and Vercel use, or the start of a text
// body. Anything equal to the token is blanked, in case an endpoint echoes
// the request.
func vendorMessage(body []byte, token string) string {
	var msg string
	var shaped struct {
		Message string          `json:"message"`
		Error   json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &shaped); err == nil {
		msg = shaped.Message
		if msg == "" && len(shaped.Error) > 0 {
			var nested struct {
				Message string `json:"message"`
			}
			var plain string
			switch {
			case json.Unmarshal(shaped.Error, &nested) == nil && nested.Message != "":
				msg = nested.Message
			case json.Unmarshal(shaped.Error, &plain) == nil:
				msg = plain
			}
		}
	} else if utf8.Valid(body) && !bytes.ContainsAny(body, "<\x00") {
		// Text, but not an HTML error page.
		msg = string(body)
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if token != "" {
		msg = strings.ReplaceAll(msg, token, "[redacted]")
	}
	if utf8.RuneCountInString(msg) > maxMessageLen {
		cut, _ := truncateRunes(msg, maxMessageLen-1)
		msg = cut + "…"
	}
	return msg
}

func truncateRunes(s string, n int) (string, bool) {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos], true
		}
		i++
	}
	return s, false
}

// cachedResponse is what a conditional request needs to stand in for a 200.
type cachedResponse struct {
	etag   string
	header http.Header
	body   []byte
}

// etagCache holds the last response of each URL that carried an ETag. A nil
// cache holds nothing, so sources without conditional requests pay nothing.
type etagCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]cachedResponse
	order   []string // insertion order, for eviction
}

func newETagCache(maxEntries int) *etagCache {
	return &etagCache{max: maxEntries, entries: map[string]cachedResponse{}}
}

func (c *etagCache) get(rawURL string) (cachedResponse, bool) {
	if c == nil {
		return cachedResponse{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.entries[rawURL]
	return r, ok
}

func (c *etagCache) put(rawURL string, r cachedResponse) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[rawURL]; !ok {
		if len(c.order) >= c.max {
			delete(c.entries, c.order[0])
			c.order = c.order[1:]
		}
		c.order = append(c.order, rawURL)
	}
	c.entries[rawURL] = r
}

// readToken reads a token from the environment variable env. The error
// names the variable, never a value.
func readToken(deps Deps, key, env string) (string, error) {
	token := strings.TrimSpace(deps.getenv(env))
	if token == "" {
		return "", fmt.Errorf("%s: environment variable %s is empty or unset", key, env)
	}
	return token, nil
}

// parseBaseURL checks a configured base URL: absolute http or https, no query
// or fragment, and returns it without a trailing slash.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q must be an absolute http or https URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q must have no query, fragment or user info", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// sameOrigin reports whether next may receive the token meant for base: a
// pagination link to another host must not.
func sameOrigin(base, next *url.URL) bool {
	return strings.EqualFold(base.Scheme, next.Scheme) && strings.EqualFold(base.Host, next.Host)
}

// envNamePattern is a portable environment variable name.
var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validateAPICommon checks the keys that every API source shares.
func validateAPICommon(c Config) error {
	if c.BaseURL != "" {
		if _, err := parseBaseURL(c.BaseURL); err != nil {
			return fmt.Errorf("base_url: %w", err)
		}
	}
	if err := validateEnvName("token_env", c.TokenEnv); err != nil {
		return err
	}
	if c.RequestTimeout < 0 {
		return errors.New("request_timeout: must not be negative")
	}
	return nil
}

// validateEnvName checks an optional *_env key; "" means its default.
func validateEnvName(key, name string) error {
	if name != "" && !envNamePattern.MatchString(name) {
		return fmt.Errorf("%s: %q is not an environment variable name", key, name)
	}
	return nil
}
