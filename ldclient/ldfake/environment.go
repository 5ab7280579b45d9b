package ldfake

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Link is one entry of a representation's _links map.
type Link struct {
	Href string `json:"href"`
	Type string `json:"type"`
}

// Environment is an environment as the fake stores and serves it. The JSON
// fields are the 14 that LD's spec marks required; the rest is bookkeeping
// that LD does not return.
type Environment struct {
	ID                 string          `json:"_id"`
	Links              map[string]Link `json:"_links"`
	Key                string          `json:"key"`
	Name               string          `json:"name"`
	APIKey             string          `json:"apiKey"`
	MobileKey          string          `json:"mobileKey"`
	Color              string          `json:"color"`
	DefaultTTL         int             `json:"defaultTtl"`
	SecureMode         bool            `json:"secureMode"`
	DefaultTrackEvents bool            `json:"defaultTrackEvents"`
	RequireComments    bool            `json:"requireComments"`
	ConfirmChanges     bool            `json:"confirmChanges"`
	Tags               []string        `json:"tags"`
	Critical           bool            `json:"critical"`

	// CreatedOn orders the default listing and sort=createdOn.
	CreatedOn time.Time `json:"-"`
	// ClonedFrom is the source.key of the create call, empty when not cloned.
	ClonedFrom string `json:"-"`
	// Version is the optimistic-lock version a create's source.version is
	// checked against. It starts at 1 and every PATCH increments it.
	Version int `json:"-"`
}

// clone returns a deep copy whose Tags is never nil, because LD always
// serialises tags as an array and generated clients reject null.
func (e Environment) clone() Environment {
	e.Tags = append(make([]string, 0, len(e.Tags)), e.Tags...)
	e.Links = maps.Clone(e.Links)
	return e
}

const (
	jsonType      = "application/json"
	maxTagLength  = 64
	maxDefaultTTL = 60
)

func environmentPath(project, key string) string {
	return "/api/v2/projects/" + url.PathEscape(project) + "/environments/" + url.PathEscape(key)
}

func environmentsPath(project string) string {
	return "/api/v2/projects/" + url.PathEscape(project) + "/environments"
}

func projectPath(project string) string {
	return "/api/v2/projects/" + url.PathEscape(project)
}

func selfLinks(project, key string) map[string]Link {
	return map[string]Link{"self": {Href: environmentPath(project, key), Type: jsonType}}
}

func isASCIIAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// validKey is LD's environment key rule ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ (the
// Terraform provider's keyPattern). LD documents no maximum length.
func validKey(key string) bool {
	if key == "" || !isASCIIAlnum(key[0]) {
		return false
	}
	for i := 1; i < len(key); i++ {
		if c := key[i]; !isASCIIAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validTag: letters, digits, '.', '_', '-', 1 to 64 characters (LD's tag docs
// and the Terraform provider's tagValidator).
func validTag(tag string) bool {
	if tag == "" || len(tag) > maxTagLength {
		return false
	}
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; !isASCIIAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validColor: six hex digits without a leading '#'.
func validColor(color string) bool {
	if len(color) != 6 {
		return false
	}
	for i := 0; i < len(color); i++ {
		c := color[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// validateTags returns a message naming the first bad tag, or "".
func validateTags(tags []string) string {
	for _, tag := range tags {
		if !validTag(tag) {
			return fmt.Sprintf("Invalid tag %q: tags must be 1-64 letters, digits, '.', '_' or '-'", tag)
		}
	}
	return ""
}

func lowerAll(tags []string) []string {
	lower := make([]string, len(tags))
	for i, t := range tags {
		lower[i] = strings.ToLower(t)
	}
	return lower
}

// identityGenerator makes the ids and keys LD would assign, from a seeded RNG
// so runs are reproducible.
type identityGenerator struct{ rng *rand.Rand }

func (g identityGenerator) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.rng.IntN(16)]
	}
	return string(b)
}

// clientSideID is LD's _id: 24 hex digits (a Mongo ObjectId).
func (g identityGenerator) clientSideID() string { return g.hex(24) }

// uuid is a random (version 4) UUID.
func (g identityGenerator) uuid() string {
	h := []byte(g.hex(32))
	h[12] = '4'
	h[16] = "89ab"[g.rng.IntN(4)]
	s := string(h)
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// fillIdentity assigns whatever identity fields e lacks.
func (g identityGenerator) fillIdentity(project string, e *Environment) {
	if e.ID == "" {
		e.ID = g.clientSideID()
	}
	if e.APIKey == "" {
		e.APIKey = "sdk-" + g.uuid()
	}
	if e.MobileKey == "" {
		e.MobileKey = "mob-" + g.uuid()
	}
	if len(e.Links) == 0 {
		e.Links = selfLinks(project, e.Key)
	}
	if e.Tags == nil {
		e.Tags = []string{}
	}
	if e.Version == 0 {
		e.Version = 1
	}
}

// hasAllTags reports whether every wanted (lower-case) tag is among have
// (lower-case). Environments carry a handful of tags, so a scan beats a set.
func hasAllTags(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
