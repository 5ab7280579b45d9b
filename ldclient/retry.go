package ldclient

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Clock is the client's only source of time, so tests can run every wait
// instantly. Sleep returns ctx's error if ctx ends first.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

const (
	// minRateLimitWait is the wait after a 429 whose reset is already past:
	// the window has turned, but an immediate retry would race it.
	minRateLimitWait = 100 * time.Millisecond
	// epochMillisFloor separates epoch milliseconds from epoch seconds in
	// X-Ratelimit-Reset: 1e11 ms is March 1973, 1e11 s is the year 5138.
	epochMillisFloor = 100_000_000_000
)

// retrier spends one call's retry budgets and does its waits.
type retrier struct {
	c          *Client
	cl         call
	attempts   int
	failures   int // retries spent on 5xx, transport errors, lost races
	rateLimits int // retries spent on 429
}

func (c *Client) newRetrier(cl call) *retrier { return &retrier{c: c, cl: cl} }

// nextAttempt counts an attempt and returns its 1-based number.
func (r *retrier) nextAttempt() int {
	r.attempts++
	return r.attempts
}

// afterFailure waits out a backoff if the failure budget allows another
// attempt, and otherwise returns cause as the call's error.
func (r *retrier) afterFailure(ctx context.Context, cause error) error {
	if r.failures >= r.c.maxRetries {
		return fmt.Errorf("giving up after %d attempts: %w", r.attempts, cause)
	}
	wait := r.c.backoff(r.failures)
	r.failures++
	return r.wait(ctx, wait, cause)
}

// afterRateLimit waits for the 429's reset if the rate-limit budget allows
// another attempt. Unusable headers fall back to backoff.
func (r *retrier) afterRateLimit(ctx context.Context, header http.Header, cause error) error {
	if r.rateLimits >= r.c.rateLimitRetries {
		return fmt.Errorf("giving up after %d attempts: %w", r.attempts, cause)
	}
	wait, ok := rateLimitDelay(header, r.c.clock.Now(), r.c.maxWait)
	if ok {
		wait = r.c.jitter(wait)
	} else {
		wait = r.c.backoff(r.rateLimits)
	}
	r.rateLimits++
	return r.wait(ctx, wait, cause)
}

func (r *retrier) wait(ctx context.Context, d time.Duration, cause error) error {
	r.c.log.Warn().Str("route", r.cl.route).Str("method", r.cl.method).Str("key", r.cl.key).
		Int("attempt", r.attempts).Dur("wait", d).AnErr("cause", cause).Msg("retrying")
	if err := r.c.clock.Sleep(ctx, d); err != nil {
		return fmt.Errorf("waiting %s to retry: %w (last attempt: %w)", d, err, cause)
	}
	return nil
}

// backoff is the wait before failure retry n (0-based): BaseBackoff doubled
// per retry and capped at MaxWait, with equal jitter (half fixed, half
// random) so concurrent callers spread out but never retry at once.
func (c *Client) backoff(n int) time.Duration {
	d := c.maxWait
	if n < 32 {
		if b := c.baseBackoff << n; b > 0 && b < d {
			d = b
		}
	}
	return d/2 + time.Duration(c.rand()*float64(d/2))
}

// jitter adds up to a fifth of d (at least up to 100ms) so that callers
// released by the same reset do not all hit LD in the same instant. The
// result stays within MaxWait.
func (c *Client) jitter(d time.Duration) time.Duration {
	span := max(d/5, 100*time.Millisecond)
	return min(d+time.Duration(c.rand()*float64(span)), c.maxWait)
}

// rateLimitDelay is how long a 429 asks the client to wait. Retry-After
// (seconds or an HTTP date, LD's IP-based limit) wins; otherwise
// X-Ratelimit-Reset (epoch milliseconds) minus now. A reset already past
// waits minRateLimitWait; one beyond MaxWait, or one that is clearly in
// epoch seconds rather than milliseconds, waits MaxWait. ok is false when
// neither header is usable.
func rateLimitDelay(h http.Header, now time.Time, maxWait time.Duration) (d time.Duration, ok bool) {
	if d, ok := parseRetryAfter(h.Get("Retry-After"), now); ok {
		return clampWait(d, maxWait), true
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-Ratelimit-Reset")), 10, 64)
	switch {
	case err != nil:
		return 0, false
	case ms > 0 && ms < epochMillisFloor:
		return maxWait, true
	case ms <= 0:
		return clampWait(0, maxWait), true
	}
	return clampWait(time.UnixMilli(ms).Sub(now), maxWait), true
}

func clampWait(d, maxWait time.Duration) time.Duration {
	return min(max(d, minRateLimitWait), maxWait)
}

// parseRetryAfter reads RFC 9110 Retry-After: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs > int64(24*time.Hour/time.Second) {
			// Past a day the multiplication could overflow; any such value
			// is clamped to MaxWait anyway.
			return 24 * time.Hour, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return at.Sub(now), true
	}
	return 0, false
}
