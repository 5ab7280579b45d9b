package sources

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of the vercel source.
const (
	defaultVercelBaseURL  = "https://api.vercel.com"
	defaultVercelTokenEnv = "VERCEL_TOKEN"
	// defaultVercelLookback bounds the walk through deployment history. A
	// branch with no deployment this recent counts as gone, so it is long:
	// deleting the environment of a quiet but open PR is worse than keeping
	// a stale one a while.
	defaultVercelLookback = 30 * 24 * time.Hour
)

// vercelType plugs Vercel into Config and New.
func vercelType() sourceType {
	return sourceType{
		name: "vercel",
		keys: []string{
			"base_url", "token_env", "request_timeout", "project_id", "team_id", "lookback",
			"include_building", "exclude_branches", "open_pr_repos", "github_token_env", "github_base_url",
		},
		validate: validateVercel,
		build:    buildVercel,
	}
}

func validateVercel(c Config) error {
	if strings.TrimSpace(c.ProjectID) == "" {
		return errors.New(`project_id: required for type "vercel"`)
	}
	if c.Lookback < 0 {
		return errors.New("lookback: must not be negative")
	}
	for _, p := range c.ExcludeBranches {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return fmt.Errorf("exclude_branches: %q is not a valid glob pattern", p)
		}
	}
	if err := validateRepos("open_pr_repos", c.OpenPRRepos); err != nil {
		return err
	}
	if len(c.OpenPRRepos) == 0 {
		if c.GitHubTokenEnv != "" {
			return errors.New("github_token_env: only used with open_pr_repos")
		}
		if c.GitHubBaseURL != "" {
			return errors.New("github_base_url: only used with open_pr_repos")
		}
	}
	if err := validateEnvName("github_token_env", c.GitHubTokenEnv); err != nil {
		return err
	}
	if c.GitHubBaseURL != "" {
		if _, err := parseBaseURL(c.GitHubBaseURL); err != nil {
			return fmt.Errorf("github_base_url: %w", err)
		}
	}
	return validateAPICommon(c)
}

func buildVercel(c Config, deps Deps) (Source, error) {
	env := cmp.Or(c.TokenEnv, defaultVercelTokenEnv)
	token, err := readToken(deps, "token_env", env)
	if err != nil {
		return nil, err
	}
	var openPRs *GitHub
	if len(c.OpenPRRepos) > 0 {
		ghEnv := cmp.Or(c.GitHubTokenEnv, defaultGitHubTokenEnv)
		ghToken, err := readToken(deps, "github_token_env", ghEnv)
		if err != nil {
			return nil, err
		}
		openPRs, err = NewGitHub(GitHubOptions{
			Name: c.Name, BaseURL: c.GitHubBaseURL, Token: ghToken, TokenEnv: ghEnv, Repos: c.OpenPRRepos,
			RequestTimeout: c.RequestTimeout, HTTPClient: deps.HTTPClient, Logger: deps.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("open_pr_repos: %w", err)
		}
	}
	return NewVercel(VercelOptions{
		Name: c.Name, BaseURL: c.BaseURL, Token: token, TokenEnv: env,
		ProjectID: c.ProjectID, TeamID: c.TeamID, Lookback: c.Lookback,
		IncludeBuilding: c.IncludeBuilding, ExcludeBranches: c.ExcludeBranches, OpenPRs: openPRs,
		RequestTimeout: c.RequestTimeout, HTTPClient: deps.HTTPClient, Logger: deps.Logger,
	})
}

// VercelOptions configure a Vercel source.
type VercelOptions struct {
	Name string
	// BaseURL is the API root; "" means https://api.vercel.com.
	BaseURL string
	Token   string
	// TokenEnv names the variable the token came from, for error hints.
	TokenEnv string
	// ProjectID is the project's ID or name.
	ProjectID string
	// TeamID scopes requests to a team ("team_…"); "" for a personal account.
	TeamID string
	// Lookback is how far back deployments count; zero means 30 days.
	Lookback time.Duration
	// IncludeBuilding counts a branch whose latest deployment is still
	// building as live, not only one with a READY deployment.
	IncludeBuilding bool
	// ExcludeBranches are path.Match globs of branches that are never live.
	ExcludeBranches []string
	// OpenPRs, when set, keeps only branches with an open pull request:
	// Vercel keeps previews after a pull request closes.
	OpenPRs        *GitHub
	RequestTimeout time.Duration
	HTTPClient     *http.Client
	Logger         zerolog.Logger
}

// openPullRequestLister is what the Vercel cross-check needs from GitHub.
type openPullRequestLister interface {
	openPullRequests(ctx context.Context) ([]pullRequest, error)
}

// Vercel lists a project's live preview deployments, one item per git
// branch: the branch's newest READY (with IncludeBuilding, READY or
// BUILDING) preview deployment created within the lookback window. Items are
// named by branch.
//
// Attrs: branch, url (https://…, the deployment's own URL), sha, deployment
// (its uid), state, and pr (meta.githubPrId) when Vercel knows the pull
// request or the open-PR cross-check found it. CreatedAt is the creation
// time of that newest deployment.
//
// Deployments without a git branch (CLI deploys), with a custom environment,
// deleted, soft-deleted by retention or expired are not live.
type Vercel struct {
	name      string
	api       *apiClient
	baseURL   *url.URL
	projectID string
	teamID    string
	lookback  time.Duration
	states    []string
	exclude   []string
	openPRs   openPullRequestLister
	log       zerolog.Logger
}

// NewVercel returns a Vercel source. It fails on a bad option, never on the
// network.
func NewVercel(o VercelOptions) (*Vercel, error) {
	base, err := parseBaseURL(cmp.Or(o.BaseURL, defaultVercelBaseURL))
	if err != nil {
		return nil, fmt.Errorf("base_url: %w", err)
	}
	if o.ProjectID == "" {
		return nil, errors.New("project_id: required")
	}
	v := &Vercel{
		name:      o.Name,
		baseURL:   base,
		projectID: o.ProjectID,
		teamID:    o.TeamID,
		lookback:  cmp.Or(o.Lookback, defaultVercelLookback),
		states:    []string{"READY"},
		exclude:   slices.Clone(o.ExcludeBranches),
		log:       o.Logger,
		api: newAPIClient(apiConfig{
			vendor:     "vercel",
			token:      o.Token,
			tokenEnv:   o.TokenEnv,
			header:     http.Header{"Accept": {"application/json"}},
			httpClient: o.HTTPClient,
			timeout:    o.RequestTimeout,
			limits:     []rateLimitHeaders{xRateLimitHeaders()},
			log:        o.Logger,
		}),
	}
	if o.IncludeBuilding {
		v.states = []string{"BUILDING", "READY"}
	}
	if o.OpenPRs != nil {
		v.openPRs = o.OpenPRs
	}
	return v, nil
}

// Name returns the configured source name.
func (v *Vercel) Name() string { return v.name }

// List walks the project's preview deployments of the lookback window. Any
// failure, of Vercel or of the open-PR cross-check, returns an incomplete
// snapshot and the error.
func (v *Vercel) List(ctx context.Context) (Snapshot, error) {
	incomplete := Snapshot{Source: v.name}
	now := v.api.now()
	since := now.Add(-v.lookback)
	deployments, err := v.deployments(ctx, since)
	if err != nil {
		return incomplete, fmt.Errorf("listing vercel source %q: %w", v.name, err)
	}
	live := v.latestPerBranch(deployments, since, now)
	if v.openPRs != nil {
		prs, err := v.openPRs.openPullRequests(ctx)
		if err != nil {
			return incomplete, fmt.Errorf("listing vercel source %q: cross-checking open pull requests: %w", v.name, err)
		}
		live = withOpenPullRequest(live, prs)
	}
	items := make([]Env, 0, len(live))
	for _, d := range live {
		items = append(items, d.env())
	}
	slices.SortFunc(items, func(a, b Env) int { return strings.Compare(a.Name, b.Name) })
	return Snapshot{Source: v.name, Items: items, Complete: true}, nil
}

// deployments follows until = pagination.next from the newest page to the
// end of the lookback window.
func (v *Vercel) deployments(ctx context.Context, since time.Time) ([]vercelDeployment, error) {
	query := url.Values{
		"projectId": {v.projectID},
		"target":    {"preview"},
		"state":     {strings.Join(v.states, ",")},
		"limit":     {strconv.Itoa(pageSize)},
		"since":     {strconv.FormatInt(since.UnixMilli(), 10)},
	}
	if v.teamID != "" {
		query.Set("teamId", v.teamID)
	}
	var (
		all   []vercelDeployment
		until int64
	)
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("more than %d pages of deployments; refusing a list that may be cut short (shorten lookback)", maxPages)
		}
		if until != 0 {
			query.Set("until", strconv.FormatInt(until, 10))
		}
		u := v.baseURL.JoinPath("v6", "deployments")
		u.RawQuery = query.Encode()
		res, err := v.api.get(ctx, u.String())
		if err != nil {
			return nil, err
		}
		deployments, next, err := parseVercelPage(res.body)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", u, err)
		}
		all = append(all, deployments...)
		if next == nil || *next < since.UnixMilli() {
			return all, nil
		}
		// A cursor that does not move back in time would loop for ever or,
		// worse, skip; Vercel's Terraform provider checks this too.
		if until != 0 && *next >= until {
			return nil, fmt.Errorf("GET %s: pagination.next %d does not move past until %d", u, *next, until)
		}
		until = *next
	}
}

// latestPerBranch keeps each branch's newest live deployment.
func (v *Vercel) latestPerBranch(ds []vercelDeployment, since, now time.Time) []vercelDeployment {
	best := map[string]vercelDeployment{}
	skipped := 0
	for _, d := range ds {
		if !d.preview || d.gone || !slices.Contains(v.states, d.state) ||
			d.created.Before(since) || !d.expires.IsZero() && !d.expires.After(now) {
			continue
		}
		if d.branch == "" || v.excluded(d.branch) {
			skipped++
			continue
		}
		cur, ok := best[d.branch]
		if !ok || d.created.After(cur.created) || d.created.Equal(cur.created) && d.uid > cur.uid {
			best[d.branch] = d
		}
	}
	if skipped > 0 {
		v.log.Debug().Int("deployments", skipped).Msg("skipped deployments without a branch or on an excluded branch")
	}
	live := make([]vercelDeployment, 0, len(best))
	for _, d := range best {
		live = append(live, d)
	}
	return live
}

func (v *Vercel) excluded(branch string) bool {
	for _, p := range v.exclude {
		if ok, _ := path.Match(p, branch); ok {
			return true
		}
	}
	return false
}

// withOpenPullRequest keeps the deployments whose branch, or pull request
// number, belongs to an open pull request of the deployment's repository
// (any configured repository when Vercel does not name it).
func withOpenPullRequest(live []vercelDeployment, prs []pullRequest) []vercelDeployment {
	var kept []vercelDeployment
	for _, d := range live {
		for _, pr := range prs {
			number := strconv.Itoa(pr.Number)
			if !d.inRepo(pr.Repo) || pr.Branch != d.branch && d.pr != number {
				continue
			}
			if d.pr == "" {
				d.pr = number
			}
			kept = append(kept, d)
			break
		}
	}
	return kept
}

// vercelDeployment is a deployment in the fields ldreaper uses.
type vercelDeployment struct {
	uid     string
	url     string
	created time.Time
	state   string
	// preview is false for production, staging and custom environments.
	preview bool
	// gone is true for deleted and retention-soft-deleted deployments.
	gone    bool
	expires time.Time
	branch  string
	sha     string
	pr      string
	org     string
	repo    string
}

func (d vercelDeployment) inRepo(repo string) bool {
	if d.org == "" || d.repo == "" {
		return true
	}
	return strings.EqualFold(repo, d.org+"/"+d.repo)
}

func (d vercelDeployment) env() Env {
	attrs := map[string]string{"branch": d.branch, "deployment": d.uid, "state": d.state}
	if d.url != "" {
		attrs["url"] = "https://" + d.url
	}
	setNonEmpty(attrs, "sha", d.sha)
	setNonEmpty(attrs, "pr", d.pr)
	return Env{Name: d.branch, Attrs: attrs, CreatedAt: d.created}
}

// vercelPage is the response of GET /v6/deployments.
type vercelPage struct {
	Pagination *struct {
		Count int      `json:"count"`
		Next  *float64 `json:"next"`
	} `json:"pagination"`
	Deployments *[]vercelDeploymentJSON `json:"deployments"`
}

type vercelDeploymentJSON struct {
	UID                    string          `json:"uid"`
	URL                    string          `json:"url"` // null while uploading
	Created                float64         `json:"created"`
	CreatedAt              float64         `json:"createdAt"`
	State                  string          `json:"state"`
	ReadyState             string          `json:"readyState"`
	Target                 *string         `json:"target"` // null means preview
	Meta                   map[string]any  `json:"meta"`
	Deleted                float64         `json:"deleted"`
	Undeleted              float64         `json:"undeleted"`
	SoftDeletedByRetention bool            `json:"softDeletedByRetention"`
	Expiration             float64         `json:"expiration"`
	CustomEnvironment      json.RawMessage `json:"customEnvironment"`
}

// parseVercelPage reads one page. A page without its pagination or
// deployments, or whose count disagrees with what it holds, is an error:
// reading it as short would delete live environments.
func parseVercelPage(body []byte) ([]vercelDeployment, *int64, error) {
	var page vercelPage
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, nil, fmt.Errorf("decoding deployments: %w", err)
	}
	if page.Pagination == nil || page.Deployments == nil {
		return nil, nil, errors.New(`response lacks "pagination" or "deployments"`)
	}
	raw := *page.Deployments
	if page.Pagination.Count != len(raw) {
		return nil, nil, fmt.Errorf("pagination.count is %d but the page holds %d deployments", page.Pagination.Count, len(raw))
	}
	var next *int64
	if n := page.Pagination.Next; n != nil {
		if *n <= 0 || *n > math.MaxInt64/2 || *n != math.Trunc(*n) {
			return nil, nil, fmt.Errorf("pagination.next %v is not a timestamp", *n)
		}
		ms := int64(*n)
		next = &ms
	}
	ds := make([]vercelDeployment, 0, len(raw))
	for i, r := range raw {
		d, err := r.deployment()
		if err != nil {
			return nil, nil, fmt.Errorf("deployment %d of the page: %w", i, err)
		}
		ds = append(ds, d)
	}
	return ds, next, nil
}

func (r vercelDeploymentJSON) deployment() (vercelDeployment, error) {
	if r.UID == "" {
		return vercelDeployment{}, errors.New("no uid")
	}
	created := cmp.Or(r.Created, r.CreatedAt)
	if created <= 0 || created > math.MaxInt64/2 {
		return vercelDeployment{}, fmt.Errorf("%s: no creation time", r.UID)
	}
	custom := len(bytes.TrimSpace(r.CustomEnvironment)) > 0 && string(bytes.TrimSpace(r.CustomEnvironment)) != "null"
	d := vercelDeployment{
		uid:     r.UID,
		url:     r.URL,
		created: time.UnixMilli(int64(created)).UTC(),
		state:   cmp.Or(r.State, r.ReadyState),
		preview: (r.Target == nil || *r.Target == "preview") && !custom,
		gone:    r.SoftDeletedByRetention || r.Deleted > r.Undeleted || r.State == "DELETED",
		branch:  metaString(r.Meta, "githubCommitRef", "gitlabCommitRef", "bitbucketCommitRef"),
		sha:     metaString(r.Meta, "githubCommitSha", "gitlabCommitSha", "bitbucketCommitSha"),
		org:     metaString(r.Meta, "githubOrg", "githubCommitOrg"),
		repo:    metaString(r.Meta, "githubRepo", "githubCommitRepo"),
	}
	if r.Expiration > 0 && r.Expiration < math.MaxInt64/2 {
		d.expires = time.UnixMilli(int64(r.Expiration)).UTC()
	}
	// Only a plain number is a pull request number; anything else is left
	// out rather than guessed at.
	if pr := metaString(r.Meta, "githubPrId"); isPRNumber(pr) {
		d.pr = pr
	}
	return d, nil
}

// metaString returns the first of keys that meta holds as a non-empty
// string. Vercel documents meta as a string map; other values are ignored.
func metaString(meta map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := meta[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// isPRNumber accepts 1 to 9 digits without a leading zero.
func isPRNumber(s string) bool {
	if s == "" || len(s) > 9 || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
