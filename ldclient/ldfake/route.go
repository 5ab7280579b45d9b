package ldfake

import (
	"net/http"
	"net/url"
	"strings"
)

// route is a matched API route.
type route struct {
	name        string
	project     string
	environment string // empty on the collection routes
}

func (r route) mutates() bool {
	switch r.name {
	case RouteCreateEnvironment, RouteDeleteEnvironment, RoutePatchEnvironment:
		return true
	}
	return false
}

// parseRoute matches method and escaped path against the five environment
// operations. The second result is 0 on a match, else 404 (unknown path) or
// 405 (known path, other method).
func parseRoute(method, escapedPath string) (route, int) {
	rest, ok := strings.CutPrefix(escapedPath, "/api/v2/projects/")
	if !ok {
		return route{}, http.StatusNotFound
	}
	segments := strings.Split(rest, "/")
	if len(segments) < 2 || len(segments) > 3 || segments[1] != "environments" {
		return route{}, http.StatusNotFound
	}
	var rt route
	for i, dst := range []*string{&rt.project, nil, &rt.environment}[:len(segments)] {
		if dst == nil {
			continue
		}
		v, err := url.PathUnescape(segments[i])
		if err != nil || v == "" {
			return route{}, http.StatusNotFound
		}
		*dst = v
	}
	if len(segments) == 2 {
		switch method {
		case http.MethodGet:
			rt.name = RouteListEnvironments
		case http.MethodPost:
			rt.name = RouteCreateEnvironment
		default:
			return route{}, http.StatusMethodNotAllowed
		}
		return rt, 0
	}
	switch method {
	case http.MethodGet:
		rt.name = RouteGetEnvironment
	case http.MethodPatch:
		rt.name = RoutePatchEnvironment
	case http.MethodDelete:
		rt.name = RouteDeleteEnvironment
	default:
		return route{}, http.StatusMethodNotAllowed
	}
	return rt, 0
}
