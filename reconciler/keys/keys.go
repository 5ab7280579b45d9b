// Package keys renders the LaunchDarkly environment key and name for a live
// source item from the user's Go text/template strings.
//
// The template data is Input: {{ .Name }}, {{ .Source }}, {{ .Attrs.branch }},
// {{ .CreatedAt }}. Templates run with missingkey=error, so {{ .Attrs.branch }}
// fails for an item without a "branch" attr instead of rendering "<no value>"
// or "". To fall back when an attr may be absent, use the builtin index, which
// yields "" for a missing key: {{ index .Attrs "branch" | default "main" }}.
//
// Functions, all usable in pipelines (the piped value is the last argument):
//
//	slug s             lowercase [a-z0-9] words joined by "-" (see Slug)
//	trunc n s          the first n runes of s
//	hash s             the first 6 hex digits of sha256(s)
//	hashN n s          the first n (1..64) hex digits of sha256(s)
//	lower s, upper s
//	replace old new s  every old replaced by new
//	trimPrefix p s, trimSuffix p s
//	default d s        d when s is empty
//	attr "k"           the item's attr k, or an error naming k and the attrs it has
//
// Rendering never repairs a key that breaks LD's key pattern (a "/" from a
// branch name, say): it reports the rendered key and the item, and the user
// pipes the value through slug. The one adjustment it makes is to shorten keys
// longer than MaxKeyLen deterministically, because long branch names are
// routine and a hash suffix keeps shortened keys distinct.
package keys

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"
)

// MaxKeyLen is the longest environment key ldreaper creates.
const MaxKeyLen = 64

// MaxNameLen is the longest environment name, in runes, ldreaper creates.
const MaxNameLen = 100

// KeyPattern is LD's pattern for environment keys.
var KeyPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Input is the data a template sees for one source item.
type Input struct {
	Name      string
	Source    string
	Attrs     map[string]string
	CreatedAt time.Time
}

// KeyTemplate renders environment keys. It is safe for concurrent use.
type KeyTemplate struct{ tmpl compiled }

// NameTemplate renders environment names. It is safe for concurrent use.
type NameTemplate struct{ tmpl compiled }

// ParseKey parses and validates a key template (config key_template).
func ParseKey(text string) (*KeyTemplate, error) {
	c, err := compile("key_template", text)
	if err != nil {
		return nil, err
	}
	return &KeyTemplate{tmpl: c}, nil
}

// ParseName parses and validates a name template (config name_template).
func ParseName(text string) (*NameTemplate, error) {
	c, err := compile("name_template", text)
	if err != nil {
		return nil, err
	}
	return &NameTemplate{tmpl: c}, nil
}

// Render returns the environment key for in. A rendered key longer than
// MaxKeyLen is cut to MaxKeyLen-7 characters, stripped of trailing "-", "_"
// and ".", and suffixed with "-" and the first 6 hex digits of sha256 of the
// full rendered key.
func (t *KeyTemplate) Render(in Input) (string, error) {
	key, err := t.tmpl.execute(in)
	if err != nil {
		return "", err
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return "", t.tmpl.itemError(in, errors.New("rendered an empty key"))
	}
	// Checking the full key rather than the shortened one names what the
	// template really produced; a valid full key stays valid when shortened.
	if !KeyPattern.MatchString(key) {
		return "", t.tmpl.itemError(in, fmt.Errorf("rendered key %q does not match %s (pipe the value through slug)", key, KeyPattern))
	}
	if len(key) <= MaxKeyLen {
		return key, nil
	}
	const suffixLen = 1 + defaultHashLen
	short := strings.TrimRight(key[:MaxKeyLen-suffixLen], "-_.")
	return short + "-" + hashHex(key, defaultHashLen), nil
}

// Render returns the environment name for in: trimmed, with runs of
// whitespace collapsed to one space, and cut to MaxNameLen runes ending in "…".
func (t *NameTemplate) Render(in Input) (string, error) {
	rendered, err := t.tmpl.execute(in)
	if err != nil {
		return "", err
	}
	name := strings.Join(strings.Fields(rendered), " ")
	if name == "" {
		return "", t.tmpl.itemError(in, errors.New("rendered an empty name"))
	}
	if utf8.RuneCountInString(name) <= MaxNameLen {
		return name, nil
	}
	cut, _ := trunc(MaxNameLen-1, name)
	return strings.TrimRight(cut, " ") + "…", nil
}

// compiled is what key and name templates share: parsing, validation and
// execution with the per-item attr function.
type compiled struct {
	kind string // the config key, so errors point at the setting to fix
	text string
	tmpl *template.Template
}

func compile(kind, text string) (compiled, error) {
	if strings.TrimSpace(text) == "" {
		return compiled{}, fmt.Errorf("parsing %s: template is empty", kind)
	}
	tmpl, err := template.New(kind).
		Option("missingkey=error").
		Funcs(funcs(lenientAttr)).
		Parse(text)
	if err != nil {
		return compiled{}, fmt.Errorf("parsing %s %q: %w", kind, text, err)
	}
	c := compiled{kind: kind, text: text, tmpl: tmpl}
	if err := c.validate(); err != nil {
		return compiled{}, err
	}
	return c, nil
}

// validate executes the template once against a sample item to catch what
// parsing cannot, such as a misspelt field (.Nmae) or a bad trunc length.
// Missing attrs are allowed here, since attrs vary per source and per item.
func (c compiled) validate() error {
	probe, err := c.tmpl.Clone()
	if err != nil {
		return fmt.Errorf("validating %s %q: %w", c.kind, c.text, err)
	}
	probe.Option("missingkey=zero")
	sample := Input{
		Name:      "sample",
		Source:    "sample",
		Attrs:     map[string]string{},
		CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	if err := probe.Execute(&bytes.Buffer{}, sample); err != nil {
		return fmt.Errorf("validating %s %q: %w", c.kind, c.text, err)
	}
	return nil
}

func (c compiled) execute(in Input) (string, error) {
	// attr reads the item, so each render gets its own clone with attr bound
	// to this item; the clone also keeps concurrent renders independent.
	tmpl, err := c.tmpl.Clone()
	if err != nil {
		return "", c.itemError(in, err)
	}
	tmpl.Funcs(template.FuncMap{"attr": attrFunc(in.Attrs)})
	var out bytes.Buffer
	if err := tmpl.Execute(&out, in); err != nil {
		return "", c.itemError(in, err)
	}
	return out.String(), nil
}

func (c compiled) itemError(in Input, err error) error {
	return fmt.Errorf("rendering %s %q for item %q of source %q: %w", c.kind, c.text, in.Name, in.Source, err)
}
