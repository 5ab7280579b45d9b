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
	// Remaining is the lowest *-Remaining header value seen for the window
	// (LD's latest count, whatever order answers arrived in), -1 when never
	// seen.
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

// rateLimits is shared by all calls of a Client. Besides the last seen
// headers it counts the requests in flight, because a header only says what
// was left when LD admitted that request: requests sent since then, by this
// or other goroutines, have spent more of the window. Pacing on the header
// alone lets every concurrent caller see "1 left" and fire at once.
type rateLimits struct {
	mu     sync.Mutex
	global RateLimitWindow
	routes map[string]RateLimitWindow
	// inFlight counts requests sent and not yet answered: all of them (the
	// global limit counts every route) and per route.
	inFlight      int
	routeInFlight map[string]int
}

func newRateLimits() *rateLimits {
	return &rateLimits{
		global:        RateLimitWindow{Remaining: -1},
		routes:        map[string]RateLimitWindow{},
		routeInFlight: map[string]int{},
	}
}

// reserve counts a request on route as in flight and returns 0 when the
// windows leave more than headroom once every request already in flight is
// counted. Otherwise it reserves nothing and returns how long to wait: until
// the latest reset among the windows that are too low. Checking and counting
// under one lock is what keeps concurrent callers from all taking the last
// request of a window.
func (l *rateLimits) reserve(route string, now time.Time, headroom int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if headroom >= 0 {
		var d time.Duration
		for _, w := range []struct {
			window   RateLimitWindow
			inFlight int
		}{{l.global, l.inFlight}, {l.routes[route], l.routeInFlight[route]}} {
			if w.window.Remaining >= 0 && w.window.Remaining-w.inFlight <= headroom && w.window.Reset.After(now) {
				d = max(d, w.window.Reset.Sub(now))
			}
		}
		if d > 0 {
			return d
		}
	}
	l.inFlight++
	l.routeInFlight[route]++
	return 0
}

// reserveAnyway counts a request that goes out whatever the windows say.
func (l *rateLimits) reserveAnyway(route string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight++
	l.routeInFlight[route]++
}

// complete ends a reserved request: it records the limit headers of its
// response (nil when none arrived) and stops counting it as in flight, in
// one step so that no caller sees the request neither counted in a header
// nor in flight. LD sends one X-Ratelimit-Reset for whichever limits the
// response carries; routes that are not limited send none, and leave the
// state as it was.
func (l *rateLimits) complete(route string, h http.Header) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	l.routeInFlight[route]--
	if h == nil {
		return
	}
	reset, _ := parseResetMillis(h.Get("X-Ratelimit-Reset"))
	if global, ok := parseRemaining(h.Get("X-Ratelimit-Global-Remaining")); ok {
		l.global = mergeWindow(l.global, RateLimitWindow{Remaining: global, Reset: reset})
	}
	if remaining, ok := parseRemaining(h.Get("X-Ratelimit-Route-Remaining")); ok {
		old, seen := l.routes[route]
		if !seen {
			old = RateLimitWindow{Remaining: -1}
		}
		l.routes[route] = mergeWindow(old, RateLimitWindow{Remaining: remaining, Reset: reset})
	}
}

// mergeWindow folds a response's view of a window into what is known.
// Responses arrive out of order when calls run concurrently: within one
// window the count LD has used only grows, so the lowest Remaining is the
// latest; a response from a window that has already been replaced says
// nothing about the current one.
func mergeWindow(known, seen RateLimitWindow) RateLimitWindow {
	switch {
	case known.Remaining < 0 || seen.Reset.After(known.Reset):
		return seen
	case seen.Reset.Equal(known.Reset):
		known.Remaining = min(known.Remaining, seen.Remaining)
		return known
	}
	return known
}

func (l *rateLimits) state() RateLimitState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return RateLimitState{Global: l.global, Routes: maps.Clone(l.routes)}
}

// RateLimits returns what the client knows of LD's rate-limit windows: per
// window the lowest Remaining seen (the latest LD count) and its reset.
func (c *Client) RateLimits() RateLimitState { return c.limits.state() }

// pace waits until the windows leave the call room above Headroom, then
// reserves its place in them; the caller must complete the reservation. It
// waits at most MaxWait in all and then lets the call go: if the window is
// still spent, LD's 429 and its reset take over. It returns ctx's error, with
// nothing reserved, when ctx ends during a wait.
func (c *Client) pace(ctx context.Context, cl call) error {
	var waited time.Duration
	for {
		d := c.limits.reserve(cl.route, c.clock.Now(), c.headroom)
		if d <= 0 {
			return nil
		}
		if waited >= c.maxWait {
			c.limits.reserveAnyway(cl.route)
			return nil
		}
		d = min(d, c.maxWait-waited)
		c.log.Debug().Str("route", cl.route).Str("method", cl.method).Str("key", cl.key).Dur("wait", d).Msg("pacing")
		if err := c.clock.Sleep(ctx, d); err != nil {
			return err
		}
		waited += d
	}
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
