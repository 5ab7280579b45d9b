package sources

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"

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
	Type       string `toml:"type"` // "file" now; kubernetes, vercel, render, github, http come later
	AllowEmpty bool   `toml:"allow_empty"`
	Path       string `toml:"path"` // file

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
