package sources

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
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

// Defaults of the github source.
const (
	defaultGitHubBaseURL  = "https://api.github.com"
	defaultGitHubTokenEnv = "GITHUB_TOKEN"
	// githubPagingAttempts bounds how often a repository's open pull requests
	// are walked again when they changed between pages.
	githubPagingAttempts = 3
)

// repoPattern is what GitHub allows in owner and repository names.
var repoPattern = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?/[A-Za-z0-9._-]+$`)

// githubType plugs GitHub into Config and New.
func githubType() sourceType {
	return sourceType{
		name:     "github",
		keys:     []string{"base_url", "token_env", "request_timeout", "repos", "labels", "base_branches"},
		validate: validateGitHub,
		build: func(c Config, deps Deps) (Source, error) {
			env := cmp.Or(c.TokenEnv, defaultGitHubTokenEnv)
			token, err := readToken(deps, "token_env", env)
			if err != nil {
				return nil, err
			}
			return NewGitHub(GitHubOptions{
				Name: c.Name, BaseURL: c.BaseURL, Token: token, TokenEnv: env,
				Repos: c.Repos, Labels: c.Labels, BaseBranches: c.BaseBranches,
				RequestTimeout: c.RequestTimeout, HTTPClient: deps.HTTPClient, Logger: deps.Logger,
			})
		},
	}
}

func validateGitHub(c Config) error {
	if len(c.Repos) == 0 {
		return errors.New(`repos: required for type "github" (a list of "owner/repo")`)
	}
	if err := validateRepos("repos", c.Repos); err != nil {
		return err
	}
	if err := validateNonEmpty("labels", c.Labels); err != nil {
		return err
	}
	if err := validateNonEmpty("base_branches", c.BaseBranches); err != nil {
		return err
	}
	return validateAPICommon(c)
}

func validateRepos(key string, repos []string) error {
	seen := map[string]bool{}
	for _, r := range repos {
		if !repoPattern.MatchString(r) {
			return fmt.Errorf("%s: %q is not \"owner/repo\"", key, r)
		}
		if seen[strings.ToLower(r)] {
			return fmt.Errorf("%s: %q is listed twice", key, r)
		}
		seen[strings.ToLower(r)] = true
	}
	return nil
}

func validateNonEmpty(key string, values []string) error {
	for _, v := range values {
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("%s: empty entry", key)
		}
	}
	return nil
}

// GitHubOptions configure a GitHub source.
type GitHubOptions struct {
	Name string
	// BaseURL is the REST API root; "" means https://api.github.com. GitHub
	// Enterprise Server uses https://HOST/api/v3.
	BaseURL string
	Token   string
	// TokenEnv names the variable the token came from, for error hints.
	TokenEnv string
	// Repos are "owner/repo" names.
	Repos []string
	// Labels keeps only pull requests with at least one of these labels
	// (case-insensitive, as GitHub compares labels); empty keeps all.
	Labels []string
	// BaseBranches keeps only pull requests into one of these branches;
	// empty keeps all.
	BaseBranches   []string
	RequestTimeout time.Duration
	HTTPClient     *http.Client
	Logger         zerolog.Logger
}

// GitHub lists the open pull requests of one or more repositories, one item
// per pull request, named "owner/repo#N" (unique across repositories; the
// attr pr is N alone, for key templates such as "pr-{{ .Attrs.pr }}").
//
// Attrs: pr, branch (head ref), base, author (login), repo, url, sha.
// CreatedAt is the pull request's creation time.
//
// Requests are conditional (If-None-Match), so an unchanged list costs no
// rate-limit quota. GitHub pages by offset, so a pull request closed while
// the pages are read would shift a later one out of sight; after a walk of
// several pages the earlier pages are fetched again (free when unchanged)
// and the walk is repeated if any changed.
type GitHub struct {
	name    string
	api     *apiClient
	baseURL *url.URL
	repos   []string
	labels  []string
	bases   []string
	log     zerolog.Logger
}

// NewGitHub returns a GitHub source. It fails on a bad option, never on the
// network.
func NewGitHub(o GitHubOptions) (*GitHub, error) {
	base, err := parseBaseURL(cmp.Or(o.BaseURL, defaultGitHubBaseURL))
	if err != nil {
		return nil, fmt.Errorf("base_url: %w", err)
	}
	if len(o.Repos) == 0 {
		return nil, errors.New("repos: at least one repository is required")
	}
	if err := validateRepos("repos", o.Repos); err != nil {
		return nil, err
	}
	labels := make([]string, len(o.Labels))
	for i, l := range o.Labels {
		labels[i] = strings.ToLower(l)
	}
	return &GitHub{
		name:    o.Name,
		baseURL: base,
		repos:   slices.Clone(o.Repos),
		labels:  labels,
		bases:   slices.Clone(o.BaseBranches),
		log:     o.Logger,
		api: newAPIClient(apiConfig{
			vendor:   "github",
			token:    o.Token,
			tokenEnv: o.TokenEnv,
			header: http.Header{
				"Accept":               {"application/vnd.github+json"},
				"X-Github-Api-Version": {"2022-11-28"},
			},
			httpClient: o.HTTPClient,
			timeout:    o.RequestTimeout,
			limits:     []rateLimitHeaders{xRateLimitHeaders()},
			etags:      true,
			log:        o.Logger,
		}),
	}, nil
}

// Name returns the configured source name.
func (g *GitHub) Name() string { return g.name }

// List returns the open pull requests that pass the filters. Any failure
// returns an incomplete snapshot and the error.
func (g *GitHub) List(ctx context.Context) (Snapshot, error) {
	prs, err := g.openPullRequests(ctx)
	if err != nil {
		return Snapshot{Source: g.name}, fmt.Errorf("listing github source %q: %w", g.name, err)
	}
	items := make([]Env, 0, len(prs))
	for _, pr := range prs {
		if !g.keep(pr) {
			continue
		}
		items = append(items, pr.env())
	}
	slices.SortFunc(items, func(a, b Env) int { return strings.Compare(a.Name, b.Name) })
	return Snapshot{Source: g.name, Items: items, Complete: true}, nil
}

func (g *GitHub) keep(pr pullRequest) bool {
	if len(g.bases) > 0 && !slices.Contains(g.bases, pr.Base) {
		return false
	}
	if len(g.labels) == 0 {
		return true
	}
	for _, l := range pr.Labels {
		if slices.Contains(g.labels, strings.ToLower(l)) {
			return true
		}
	}
	return false
}

// pullRequest is an open pull request, in the fields ldreaper uses.
type pullRequest struct {
	Repo      string // "owner/repo" as configured
	Number    int
	Branch    string // head ref
	Base      string
	Author    string
	URL       string
	SHA       string
	Labels    []string
	CreatedAt time.Time
}

func (pr pullRequest) env() Env {
	attrs := map[string]string{
		"pr":   strconv.Itoa(pr.Number),
		"repo": pr.Repo,
	}
	setNonEmpty(attrs, "branch", pr.Branch)
	setNonEmpty(attrs, "base", pr.Base)
	setNonEmpty(attrs, "author", pr.Author)
	setNonEmpty(attrs, "url", pr.URL)
	setNonEmpty(attrs, "sha", pr.SHA)
	return Env{Name: pr.Repo + "#" + strconv.Itoa(pr.Number), Attrs: attrs, CreatedAt: pr.CreatedAt}
}

// setNonEmpty sets attrs[key] only when the value is known, so that a key
// template using an unknown attr fails loudly instead of rendering "".
func setNonEmpty(attrs map[string]string, key, value string) {
	if value != "" {
		attrs[key] = value
	}
}

// openPullRequests lists the open pull requests of every repository,
// unfiltered.
func (g *GitHub) openPullRequests(ctx context.Context) ([]pullRequest, error) {
	var all []pullRequest
	for _, repo := range g.repos {
		prs, err := g.listRepo(ctx, repo)
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", repo, err)
		}
		all = append(all, prs...)
	}
	return all, nil
}

// listRepo walks the pages of one repository until a walk is consistent.
func (g *GitHub) listRepo(ctx context.Context, repo string) ([]pullRequest, error) {
	first := g.baseURL.JoinPath("repos", repo, "pulls")
	first.RawQuery = url.Values{"state": {"open"}, "per_page": {strconv.Itoa(pageSize)}}.Encode()
	for walk := 1; ; walk++ {
		prs, pages, err := g.walk(ctx, repo, first.String())
		if err != nil {
			return nil, err
		}
		changed, err := g.changedSince(ctx, pages[:len(pages)-1])
		if err != nil {
			return nil, err
		}
		if !changed {
			return prs, nil
		}
		if walk == githubPagingAttempts {
			return nil, fmt.Errorf("open pull requests changed while their %d pages were read, %d times in a row", len(pages), walk)
		}
		g.log.Debug().Str("repo", repo).Int("pages", len(pages)).Msg("pull requests changed while paging; reading again")
	}
}

// walk follows the Link header from first to the last page.
func (g *GitHub) walk(ctx context.Context, repo, first string) ([]pullRequest, []string, error) {
	var (
		prs   []pullRequest
		pages []string
		seen  = map[int]bool{}
	)
	next := first
	for next != "" {
		if slices.Contains(pages, next) {
			return nil, nil, fmt.Errorf("pagination loops back to %s", next)
		}
		if len(pages) == maxPages {
			return nil, nil, fmt.Errorf("more than %d pages of open pull requests; refusing a list that may be cut short", maxPages)
		}
		pages = append(pages, next)
		res, err := g.api.get(ctx, next)
		if err != nil {
			return nil, nil, err
		}
		page, err := parseGitHubPulls(res.body)
		if err != nil {
			return nil, nil, fmt.Errorf("GET %s: %w", next, err)
		}
		for _, p := range page {
			// Offset paging repeats an item when one is opened meanwhile.
			if seen[p.Number] {
				continue
			}
			seen[p.Number] = true
			p.Repo = repo
			prs = append(prs, p)
		}
		if next, err = g.nextPage(res.header); err != nil {
			return nil, nil, err
		}
	}
	return prs, pages, nil
}

// changedSince re-reads pages conditionally: a 304 costs no quota and says
// the page is as it was.
func (g *GitHub) changedSince(ctx context.Context, pages []string) (bool, error) {
	for _, p := range pages {
		res, err := g.api.get(ctx, p)
		if err != nil {
			return false, err
		}
		if !res.notModified {
			return true, nil
		}
	}
	return false, nil
}

func (g *GitHub) nextPage(h http.Header) (string, error) {
	next, ok := parseLinkNext(h.Values("Link"))
	if !ok {
		return "", nil
	}
	u, err := g.baseURL.Parse(next)
	if err != nil {
		return "", fmt.Errorf("link to the next page %q: %w", next, err)
	}
	if !sameOrigin(g.baseURL, u) {
		return "", fmt.Errorf("link to the next page %q leaves %s; not sending the token there", next, g.baseURL.Host)
	}
	return u.String(), nil
}

// parseLinkNext returns the rel="next" target of RFC 8288 Link header
// values, as GitHub sends them: <url>; rel="next", <url>; rel="last".
func parseLinkNext(values []string) (string, bool) {
	for _, v := range values {
		for _, link := range splitLinks(v) {
			link = strings.TrimSpace(link)
			if !strings.HasPrefix(link, "<") {
				continue
			}
			target, params, ok := strings.Cut(link[1:], ">")
			if !ok {
				continue
			}
			for _, p := range strings.Split(params, ";") {
				name, value, ok := strings.Cut(p, "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(name), "rel") {
					continue
				}
				// rel may list several space-separated types.
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(value), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target, true
					}
				}
			}
		}
	}
	return "", false
}

// splitLinks splits a Link header value at the commas between links, not at
// those inside a <target> or a quoted parameter.
func splitLinks(v string) []string {
	var (
		links           []string
		start           int
		inTarget, inStr bool
	)
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case inStr:
			inStr = c != '"'
		case inTarget:
			inTarget = c != '>'
		case c == '<':
			inTarget = true
		case c == '"':
			inStr = true
		case c == ',':
			links = append(links, v[start:i])
			start = i + 1
		}
	}
	return append(links, v[start:])
}

// githubPull is the part of GitHub's pull request object ldreaper reads.
type githubPull struct {
	Number    int       `json:"number"`
	State     string    `json:"state"`
	HTMLURL   string    `json:"html_url"`
	CreatedAt time.Time `json:"created_at"`
	Head      struct {
		Ref string `json:"ref"`
		SHA string `json:"sha"`
	} `json:"head"`
	Base struct {
		Ref string `json:"ref"`
	} `json:"base"`
	User *struct {
		Login string `json:"login"`
	} `json:"user"`
	Labels []struct {
		Name string `json:"name"`
	} `json:"labels"`
}

// parseGitHubPulls reads one page of GET /repos/{o}/{r}/pulls. Anything but a
// list of pull requests with numbers is an error, never an empty page.
func parseGitHubPulls(body []byte) ([]pullRequest, error) {
	var raw []githubPull
	if err := decodeList(body, &raw); err != nil {
		return nil, err
	}
	prs := make([]pullRequest, 0, len(raw))
	for i, p := range raw {
		if p.Number <= 0 {
			return nil, fmt.Errorf("pull request %d of the page has no number", i)
		}
		if p.State != "" && p.State != "open" {
			continue
		}
		pr := pullRequest{
			Number: p.Number, Branch: p.Head.Ref, SHA: p.Head.SHA, Base: p.Base.Ref,
			URL: p.HTMLURL, CreatedAt: p.CreatedAt,
		}
		if p.User != nil {
			pr.Author = p.User.Login
		}
		for _, l := range p.Labels {
			pr.Labels = append(pr.Labels, l.Name)
		}
		prs = append(prs, pr)
	}
	return prs, nil
}

// decodeList decodes a JSON array into list, refusing null and other
// values: an error page or an object must not read as an empty list.
func decodeList(body []byte, list any) error {
	trimmed := bytes.TrimSpace(body)
	if !bytes.HasPrefix(trimmed, []byte("[")) {
		return fmt.Errorf("response is not a JSON list: %q", shorten(string(trimmed), 80))
	}
	if err := json.Unmarshal(body, list); err != nil {
		return fmt.Errorf("decoding the response: %w", err)
	}
	return nil
}

func shorten(s string, n int) string {
	if cut, truncated := truncateRunes(s, n); truncated {
		return cut + "…"
	}
	return s
}
