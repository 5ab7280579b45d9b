package main

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// configKeys lists every key the config accepts, from the toml tags of t and
// the structs under it, as "table.key"; keys of a [[source]] table are
// "source.key". A struct field is a table; anything else (a slice of
// strings, a map, a duration) is a key.
func configKeys(t reflect.Type, table string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		name := tag
		if table != "" {
			name = table + "." + tag
		}
		elem := f.Type
		for elem.Kind() == reflect.Pointer || elem.Kind() == reflect.Slice {
			elem = elem.Elem()
		}
		if elem.Kind() == reflect.Struct && elem != reflect.TypeFor[time.Time]() {
			keys = append(keys, configKeys(elem, name)...)
			continue
		}
		keys = append(keys, name)
	}
	return keys
}

// referenceKeys returns the keys docs/configuration.md documents: the
// first cell of a table row that is one backticked key, under the nearest
// heading that names a TOML table in backticks (`[reconcile]`,
// `[[source]]`). A level-1 or level-2 heading without one ends the table, so
// a key-looking row elsewhere counts as a top-level key (and fails the
// test). Code blocks are skipped: their "#" lines are TOML comments.
func referenceKeys(markdown string) []string {
	tableHeading := regexp.MustCompile("^#+ .*`\\[\\[?([a-z0-9_]+)\\]\\]?`")
	keyRow := regexp.MustCompile("^\\|\\s*`([a-z][a-z0-9_]*)`\\s*\\|")
	var keys []string
	table, inCode := "", false
	for line := range strings.Lines(markdown) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "```"):
			inCode = !inCode
		case inCode:
		case strings.HasPrefix(line, "#"):
			if m := tableHeading.FindStringSubmatch(line); m != nil {
				table = m[1]
			} else if !strings.HasPrefix(line, "###") {
				table = ""
			}
		default:
			if m := keyRow.FindStringSubmatch(line); m != nil {
				keys = append(keys, joinKey(table, m[1]))
			}
		}
	}
	return keys
}

// exampleKeys returns the keys config.example.toml shows, set or commented
// out: a line that is "key = …" or a table header once its leading "#"s are
// gone.
func exampleKeys(text string) []string {
	header := regexp.MustCompile(`^\[\[?([a-z0-9_]+)\]\]?\s*(#.*)?$`)
	assignment := regexp.MustCompile(`^([a-z][a-z0-9_]*)\s*=`)
	var keys []string
	table := ""
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		for strings.HasPrefix(line, "#") {
			line = strings.TrimSpace(line[1:])
		}
		if m := header.FindStringSubmatch(line); m != nil {
			table = m[1]
		} else if m := assignment.FindStringSubmatch(line); m != nil {
			keys = append(keys, joinKey(table, m[1]))
		}
	}
	return keys
}

func joinKey(table, key string) string {
	if table == "" {
		return key
	}
	return table + "." + key
}

// sortedSet sorts keys and drops repeats: a key may be shown more than once
// (the [[source]] keys of each source type).
func sortedSet(keys []string) []string {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	return slices.Compact(keys)
}

// TestConfigDocsInStep keeps docs/configuration.md and config.example.toml
// in step with the Config struct: every key the code accepts is documented
// in both, and neither documents a key the code would reject as unknown.
func TestConfigDocsInStep(t *testing.T) {
	code := sortedSet(configKeys(reflect.TypeFor[Config](), ""))
	if !slices.Contains(code, "source.path") || !slices.Contains(code, "redis.lock_ttl") {
		t.Fatalf("configKeys missed the keys of [[source]] or [redis]: %v", code)
	}
	for _, doc := range []struct {
		path string
		keys func(string) []string
	}{
		{"../../docs/configuration.md", referenceKeys},
		{"../../config.example.toml", exampleKeys},
	} {
		t.Run(doc.path, func(t *testing.T) {
			data, err := os.ReadFile(doc.path)
			if err != nil {
				t.Fatal(err)
			}
			documented := sortedSet(doc.keys(string(data)))
			missing := slices.DeleteFunc(slices.Clone(code), func(k string) bool { return slices.Contains(documented, k) })
			unknown := slices.DeleteFunc(documented, func(k string) bool { return slices.Contains(code, k) })
			if len(missing) > 0 {
				t.Errorf("%s does not document these keys of the Config struct: %s", doc.path, strings.Join(missing, ", "))
			}
			if len(unknown) > 0 {
				t.Errorf("%s documents keys the Config struct does not have: %s", doc.path, strings.Join(unknown, ", "))
			}
		})
	}
}

func TestConfigKeys(t *testing.T) {
	type inner struct {
		Name  string            `toml:"name"`
		Attrs map[string]string `toml:"attrs"`
	}
	type config struct {
		Top     string        `toml:"top"`
		Wait    time.Duration `toml:"wait"`
		Tags    []string      `toml:"tags"`
		Table   inner         `toml:"table"`
		Maybe   *inner        `toml:"maybe"`
		Many    []inner       `toml:"many"`
		When    time.Time     `toml:"when"`
		Skipped string        `toml:"-"`
		NoTag   string
		private string
	}
	want := []string{"top", "wait", "tags", "table.name", "table.attrs", "maybe.name", "maybe.attrs", "many.name", "many.attrs", "when"}
	if diff := cmp.Diff(want, configKeys(reflect.TypeFor[config](), "")); diff != "" {
		t.Errorf("configKeys mismatch (-want +got):\n%s", diff)
	}
}

func TestReferenceKeys(t *testing.T) {
	tests := []struct {
		name     string
		markdown string
		want     []string
	}{
		{
			name: "tables under headings naming TOML tables",
			markdown: "# Config\n\n## `[launchdarkly]`\n\n| key | default |\n| --- | --- |\n| `project` | required |\n| `base_url` | x |\n\n" +
				"## `[[source]]`\n\n### Every type\n\n| `name` | |\n\n### `file`\n\n|`path`|x|\n",
			want: []string{"launchdarkly.project", "launchdarkly.base_url", "source.name", "source.path"},
		},
		{
			name:     "a level-2 heading without a table ends the table",
			markdown: "## `[http]`\n| `listen` | x |\n## Durations\n| `90s` | x |\n| `stray` | x |\n",
			want:     []string{"http.listen", "stray"},
		},
		{
			name:     "code blocks are not headings or rows",
			markdown: "## `[safety]`\n```toml\n# [redis]\n| `fake` |\n```\n| `max_deletes` | 10 |\n",
			want:     []string{"safety.max_deletes"},
		},
		{
			name:     "rows that are not one key",
			markdown: "## `[log]`\n| `level`, `format` | x |\n| level | x |\n| `Level` | x |\n| `format` | json |\n",
			want:     []string{"log.format"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, referenceKeys(tc.markdown)); diff != "" {
				t.Errorf("referenceKeys mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExampleKeys(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{
			name: "set and commented keys under set and commented tables",
			text: "[launchdarkly]\nproject = \"p\"\n# token_file = \"/x\"\n\n# [redis]\n# url = \"redis://\"\n[[source]]\nname = \"a\"\n# # key_template = \"{{ .Name }}\"\n",
			want: []string{"launchdarkly.project", "launchdarkly.token_file", "redis.url", "source.name", "source.key_template"},
		},
		{
			name: "prose is not a key",
			text: "# Durations are strings such as \"90s\".\n[http]\n#   listen     where to serve\n# Names = must be lower case\nattr_paths = { branch = \"$.b\" }\n[reconcile] # with a comment\njitter=\"0s\"\n",
			want: []string{"http.attr_paths", "reconcile.jitter"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, exampleKeys(tc.text)); diff != "" {
				t.Errorf("exampleKeys mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// keyShape is what every key the two extractors return looks like.
func keyShape() *regexp.Regexp {
	return regexp.MustCompile(`^([a-z0-9_]+\.)?[a-z][a-z0-9_]*$`)
}

func FuzzReferenceKeys(f *testing.F) {
	if data, err := os.ReadFile("../../docs/configuration.md"); err == nil {
		f.Add(string(data))
	}
	f.Add("## `[http]`\n| `listen` | x |\n```\n# [redis]\n```\n### `[[source]]`\n|`path`|\n")
	f.Add("#`[a]`\n|`b`|\n\r\n")
	shape := keyShape()
	f.Fuzz(func(t *testing.T, markdown string) {
		for _, k := range referenceKeys(markdown) {
			if !shape.MatchString(k) {
				t.Fatalf("referenceKeys returned %q, not a key", k)
			}
		}
	})
}

func FuzzExampleKeys(f *testing.F) {
	if data, err := os.ReadFile("../../config.example.toml"); err == nil {
		f.Add(string(data))
	}
	f.Add("# [redis]\n# url = \"x\"\n[[source]] # c\nname=\"a\"\n")
	f.Add("##\t[a]\n b = 1\n")
	shape := keyShape()
	f.Fuzz(func(t *testing.T, text string) {
		for _, k := range exampleKeys(text) {
			if !shape.MatchString(k) {
				t.Fatalf("exampleKeys returned %q, not a key", k)
			}
		}
	})
}
