package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ohler55/ojg/jp"
	"github.com/ohler55/ojg/oj"
	"github.com/rs/zerolog"
)

// httpType plugs HTTPJSON into Config and New.
func httpType() sourceType {
	return sourceType{
		name:     "http",
		keys:     []string{"url", "token_env", "request_timeout", "items_path", "name_path", "attr_paths", "created_at_path"},
		validate: validateHTTPJSON,
		build: func(c Config, deps Deps) (Source, error) {
			var token string
			if c.TokenEnv != "" {
				var err error
				if token, err = readToken(deps, "token_env", c.TokenEnv); err != nil {
					return nil, err
				}
			}
			return NewHTTPJSON(HTTPJSONOptions{
				Name: c.Name, URL: c.URL, Token: token, TokenEnv: c.TokenEnv,
				ItemsPath: c.ItemsPath, NamePath: c.NamePath, AttrPaths: c.AttrPaths, CreatedAtPath: c.CreatedAtPath,
				RequestTimeout: c.RequestTimeout, HTTPClient: deps.HTTPClient, Logger: deps.Logger,
			})
		},
	}
}

func validateHTTPJSON(c Config) error {
	if strings.TrimSpace(c.URL) == "" {
		return errors.New(`url: required for type "http"`)
	}
	if _, err := parseEndpoint(c.URL); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if _, err := compileHTTPJSONPaths(c.ItemsPath, c.NamePath, c.AttrPaths, c.CreatedAtPath); err != nil {
		return err
	}
	return validateAPICommon(c)
}

// parseEndpoint checks the http source's URL. Unlike a base URL it may carry
// a query.
func parseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q must be an absolute http or https URL", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q must not carry user info; put a token in token_env", raw)
	}
	return u, nil
}

// HTTPJSONOptions configure an HTTP JSON source. Paths are JSONPath
// (RFC 9535, as github.com/ohler55/ojg/jp implements it).
type HTTPJSONOptions struct {
	Name string
	URL  string
	// Token, when set, is sent as a Bearer token.
	Token string
	// TokenEnv names the variable the token came from, for error hints.
	TokenEnv string
	// ItemsPath selects the list of items from the response document. It
	// must name the list itself ("$.previews"), optionally followed by one
	// final wildcard or filter ("$.previews[?(@.state == 'live')]"), so that
	// a missing list is an error rather than an empty one.
	ItemsPath string
	// NamePath selects each item's name ("$.name"; relative to the item).
	NamePath string
	// AttrPaths map attr names to paths relative to the item.
	AttrPaths map[string]string
	// CreatedAtPath, optional, selects an RFC 3339 creation time.
	CreatedAtPath  string
	RequestTimeout time.Duration
	HTTPClient     *http.Client
	Logger         zerolog.Logger
}

// HTTPJSON lists items from any HTTP endpoint that returns JSON: a GET of
// one URL (no paging), with JSONPath expressions picking the list, each
// item's name and its attrs.
//
// The list must exist and be a JSON list: a missing key, null or another
// value is an error, never an empty list. A name must be a string or an
// integer without whitespace; an item without one, or a name listed twice,
// fails the whole list. An attr whose path finds nothing or null is left
// out; a number or boolean is kept as text; an object or a list is an error.
// Items come back sorted by name.
type HTTPJSON struct {
	name  string
	url   string
	api   *apiClient
	paths httpJSONPaths
}

// NewHTTPJSON returns an HTTP JSON source. It fails on a bad URL or path,
// never on the network.
func NewHTTPJSON(o HTTPJSONOptions) (*HTTPJSON, error) {
	u, err := parseEndpoint(o.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	paths, err := compileHTTPJSONPaths(o.ItemsPath, o.NamePath, o.AttrPaths, o.CreatedAtPath)
	if err != nil {
		return nil, err
	}
	return &HTTPJSON{
		name:  o.Name,
		url:   u.String(),
		paths: paths,
		api: newAPIClient(apiConfig{
			vendor:     "http",
			token:      o.Token,
			tokenEnv:   o.TokenEnv,
			header:     http.Header{"Accept": {"application/json"}},
			httpClient: o.HTTPClient,
			timeout:    o.RequestTimeout,
			limits:     []rateLimitHeaders{xRateLimitHeaders(), draftRateLimitHeaders()},
			etags:      true,
			log:        o.Logger,
		}),
	}, nil
}

// Name returns the configured source name.
func (h *HTTPJSON) Name() string { return h.name }

// List fetches the URL and extracts the items. Any failure returns an
// incomplete snapshot and the error.
func (h *HTTPJSON) List(ctx context.Context) (Snapshot, error) {
	incomplete := Snapshot{Source: h.name}
	res, err := h.api.get(ctx, h.url)
	if err != nil {
		return incomplete, fmt.Errorf("listing http source %q: %w", h.name, err)
	}
	items, err := h.paths.extract(res.body)
	if err != nil {
		return incomplete, fmt.Errorf("listing http source %q: GET %s: %w", h.name, h.url, err)
	}
	return Snapshot{Source: h.name, Items: items, Complete: true}, nil
}

// httpJSONPaths are the compiled expressions of an HTTP JSON source.
type httpJSONPaths struct {
	itemsText string
	// list selects the list itself; items, when non-nil, is list plus a
	// final wildcard or filter.
	list, items jp.Expr
	name        jp.Expr
	attrs       map[string]jp.Expr
	createdAt   jp.Expr
}

func compileHTTPJSONPaths(items, name string, attrs map[string]string, createdAt string) (httpJSONPaths, error) {
	var p httpJSONPaths
	if strings.TrimSpace(items) == "" {
		return p, errors.New("items_path: required (a JSONPath to the list, such as \"$.previews\")")
	}
	x, err := jp.ParseString(items)
	if err != nil {
		return p, fmt.Errorf("items_path: parsing %q: %w", items, err)
	}
	p.itemsText = items
	last := len(x) - 1
	switch {
	case singular(x):
		p.list = x
	case last > 0 && isSelection(x[last]) && singular(x[:last]):
		p.list, p.items = x[:last], x
	default:
		return p, fmt.Errorf("items_path: %q must name the list itself, optionally followed by one [*] or [?(…)]", items)
	}
	if strings.TrimSpace(name) == "" {
		return p, errors.New("name_path: required (a JSONPath in an item, such as \"$.name\")")
	}
	if p.name, err = compileItemPath("name_path", name); err != nil {
		return p, err
	}
	p.attrs = make(map[string]jp.Expr, len(attrs))
	for attr, text := range attrs {
		if err := checkAttrKey(attr); err != nil {
			return p, fmt.Errorf("attr_paths: %w", err)
		}
		if p.attrs[attr], err = compileItemPath("attr_paths."+attr, text); err != nil {
			return p, err
		}
	}
	if createdAt != "" {
		if p.createdAt, err = compileItemPath("created_at_path", createdAt); err != nil {
			return p, err
		}
	}
	return p, nil
}

// compileItemPath parses a path evaluated on one item. It must select at most
// one value: a wildcard would pick an arbitrary one.
func compileItemPath(key, text string) (jp.Expr, error) {
	x, err := jp.ParseString(text)
	if err != nil {
		return nil, fmt.Errorf("%s: parsing %q: %w", key, text, err)
	}
	if !singular(x) {
		return nil, fmt.Errorf("%s: %q must select one value (no wildcards, filters, slices, unions or ..)", key, text)
	}
	return x, nil
}

// singular reports whether x can match at most one value.
func singular(x jp.Expr) bool {
	for _, f := range x {
		switch f.(type) {
		case jp.Root, jp.At, jp.Child, jp.Nth, jp.Bracket:
		default:
			return false
		}
	}
	return true
}

func isSelection(f jp.Frag) bool {
	switch f.(type) {
	case jp.Wildcard, *jp.Filter:
		return true
	}
	return false
}

// extract parses a response document and returns its items.
func (p httpJSONPaths) extract(body []byte) ([]Env, error) {
	doc, err := oj.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("parsing the response as JSON: %w", err)
	}
	list, found := p.list.FirstFound(doc)
	if !found || list == nil {
		return nil, fmt.Errorf("items_path %q: the response has no such list", p.itemsText)
	}
	elements, ok := list.([]any)
	if !ok {
		return nil, fmt.Errorf("items_path %q: selects %s, want a list", p.itemsText, describeValue(list))
	}
	if p.items != nil {
		elements = p.items.Get(doc)
	}
	items := make([]Env, 0, len(elements))
	seen := make(map[string]int, len(elements))
	for i, element := range elements {
		env, err := p.item(element)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		if j, dup := seen[env.Name]; dup {
			return nil, fmt.Errorf("item %d: name %q is already the name of item %d", i, env.Name, j)
		}
		seen[env.Name] = i
		items = append(items, env)
	}
	slices.SortFunc(items, func(a, b Env) int { return strings.Compare(a.Name, b.Name) })
	return items, nil
}

func (p httpJSONPaths) item(element any) (Env, error) {
	raw, found := p.name.FirstFound(element)
	if !found || raw == nil {
		return Env{}, fmt.Errorf("name_path %s finds no name", p.name)
	}
	name, ok := nameText(raw)
	if !ok {
		return Env{}, fmt.Errorf("name_path %s selects %s, want a string or an integer", p.name, describeValue(raw))
	}
	if err := checkName(name); err != nil {
		return Env{}, err
	}
	env := Env{Name: name, Attrs: map[string]string{}}
	for _, attr := range slices.Sorted(maps.Keys(p.attrs)) {
		raw, found := p.attrs[attr].FirstFound(element)
		if !found || raw == nil {
			continue
		}
		text, ok := scalarText(raw)
		if !ok {
			return Env{}, fmt.Errorf("item %q: attr_paths.%s selects %s, want a string, number or boolean", name, attr, describeValue(raw))
		}
		env.Attrs[attr] = text
	}
	if p.createdAt != nil {
		raw, found := p.createdAt.FirstFound(element)
		if found && raw != nil {
			s, ok := raw.(string)
			created, err := time.Parse(time.RFC3339, s)
			if !ok || err != nil {
				return Env{}, fmt.Errorf("item %q: created_at_path selects %s, want an RFC 3339 time", name, describeValue(raw))
			}
			env.CreatedAt = created
		}
	}
	return env, nil
}

// nameText accepts strings and integers: IDs are often numbers.
func nameText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case int64:
		return strconv.FormatInt(v, 10), true
	case json.Number:
		if isDigits(strings.TrimPrefix(string(v), "-")) {
			return string(v), true
		}
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return strconv.FormatInt(int64(v), 10), true
		}
	}
	return "", false
}

func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case json.Number:
		return string(v), true
	}
	return "", false
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func describeValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", shorten(v, 40))
	case bool:
		return "a boolean"
	case int64, float64, json.Number:
		return fmt.Sprintf("the number %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}
