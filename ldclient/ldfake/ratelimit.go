package ldfake

import (
	"net/http"
	"strconv"
	"time"
)

// rateLimiter is LD's account-wide limiting: a global budget shared by all
// routes and a budget per route, both per fixed window. Rejected requests do
// not consume budget.
type rateLimiter struct {
	window       time.Duration
	global       int
	routeDefault int
	routes       map[string]int
	retryAfter   bool

	windowStart time.Time
	globalUsed  int
	routeUsed   map[string]int
}

func newRateLimiter(o Options) rateLimiter {
	return rateLimiter{
		window:       o.RateWindow,
		global:       o.GlobalBudget,
		routeDefault: o.RouteBudget,
		routes:       o.RouteBudgets,
		retryAfter:   o.RetryAfter,
		routeUsed:    map[string]int{},
	}
}

func (l *rateLimiter) routeBudget(route string) int {
	if b, ok := l.routes[route]; ok {
		return b
	}
	return l.routeDefault
}

// admit counts one request on route at now. It returns the headers the
// response carries and whether the request may proceed. LD says "Routes that
// are not rate limited may not contain any of the headers", so a header
// appears only when its budget applies, and none without any budget.
func (l *rateLimiter) admit(now time.Time, route string) (http.Header, bool) {
	global, routeBudget := l.global, l.routeBudget(route)
	if global <= 0 && routeBudget <= 0 {
		return nil, true
	}
	start := now.Truncate(l.window)
	if !start.Equal(l.windowStart) {
		l.windowStart = start
		l.globalUsed = 0
		clear(l.routeUsed)
	}
	reset := start.Add(l.window)
	admitted := (global <= 0 || l.globalUsed < global) && (routeBudget <= 0 || l.routeUsed[route] < routeBudget)
	if admitted {
		l.globalUsed++
		l.routeUsed[route]++
	}
	h := http.Header{}
	if global > 0 {
		h.Set("X-Ratelimit-Global-Remaining", strconv.Itoa(max(0, global-l.globalUsed)))
	}
	if routeBudget > 0 {
		h.Set("X-Ratelimit-Route-Remaining", strconv.Itoa(max(0, routeBudget-l.routeUsed[route])))
	}
	h.Set("X-Ratelimit-Reset", strconv.FormatInt(reset.UnixMilli(), 10))
	if !admitted && l.retryAfter {
		seconds := (reset.Sub(now) + time.Second - 1) / time.Second
		h.Set("Retry-After", strconv.FormatInt(max(1, int64(seconds)), 10))
	}
	return h, admitted
}
