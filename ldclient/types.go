package ldclient

import (
	"fmt"
	"strings"
)

// Environment is an LD environment as the list, get and create calls return it.
// Decoding is tolerant: unknown fields are ignored and every field may be missing,
// because LD has announced that apiKey and mobileKey will leave the environment
// representation in a future API version.
//
// APIKey, MobileKey and ClientSideID are secrets for our purposes: String, GoString
// and Format never print them, so a %v or %+v in a log line cannot leak them.
type Environment struct {
	ClientSideID       string   `json:"_id"`
	Key                string   `json:"key"`
	Name               string   `json:"name"`
	APIKey             string   `json:"apiKey"`
	MobileKey          string   `json:"mobileKey"`
	Color              string   `json:"color"`
	DefaultTTL         int      `json:"defaultTtl"`
	SecureMode         bool     `json:"secureMode"`
	DefaultTrackEvents bool     `json:"defaultTrackEvents"`
	RequireComments    bool     `json:"requireComments"`
	ConfirmChanges     bool     `json:"confirmChanges"`
	Tags               []string `json:"tags"`
	Critical           bool     `json:"critical"`
}

// HasTag reports whether the environment carries tag. LD tags are not
// case-sensitive, so neither is this.
func (e Environment) HasTag(tag string) bool {
	for _, t := range e.Tags {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// String prints the environment without its SDK key, mobile key or client-side ID.
func (e Environment) String() string {
	return fmt.Sprintf("Environment{Key:%q Name:%q Tags:%q Critical:%t}", e.Key, e.Name, e.Tags, e.Critical)
}

// GoString keeps %#v from printing the secrets.
func (e Environment) GoString() string { return "ldclient." + e.String() }

// Format keeps every verb (%v, %+v, %s, %q, %#v) from printing the secrets.
func (e Environment) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", e.String())
	case '#':
		fmt.Fprint(f, e.GoString())
	default:
		if verb == 'v' && f.Flag('#') {
			fmt.Fprint(f, e.GoString())
			return
		}
		fmt.Fprint(f, e.String())
	}
}

// SourceEnv names the environment a new one is cloned from.
type SourceEnv struct {
	Key string `json:"key,omitempty"`
	// Version is LD's optimistic lock on the source; nil sends none.
	Version *int `json:"version,omitempty"`
}

// EnvironmentPost is the body of the create call (LD schema EnvironmentPost).
type EnvironmentPost struct {
	Name               string     `json:"name"`
	Key                string     `json:"key"`
	Color              string     `json:"color"`
	DefaultTTL         *int       `json:"defaultTtl,omitempty"`
	SecureMode         *bool      `json:"secureMode,omitempty"`
	DefaultTrackEvents *bool      `json:"defaultTrackEvents,omitempty"`
	ConfirmChanges     *bool      `json:"confirmChanges,omitempty"`
	RequireComments    *bool      `json:"requireComments,omitempty"`
	Tags               []string   `json:"tags,omitempty"`
	Source             *SourceEnv `json:"source,omitempty"`
	Critical           *bool      `json:"critical,omitempty"`
}

// ListFilter narrows a list call. Tags are ANDed by LD; Query matches key and
// name case-insensitively. Sort is LD's sort parameter (createdOn, name,
// critical, '-' prefix for descending); empty sends none.
type ListFilter struct {
	Tags  []string
	Query string
	Sort  string
}

// CreateResult is the outcome of a create call that did not fail.
type CreateResult struct {
	Environment Environment
	// Existed is true when LD answered 409 (or an ambiguous POST turned out to
	// have been applied by someone else) and Environment is what a GET of the key
	// returned. The caller decides whether it is ours by its tags.
	Existed bool
}

// DeleteResult is the outcome of a delete call that did not fail.
type DeleteResult int

const (
	// Deleted means LD answered 204 to our DELETE.
	Deleted DeleteResult = iota
	// AlreadyGone means LD answered 404: someone (or an earlier try) deleted it.
	AlreadyGone
)

func (r DeleteResult) String() string {
	if r == AlreadyGone {
		return "already-gone"
	}
	return "deleted"
}
