package ldfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// environmentPost is LD's EnvironmentPost with pointers, to tell a missing
// field from a zero one.
type environmentPost struct {
	Name               *string    `json:"name"`
	Key                *string    `json:"key"`
	Color              *string    `json:"color"`
	DefaultTTL         *int       `json:"defaultTtl"`
	SecureMode         *bool      `json:"secureMode"`
	DefaultTrackEvents *bool      `json:"defaultTrackEvents"`
	ConfirmChanges     *bool      `json:"confirmChanges"`
	RequireComments    *bool      `json:"requireComments"`
	Tags               []string   `json:"tags"`
	Source             *sourceEnv `json:"source"`
	Critical           *bool      `json:"critical"`
}

type sourceEnv struct {
	Key     string `json:"key"`
	Version *int   `json:"version"`
}

// cloneSource is a validated source: key empty when not cloning, version 0
// when not locking.
type cloneSource struct {
	key     string
	version int
}

// decodeEnvironmentPost parses and validates a create body with LD's rules.
// Unknown fields are ignored, as LD does. A source with an empty key (what
// Okteto's client sends when no source is configured) means no clone
// (UNVERIFIED).
func decodeEnvironmentPost(body []byte) (environmentPost, error) {
	var p environmentPost
	if err := decodeStrict(body, &p); err != nil {
		return environmentPost{}, err
	}
	switch {
	case p.Key == nil || *p.Key == "":
		return environmentPost{}, errors.New("key is required")
	case !validKey(*p.Key):
		return environmentPost{}, fmt.Errorf("key %q must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", *p.Key)
	case p.Name == nil || strings.TrimSpace(*p.Name) == "":
		return environmentPost{}, errors.New("name is required")
	case p.Color == nil || *p.Color == "":
		return environmentPost{}, errors.New("color is required")
	case !validColor(*p.Color):
		return environmentPost{}, fmt.Errorf("color %q must be 6 hex digits without '#'", *p.Color)
	case p.DefaultTTL != nil && (*p.DefaultTTL < 0 || *p.DefaultTTL > maxDefaultTTL):
		return environmentPost{}, fmt.Errorf("defaultTtl %d must be between 0 and 60", *p.DefaultTTL)
	case p.Source != nil && p.Source.Version != nil && *p.Source.Version < 1:
		return environmentPost{}, fmt.Errorf("source.version %d must be positive", *p.Source.Version)
	}
	if msg := validateTags(p.Tags); msg != "" {
		return environmentPost{}, errors.New(msg)
	}
	return p, nil
}

// environment is the environment p asks for, before ids are assigned.
func (p environmentPost) environment() (Environment, cloneSource) {
	env := Environment{Key: *p.Key, Name: *p.Name, Color: *p.Color, Tags: dedupeTags(p.Tags)}
	deref := func(b *bool) bool { return b != nil && *b }
	env.SecureMode = deref(p.SecureMode)
	env.DefaultTrackEvents = deref(p.DefaultTrackEvents)
	env.ConfirmChanges = deref(p.ConfirmChanges)
	env.RequireComments = deref(p.RequireComments)
	env.Critical = deref(p.Critical)
	if p.DefaultTTL != nil {
		env.DefaultTTL = *p.DefaultTTL
	}
	var src cloneSource
	if p.Source != nil {
		src.key = p.Source.Key
		if p.Source.Version != nil {
			src.version = *p.Source.Version
		}
	}
	return env, src
}

// dedupeTags drops repeats case-insensitively, keeping the first spelling,
// since LD tags are not case-sensitive. It never returns nil.
func dedupeTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		if lower := strings.ToLower(t); !seen[lower] {
			seen[lower] = true
			out = append(out, t)
		}
	}
	return out
}

// patchOperation is one RFC 6902 operation.
type patchOperation struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

// decodePatch accepts LD's two PATCH shapes: a bare JSON Patch array, or
// {"comment": "...", "patch": [...]}.
func decodePatch(body []byte) ([]patchOperation, error) {
	trimmed := strings.TrimSpace(string(body))
	var ops []patchOperation
	if strings.HasPrefix(trimmed, "{") {
		var wrapped struct {
			Comment string           `json:"comment"`
			Patch   []patchOperation `json:"patch"`
		}
		if err := decodeStrict(body, &wrapped); err != nil {
			return nil, err
		}
		ops = wrapped.Patch
	} else if err := decodeStrict(body, &ops); err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return nil, errors.New("patch is empty")
	}
	return ops, nil
}

// applyPatch applies replace (or add, which is the same on an object member)
// operations on the environment's settable top-level fields, all or nothing.
func applyPatch(env Environment, ops []patchOperation) (Environment, error) {
	for _, op := range ops {
		if op.Op != "replace" && op.Op != "add" {
			return Environment{}, fmt.Errorf("op %q on %q is not supported", op.Op, op.Path)
		}
		if len(op.Value) == 0 {
			return Environment{}, fmt.Errorf("op %q on %q has no value", op.Op, op.Path)
		}
		if err := applyReplace(&env, op.Path, op.Value); err != nil {
			return Environment{}, fmt.Errorf("%s %s: %w", op.Op, op.Path, err)
		}
	}
	return env, nil
}

func applyReplace(env *Environment, path string, value json.RawMessage) error {
	var err error
	switch path {
	case "/name":
		var name string
		if err = decodeStrict(value, &name); err == nil && strings.TrimSpace(name) == "" {
			err = errors.New("name must not be empty")
		}
		if err == nil {
			env.Name = name
		}
	case "/color":
		var color string
		if err = decodeStrict(value, &color); err == nil && !validColor(color) {
			err = fmt.Errorf("color %q must be 6 hex digits without '#'", color)
		}
		if err == nil {
			env.Color = color
		}
	case "/tags":
		var tags []string
		if err = decodeStrict(value, &tags); err == nil {
			if msg := validateTags(tags); msg != "" {
				err = errors.New(msg)
			}
		}
		if err == nil {
			env.Tags = dedupeTags(tags)
		}
	case "/defaultTtl":
		var ttl int
		if err = decodeStrict(value, &ttl); err == nil && (ttl < 0 || ttl > maxDefaultTTL) {
			err = fmt.Errorf("defaultTtl %d must be between 0 and 60", ttl)
		}
		if err == nil {
			env.DefaultTTL = ttl
		}
	case "/secureMode":
		err = decodeStrict(value, &env.SecureMode)
	case "/defaultTrackEvents":
		err = decodeStrict(value, &env.DefaultTrackEvents)
	case "/requireComments":
		err = decodeStrict(value, &env.RequireComments)
	case "/confirmChanges":
		err = decodeStrict(value, &env.ConfirmChanges)
	case "/critical":
		err = decodeStrict(value, &env.Critical)
	default:
		// The key, ids and SDK keys cannot be changed this way.
		err = errors.New("path cannot be patched")
	}
	return err
}
