package sources

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Deps are what sources get from the process rather than from their
// config table: where relative paths start, how to read secrets, how to talk
// HTTP, where to log.
type Deps struct {
	// BaseDir is the config file's directory; "" is the working directory.
	BaseDir string
	// Getenv reads environment variables (tokens come only from there).
	// nil reads none.
	Getenv func(string) string
	// HTTPClient is used by API sources; nil means a default with timeouts.
	HTTPClient *http.Client
	Logger     zerolog.Logger
}

// getenv reads an environment variable through d.Getenv.
func (d Deps) getenv(key string) string {
	if d.Getenv == nil {
		return ""
	}
	return d.Getenv(key)
}

// Config is one [[source]] table of the config file. Type-specific keys sit
// side by side; Validate rejects those that belong to another type.
type Config struct {
	Name       string `toml:"name"`
	Type       string `toml:"type"` // file, kubernetes, vercel, render, github, http
	AllowEmpty bool   `toml:"allow_empty"`
	Path       string `toml:"path"` // file

	// API sources: vercel, render, github (base_url) and http (url).
	BaseURL        string        `toml:"base_url"`
	TokenEnv       string        `toml:"token_env"`
	RequestTimeout time.Duration `toml:"request_timeout"`
	// vercel
	ProjectID       string        `toml:"project_id"`
	TeamID          string        `toml:"team_id"`
	Lookback        time.Duration `toml:"lookback"`
	IncludeBuilding bool          `toml:"include_building"`
	ExcludeBranches []string      `toml:"exclude_branches"`
	OpenPRRepos     []string      `toml:"open_pr_repos"`
	GitHubTokenEnv  string        `toml:"github_token_env"`
	GitHubBaseURL   string        `toml:"github_base_url"`
	// render
	OwnerID        string   `toml:"owner_id"`
	ParentServices []string `toml:"parent_services"`
	PreviewTypes   []string `toml:"preview_types"`
	// github
	Repos        []string `toml:"repos"`
	Labels       []string `toml:"labels"`
	BaseBranches []string `toml:"base_branches"`
	// http
	URL           string            `toml:"url"`
	ItemsPath     string            `toml:"items_path"`
	NamePath      string            `toml:"name_path"`
	AttrPaths     map[string]string `toml:"attr_paths"`
	CreatedAtPath string            `toml:"created_at_path"`
	// kubernetes
	Kubeconfig      string   `toml:"kubeconfig"`
	KubeContext     string   `toml:"context"`
	LabelSelector   string   `toml:"label_selector"`
	FieldSelector   string   `toml:"field_selector"`
	NameLabel       string   `toml:"name_label"`
	NameAnnotation  string   `toml:"name_annotation"`
	LabelAttrs      []string `toml:"label_attrs"`
	AnnotationAttrs []string `toml:"annotation_attrs"`
	PageSize        int      `toml:"page_size"`
	DeliverSecret   bool     `toml:"deliver_secret"`
	SecretName      string   `toml:"secret_name"`

	// KeyPrefix is prepended to every key this source's items render to,
	// so that sources sharing a key template cannot claim each other's keys.
	// It applies to every type.
	KeyPrefix string `toml:"key_prefix"`

	// KeyTemplate and NameTemplate override [launchdarkly] key_template and
	// name_template for this source; they are parsed where the templates
	// are, in the config loader.
	KeyTemplate  string `toml:"key_template"`
	NameTemplate string `toml:"name_template"`
}

// sourceType is what a source type contributes: the type-specific keys it
// takes, how to check them, and how to build the source. Adding a type means
// a new file defining one of these, a line in sourceTypes, and its keys in
// Config and setTypeKeys.
type sourceType struct {
	name string
	// keys are the type-specific config keys this type accepts.
	keys []string
	// validate checks the type-specific keys; the common ones are checked
	// already.
	validate func(c Config) error
	// build is called on a valid config.
	build func(c Config, deps Deps) (Source, error)
}

func sourceTypes() []sourceType {
	return []sourceType{
		fileType(),
		kubernetesType(),
		vercelType(),
		renderType(),
		githubType(),
		httpType(),
	}
}

func lookupType(name string) (sourceType, bool) {
	for _, t := range sourceTypes() {
		if t.name == name {
			return t, true
		}
	}
	return sourceType{}, false
}

func knownTypeNames() string {
	var names []string
	for _, t := range sourceTypes() {
		names = append(names, t.name)
	}
	return strings.Join(names, ", ")
}

// setTypeKeys lists the type-specific keys that are set in c, so that a key
// meant for another type is reported instead of silently ignored.
func (c Config) setTypeKeys() []string {
	var set []string
	if c.Path != "" {
		set = append(set, "path")
	}
	for key, isSet := range map[string]bool{
		"base_url": c.BaseURL != "", "token_env": c.TokenEnv != "", "request_timeout": c.RequestTimeout != 0,
		"project_id": c.ProjectID != "", "team_id": c.TeamID != "", "lookback": c.Lookback != 0,
		"include_building": c.IncludeBuilding, "exclude_branches": c.ExcludeBranches != nil,
		"open_pr_repos": c.OpenPRRepos != nil, "github_token_env": c.GitHubTokenEnv != "",
		"github_base_url": c.GitHubBaseURL != "", "owner_id": c.OwnerID != "",
		"parent_services": c.ParentServices != nil, "preview_types": c.PreviewTypes != nil,
		"repos": c.Repos != nil, "labels": c.Labels != nil, "base_branches": c.BaseBranches != nil,
		"url": c.URL != "", "items_path": c.ItemsPath != "", "name_path": c.NamePath != "",
		"attr_paths": c.AttrPaths != nil, "created_at_path": c.CreatedAtPath != "",
		"kubeconfig": c.Kubeconfig != "", "context": c.KubeContext != "", "label_selector": c.LabelSelector != "",
		"field_selector": c.FieldSelector != "", "name_label": c.NameLabel != "", "name_annotation": c.NameAnnotation != "",
		"label_attrs": c.LabelAttrs != nil, "annotation_attrs": c.AnnotationAttrs != nil, "page_size": c.PageSize != 0,
		"deliver_secret": c.DeliverSecret, "secret_name": c.SecretName != "",
	} {
		if isSet {
			set = append(set, key)
		}
	}
	slices.Sort(set)
	return set
}

// maxNameLen keeps the provenance tag "ldreaper-src.<name>" within LD's
// 64-character tag limit, with room to spare for a longer prefix.
const maxNameLen = 40

// Validate checks c on its own; uniqueness of names across sources is the
// config loader's concern. Errors name the source and the key.
func (c Config) Validate() error {
	if err := validateName(c.Name); err != nil {
		return fmt.Errorf("source %q: name: %w", c.Name, err)
	}
	if err := validateKeyPrefix(c.KeyPrefix); err != nil {
		return fmt.Errorf("source %q: key_prefix: %w", c.Name, err)
	}
	if c.Type == "" {
		return fmt.Errorf("source %q: type: required (one of %s)", c.Name, knownTypeNames())
	}
	st, ok := lookupType(c.Type)
	if !ok {
		return fmt.Errorf("source %q: type: unknown type %q (one of %s)", c.Name, c.Type, knownTypeNames())
	}
	if err := validateType(c, st); err != nil {
		return fmt.Errorf("source %q: %w", c.Name, err)
	}
	return nil
}

// validateType checks the type-specific keys of c against st.
func validateType(c Config, st sourceType) error {
	for _, key := range c.setTypeKeys() {
		if !slices.Contains(st.keys, key) {
			return fmt.Errorf("%s: not a key of type %q", key, st.name)
		}
	}
	return st.validate(c)
}

func validateName(name string) error {
	if name == "" {
		return errors.New("required")
	}
	// The name becomes part of an LD tag, and tags allow letters, digits,
	// ".", "_" and "-". LD tags are case-insensitive, so allowing uppercase
	// would let "Previews" and "previews" share one provenance tag.
	valid := len(name) <= maxNameLen && isLowerAlnum(name[0])
	for i := 0; valid && i < len(name); i++ {
		valid = isLowerAlnum(name[i]) || strings.IndexByte("._-", name[i]) >= 0
	}
	if !valid {
		return fmt.Errorf("%q must be 1 to %d characters of a-z, 0-9, \".\", \"_\", \"-\", starting with a letter or digit", name, maxNameLen)
	}
	return nil
}

func isLowerAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

// New validates c and builds its source. Relative paths in c resolve against
// deps.BaseDir, the directory of the config file.
func New(c Config, deps Deps) (Source, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	st, _ := lookupType(c.Type) // Validate has checked the type
	src, err := st.build(c, deps)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", c.Name, err)
	}
	return src, nil
}

// resolvePath resolves a relative path against baseDir, the directory of the
// config file, so that a config means the same from any working directory.
func resolvePath(baseDir, path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(baseDir, path)
}

// maxKeyPrefixLen leaves most of LD's 64-character key to the template.
const maxKeyPrefixLen = 20

// keyPrefixPattern is the start of an LD environment key. It also keeps
// template syntax out, since the prefix is prepended to the key template.
var keyPrefixPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func validateKeyPrefix(prefix string) error {
	if prefix != "" && (len(prefix) > maxKeyPrefixLen || !keyPrefixPattern.MatchString(prefix)) {
		return fmt.Errorf("%q must be 1 to %d characters of a-z, A-Z, 0-9, \".\", \"_\", \"-\", starting with a letter or digit", prefix, maxKeyPrefixLen)
	}
	return nil
}
