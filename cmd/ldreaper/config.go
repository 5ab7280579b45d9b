package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/ldreaper/ldreaper/reconciler"
	"github.com/ldreaper/ldreaper/reconciler/keys"
	"github.com/ldreaper/ldreaper/sources"
)

// Config is the TOML configuration. Key names are a contract with users'
// files: add keys freely, rename none.
type Config struct {
	LaunchDarkly LaunchDarklyConfig `toml:"launchdarkly"`
	Reconcile    ReconcileConfig    `toml:"reconcile"`
	Safety       SafetyConfig       `toml:"safety"`
	Redis        *RedisConfig       `toml:"redis"`
	HTTP         HTTPConfig         `toml:"http"`
	Log          LogConfig          `toml:"log"`
	Sources      []sources.Config   `toml:"source"`

	// path is where the config was read from; relative source paths resolve
	// against its directory.
	path string
}

type LaunchDarklyConfig struct {
	Project           string        `toml:"project"`
	BaseURL           string        `toml:"base_url"`
	TokenEnv          string        `toml:"token_env"`
	TokenFile         string        `toml:"token_file"`
	SourceEnvironment string        `toml:"source_environment"`
	ManagedTag        string        `toml:"managed_tag"`
	ExtraTags         []string      `toml:"extra_tags"`
	Color             string        `toml:"color"`
	KeyTemplate       string        `toml:"key_template"`
	NameTemplate      string        `toml:"name_template"`
	RequestTimeout    time.Duration `toml:"request_timeout"`
	MaxRetries        int           `toml:"max_retries"`
	RateLimitHeadroom int           `toml:"rate_limit_headroom"`
}

type ReconcileConfig struct {
	Policy        string        `toml:"policy"`
	Schedule      string        `toml:"schedule"`
	Jitter        time.Duration `toml:"jitter"`
	Concurrency   int           `toml:"concurrency"`
	SourceTimeout time.Duration `toml:"source_timeout"`
	// RunTimeout bounds one run; /livez fails when a run exceeds it.
	RunTimeout time.Duration `toml:"run_timeout"`
	// ShutdownTimeout is how long a run may go on after SIGTERM.
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"`
	// MaxMutationsPerRun caps creates plus deletes per run (0 = no cap); the
	// rest are held as rate-budget and done by the next runs.
	MaxMutationsPerRun int `toml:"max_mutations_per_run"`
}

type SafetyConfig struct {
	MaxDeletes       int           `toml:"max_deletes"`
	MaxDeletePercent float64       `toml:"max_delete_percent"`
	PercentMinOwned  int           `toml:"percent_min_owned"`
	OrphanGrace      time.Duration `toml:"orphan_grace"`
	OrphanMinRuns    int           `toml:"orphan_min_runs"`
	Protected        []string      `toml:"protected"`
}

type RedisConfig struct {
	URL      string        `toml:"url"`
	URLEnv   string        `toml:"url_env"`
	LockKey  string        `toml:"lock_key"`
	LockTTL  time.Duration `toml:"lock_ttl"`
	StateKey string        `toml:"state_key"`
}

type HTTPConfig struct {
	Listen            string `toml:"listen"`
	ReconcileTokenEnv string `toml:"reconcile_token_env"`
	ReadyPeriods      int    `toml:"ready_periods"`
}

type LogConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// defaultConfig holds every default that config.example.toml documents.
func defaultConfig() Config {
	return Config{
		LaunchDarkly: LaunchDarklyConfig{
			BaseURL:        "https://app.launchdarkly.com",
			TokenEnv:       "LD_API_TOKEN",
			ManagedTag:     "ldreaper",
			Color:          "7B42BC",
			KeyTemplate:    "{{ .Name | slug }}",
			NameTemplate:   "Preview {{ .Name }}",
			RequestTimeout: 30 * time.Second,
			MaxRetries:     5,
		},
		Reconcile: ReconcileConfig{
			Policy:          string(reconciler.PolicySync),
			Schedule:        "@every 2m",
			Concurrency:     4,
			SourceTimeout:   time.Minute,
			RunTimeout:      30 * time.Minute,
			ShutdownTimeout: 30 * time.Second,
		},
		Safety: SafetyConfig{
			MaxDeletes:       10,
			MaxDeletePercent: 25,
			PercentMinOwned:  10,
			OrphanGrace:      10 * time.Minute,
			OrphanMinRuns:    2,
		},
		HTTP: HTTPConfig{Listen: ":9090", ReadyPeriods: 3},
		Log:  LogConfig{Level: "info", Format: "json"},
	}
}

func defaultRedis() RedisConfig {
	return RedisConfig{LockKey: "ldreaper:leader", LockTTL: 30 * time.Second}
}

// ConfigError is one problem in a config file, located where possible.
type ConfigError struct {
	File string
	Line int
	Key  string
	Why  string
}

func (e ConfigError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", loc, e.Why)
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Key, e.Why)
}

// ConfigErrors are all the problems found; the user fixes them in one go.
type ConfigErrors []ConfigError

func (es ConfigErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return "invalid config:\n  " + strings.Join(lines, "\n  ")
}

// loadConfig reads, decodes and validates a config file. It does no network I/O.
func loadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return parseConfig(path, string(data))
}

func parseConfig(path, text string) (Config, error) {
	cfg := defaultConfig()
	cfg.path = path
	md, err := toml.Decode(text, &cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, ConfigErrors{{File: path, Line: pe.Position.Line, Key: pe.LastKey, Why: pe.Message}}
		}
		return Config{}, ConfigErrors{{File: path, Why: err.Error()}}
	}
	loc := newLocator(text)
	var errs ConfigErrors
	for _, k := range md.Undecoded() {
		key := k.String()
		errs = append(errs, ConfigError{File: path, Line: loc.line(key), Key: key, Why: "unknown key"})
	}
	if cfg.Redis != nil {
		// Fill redis defaults for keys the file did not set.
		def := defaultRedis()
		if !md.IsDefined("redis", "lock_key") {
			cfg.Redis.LockKey = def.LockKey
		}
		if !md.IsDefined("redis", "lock_ttl") {
			cfg.Redis.LockTTL = def.LockTTL
		}
	}
	for _, p := range cfg.validate() {
		p.File = path
		p.Line = loc.line(p.Key)
		errs = append(errs, p)
	}
	if len(errs) > 0 {
		return Config{}, errs
	}
	return cfg, nil
}

var (
	tagPattern   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	colorPattern = regexp.MustCompile(`^[0-9A-Fa-f]{6}$`)
)

// validate checks values. Keys are dotted paths; source keys are
// "source[i].key" so the locator can find the i-th [[source]] table.
func (c *Config) validate() []ConfigError {
	var errs []ConfigError
	bad := func(key, format string, args ...any) {
		errs = append(errs, ConfigError{Key: key, Why: fmt.Sprintf(format, args...)})
	}
	ld := c.LaunchDarkly
	if ld.Project == "" {
		bad("launchdarkly.project", "required")
	} else if !keys.KeyPattern.MatchString(ld.Project) {
		bad("launchdarkly.project", "%q is not a valid LD project key", ld.Project)
	}
	if err := checkBaseURL(ld.BaseURL); err != nil {
		bad("launchdarkly.base_url", "%v", err)
	}
	if ld.TokenFile != "" && ld.TokenEnv != "" && ld.TokenEnv != defaultConfig().LaunchDarkly.TokenEnv {
		bad("launchdarkly.token_file", "set either token_env or token_file, not both")
	}
	if ld.SourceEnvironment != "" && !keys.KeyPattern.MatchString(ld.SourceEnvironment) {
		bad("launchdarkly.source_environment", "%q is not a valid LD environment key", ld.SourceEnvironment)
	}
	if !tagPattern.MatchString(ld.ManagedTag) {
		bad("launchdarkly.managed_tag", "%q is not a valid LD tag (1-64 letters, digits, '.', '_', '-')", ld.ManagedTag)
	}
	for i, t := range ld.ExtraTags {
		if !tagPattern.MatchString(t) {
			bad("launchdarkly.extra_tags", "element %d: %q is not a valid LD tag", i, t)
		}
		if strings.EqualFold(t, ld.ManagedTag) || strings.HasPrefix(strings.ToLower(t), strings.ToLower(ld.ManagedTag)+"-src.") {
			bad("launchdarkly.extra_tags", "element %d: %q would collide with the managed or provenance tags", i, t)
		}
	}
	if !colorPattern.MatchString(ld.Color) {
		bad("launchdarkly.color", "%q is not 6 hex digits without '#'", ld.Color)
	}
	if _, err := keys.ParseKey(ld.KeyTemplate); err != nil {
		bad("launchdarkly.key_template", "%v", err)
	}
	if _, err := keys.ParseName(ld.NameTemplate); err != nil {
		bad("launchdarkly.name_template", "%v", err)
	}
	if ld.RequestTimeout <= 0 {
		bad("launchdarkly.request_timeout", "must be positive")
	}
	if ld.MaxRetries < 0 || ld.MaxRetries > 20 {
		bad("launchdarkly.max_retries", "must be between 0 and 20")
	}
	if ld.RateLimitHeadroom < 0 {
		bad("launchdarkly.rate_limit_headroom", "must not be negative")
	}

	r := c.Reconcile
	if !reconciler.Policy(r.Policy).Valid() {
		bad("reconcile.policy", "%q is not one of sync, create-only, delete-only", r.Policy)
	}
	if err := reconciler.ValidateSchedule(r.Schedule); err != nil {
		bad("reconcile.schedule", "%v", err)
	}
	if r.Jitter < 0 {
		bad("reconcile.jitter", "must not be negative")
	}
	if r.Concurrency < 1 || r.Concurrency > 64 {
		bad("reconcile.concurrency", "must be between 1 and 64")
	}
	if r.SourceTimeout <= 0 {
		bad("reconcile.source_timeout", "must be positive")
	}
	if r.RunTimeout <= 0 {
		bad("reconcile.run_timeout", "must be positive")
	}
	if r.ShutdownTimeout <= 0 {
		bad("reconcile.shutdown_timeout", "must be positive")
	}
	if r.MaxMutationsPerRun < 0 {
		bad("reconcile.max_mutations_per_run", "must not be negative (0 is no cap)")
	}

	s := c.Safety
	if s.MaxDeletes < 1 {
		bad("safety.max_deletes", "must be at least 1 (use policy = \"create-only\" to forbid deletes)")
	}
	if s.MaxDeletePercent <= 0 || s.MaxDeletePercent > 100 || math.IsNaN(s.MaxDeletePercent) {
		bad("safety.max_delete_percent", "must be in (0, 100]")
	}
	if s.PercentMinOwned < 0 {
		bad("safety.percent_min_owned", "must not be negative")
	}
	if s.OrphanGrace < 0 {
		bad("safety.orphan_grace", "must not be negative")
	}
	if s.OrphanMinRuns < 1 {
		bad("safety.orphan_min_runs", "must be at least 1")
	}
	for i, p := range s.Protected {
		if _, err := filepath.Match(p, ""); err != nil || p == "" {
			bad("safety.protected", "element %d: %q is not a valid glob", i, p)
		}
		if p == "*" {
			bad("safety.protected", "element %d: \"*\" protects everything; use policy = \"create-only\" instead", i)
		}
	}

	if c.Redis != nil {
		if c.Redis.URL == "" && c.Redis.URLEnv == "" {
			bad("redis.url", "required when [redis] is present (or set url_env)")
		}
		if c.Redis.URL != "" && c.Redis.URLEnv != "" {
			bad("redis.url_env", "set either url or url_env, not both")
		}
		if c.Redis.LockKey == "" {
			bad("redis.lock_key", "must not be empty")
		}
		if c.Redis.LockTTL < 3*time.Second {
			bad("redis.lock_ttl", "must be at least 3s (it is refreshed every ttl/3)")
		}
	}
	if c.HTTP.ReadyPeriods < 1 {
		bad("http.ready_periods", "must be at least 1")
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", "%v", err)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		bad("log.format", "%q is not json or console", c.Log.Format)
	}

	if len(c.Sources) == 0 {
		bad("source", "at least one [[source]] is required")
	}
	seen := map[string]int{}
	for i, sc := range c.Sources {
		prefix := fmt.Sprintf("source[%d]", i)
		if err := sc.Validate(); err != nil {
			bad(prefix, "%v", err)
		}
		name := strings.ToLower(sc.Name)
		if j, dup := seen[name]; dup && name != "" {
			bad(prefix+".name", "duplicate source name %q (also source %d)", sc.Name, j+1)
		}
		seen[name] = i
		if tag := reconciler.ProvenanceTag(ld.ManagedTag, sc.Name); !tagPattern.MatchString(tag) {
			bad(prefix+".name", "provenance tag %q is not a valid LD tag (too long?)", tag)
		}
		if sc.KeyTemplate != "" {
			if _, err := keys.ParseKey(sc.KeyTemplate); err != nil {
				bad(prefix+".key_template", "%v", err)
			}
		}
		if sc.NameTemplate != "" {
			if _, err := keys.ParseName(sc.NameTemplate); err != nil {
				bad(prefix+".name_template", "%v", err)
			}
		}
	}
	return errs
}

func checkBaseURL(s string) error {
	if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		return fmt.Errorf("%q must be an absolute http(s) URL", s)
	}
	return nil
}

// token reads the LD API token from the configured env var or file.
func (c *Config) token(getenv func(string) string) (string, error) {
	ld := c.LaunchDarkly
	if ld.TokenFile != "" {
		data, err := os.ReadFile(ld.TokenFile)
		if err != nil {
			return "", fmt.Errorf("launchdarkly.token_file: read token: %w", err)
		}
		if t := strings.TrimSpace(string(data)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("launchdarkly.token_file: %s is empty", ld.TokenFile)
	}
	if t := strings.TrimSpace(getenv(ld.TokenEnv)); t != "" {
		return t, nil
	}
	return "", fmt.Errorf("launchdarkly.token_env: environment variable %s is not set (the LD API token never goes in the config file)", ld.TokenEnv)
}

// redisURL reads the Redis URL, which may hold a password and so may come
// from the environment.
func (c *Config) redisURL(getenv func(string) string) (string, error) {
	if c.Redis.URL != "" {
		return c.Redis.URL, nil
	}
	if u := strings.TrimSpace(getenv(c.Redis.URLEnv)); u != "" {
		return u, nil
	}
	return "", fmt.Errorf("redis.url_env: environment variable %s is not set", c.Redis.URLEnv)
}

func (c *Config) baseDir() string {
	if c.path == "" {
		return "."
	}
	return filepath.Dir(c.path)
}

// locator finds the line of a dotted key in TOML text, so that validation
// errors point at file:line. BurntSushi/toml keeps key positions private.
type locator struct {
	lines []string
}

func newLocator(text string) locator {
	var l locator
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		l.lines = append(l.lines, sc.Text())
	}
	return l
}

var sourceIndexKey = regexp.MustCompile(`^source\[(\d+)\](?:\.(.+))?$`)

// line returns the 1-based line of key ("safety.max_deletes",
// "source[1].path", "source[1]" or an undecoded "source.pathh"), or 0.
func (l locator) line(key string) int {
	table, leaf, index := "", key, -1
	if m := sourceIndexKey.FindStringSubmatch(key); m != nil {
		table, leaf = "source", m[2]
		fmt.Sscanf(m[1], "%d", &index)
	} else if i := strings.LastIndex(key, "."); i >= 0 {
		table, leaf = key[:i], key[i+1:]
	}
	current, arrayIndex, tableLine := "", -1, 0
	for n, raw := range l.lines {
		line := strings.TrimSpace(raw)
		switch {
		case strings.HasPrefix(line, "[["):
			current = strings.TrimSpace(strings.Trim(strings.SplitN(line, "#", 2)[0], "[] \t"))
			if current == table {
				arrayIndex++
				if index < 0 || arrayIndex == index {
					tableLine = n + 1
				}
			}
			continue
		case strings.HasPrefix(line, "["):
			current = strings.TrimSpace(strings.Trim(strings.SplitN(line, "#", 2)[0], "[] \t"))
			if current == key {
				return n + 1
			}
			continue
		}
		if current != table || (index >= 0 && arrayIndex != index) {
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if strings.Trim(strings.TrimSpace(k), `"'`) == leaf {
			return n + 1
		}
	}
	// A source-level problem without a key of its own points at its table.
	return tableLine
}
