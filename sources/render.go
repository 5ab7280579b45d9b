package sources

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of the render source.
const (
	defaultRenderBaseURL  = "https://api.render.com"
	defaultRenderTokenEnv = "RENDER_API_KEY"
)

// The two kinds of Render preview that preview_types selects.
const (
	// renderServicePreview is a service preview (a pull request preview of
	// one service, or an image preview): a service whose
	// serviceDetails.parentServer names its base service.
	renderServicePreview = "service"
	// renderPreviewEnvironment is a service that a Blueprint preview
	// environment created. Render's API marks these with nothing but their
	// name ("<name> PR #<n>") and slug ("…-pr-<n>").
	renderPreviewEnvironment = "environment"
)

// renderType plugs Render into Config and New.
func renderType() sourceType {
	return sourceType{
		name:     "render",
		keys:     []string{"base_url", "token_env", "request_timeout", "owner_id", "parent_services", "preview_types"},
		validate: validateRender,
		build: func(c Config, deps Deps) (Source, error) {
			env := cmp.Or(c.TokenEnv, defaultRenderTokenEnv)
			token, err := readToken(deps, "token_env", env)
			if err != nil {
				return nil, err
			}
			return NewRender(RenderOptions{
				Name: c.Name, BaseURL: c.BaseURL, Token: token, TokenEnv: env, OwnerID: c.OwnerID,
				ParentServices: c.ParentServices, PreviewTypes: c.PreviewTypes,
				RequestTimeout: c.RequestTimeout, HTTPClient: deps.HTTPClient, Logger: deps.Logger,
			})
		},
	}
}

func validateRender(c Config) error {
	if err := validateNonEmpty("parent_services", c.ParentServices); err != nil {
		return err
	}
	if err := validatePreviewTypes(c.PreviewTypes); err != nil {
		return err
	}
	return validateAPICommon(c)
}

func validatePreviewTypes(types []string) error {
	for _, t := range types {
		if t != renderServicePreview && t != renderPreviewEnvironment {
			return fmt.Errorf("preview_types: %q is not %q or %q", t, renderServicePreview, renderPreviewEnvironment)
		}
	}
	return nil
}

// RenderOptions configure a Render source.
type RenderOptions struct {
	Name string
	// BaseURL is the API root, without /v1; "" means https://api.render.com.
	BaseURL string
	Token   string
	// TokenEnv names the variable the token came from, for error hints.
	TokenEnv string
	// OwnerID limits the list to one workspace ("tea-…"); "" lists every
	// workspace the key can see.
	OwnerID string
	// ParentServices keeps only service previews whose base service has one
	// of these IDs or names; empty keeps all. Preview-environment services
	// have no parent and are not affected.
	ParentServices []string
	// PreviewTypes selects "service" previews, preview-"environment"
	// services, or both (the default, when empty).
	PreviewTypes   []string
	RequestTimeout time.Duration
	HTTPClient     *http.Client
	Logger         zerolog.Logger
}

// Render lists the live previews of a Render workspace. Render has no
// pull-request resource: previews are ordinary services, found by
// GET /v1/services?includePreviews=true.
//
// Services of one pull request (a Blueprint preview environment creates one
// per Blueprint service; two services with pull request previews create one
// each) become one item named "pr-<n>". The number is parsed conservatively,
// from the name suffix " PR #<n>" and the slug suffix "-pr-<n>": when
// neither parses, or the two disagree, the service is not guessed into a
// group. Such a service preview falls back to an item of its own named by
// its service ID ("srv-…") without a pr attr; a service without a parent
// and without a parsable number is not a preview at all.
//
// Attrs: pr (when parsed), service and service_id (comma-separated when a
// pull request has several services, sorted by service name), branch and
// url (of the first service, in that order, that has one). CreatedAt is the
// earliest creation time in the group.
type Render struct {
	name    string
	api     *apiClient
	baseURL *url.URL
	ownerID string
	parents []string
	types   []string
}

// NewRender returns a Render source. It fails on a bad option, never on the
// network.
func NewRender(o RenderOptions) (*Render, error) {
	base, err := parseBaseURL(cmp.Or(o.BaseURL, defaultRenderBaseURL))
	if err != nil {
		return nil, fmt.Errorf("base_url: %w", err)
	}
	if err := validatePreviewTypes(o.PreviewTypes); err != nil {
		return nil, err
	}
	types := slices.Clone(o.PreviewTypes)
	if len(types) == 0 {
		types = []string{renderServicePreview, renderPreviewEnvironment}
	}
	return &Render{
		name:    o.Name,
		baseURL: base,
		ownerID: o.OwnerID,
		parents: slices.Clone(o.ParentServices),
		types:   types,
		api: newAPIClient(apiConfig{
			vendor:     "render",
			token:      o.Token,
			tokenEnv:   o.TokenEnv,
			header:     http.Header{"Accept": {"application/json"}},
			httpClient: o.HTTPClient,
			timeout:    o.RequestTimeout,
			limits:     []rateLimitHeaders{draftRateLimitHeaders()},
			log:        o.Logger,
		}),
	}, nil
}

// Name returns the configured source name.
func (r *Render) Name() string { return r.name }

// List pages through the workspace's services and groups the previews. Any
// failure returns an incomplete snapshot and the error.
func (r *Render) List(ctx context.Context) (Snapshot, error) {
	services, err := r.services(ctx)
	if err != nil {
		return Snapshot{Source: r.name}, fmt.Errorf("listing render source %q: %w", r.name, err)
	}
	groups := map[string][]renderService{}
	for _, s := range services {
		if key, ok := r.groupKey(s); ok {
			groups[key] = append(groups[key], s)
		}
	}
	items := make([]Env, 0, len(groups))
	for key, group := range groups {
		items = append(items, renderEnv(key, group))
	}
	slices.SortFunc(items, func(a, b Env) int { return strings.Compare(a.Name, b.Name) })
	return Snapshot{Source: r.name, Items: items, Complete: true}, nil
}

// groupKey says which item a service belongs to, if it is a wanted preview.
func (r *Render) groupKey(s renderService) (string, bool) {
	if s.parentID != "" {
		if !slices.Contains(r.types, renderServicePreview) {
			return "", false
		}
		if len(r.parents) > 0 && !slices.Contains(r.parents, s.parentID) && !slices.Contains(r.parents, s.parentName) {
			return "", false
		}
		if s.pr > 0 {
			return "pr-" + strconv.Itoa(s.pr), true
		}
		return s.id, true
	}
	if s.pr > 0 && slices.Contains(r.types, renderPreviewEnvironment) {
		return "pr-" + strconv.Itoa(s.pr), true
	}
	return "", false
}

func renderEnv(name string, group []renderService) Env {
	slices.SortFunc(group, func(a, b renderService) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.id, b.id))
	})
	var names, ids []string
	attrs := map[string]string{}
	created := group[0].created
	for _, s := range group {
		names = append(names, s.name)
		ids = append(ids, s.id)
		if _, ok := attrs["url"]; !ok && s.url != "" {
			attrs["url"] = s.url
		}
		if _, ok := attrs["branch"]; !ok && s.branch != "" {
			attrs["branch"] = s.branch
		}
		if s.created.Before(created) {
			created = s.created
		}
	}
	attrs["service"] = strings.Join(names, ",")
	attrs["service_id"] = strings.Join(ids, ",")
	if group[0].pr > 0 {
		attrs["pr"] = strconv.Itoa(group[0].pr)
	}
	return Env{Name: name, Attrs: attrs, CreatedAt: created}
}

// services pages with cursor = the last item's cursor, and stops at a page
// shorter than the limit, as Render documents and its CLI does.
func (r *Render) services(ctx context.Context) ([]renderService, error) {
	query := url.Values{"includePreviews": {"true"}, "limit": {strconv.Itoa(pageSize)}}
	if r.ownerID != "" {
		query.Set("ownerId", r.ownerID)
	}
	var all []renderService
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("more than %d pages of services; refusing a list that may be cut short", maxPages)
		}
		u := r.baseURL.JoinPath("v1", "services")
		u.RawQuery = query.Encode()
		res, err := r.api.get(ctx, u.String())
		if err != nil {
			return nil, err
		}
		services, cursor, err := parseRenderPage(res.body)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", u, err)
		}
		all = append(all, services...)
		if len(services) < pageSize {
			return all, nil
		}
		if seen[cursor] {
			return nil, fmt.Errorf("GET %s: cursor %q repeats; pagination would loop", u, cursor)
		}
		seen[cursor] = true
		query.Set("cursor", cursor)
	}
}

// renderService is a service in the fields ldreaper uses.
type renderService struct {
	id, name, slug string
	parentID       string
	parentName     string
	branch         string
	url            string
	created        time.Time
	pr             int // 0 when it cannot be parsed
}

type renderServiceWithCursor struct {
	Cursor  string             `json:"cursor"`
	Service *renderServiceJSON `json:"service"`
}

type renderServiceJSON struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Slug           string    `json:"slug"`
	Branch         string    `json:"branch"`
	CreatedAt      time.Time `json:"createdAt"`
	ServiceDetails struct {
		URL          string `json:"url"`
		ParentServer *struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"parentServer"`
	} `json:"serviceDetails"`
}

// parseRenderPage reads one page of GET /v1/services: a JSON list of
// {cursor, service}. It returns the cursor of the last item.
func parseRenderPage(body []byte) ([]renderService, string, error) {
	var raw []renderServiceWithCursor
	if err := decodeList(body, &raw); err != nil {
		return nil, "", err
	}
	services := make([]renderService, 0, len(raw))
	for i, item := range raw {
		if item.Service == nil || item.Service.ID == "" || item.Cursor == "" {
			return nil, "", fmt.Errorf("item %d of the page lacks its cursor or service id", i)
		}
		s := item.Service
		rs := renderService{
			id: s.ID, name: s.Name, slug: s.Slug, branch: s.Branch, url: s.ServiceDetails.URL,
			created: s.CreatedAt, pr: renderPRNumber(s.Name, s.Slug),
		}
		if p := s.ServiceDetails.ParentServer; p != nil && p.ID != "" {
			rs.parentID, rs.parentName = p.ID, p.Name
		}
		services = append(services, rs)
	}
	cursor := ""
	if len(raw) > 0 {
		cursor = raw[len(raw)-1].Cursor
	}
	return services, cursor, nil
}

var (
	renderNamePR = regexp.MustCompile(`(?:^|\s)PR #([1-9][0-9]{0,8})$`)
	renderSlugPR = regexp.MustCompile(`-pr-([1-9][0-9]{0,8})$`)
)

// renderPRNumber parses a pull request number from a preview's name and
// slug, or returns 0. When both carry a number they must agree.
func renderPRNumber(name, slug string) int {
	fromName := submatchInt(renderNamePR, name)
	fromSlug := submatchInt(renderSlugPR, slug)
	switch {
	case fromName > 0 && fromSlug > 0 && fromName != fromSlug:
		return 0
	case fromName > 0:
		return fromName
	default:
		return fromSlug
	}
}

func submatchInt(re *regexp.Regexp, s string) int {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0
	}
	return n
}
