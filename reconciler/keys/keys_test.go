package keys

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestSlug(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"main", "main"},
		{"Feature/Login_Page", "feature-login-page"},
		{"--a--b--", "a-b"},
		{"  spaced   out  ", "spaced-out"},
		{"PR #12", "pr-12"},
		{"release/v1.2.3", "release-v1-2-3"},
		{"Crème Brûlée", "creme-brulee"},
		{"Straße", "strasse"},
		{"ÆSIR Œuvre", "aesir-oeuvre"},
		{"Łódź", "lodz"},
		{"e\u0301te", "ete"},       // combining acute accent is dropped
		{"fix-日本語-bug", "fix-bug"}, // untransliterable letters are dropped
		{"a日b", "ab"},              // …without leaving a separator
		{"привет", ""},             // a name of only such letters slugs to ""
		{"a→b", "a-b"},             // non-letter symbols separate words
		{"a\u00a0b", "a-b"},        // non-breaking space separates words
		{"x\xffy", "x-y"},          // invalid UTF-8 separates words
		{"٣٤", ""},                 // non-ASCII digits are not [0-9]
		{"ALL-CAPS_123", "all-caps-123"},
		{"\u212a", "k"}, // Kelvin sign lowercases to ASCII k
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, Slug(tt.in)); diff != "" {
			t.Errorf("Slug(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestTrunc(t *testing.T) {
	tests := []struct {
		n       int
		in      string
		want    string
		wantErr bool
	}{
		{n: 3, in: "abcdef", want: "abc"},
		{n: 10, in: "abc", want: "abc"},
		{n: 0, in: "abc", want: ""},
		{n: 2, in: "héllo", want: "hé"},
		{n: 3, in: "日本語です", want: "日本語"},
		{n: 1, in: "👍🏽x", want: "👍"},
		{n: -1, in: "abc", wantErr: true},
	}
	for _, tt := range tests {
		got, err := trunc(tt.n, tt.in)
		if (err != nil) != tt.wantErr {
			t.Fatalf("trunc(%d, %q) error = %v, wantErr %v", tt.n, tt.in, err, tt.wantErr)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("trunc(%d, %q) mismatch (-want +got):\n%s", tt.n, tt.in, diff)
		}
		if !utf8.ValidString(got) {
			t.Errorf("trunc(%d, %q) = %q splits a rune", tt.n, tt.in, got)
		}
	}
}

func TestKeyRender(t *testing.T) {
	item := Input{
		Name:      "Feature/Login",
		Source:    "previews",
		Attrs:     map[string]string{"pr": "12", "branch": "feature/login", "url": "https://x"},
		CreatedAt: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC),
	}
	tests := []struct {
		name     string
		template string
		in       Input
		want     string
		wantErr  string // substring; "" means success
	}{
		{name: "slug of name", template: "{{ .Name | slug }}", in: item, want: "feature-login"},
		{name: "attr field", template: "pr-{{ .Attrs.pr }}", in: item, want: "pr-12"},
		{name: "slug then trunc", template: "{{ .Attrs.branch | slug | trunc 7 }}", in: item, want: "feature"},
		{name: "source and name", template: "{{ .Source }}-{{ .Name | slug }}", in: item, want: "previews-feature-login"},
		{name: "hash", template: `{{ hash "feature/login" }}`, in: item, want: "df7c7a"},
		{name: "hashN", template: `{{ hashN 12 "pr-12" }}`, in: item, want: "809d3406f234"},
		{name: "hash of attr", template: "h-{{ .Attrs.branch | hash }}", in: item, want: "h-df7c7a"},
		{name: "lower upper", template: `{{ .Name | slug | upper }}.{{ "AB" | lower }}`, in: item, want: "FEATURE-LOGIN.ab"},
		{name: "replace", template: `{{ .Attrs.branch | replace "/" "_" }}`, in: item, want: "feature_login"},
		{name: "trimPrefix", template: `{{ .Attrs.branch | trimPrefix "feature/" }}`, in: item, want: "login"},
		{name: "trimSuffix", template: `{{ .Attrs.branch | trimSuffix "/login" }}`, in: item, want: "feature"},
		{name: "attr func", template: `pr-{{ attr "pr" }}`, in: item, want: "pr-12"},
		{name: "default for empty attr", template: `{{ index .Attrs "env" | default "main" }}`, in: item, want: "main"},
		{name: "default keeps value", template: `{{ index .Attrs "pr" | default "main" }}`, in: item, want: "12"},
		{name: "created at", template: `d{{ .CreatedAt.Format "20060102" }}`, in: item, want: "d20250304"},
		{name: "surrounding whitespace trimmed", template: "  {{ .Name | slug }}\n", in: item, want: "feature-login"},
		{name: "uppercase allowed by LD pattern", template: "PR_{{ .Attrs.pr }}", in: item, want: "PR_12"},
		{
			name: "missing attr field", template: "{{ .Attrs.ticket }}", in: item,
			wantErr: `rendering key_template "{{ .Attrs.ticket }}" for item "Feature/Login" of source "previews": `,
		},
		{
			name: "missing attr field names the key", template: "{{ .Attrs.ticket }}", in: item,
			wantErr: `map has no entry for key "ticket"`,
		},
		{
			name: "missing attr via attr lists present attrs", template: `{{ attr "ticket" }}`, in: item,
			wantErr: `attr "ticket" is not set (the item has attrs: branch, pr, url)`,
		},
		{
			name: "missing attr on item without attrs", template: `{{ attr "ticket" }}`, in: Input{Name: "a", Source: "s"},
			wantErr: `attr "ticket" is not set (the item has attrs: none)`,
		},
		{
			name: "slash is not repaired", template: "{{ .Name }}", in: item,
			wantErr: `rendered key "Feature/Login" does not match`,
		},
		{
			name: "leading hyphen rejected", template: "-{{ .Name | slug }}", in: item,
			wantErr: `rendered key "-feature-login" does not match`,
		},
		{
			name: "non-ASCII rejected", template: "{{ .Name }}", in: Input{Name: "café", Source: "s"},
			wantErr: `rendered key "café" does not match`,
		},
		{
			name: "empty key", template: "{{ .Name | slug }}", in: Input{Name: "日本", Source: "previews"},
			wantErr: `rendering key_template "{{ .Name | slug }}" for item "日本" of source "previews": rendered an empty key`,
		},
		{
			name: "whitespace-only key", template: "{{ .Attrs.pad }}", in: Input{Name: "a", Attrs: map[string]string{"pad": " \t"}},
			wantErr: "rendered an empty key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := ParseKey(tt.template)
			if err != nil {
				t.Fatalf("ParseKey(%q): %v", tt.template, err)
			}
			got, err := tmpl.Render(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Render() = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render(): %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Render() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeyRenderShortensLongKeys(t *testing.T) {
	tmpl, err := ParseKey("{{ .Name | slug }}")
	if err != nil {
		t.Fatal(err)
	}
	render := func(name string) string {
		t.Helper()
		got, err := tmpl.Render(Input{Name: name, Source: "s"})
		if err != nil {
			t.Fatalf("Render(%q): %v", name, err)
		}
		return got
	}

	exactly64 := strings.Repeat("a", MaxKeyLen)
	if diff := cmp.Diff(exactly64, render(exactly64)); diff != "" {
		t.Errorf("a key of exactly MaxKeyLen is kept as is (-want +got):\n%s", diff)
	}

	// Pinned so that a change of the shortening scheme, which would orphan
	// every existing long-named environment, cannot go unnoticed.
	long := strings.Repeat("a", 70)
	if diff := cmp.Diff(strings.Repeat("a", 57)+"-6bd5e5", render(long)); diff != "" {
		t.Errorf("shortened key mismatch (-want +got):\n%s", diff)
	}

	prefix := "feature-" + strings.Repeat("x", 60)
	first, second := render(prefix+"-one"), render(prefix+"-two")
	for _, key := range []string{first, second} {
		if len(key) != MaxKeyLen || !KeyPattern.MatchString(key) {
			t.Errorf("shortened key %q: len %d, want %d and matching %s", key, len(key), MaxKeyLen, KeyPattern)
		}
	}
	if first == second {
		t.Errorf("two long keys with a shared prefix both shortened to %q", first)
	}
	if again := render(prefix + "-one"); again != first {
		t.Errorf("shortening is not deterministic: %q then %q", first, again)
	}

	// The cut lands right after a hyphen, which must not double up with the
	// hyphen before the hash.
	atHyphen := strings.Repeat("b", 56) + "-" + strings.Repeat("c", 20)
	got := render(atHyphen)
	want := strings.Repeat("b", 56) + "-" + hashHex(atHyphen, 6)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trailing separator before the hash (-want +got):\n%s", diff)
	}
}

func TestParseKeyValidation(t *testing.T) {
	tests := []struct {
		name     string
		template string
		wantErr  string // substring; "" means valid
	}{
		{name: "simple", template: "{{ .Name | slug }}"},
		{name: "missing attr field is fine at parse time", template: "{{ .Attrs.branch | slug | trunc 40 }}"},
		{name: "missing attr func is fine at parse time", template: `{{ attr "branch" | slug }}`},
		{name: "literal only", template: "fixed"},
		{name: "empty", template: "", wantErr: "parsing key_template: template is empty"},
		{name: "blank", template: "  \n", wantErr: "template is empty"},
		{name: "syntax error", template: "{{ .Name ", wantErr: `parsing key_template "{{ .Name "`},
		{name: "unknown function", template: "{{ .Name | slugify }}", wantErr: `function "slugify" not defined`},
		{name: "unknown field", template: "{{ .Nmae }}", wantErr: `validating key_template "{{ .Nmae }}"`},
		{name: "unknown field names the field", template: "{{ .Nmae }}", wantErr: "can't evaluate field Nmae"},
		{name: "field of a string", template: "{{ .Name.First }}", wantErr: "validating key_template"},
		{name: "negative trunc", template: "{{ .Name | trunc -1 }}", wantErr: "trunc: length -1 is negative"},
		{name: "hashN out of range", template: "{{ .Name | hashN 65 }}", wantErr: "hashN: length 65 is outside 1..64"},
		{name: "wrong argument type", template: `{{ .Name | trunc "x" }}`, wantErr: "validating key_template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKey(tt.template)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseKey(%q): %v", tt.template, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseKey(%q) error = %v, want containing %q", tt.template, err, tt.wantErr)
			}
		})
	}
}

func TestNameRender(t *testing.T) {
	tests := []struct {
		name     string
		template string
		in       Input
		want     string
		wantErr  string
	}{
		{name: "plain", template: "Preview {{ .Name }}", in: Input{Name: "feature/login"}, want: "Preview feature/login"},
		{name: "collapses whitespace", template: "  PR\t{{ .Attrs.pr }} \n\n {{ .Name }}  ", in: Input{Name: "x", Attrs: map[string]string{"pr": "12"}}, want: "PR 12 x"},
		{name: "exactly the cap", template: "{{ .Name }}", in: Input{Name: strings.Repeat("é", MaxNameLen)}, want: strings.Repeat("é", MaxNameLen)},
		{name: "over the cap", template: "{{ .Name }}", in: Input{Name: strings.Repeat("é", MaxNameLen+1)}, want: strings.Repeat("é", MaxNameLen-1) + "…"},
		{name: "no space before ellipsis", template: "{{ .Name }}", in: Input{Name: strings.Repeat("a", MaxNameLen-2) + " bcd"}, want: strings.Repeat("a", MaxNameLen-2) + "…"},
		{name: "empty", template: "{{ .Name }}", in: Input{Name: " ", Source: "previews"}, wantErr: `rendering name_template "{{ .Name }}" for item " " of source "previews": rendered an empty name`},
		{name: "missing attr", template: "{{ .Attrs.pr }}", in: Input{Name: "a"}, wantErr: `map has no entry for key "pr"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := ParseName(tt.template)
			if err != nil {
				t.Fatalf("ParseName(%q): %v", tt.template, err)
			}
			got, err := tmpl.Render(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Render() = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render(): %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Render() mismatch (-want +got):\n%s", diff)
			}
			if n := utf8.RuneCountInString(got); n > MaxNameLen {
				t.Errorf("Render() = %d runes, over MaxNameLen", n)
			}
		})
	}
}

func TestParseNameValidation(t *testing.T) {
	if _, err := ParseName("{{ .Nmae }}"); err == nil || !strings.Contains(err.Error(), "validating name_template") {
		t.Errorf("ParseName with unknown field: error = %v, want a validation error", err)
	}
	if _, err := ParseName(""); err == nil {
		t.Error("ParseName(\"\"): want error for an empty template")
	}
	if _, err := ParseName("Preview {{ .Attrs.branch }}"); err != nil {
		t.Errorf("ParseName with a missing attr: %v, want nil (attrs vary per item)", err)
	}
}

// attr is bound per render; concurrent renders must each see their own item.
func TestKeyRenderConcurrentItemsStaySeparate(t *testing.T) {
	tmpl, err := ParseKey(`pr-{{ attr "pr" }}`)
	if err != nil {
		t.Fatal(err)
	}
	const items = 50
	got := make([]string, items)
	var wg sync.WaitGroup
	for i := range items {
		wg.Go(func() {
			key, err := tmpl.Render(Input{Name: fmt.Sprint(i), Attrs: map[string]string{"pr": fmt.Sprint(i)}})
			if err != nil {
				t.Error(err)
			}
			got[i] = key
		})
	}
	wg.Wait()
	for i, key := range got {
		if want := fmt.Sprintf("pr-%d", i); key != want {
			t.Errorf("item %d rendered %q, want %q", i, key, want)
		}
	}
}

func FuzzSlug(f *testing.F) {
	slugShape := regexp.MustCompile(`^([a-z0-9]+(-[a-z0-9]+)*)?$`)
	for _, seed := range []string{"", "Feature/Login", "--a--", "Straße Œuvre", "日本-x", "a\xffb", "\u212a", "e\u0301"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Slug(s)
		if !slugShape.MatchString(got) {
			t.Fatalf("Slug(%q) = %q, not hyphen-joined [a-z0-9] words", s, got)
		}
		if again := Slug(got); again != got {
			t.Fatalf("Slug not idempotent: Slug(%q) = %q, Slug(%q) = %q", s, got, got, again)
		}
	})
}

func FuzzKeyRender(f *testing.F) {
	f.Add("feature/login", "main")
	f.Add(strings.Repeat("x", 200), strings.Repeat("y-", 60))
	f.Add("", "")
	f.Add("日本語", "ветка")
	f.Add("a\xff", "-.-")
	templates := []string{
		"{{ .Name | slug }}",
		"{{ .Attrs.branch | slug | trunc 40 }}-{{ .Name | slug }}",
		"{{ .Name }}",
		`{{ .Attrs.branch }}.{{ .Name | slug | trunc 70 }}`,
	}
	parsed := make([]*KeyTemplate, len(templates))
	for i, text := range templates {
		tmpl, err := ParseKey(text)
		if err != nil {
			f.Fatalf("ParseKey(%q): %v", text, err)
		}
		parsed[i] = tmpl
	}
	f.Fuzz(func(t *testing.T, name, branch string) {
		in := Input{Name: name, Source: "fuzz", Attrs: map[string]string{"branch": branch}}
		for i, tmpl := range parsed {
			key, err := tmpl.Render(in)
			if err != nil {
				continue
			}
			if len(key) > MaxKeyLen || !KeyPattern.MatchString(key) {
				t.Fatalf("template %q rendered %q (len %d): over MaxKeyLen or not matching KeyPattern", templates[i], key, len(key))
			}
			again, err := tmpl.Render(in)
			if err != nil || again != key {
				t.Fatalf("template %q not deterministic: %q then %q, %v", templates[i], key, again, err)
			}
		}
	})
}
