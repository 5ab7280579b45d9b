package ldclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// environmentsPage is LD's Environments collection. Only items is required
// by the spec; totalCount is not trusted for paging.
type environmentsPage struct {
	Items      []Environment   `json:"items"`
	TotalCount *int            `json:"totalCount"`
	Links      map[string]link `json:"_links"`
}

type link struct {
	Href string `json:"href"`
}

func (p environmentsPage) next() string { return p.Links["next"].Href }

func decodePage(body []byte) (environmentsPage, error) {
	var p environmentsPage
	if err := json.Unmarshal(body, &p); err != nil {
		return environmentsPage{}, fmt.Errorf("decode environments page: %w", err)
	}
	return p, nil
}

// ListEnvironments returns every environment of project that matches f,
// each key once, in the server's order (sort=createdOn unless f.Sort says
// otherwise, so pages stay stable while environments are added).
//
// It asks for pages of PageSize and follows each page's _links.next until a
// page has no next link or no items. A server that caps pages below what was
// asked is fine: the links carry its own limit. totalCount is never used.
//
// Limitation: LD pages by offset. If an environment on an earlier page is
// deleted while paging, later items shift down one place and one can be
// skipped; a created one can make an item repeat (repeats are dropped). A
// caller reconciling on a schedule tolerates this: a skipped environment is
// simply seen on the next run.
func (c *Client) ListEnvironments(ctx context.Context, project string, f ListFilter) ([]Environment, error) {
	if err := checkKey("project", project); err != nil {
		return nil, fmt.Errorf("list environments: %w", err)
	}
	query, err := listQuery(f, c.pageSize)
	if err != nil {
		return nil, fmt.Errorf("list environments in project %q: %w", project, err)
	}
	pageURL := c.environmentsURL(project)
	pageURL.RawQuery = query

	var envs []Environment
	seen := map[string]bool{}
	visited := map[string]bool{}
	for page := 1; ; page++ {
		if page > c.maxListPages {
			return nil, fmt.Errorf("list environments in project %q: more than %d pages", project, c.maxListPages)
		}
		visited[pageURL.String()] = true
		p, err := c.listPage(ctx, pageURL)
		if err != nil {
			return nil, fmt.Errorf("list environments in project %q (page %d): %w", project, page, err)
		}
		if len(p.Items) == 0 {
			return envs, nil
		}
		for _, env := range p.Items {
			if env.Key == "" {
				c.log.Warn().Str("route", RouteListEnvironments).Str("project", project).Msg("skipping environment without key")
				continue
			}
			if !seen[env.Key] {
				seen[env.Key] = true
				envs = append(envs, env)
			}
		}
		if p.next() == "" {
			return envs, nil
		}
		nextURL, err := c.resolveNext(pageURL, p.next())
		if err != nil {
			return nil, fmt.Errorf("list environments in project %q (page %d): %w", project, page, err)
		}
		if visited[nextURL.String()] {
			return nil, fmt.Errorf("list environments in project %q (page %d): next link %q does not advance", project, page, clean(p.next(), c.token))
		}
		pageURL = nextURL
	}
}

func (c *Client) listPage(ctx context.Context, u *url.URL) (environmentsPage, error) {
	cl := call{route: RouteListEnvironments, method: http.MethodGet, url: u}
	resp, _, err := c.sendIdempotent(ctx, cl)
	if err != nil {
		return environmentsPage{}, err
	}
	if !resp.ok() {
		return environmentsPage{}, c.apiError(cl, resp)
	}
	return decodePage(resp.body)
}

// listQuery encodes f as LD's query string. LD documents filter values
// before URL encoding, and its tag separator is '+', which a query string
// would read as a space: it must go as %2B. Spaces go as %20 so that no
// literal '+' is ever on the wire.
func listQuery(f ListFilter, pageSize int) (string, error) {
	var filters []string
	if len(f.Tags) > 0 {
		for _, t := range f.Tags {
			if t == "" || strings.ContainsAny(t, "+, ") {
				return "", fmt.Errorf("tag filter %q: tags cannot be empty or contain '+', ',' or spaces", t)
			}
		}
		filters = append(filters, "tags:"+strings.Join(f.Tags, "+"))
	}
	if f.Query != "" {
		if strings.Contains(f.Query, ",") {
			return "", fmt.Errorf("query filter %q: cannot contain ','", f.Query)
		}
		filters = append(filters, "query:"+f.Query)
	}
	v := url.Values{}
	v.Set("limit", strconv.Itoa(pageSize))
	v.Set("offset", "0")
	v.Set("sort", cmpOr(f.Sort, "createdOn"))
	if len(filters) > 0 {
		v.Set("filter", strings.Join(filters, ","))
	}
	return strings.ReplaceAll(v.Encode(), "+", "%20"), nil
}

// resolveNext resolves a next link (LD sends relative hrefs) against the
// page it came from. It must stay on the base URL's scheme and host, since
// the token goes with every request, and it must move forward: an offset
// that does not grow would page forever.
func (c *Client) resolveNext(current *url.URL, href string) (*url.URL, error) {
	// The href is server-supplied text and goes into errors only cleaned.
	shown := clean(href, c.token)
	ref, err := url.Parse(href)
	if err != nil {
		// url.Parse's error quotes the href raw, so it is not wrapped.
		return nil, fmt.Errorf("next link %q is not a valid URL", shown)
	}
	next := current.ResolveReference(ref)
	if next.Scheme != c.base.Scheme || next.Host != c.base.Host || next.User != nil {
		return nil, fmt.Errorf("next link %q leaves %s", shown, c.base.Redacted())
	}
	// A base URL behind a path prefix (a proxy) still gets LD's root-relative
	// links: keep them under the prefix.
	if prefix := c.base.EscapedPath(); prefix != "" && ref.Host == "" && strings.HasPrefix(ref.EscapedPath(), "/api/") {
		raw := prefix + ref.EscapedPath()
		decoded, err := url.PathUnescape(raw)
		if err != nil {
			return nil, fmt.Errorf("next link %q: %w", shown, err)
		}
		next.Path, next.RawPath = decoded, raw
	}
	curOffset, curErr := strconv.Atoi(current.Query().Get("offset"))
	nextOffset, nextErr := strconv.Atoi(next.Query().Get("offset"))
	if curErr == nil && nextErr == nil && nextOffset <= curOffset {
		return nil, fmt.Errorf("next link %q does not advance past offset %d", shown, curOffset)
	}
	return next, nil
}

// CountEnvironments returns how many environments project has, cheaply when
// LD's totalCount can be believed. LD describes totalCount only as "the
// number of environments returned", and whether that is the page or the
// whole collection is unverified; so one page of limit=1 is fetched and
// totalCount is used only if it agrees with what that page shows (it is at
// least the items seen, and a next link exists exactly when it counts more
// than them). Otherwise every environment is listed and counted.
func (c *Client) CountEnvironments(ctx context.Context, project string) (int, error) {
	if err := checkKey("project", project); err != nil {
		return 0, fmt.Errorf("count environments: %w", err)
	}
	u := c.environmentsURL(project)
	u.RawQuery = url.Values{"limit": {"1"}, "offset": {"0"}}.Encode()
	p, err := c.listPage(ctx, u)
	if err != nil {
		return 0, fmt.Errorf("count environments in project %q: %w", project, err)
	}
	if n, ok := plausibleTotal(p); ok {
		return n, nil
	}
	c.log.Debug().Str("route", RouteListEnvironments).Str("project", project).Msg("totalCount implausible, counting by listing")
	envs, err := c.ListEnvironments(ctx, project, ListFilter{})
	if err != nil {
		return 0, fmt.Errorf("count environments: %w", err)
	}
	return len(envs), nil
}

func plausibleTotal(p environmentsPage) (int, bool) {
	if p.TotalCount == nil {
		return 0, false
	}
	total, seen := *p.TotalCount, len(p.Items)
	hasNext := p.next() != ""
	if total < seen || hasNext != (total > seen) {
		return 0, false
	}
	return total, true
}
