package sources

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

func TestFileListTestdata(t *testing.T) {
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	structured := []Env{
		{Name: "feature-login", Attrs: map[string]string{"branch": "feature/login", "pr": "31"}, CreatedAt: created},
		{Name: "fix#7", Attrs: map[string]string{}},
		{Name: "pr-12", Attrs: map[string]string{}},
	}
	tests := []struct {
		path string
		want []Env
	}{
		{path: "testdata/previews.txt", want: []Env{
			{Name: "feature-login", Attrs: map[string]string{}},
			{Name: "fix#7", Attrs: map[string]string{}},
			{Name: "pr-12", Attrs: map[string]string{}},
		}},
		{path: "testdata/previews.json", want: structured},
		{path: "testdata/previews.yaml", want: structured},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			src := NewFile("previews", tt.path)
			got, err := src.List(t.Context())
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			want := Snapshot{Source: "previews", Items: tt.want, Complete: true}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("List mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFileListFailuresAreIncomplete(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	oversized := NewFile("previews", write("big.txt", "a\nb\nc\n"))
	oversized.maxBytes = 5
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()

	tests := []struct {
		name    string
		src     *File
		ctx     context.Context
		wantErr string
		wantIs  error
	}{
		{name: "missing", src: NewFile("previews", filepath.Join(dir, "nope.txt")), ctx: t.Context(), wantErr: "nope.txt", wantIs: os.ErrNotExist},
		{name: "directory", src: NewFile("previews", dir), ctx: t.Context(), wantErr: dir + ": is a directory"},
		{name: "unparsable", src: NewFile("previews", write("bad.json", `["a",`)), ctx: t.Context(), wantErr: "parsing " + filepath.Join(dir, "bad.json") + ": line 1, column 5: unexpected end of JSON input"},
		{name: "empty json", src: NewFile("previews", write("empty.json", "")), ctx: t.Context(), wantErr: "write [] for an empty list"},
		{name: "duplicate", src: NewFile("previews", write("dup.txt", "a\nb\na\n")), ctx: t.Context(), wantErr: `line 3: name "a" is already listed on line 1`},
		{name: "over the size cap", src: oversized, ctx: t.Context(), wantErr: "larger than the 5-byte limit"},
		{name: "cancelled", src: NewFile("previews", write("ok.txt", "a\n")), ctx: cancelled, wantErr: `listing file source "previews"`, wantIs: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.src.List(tt.ctx)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("List error = %v, want containing %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("List error = %v, want wrapping %v", err, tt.wantIs)
			}
			if diff := cmp.Diff(Snapshot{Source: "previews"}, got); diff != "" {
				t.Errorf("snapshot on failure (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFileListUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files regardless of their mode")
	}
	path := filepath.Join(t.TempDir(), "locked.txt")
	if err := os.WriteFile(path, []byte("a\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	got, err := NewFile("previews", path).List(t.Context())
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), path) {
		t.Fatalf("List error = %v, want a permission error naming %s", err, path)
	}
	if diff := cmp.Diff(Snapshot{Source: "previews"}, got); diff != "" {
		t.Errorf("snapshot on failure (-want +got):\n%s", diff)
	}
}

func TestFileListEmptyTextIsCompleteAndEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "previews.txt")
	if err := os.WriteFile(path, []byte("# nothing live\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := NewFile("previews", path).List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Snapshot{Source: "previews", Items: []Env{}, Complete: true}, got); diff != "" {
		t.Errorf("List mismatch (-want +got):\n%s", diff)
	}
}

func TestFileListRereadsEveryCall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "previews.txt")
	src := NewFile("previews", path)
	for _, content := range []string{"a\n", "a\nb\n", "b\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := src.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, item := range got.Items {
			names = append(names, item.Name)
		}
		if diff := cmp.Diff(strings.Fields(content), names); diff != "" {
			t.Errorf("after writing %q (-want +got):\n%s", content, diff)
		}
	}
}

func TestFormatOf(t *testing.T) {
	tests := map[string]fileFormat{
		"a.json": formatJSON, "a.JSON": formatJSON, "a.yaml": formatYAML, "a.yml": formatYAML,
		"a.txt": formatText, "previews": formatText, "a.json.txt": formatText, "dir.json/list": formatText,
	}
	for path, want := range tests {
		if got := formatOf(path); got != want {
			t.Errorf("formatOf(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestParseText(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Env
		wantErr string
	}{
		{name: "empty", in: "", want: []Env{}},
		{name: "sorted", in: "b\na\nc", want: envs("a", "b", "c")},
		{name: "comments and blanks", in: "# header\n\na # why\n  b\t\n\t# indented comment\n", want: envs("a", "b")},
		{name: "hash inside a name", in: "fix#12\n", want: envs("fix#12")},
		{name: "hash after tab", in: "a\t#c\n", want: envs("a")},
		{name: "CRLF", in: "a\r\nb\r\n", want: envs("a", "b")},
		{name: "BOM", in: "\ufeffa\n", want: envs("a")},
		{name: "unicode name", in: "café\n", want: envs("café")},
		{name: "inner space", in: "ok\nfeature login\n", wantErr: `line 2: name "feature login" contains whitespace`},
		{name: "inner tab", in: "a\tb\n", wantErr: "line 1: name \"a\\tb\" contains whitespace"},
		{name: "lone CR endings", in: "a\rb\r", wantErr: "contains whitespace"},
		{name: "control character", in: "a\x00b\n", wantErr: "line 1: name \"a\\x00b\" contains a control character"},
		{name: "invalid UTF-8", in: "ok\n\xff\n", wantErr: "line 2: name \"\\xff\" is not valid UTF-8"},
		{name: "duplicate", in: "a\nb\n a # again\n", wantErr: `line 3: name "a" is already listed on line 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkParse(t, formatText, tt.in, tt.want, tt.wantErr)
		})
	}
}

func TestParseJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Env
		wantErr string
	}{
		{name: "empty list", in: "[]", want: []Env{}},
		{name: "names", in: `["b", "a"]`, want: envs("a", "b")},
		{name: "BOM", in: "\ufeff[\"a\"]", want: envs("a")},
		{name: "object", in: `[{"name": "a", "attrs": {"pr": "12"}, "created_at": "2025-01-02T03:04:05+02:00"}]`, want: []Env{
			{Name: "a", Attrs: map[string]string{"pr": "12"}, CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("", 2*3600))},
		}},
		{name: "leading zero is not JSON", in: `[{"name": "a", "attrs": {"pr": 012.50, "draft": true}}]`, wantErr: "invalid character '1' after object key:value pair"},
		{name: "number and bool attrs", in: `[{"name": "a", "attrs": {"pr": 12.50, "draft": true}}]`, want: []Env{
			{Name: "a", Attrs: map[string]string{"pr": "12.50", "draft": "true"}},
		}},
		{name: "empty attrs", in: `[{"name": "a", "attrs": {}}]`, want: envs("a")},
		{name: "whitespace only", in: " \n ", wantErr: "file is empty; write [] for an empty list"},
		{name: "null", in: "null", wantErr: "line 1: want a list of names or objects, got null"},
		{name: "object at top", in: `{"name": "a"}`, wantErr: "want a list of names or objects, got an object"},
		{name: "trailing value", in: "[]\n[]", wantErr: "line 2, column 1: invalid character '[' after top-level value"},
		{name: "trailing garbage", in: "[] x", wantErr: "line 1, column 4: invalid character 'x'"},
		{name: "syntax error position", in: "[\n  \"a\",\n  \"b\" \"c\"\n]", wantErr: "line 3, column 7: invalid character '\"' after array element"},
		{name: "truncated", in: "[\n\"a\",\n", wantErr: "line 2, column 5: unexpected end of JSON input"},
		{name: "truncated object", in: `[{"name"`, wantErr: "unexpected end of JSON"},
		{name: "number element", in: "[\n12]", wantErr: "line 2: list element is a number, want a name or an object"},
		{name: "null element", in: "[null]", wantErr: "list element is null"},
		{name: "unknown key", in: "[\n{\"name\": \"a\",\n \"nmae\": \"b\"}]", wantErr: `line 3: unknown key "nmae" (want name, attrs, created_at)`},
		{name: "repeated key", in: `[{"name": "a", "name": "b"}]`, wantErr: `key "name" repeated`},
		{name: "missing name", in: "[\n{\"attrs\": {}}]", wantErr: `line 2: object has no "name"`},
		{name: "name not a string", in: `[{"name": 12}]`, wantErr: "name is a number, want a string"},
		{name: "empty name", in: `[""]`, wantErr: "line 1: name is empty"},
		{name: "name with space", in: `[" a"]`, wantErr: `name " a" contains whitespace`},
		{name: "nested attr", in: "[{\"name\": \"a\",\n\"attrs\": {\"x\": {\"y\": \"z\"}}}]", wantErr: "line 2: attrs.x is an object, want a string"},
		{name: "list attr", in: `[{"name": "a", "attrs": {"x": []}}]`, wantErr: "attrs.x is a list, want a string"},
		{name: "null attr", in: `[{"name": "a", "attrs": {"x": null}}]`, wantErr: "attrs.x is null, want a string"},
		{name: "attrs not an object", in: `[{"name": "a", "attrs": ["x"]}]`, wantErr: "attrs is a list, want an object of strings"},
		{name: "empty attr key", in: `[{"name": "a", "attrs": {"": "x"}}]`, wantErr: "attrs has an empty key"},
		{name: "repeated attr", in: `[{"name": "a", "attrs": {"x": "1", "x": "2"}}]`, wantErr: "attrs.x repeated"},
		{name: "bad created_at", in: `[{"name": "a", "created_at": "yesterday"}]`, wantErr: `created_at "yesterday" is not an RFC 3339 time`},
		{name: "duplicate names", in: "[\"a\",\n{\"name\": \"a\"}]", wantErr: `line 2: name "a" is already listed on line 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkParse(t, formatJSON, tt.in, tt.want, tt.wantErr)
		})
	}
}

func TestParseYAML(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Env
		wantErr string
	}{
		{name: "empty list", in: "[]\n", want: []Env{}},
		{name: "names", in: "- b\n- a\n", want: envs("a", "b")},
		{name: "flow list", in: "[b, a]", want: envs("a", "b")},
		{name: "BOM", in: "\ufeff- a\n", want: envs("a")},
		{name: "scalars kept as written", in: "- 012\n- name: x\n  attrs: {pr: 012, draft: yes, ratio: 1.50, on: true}\n", want: []Env{
			{Name: "012", Attrs: map[string]string{}},
			{Name: "x", Attrs: map[string]string{"pr": "012", "draft": "yes", "ratio": "1.50", "on": "true"}},
		}},
		{name: "anchors", in: "- name: a\n  attrs: &common {team: web}\n- name: b\n  attrs: *common\n", want: []Env{
			{Name: "a", Attrs: map[string]string{"team": "web"}},
			{Name: "b", Attrs: map[string]string{"team": "web"}},
		}},
		{name: "created_at", in: "- name: a\n  created_at: 2025-01-02T03:04:05Z\n", want: []Env{
			{Name: "a", Attrs: map[string]string{}, CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)},
		}},
		{name: "empty file", in: "", wantErr: "file is empty; write [] for an empty list"},
		{name: "comment only", in: "# nothing\n", wantErr: "file is empty; write [] for an empty list"},
		{name: "null document", in: "~\n", wantErr: "line 1: want a list of names or objects, got null"},
		{name: "map at top", in: "a: b\n", wantErr: "want a list of names or objects, got a map"},
		{name: "second document", in: "- a\n---\n- b\n", wantErr: "line 2: a second YAML document"},
		{name: "syntax error", in: "- a\n- [b\n", wantErr: "yaml: line"},
		{name: "null element", in: "- a\n- ~\n", wantErr: "line 2: list element is null, want a name or an object"},
		{name: "list element", in: "- [a]\n", wantErr: "list element is a list"},
		{name: "unknown key", in: "- name: a\n  nmae: b\n", wantErr: `line 2: unknown key "nmae" (want name, attrs, created_at)`},
		{name: "repeated key", in: "- name: a\n  name: b\n", wantErr: `key "name" repeated`},
		{name: "missing name", in: "- attrs: {}\n", wantErr: `line 1: object has no "name"`},
		{name: "null name", in: "- name:\n", wantErr: "line 1: name is null, want a string"},
		{name: "name with space", in: "- 'a b'\n", wantErr: `line 1: name "a b" contains whitespace`},
		{name: "nested attr", in: "- name: a\n  attrs:\n    labels:\n      x: y\n", wantErr: "line 4: attrs.labels is a map, want a string"},
		{name: "list attr", in: "- name: a\n  attrs: {x: [1]}\n", wantErr: "line 2: attrs.x is a list, want a string"},
		{name: "null attr", in: "- name: a\n  attrs: {x: null}\n", wantErr: "attrs.x is null, want a string"},
		{name: "attrs not a map", in: "- name: a\n  attrs: [x]\n", wantErr: "line 2: attrs is a list, want a map of strings"},
		{name: "complex key", in: "- {[a]: b}\n", wantErr: "object key is a list"},
		{name: "bad created_at", in: "- name: a\n  created_at: 2025-01-02\n", wantErr: `created_at "2025-01-02" is not an RFC 3339 time`},
		{name: "duplicate names", in: "- a\n- b\n- name: a\n", wantErr: `line 3: name "a" is already listed on line 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkParse(t, formatYAML, tt.in, tt.want, tt.wantErr)
		})
	}
}

func envs(names ...string) []Env {
	items := make([]Env, 0, len(names))
	for _, name := range names {
		items = append(items, Env{Name: name, Attrs: map[string]string{}})
	}
	return items
}

func checkParse(t *testing.T, format fileFormat, in string, want []Env, wantErr string) {
	t.Helper()
	got, err := parse(format, []byte(in))
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("parse(%q) = %v, %v; want error containing %q", in, got, err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("parse(%q): %v", in, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parse(%q) mismatch (-want +got):\n%s", in, diff)
	}
}

// checkParsedInvariants holds for any successful parse, whatever the input.
func checkParsedInvariants(t *testing.T, items []Env) {
	t.Helper()
	seen := map[string]bool{}
	for i, item := range items {
		if item.Name == "" || strings.TrimFunc(item.Name, unicode.IsSpace) != item.Name {
			t.Fatalf("item %d: name %q is empty or has surrounding whitespace", i, item.Name)
		}
		if seen[item.Name] {
			t.Fatalf("item %d: duplicate name %q", i, item.Name)
		}
		seen[item.Name] = true
		if i > 0 && items[i-1].Name >= item.Name {
			t.Fatalf("items not sorted: %q before %q", items[i-1].Name, item.Name)
		}
		if item.Attrs == nil {
			t.Fatalf("item %q: nil Attrs", item.Name)
		}
	}
}

func fuzzParse(f *testing.F, format fileFormat, seeds []string) {
	for _, seed := range seeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := parse(format, data)
		if err != nil {
			return
		}
		checkParsedInvariants(t, items)
	})
}

func FuzzParseText(f *testing.F) {
	fuzzParse(f, formatText, []string{"", "a\nb\n", "# c\n a # d\r\n", "\ufeffx\n", "a b\n", "a\na\n", "fix#1\n", "\xff\n"})
}

func FuzzParseJSON(f *testing.F) {
	fuzzParse(f, formatJSON, []string{
		"[]", `["a", "b"]`, `[{"name": "a", "attrs": {"k": "v", "n": 1}, "created_at": "2025-01-02T03:04:05Z"}]`,
		`["a", "a"]`, `[{"name": " a "}]`, `[{"name": "a", "x": 1}]`, "[\"a\",", "[] []", "\ufeff[]",
	})
}

func FuzzParseYAML(f *testing.F) {
	fuzzParse(f, formatYAML, []string{
		"[]", "- a\n- b\n", "- name: a\n  attrs: {pr: 12}\n  created_at: 2025-01-02T03:04:05Z\n",
		"- a\n- a\n", "- &x {name: a}\n- *x\n", "- ~\n", "a: b\n", "- a\n---\n- b\n", "- {name: a, attrs: {x: [1]}}\n",
	})
}
