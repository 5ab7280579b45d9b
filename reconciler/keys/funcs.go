package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
)

// defaultHashLen is the length of `hash` and of the suffix that keeps
// shortened keys distinct: 6 hex digits (24 bits) is plenty among the few
// hundred environments of one project and still short enough to read.
const defaultHashLen = 6

// funcs returns the template functions. attr is bound per render, because it
// reads the item being rendered; see attrFunc.
func funcs(attr func(string) (string, error)) template.FuncMap {
	return template.FuncMap{
		"slug":       Slug,
		"trunc":      trunc,
		"hash":       func(s string) string { return hashHex(s, defaultHashLen) },
		"hashN":      hashN,
		"lower":      strings.ToLower,
		"upper":      strings.ToUpper,
		"replace":    func(old, replacement, s string) string { return strings.ReplaceAll(s, old, replacement) },
		"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"default":    orDefault,
		"attr":       attr,
	}
}

// attrFunc looks up an attribute of the item being rendered. Unlike
// {{ .Attrs.k }}, whose error comes from text/template, it lists the attrs the
// item does have, which is usually what the user needs to fix the template.
func attrFunc(attrs map[string]string) func(string) (string, error) {
	return func(key string) (string, error) {
		if v, ok := attrs[key]; ok {
			return v, nil
		}
		return "", fmt.Errorf("attr %q is not set (the item has attrs: %s)", key, describeKeys(attrs))
	}
}

// lenientAttr stands in for attr while validating a template against a sample
// item that has no attrs: attrs vary per source, so their absence is only an
// error at render time.
func lenientAttr(string) (string, error) { return "", nil }

func describeKeys(attrs map[string]string) string {
	if len(attrs) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(attrs)), ", ")
}

// trunc keeps the first n runes of s so that it never splits a multi-byte
// character.
func trunc(n int, s string) (string, error) {
	if n < 0 {
		return "", fmt.Errorf("trunc: length %d is negative", n)
	}
	count := 0
	for i := range s {
		if count == n {
			return s[:i], nil
		}
		count++
	}
	return s, nil
}

func hashN(n int, s string) (string, error) {
	if n < 1 || n > 2*sha256.Size {
		return "", fmt.Errorf("hashN: length %d is outside 1..%d", n, 2*sha256.Size)
	}
	return hashHex(s, n), nil
}

// hashHex returns the first n hex digits of sha256(s).
func hashHex(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

func orDefault(fallback, s string) string {
	if s == "" {
		return fallback
	}
	return s
}
