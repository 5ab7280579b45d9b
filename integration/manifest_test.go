package integration

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// checkManifest checks an integration manifest against the rules of
// manifest.schema.json in launchdarkly/integration-framework (draft-07),
// as far as this manifest uses them, and returns every problem found. In
// that schema otherCapabilities is a top-level property (EaaS integrations
// such as Okteto's declare ["external"] there) and capabilities is
// optional; "capabilities" may hold only framework capabilities.
func checkManifest(data []byte) []string {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return []string{"manifest: not a JSON object: " + err.Error()}
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	allowedKeys := func(where string, obj map[string]any, allowed ...string) {
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if !slices.Contains(allowed, k) {
				bad("%s: property %q is not allowed", where, k)
			}
		}
	}
	requiredKeys := func(where string, obj map[string]any, required ...string) {
		for _, k := range required {
			if _, ok := obj[k]; !ok {
				bad("%s: %s is required", where, k)
			}
		}
	}
	// text checks an optional string; lengths count characters, as JSON
	// Schema does, and pattern "^(.*)$" allows no line break.
	text := func(key string, minLen, maxLen int, oneLine bool) string {
		v, ok := m[key]
		if !ok {
			return ""
		}
		s, ok := v.(string)
		if !ok {
			bad("%s: must be a string", key)
			return ""
		}
		if n := utf8.RuneCountInString(s); n < minLen || n > maxLen {
			bad("%s: %d characters, want %d to %d", key, n, minLen, maxLen)
		}
		if oneLine && strings.ContainsAny(s, "\n\r") {
			bad("%s: must be one line", key)
		}
		return s
	}
	object := func(where string, v any) map[string]any {
		obj, ok := v.(map[string]any)
		if !ok && v != nil {
			bad("%s: must be an object", where)
		}
		return obj
	}
	stringList := func(where string, v any) []string {
		list, ok := v.([]any)
		if !ok {
			bad("%s: must be an array", where)
			return nil
		}
		var out []string
		for i, item := range list {
			s, ok := item.(string)
			if !ok {
				bad("%s[%d]: must be a string", where, i)
				continue
			}
			out = append(out, s)
		}
		return out
	}

	allowedKeys("manifest", m, "name", "version", "overview", "description", "details", "author", "supportEmail",
		"links", "categories", "icons", "formVariables", "capabilities", "legacy", "otherCapabilities", "requiresOAuth")
	requiredKeys("manifest", m, "name", "version", "overview", "description", "author", "supportEmail", "links", "categories", "icons")

	text("name", 3, 100, false)
	if v := text("version", 5, 14, false); v != "" && !semver().MatchString(v) {
		bad("version: %q is not a semantic version", v)
	}
	text("overview", 10, 100, true)
	text("description", 50, 2048, true)
	text("details", 50, 2048, true)
	text("author", 3, 100, true)
	if email := text("supportEmail", 0, 320, true); email != "" {
		if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email {
			bad("supportEmail: %q is not an e-mail address", email)
		}
	}

	if links := object("links", m["links"]); links != nil {
		allowedKeys("links", links, "site", "launchdarklyDocs", "privacyPolicy", "supportWebsite")
		requiredKeys("links", links, "site", "privacyPolicy")
		for _, k := range slices.Sorted(maps.Keys(links)) {
			s, ok := links[k].(string)
			if !ok || len(s) > 2048 || !httpURL().MatchString(s) {
				bad("links.%s: %v is not an http(s) URL of at most 2048 characters", k, links[k])
			}
		}
	}

	if v, ok := m["categories"]; ok {
		categories := stringList("categories", v)
		if len(categories) < 1 || len(categories) > 3 {
			bad("categories: %d, want 1 to 3", len(categories))
		}
		known := []string{"analytics", "approval", "authentication", "automation", "code-references", "customer-support", "data",
			"developer-tools", "infrastructure", "issue-tracking", "log-management", "messaging", "monitoring", "notifications"}
		for i, c := range categories {
			if !slices.Contains(known, c) {
				bad("categories[%d]: %q is not a category", i, c)
			}
			if slices.Index(categories, c) != i {
				bad("categories[%d]: %q is repeated", i, c)
			}
		}
	}

	if icons := object("icons", m["icons"]); icons != nil {
		allowedKeys("icons", icons, "square", "horizontal")
		requiredKeys("icons", icons, "square", "horizontal")
		for _, k := range slices.Sorted(maps.Keys(icons)) {
			if s, ok := icons[k].(string); !ok || !strings.HasSuffix(s, ".svg") {
				bad("icons.%s: %v must be a path ending in .svg", k, icons[k])
			}
		}
	}

	if v, ok := m["otherCapabilities"]; ok {
		others := stringList("otherCapabilities", v)
		if len(others) == 0 {
			bad("otherCapabilities: must not be empty")
		}
		for i, c := range others {
			if !slices.Contains([]string{"codeRefs", "dataExport", "external", "ide", "sso", "webhooks"}, c) {
				bad("otherCapabilities[%d]: %q is not a capability", i, c)
			}
		}
	}
	if caps := object("capabilities", m["capabilities"]); caps != nil {
		allowedKeys("capabilities", caps, "auditLogEventsHook", "reservedCustomProperties", "trigger", "approval",
			"featureStore", "externalReferences")
	}
	if v, ok := m["requiresOAuth"]; ok {
		if _, isBool := v.(bool); !isBool {
			bad("requiresOAuth: must be a boolean")
		}
	}
	return problems
}

// semver is the schema's version pattern (semver.org's).
func semver() *regexp.Regexp {
	return regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
}

func httpURL() *regexp.Regexp { return regexp.MustCompile(`^[Hh][Tt][Tt][Pp][Ss]?://`) }

func readManifest(t *testing.T) (raw []byte, decoded map[string]any) {
	t.Helper()
	raw, err := os.ReadFile("manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	return raw, decoded
}

func TestManifest(t *testing.T) {
	raw, m := readManifest(t)
	if diff := cmp.Diff([]string(nil), checkManifest(raw)); diff != "" {
		t.Errorf("manifest.json breaks the schema's rules (-want +got):\n%s", diff)
	}
	// What makes it an EaaS partner integration rather than a framework one.
	if diff := cmp.Diff([]any{"external"}, m["otherCapabilities"]); diff != "" {
		t.Errorf("otherCapabilities mismatch (-want +got):\n%s", diff)
	}
}

// TestCheckManifest shows that the checker rejects what the schema rejects,
// one broken copy of the real manifest at a time.
func TestCheckManifest(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		want   []string
	}{
		{"valid", func(map[string]any) {}, nil},
		{"unknown property", func(m map[string]any) { m["homepage"] = "x" }, []string{`manifest: property "homepage" is not allowed`}},
		{"missing name", func(m map[string]any) { delete(m, "name") }, []string{"manifest: name is required"}},
		{"short name", func(m map[string]any) { m["name"] = "ld" }, []string{"name: 2 characters, want 3 to 100"}},
		{"version not semver", func(m map[string]any) { m["version"] = "1.0.x" }, []string{`version: "1.0.x" is not a semantic version`}},
		{"version too long", func(m map[string]any) { m["version"] = "1.0.0-beta.1.2.3" }, []string{"version: 16 characters, want 5 to 14"}},
		{"short overview", func(m map[string]any) { m["overview"] = "Reaper" }, []string{"overview: 6 characters, want 10 to 100"}},
		{"description on two lines", func(m map[string]any) {
			m["description"] = strings.Repeat("word ", 10) + "\nsecond line"
		}, []string{"description: must be one line"}},
		{"bad e-mail", func(m map[string]any) { m["supportEmail"] = "support at ldreaper" }, []string{`supportEmail: "support at ldreaper" is not an e-mail address`}},
		{"e-mail with a display name", func(m map[string]any) { m["supportEmail"] = "Support <s@example.com>" }, []string{`supportEmail: "Support <s@example.com>" is not an e-mail address`}},
		{"link without scheme", func(m map[string]any) { m["links"].(map[string]any)["site"] = "github.com/ldreaper" }, []string{"links.site: github.com/ldreaper is not an http(s) URL of at most 2048 characters"}},
		{"missing privacy policy", func(m map[string]any) { delete(m["links"].(map[string]any), "privacyPolicy") }, []string{"links: privacyPolicy is required"}},
		{"unknown link", func(m map[string]any) { m["links"].(map[string]any)["blog"] = "https://x" }, []string{`links: property "blog" is not allowed`}},
		{"unknown category", func(m map[string]any) { m["categories"] = []any{"ci"} }, []string{`categories[0]: "ci" is not a category`}},
		{"too many categories", func(m map[string]any) { m["categories"] = []any{"data", "automation", "messaging", "monitoring"} }, []string{"categories: 4, want 1 to 3"}},
		{"repeated category", func(m map[string]any) { m["categories"] = []any{"data", "data"} }, []string{`categories[1]: "data" is repeated`}},
		{"no categories", func(m map[string]any) { m["categories"] = []any{} }, []string{"categories: 0, want 1 to 3"}},
		{"png icon", func(m map[string]any) { m["icons"].(map[string]any)["square"] = "assets/square.png" }, []string{"icons.square: assets/square.png must be a path ending in .svg"}},
		{"missing icon", func(m map[string]any) { delete(m["icons"].(map[string]any), "horizontal") }, []string{"icons: horizontal is required"}},
		{"otherCapabilities inside capabilities", func(m map[string]any) {
			delete(m, "otherCapabilities")
			m["capabilities"] = map[string]any{"otherCapabilities": []any{"external"}}
		}, []string{`capabilities: property "otherCapabilities" is not allowed`}},
		{"unknown other capability", func(m map[string]any) { m["otherCapabilities"] = []any{"eaas"} }, []string{`otherCapabilities[0]: "eaas" is not a capability`}},
		{"requiresOAuth not a boolean", func(m map[string]any) { m["requiresOAuth"] = "no" }, []string{"requiresOAuth: must be a boolean"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, m := readManifest(t)
			tc.mutate(m)
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, checkManifest(data)); diff != "" {
				t.Errorf("checkManifest mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzCheckManifest(f *testing.F) {
	if raw, err := os.ReadFile("manifest.json"); err == nil {
		f.Add(raw)
	}
	f.Add([]byte(`{"links": 3, "icons": [], "categories": "data", "otherCapabilities": [1], "capabilities": null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		problems := checkManifest(data)
		var v map[string]any
		if json.Unmarshal(data, &v) != nil && len(problems) == 0 {
			t.Fatalf("checkManifest accepted %q, which is not a JSON object", data)
		}
	})
}

// svgRoot reads an SVG document through to its end, so that it must be
// well-formed XML, and returns its root element's name and viewBox width
// and height.
func svgRoot(data []byte) (name string, width, height float64, err error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var viewBox string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", 0, 0, err
		}
		if start, ok := tok.(xml.StartElement); ok && name == "" {
			name = start.Name.Space + " " + start.Name.Local
			for _, a := range start.Attr {
				if a.Name.Local == "viewBox" {
					viewBox = a.Value
				}
			}
		}
	}
	fields := strings.Fields(strings.ReplaceAll(viewBox, ",", " "))
	if len(fields) != 4 {
		return name, 0, 0, fmt.Errorf("viewBox %q: want four numbers", viewBox)
	}
	if width, err = strconv.ParseFloat(fields[2], 64); err != nil {
		return name, 0, 0, fmt.Errorf("viewBox %q: %w", viewBox, err)
	}
	if height, err = strconv.ParseFloat(fields[3], 64); err != nil {
		return name, 0, 0, fmt.Errorf("viewBox %q: %w", viewBox, err)
	}
	if !(width > 0 && height > 0) || math.IsInf(width, 0) || math.IsInf(height, 0) {
		return name, 0, 0, fmt.Errorf("viewBox %q: width and height must be positive numbers", viewBox)
	}
	return name, width, height, nil
}

// TestIcons checks that the icons the manifest names exist, are SVG
// documents, and have the shape their names promise.
func TestIcons(t *testing.T) {
	_, m := readManifest(t)
	icons, _ := m["icons"].(map[string]any)
	for _, kind := range []string{"square", "horizontal"} {
		t.Run(kind, func(t *testing.T) {
			path, _ := icons[kind].(string)
			data, err := os.ReadFile(filepath.FromSlash(path))
			if err != nil {
				t.Fatalf("icons.%s: %v", kind, err)
			}
			name, width, height, err := svgRoot(data)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if name != "http://www.w3.org/2000/svg svg" {
				t.Errorf("%s: root element %q, want svg in the SVG namespace", path, name)
			}
			if square := width == height; square != (kind == "square") || width < height {
				t.Errorf("%s: viewBox %gx%g does not fit a %s icon", path, width, height, kind)
			}
		})
	}
}

func TestSVGRoot(t *testing.T) {
	tests := []struct {
		name, svg     string
		wantName      string
		width, height float64
		wantErr       bool
	}{
		{"svg", `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 20 10"><rect/></svg>`, "http://www.w3.org/2000/svg svg", 20, 10, false},
		{"comma viewBox", `<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" viewBox="0,0,8,8"/>`, "http://www.w3.org/2000/svg svg", 8, 8, false},
		{"not closed", `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><g></svg>`, "", 0, 0, true},
		{"no viewBox", `<svg xmlns="http://www.w3.org/2000/svg"/>`, "http://www.w3.org/2000/svg svg", 0, 0, true},
		{"html", `<html><body/></html>`, " html", 0, 0, true},
		{"NaN size", `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 NaN 1"/>`, "", 0, 0, true},
		{"zero height", `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 0"/>`, "", 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, w, h, err := svgRoot([]byte(tc.svg))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil {
				if diff := cmp.Diff([]any{tc.wantName, tc.width, tc.height}, []any{name, w, h}); diff != "" {
					t.Errorf("svgRoot mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func FuzzSVGRoot(f *testing.F) {
	for _, path := range []string{"assets/square.svg", "assets/horizontal.svg"} {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`<svg viewBox="0 0 1e309 -1"/>`))
	f.Add([]byte(`<svg viewBox="0 0 NaN 1"/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, w, h, err := svgRoot(data); err == nil && !(w > 0 && h > 0 && !math.IsInf(w, 0) && !math.IsInf(h, 0)) {
			t.Fatalf("svgRoot returned size %v x %v without an error", w, h)
		}
	})
}
