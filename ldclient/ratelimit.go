package ldclient

import (
	"context"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RateLimitWindow is the last seen state of one LD rate limit.
type RateLimitWindow struct {
	// Remaining is the last *-Remaining header value, -1 when never seen.
	Remaining int
	// Reset is when the window ends (X-Ratelimit-Reset); zero when unknown.
	Reset time.Time
}

// RateLimitState is what the client last saw of LD's limits: the account's
// global limit and each route's own.
type RateLimitState struct {
	Global RateLimitWindow
	// Routes is keyed by route name (RouteListEnvironments, …) and holds
	// only routes whose responses carried X-Ratelimit-Route-Remaining.
	Routes map[string]RateLimitWindow
}

// rateLimits is shared by all calls of a Client.
type rateLimits struct {
	mu     sync.Mutex
	global RateLimitWindow
	routes map[string]RateLimitWindow
}

func newRateLimits() *rateLimits {
	return &rateLimits{global: RateLimitWindow{Remaining: -1}, routes: map[string]RateLimitWindow{}}
}

// update records the limit headers of a response to route. LD sends one
// X-Ratelimit-Reset for whichever limits the response carries; routes that
// are not limited send none, and leave the state as it was.
func (l *rateLimits) update(route string, h http.Header) {
	reset, _ := parseResetMillis(h.Get("X-Ratelimit-Reset"))
	global, hasGlobal := parseRemaining(h.Get("X-Ratelimit-Global-Remaining"))
	routeRemaining, hasRoute := parseRemaining(h.Get("X-Ratelimit-Route-Remaining"))
	if !hasGlobal && !hasRoute {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if hasGlobal {
		l.global = RateLimitWindow{Remaining: global, Reset: reset}
	}
	if hasRoute {
		l.routes[route] = RateLimitWindow{Remaining: routeRemaining, Reset: reset}
	}
}

// delay is how long a call on route should wait before it is sent: until the
// latest reset among the windows at or below headroom.
func (l *rateLimits) delay(route string, now time.Time, headroom int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d time.Duration
	for _, w := range []RateLimitWindow{l.global, l.routes[route]} {
		if w.Remaining >= 0 && w.Remaining <= headroom && w.Reset.After(now) {
			d = max(d, w.Reset.Sub(now))
		}
	}
	return d
}

func (l *rateLimits) state() RateLimitState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return RateLimitState{Global: l.global, Routes: maps.Clone(l.routes)}
}

// RateLimits returns the last seen rate-limit headers.
func (c *Client) RateLimits() RateLimitState { return c.limits.state() }

// pace waits, within MaxWait, for the reset of any window the last
// responses left at or below Headroom. It waits once and then lets the call
// go: if the window is still spent, LD's 429 and its reset take over. ctx
// ending cuts the wait short; the caller checks ctx.
func (c *Client) pace(ctx context.Context, cl call) {
	d := min(c.limits.delay(cl.route, c.clock.Now(), c.headroom), c.maxWait)
	if d <= 0 {
		return
	}
	c.log.Debug().Str("route", cl.route).Str("method", cl.method).Str("key", cl.key).Dur("wait", d).Msg("pacing")
	_ = c.clock.Sleep(ctx, d)
}

// parseResetMillis reads X-Ratelimit-Reset, LD's epoch milliseconds.
func parseResetMillis(v string) (time.Time, bool) {
	ms, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

func parseRemaining(v string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
