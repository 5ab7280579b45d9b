package sources

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
)

func TestAPISourceConfigValidate(t *testing.T) {
	vercel := Config{Name: "v", Type: "vercel", ProjectID: "prj_1"}
	render := Config{Name: "r", Type: "render"}
	github := Config{Name: "g", Type: "github", Repos: []string{"acme/web"}}
	httpSrc := Config{Name: "h", Type: "http", URL: "https://previews.example/api?team=a", ItemsPath: "$.items", NamePath: "$.id"}
	with := func(c Config, edit func(*Config)) Config {
		edit(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // exact; "" means valid
	}{
		{name: "vercel minimal", cfg: vercel},
		{name: "vercel full", cfg: with(vercel, func(c *Config) {
			c.TeamID, c.Lookback, c.IncludeBuilding, c.ExcludeBranches = "team_1", 72*time.Hour, true, []string{"dependabot/*"}
			c.OpenPRRepos, c.GitHubTokenEnv, c.GitHubBaseURL = []string{"acme/web"}, "GH_TOKEN", "https://ghe.example/api/v3"
			c.BaseURL, c.TokenEnv, c.RequestTimeout, c.KeyPrefix = "https://api.vercel.com", "VERCEL_TOKEN", 10*time.Second, "vc-"
		})},
		{name: "vercel without project", cfg: with(vercel, func(c *Config) { c.ProjectID = " " }), wantErr: `source "v": project_id: required for type "vercel"`},
		{name: "vercel negative lookback", cfg: with(vercel, func(c *Config) { c.Lookback = -time.Hour }), wantErr: `source "v": lookback: must not be negative`},
		{name: "vercel bad glob", cfg: with(vercel, func(c *Config) { c.ExcludeBranches = []string{"feat/["} }), wantErr: `source "v": exclude_branches: "feat/[" is not a valid glob pattern`},
		{name: "vercel bad repo", cfg: with(vercel, func(c *Config) { c.OpenPRRepos = []string{"acme"} }), wantErr: `source "v": open_pr_repos: "acme" is not "owner/repo"`},
		{name: "vercel github token without repos", cfg: with(vercel, func(c *Config) { c.GitHubTokenEnv = "GH" }), wantErr: `source "v": github_token_env: only used with open_pr_repos`},
		{name: "vercel github url without repos", cfg: with(vercel, func(c *Config) { c.GitHubBaseURL = "https://x" }), wantErr: `source "v": github_base_url: only used with open_pr_repos`},
		{name: "vercel bad github url", cfg: with(vercel, func(c *Config) { c.OpenPRRepos, c.GitHubBaseURL = []string{"a/b"}, "ftp://x" }),
			wantErr: `source "v": github_base_url: "ftp://x" must be an absolute http or https URL`},
		{name: "vercel takes no repos", cfg: with(vercel, func(c *Config) { c.Repos = []string{"a/b"} }), wantErr: `source "v": repos: not a key of type "vercel"`},
		{name: "vercel takes no path", cfg: with(vercel, func(c *Config) { c.Path = "p" }), wantErr: `source "v": path: not a key of type "vercel"`},

		{name: "render minimal", cfg: render},
		{name: "render full", cfg: with(render, func(c *Config) {
			c.OwnerID, c.ParentServices, c.PreviewTypes = "tea-1", []string{"web", "srv-2"}, []string{"service", "environment"}
		})},
		{name: "render bad preview type", cfg: with(render, func(c *Config) { c.PreviewTypes = []string{"image"} }), wantErr: `source "r": preview_types: "image" is not "service" or "environment"`},
		{name: "render empty parent", cfg: with(render, func(c *Config) { c.ParentServices = []string{""} }), wantErr: `source "r": parent_services: empty entry`},
		{name: "render takes no project", cfg: with(render, func(c *Config) { c.ProjectID = "p" }), wantErr: `source "r": project_id: not a key of type "render"`},

		{name: "github minimal", cfg: github},
		{name: "github full", cfg: with(github, func(c *Config) {
			c.Repos, c.Labels, c.BaseBranches = []string{"acme/web", "acme/api.v2"}, []string{"preview"}, []string{"main"}
		})},
		{name: "github without repos", cfg: with(github, func(c *Config) { c.Repos = nil }), wantErr: `source "g": repos: required for type "github" (a list of "owner/repo")`},
		{name: "github bad repo", cfg: with(github, func(c *Config) { c.Repos = []string{"acme/web/extra"} }), wantErr: `source "g": repos: "acme/web/extra" is not "owner/repo"`},
		{name: "github repo twice", cfg: with(github, func(c *Config) { c.Repos = []string{"acme/web", "Acme/Web"} }), wantErr: `source "g": repos: "Acme/Web" is listed twice`},
		{name: "github empty label", cfg: with(github, func(c *Config) { c.Labels = []string{" "} }), wantErr: `source "g": labels: empty entry`},
		{name: "github empty base", cfg: with(github, func(c *Config) { c.BaseBranches = []string{""} }), wantErr: `source "g": base_branches: empty entry`},

		{name: "http minimal", cfg: httpSrc},
		{name: "http without url", cfg: with(httpSrc, func(c *Config) { c.URL = "" }), wantErr: `source "h": url: required for type "http"`},
		{name: "http relative url", cfg: with(httpSrc, func(c *Config) { c.URL = "/api" }), wantErr: `source "h": url: "/api" must be an absolute http or https URL`},
		{name: "http url with a password", cfg: with(httpSrc, func(c *Config) { c.URL = "https://u:p@x/api" }), wantErr: `source "h": url: "https://u:p@x/api" must not carry user info; put a token in token_env`},
		{name: "http without items_path", cfg: with(httpSrc, func(c *Config) { c.ItemsPath = "" }), wantErr: `source "h": items_path: required (a JSONPath to the list, such as "$.previews")`},
		{name: "http base_url is not its key", cfg: with(httpSrc, func(c *Config) { c.BaseURL = "https://x" }), wantErr: `source "h": base_url: not a key of type "http"`},

		{name: "bad base_url", cfg: with(github, func(c *Config) { c.BaseURL = "https://api.github.com?x=1" }), wantErr: `source "g": base_url: "https://api.github.com?x=1" must have no query, fragment or user info`},
		{name: "bad token_env", cfg: with(github, func(c *Config) { c.TokenEnv = "GITHUB-TOKEN" }), wantErr: `source "g": token_env: "GITHUB-TOKEN" is not an environment variable name`},
		{name: "negative request_timeout", cfg: with(render, func(c *Config) { c.RequestTimeout = -time.Second }), wantErr: `source "r": request_timeout: must not be negative`},
		{name: "file takes no token_env", cfg: Config{Name: "f", Type: "file", Path: "p", TokenEnv: "X"}, wantErr: `source "f": token_env: not a key of type "file"`},

		{name: "key_prefix on a file source", cfg: Config{Name: "f", Type: "file", Path: "p", KeyPrefix: "Team.A_1-"}},
		{name: "key_prefix too long", cfg: with(github, func(c *Config) { c.KeyPrefix = strings.Repeat("a", 21) }),
			wantErr: `source "g": key_prefix: "` + strings.Repeat("a", 21) + `" must be 1 to 20 characters of a-z, A-Z, 0-9, ".", "_", "-", starting with a letter or digit`},
		{name: "key_prefix with template syntax", cfg: with(github, func(c *Config) { c.KeyPrefix = "{{.Name}}" }),
			wantErr: `source "g": key_prefix: "{{.Name}}" must be 1 to 20 characters of a-z, A-Z, 0-9, ".", "_", "-", starting with a letter or digit`},
		{name: "key_prefix starting with a hyphen", cfg: with(github, func(c *Config) { c.KeyPrefix = "-x" }),
			wantErr: `source "g": key_prefix: "-x" must be 1 to 20 characters of a-z, A-Z, 0-9, ".", "_", "-", starting with a letter or digit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if err := tt.cfg.Validate(); err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.wantErr, got); diff != "" {
				t.Errorf("Validate() error (-want +got):\n%s", diff)
			}
		})
	}
}

// Tokens come from the environment variables the config names, with a
// default per vendor, and a missing one fails New with the variable's name.
func TestNewAPISources(t *testing.T) {
	env := map[string]string{
		"VERCEL_TOKEN": "v-tok", "RENDER_API_KEY": "r-tok", "GITHUB_TOKEN": "g-tok", "MY_TOKEN": "m-tok", "BLANK": "  ",
	}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name      string
		cfg       Config
		wantType  string
		wantToken string
		wantErr   string
	}{
		{name: "vercel default env", cfg: Config{Name: "v", Type: "vercel", ProjectID: "p"}, wantType: "*sources.Vercel", wantToken: "v-tok"},
		{name: "render default env", cfg: Config{Name: "r", Type: "render"}, wantType: "*sources.Render", wantToken: "r-tok"},
		{name: "github default env", cfg: Config{Name: "g", Type: "github", Repos: []string{"a/b"}}, wantType: "*sources.GitHub", wantToken: "g-tok"},
		{name: "named env", cfg: Config{Name: "g", Type: "github", Repos: []string{"a/b"}, TokenEnv: "MY_TOKEN"}, wantType: "*sources.GitHub", wantToken: "m-tok"},
		{name: "http without a token", cfg: Config{Name: "h", Type: "http", URL: "http://x/y", ItemsPath: "$", NamePath: "$.id"}, wantType: "*sources.HTTPJSON", wantToken: ""},
		{name: "http with a token", cfg: Config{Name: "h", Type: "http", URL: "http://x/y", ItemsPath: "$", NamePath: "$.id", TokenEnv: "MY_TOKEN"}, wantType: "*sources.HTTPJSON", wantToken: "m-tok"},
		{name: "unset env", cfg: Config{Name: "g", Type: "github", Repos: []string{"a/b"}, TokenEnv: "NOPE"},
			wantErr: `source "g": token_env: environment variable NOPE is empty or unset`},
		{name: "blank env", cfg: Config{Name: "r", Type: "render", TokenEnv: "BLANK"},
			wantErr: `source "r": token_env: environment variable BLANK is empty or unset`},
		{name: "http with an unset env", cfg: Config{Name: "h", Type: "http", URL: "http://x/y", ItemsPath: "$", NamePath: "$.id", TokenEnv: "NOPE"},
			wantErr: `source "h": token_env: environment variable NOPE is empty or unset`},
		{name: "vercel cross-check needs a GitHub token", cfg: Config{Name: "v", Type: "vercel", ProjectID: "p", OpenPRRepos: []string{"a/b"}, GitHubTokenEnv: "NOPE"},
			wantErr: `source "v": github_token_env: environment variable NOPE is empty or unset`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := New(tt.cfg, Deps{Getenv: getenv})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("New() = %v, want error %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var api *apiClient
			switch s := src.(type) {
			case *Vercel:
				api = s.api
			case *Render:
				api = s.api
			case *GitHub:
				api = s.api
			case *HTTPJSON:
				api = s.api
			}
			if got := fmt.Sprintf("%T", src); got != tt.wantType || api.token != tt.wantToken || src.Name() != tt.cfg.Name {
				t.Errorf("New() = %s named %q with token %q; want %s named %q with token %q", got, src.Name(), api.token, tt.wantType, tt.cfg.Name, tt.wantToken)
			}
		})
	}

	// The cross-check gets its own GitHub client with the GitHub token.
	src, err := New(Config{Name: "v", Type: "vercel", ProjectID: "p", OpenPRRepos: []string{"a/b"}}, Deps{Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	gh, ok := src.(*Vercel).openPRs.(*GitHub)
	if !ok || gh.api.token != "g-tok" || src.(*Vercel).api.token != "v-tok" {
		t.Errorf("cross-check = %T; tokens not kept apart", src.(*Vercel).openPRs)
	}
}

// The toml tags are part of the config contract: users' files depend on them.
func TestAPIConfigTOMLKeys(t *testing.T) {
	const doc = `
[[source]]
name = "vercel"
type = "vercel"
project_id = "prj_1"
team_id = "team_1"
lookback = "336h"
include_building = true
exclude_branches = ["main"]
open_pr_repos = ["acme/web"]
github_token_env = "GH_TOKEN"
github_base_url = "https://ghe.example/api/v3"
base_url = "https://api.vercel.com"
token_env = "VERCEL_TOKEN"
request_timeout = "20s"
key_prefix = "vc-"

[[source]]
name = "render"
type = "render"
owner_id = "tea-1"
parent_services = ["web"]
preview_types = ["service"]

[[source]]
name = "prs"
type = "github"
repos = ["acme/web"]
labels = ["preview"]
base_branches = ["main"]

[[source]]
name = "api"
type = "http"
url = "https://previews.example/api"
items_path = "$.items"
name_path = "$.id"
attr_paths = { branch = "$.git.branch", pr = "$.pr" }
created_at_path = "$.created"
`
	var file struct {
		Source []Config `toml:"source"`
	}
	meta, err := toml.Decode(doc, &file)
	if err != nil {
		t.Fatal(err)
	}
	if undecoded := meta.Undecoded(); len(undecoded) > 0 {
		t.Errorf("keys not mapped to Config: %v", undecoded)
	}
	want := []Config{
		{Name: "vercel", Type: "vercel", ProjectID: "prj_1", TeamID: "team_1", Lookback: 336 * time.Hour, IncludeBuilding: true,
			ExcludeBranches: []string{"main"}, OpenPRRepos: []string{"acme/web"}, GitHubTokenEnv: "GH_TOKEN",
			GitHubBaseURL: "https://ghe.example/api/v3", BaseURL: "https://api.vercel.com", TokenEnv: "VERCEL_TOKEN",
			RequestTimeout: 20 * time.Second, KeyPrefix: "vc-"},
		{Name: "render", Type: "render", OwnerID: "tea-1", ParentServices: []string{"web"}, PreviewTypes: []string{"service"}},
		{Name: "prs", Type: "github", Repos: []string{"acme/web"}, Labels: []string{"preview"}, BaseBranches: []string{"main"}},
		{Name: "api", Type: "http", URL: "https://previews.example/api", ItemsPath: "$.items", NamePath: "$.id",
			AttrPaths: map[string]string{"branch": "$.git.branch", "pr": "$.pr"}, CreatedAtPath: "$.created"},
	}
	if diff := cmp.Diff(want, file.Source); diff != "" {
		t.Errorf("decoded config mismatch (-want +got):\n%s", diff)
	}
	for _, c := range file.Source {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%s): %v", c.Name, err)
		}
	}
}

// The examples users copy must be valid: every TOML block of
// docs/sources.md, and the commented-out API source blocks at the end of
// config.example.toml.
func TestDocumentedSourceExamplesAreValid(t *testing.T) {
	var examples []string
	docs, err := os.ReadFile("../docs/sources.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(docs), "```toml\n")[1:] {
		examples = append(examples, strings.SplitN(block, "```", 2)[0])
	}
	example, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	for _, line := range strings.Split(string(example)+"\n", "\n") {
		switch {
		case line == "# [[source]]":
			block = []string{"[[source]]"}
		case block != nil && strings.HasPrefix(line, "# "):
			block = append(block, strings.TrimPrefix(line, "# "))
		case block != nil:
			examples = append(examples, strings.Join(block, "\n"))
			block = nil
		}
	}
	apiTypes := map[string]bool{"vercel": true, "render": true, "github": true, "http": true}
	seen := map[string]int{}
	for _, ex := range examples {
		var file struct {
			Source []Config `toml:"source"`
		}
		meta, err := toml.Decode(ex, &file)
		if err != nil {
			t.Errorf("example does not decode: %v\n%s", err, ex)
			continue
		}
		if undecoded := meta.Undecoded(); len(undecoded) > 0 {
			t.Errorf("example has unknown keys %v:\n%s", undecoded, ex)
		}
		for _, c := range file.Source {
			if c.Type != "file" && !apiTypes[c.Type] {
				continue
			}
			seen[c.Type]++
			if err := c.Validate(); err != nil {
				t.Errorf("example source %q: %v", c.Name, err)
			}
		}
	}
	for typ := range apiTypes {
		if seen[typ] < 2 {
			t.Errorf("type %q has %d examples, want one in each file at least", typ, seen[typ])
		}
	}
}
