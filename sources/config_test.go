package sources

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // exact; "" means valid
	}{
		{name: "file", cfg: Config{Name: "previews", Type: "file", Path: "previews.txt"}},
		{name: "name with separators", cfg: Config{Name: "pr.previews_eu-1", Type: "file", Path: "p"}},
		{name: "name of 40", cfg: Config{Name: strings.Repeat("a", 40), Type: "file", Path: "p"}},
		{name: "digit first", cfg: Config{Name: "1st", Type: "file", Path: "p"}},
		{name: "all optional keys", cfg: Config{Name: "p", Type: "file", Path: "p", AllowEmpty: true, KeyTemplate: "{{ .Name }}", NameTemplate: "x"}},
		{name: "name missing", cfg: Config{Type: "file", Path: "p"}, wantErr: `source "": name: required`},
		{
			name: "name of 41", cfg: Config{Name: strings.Repeat("a", 41), Type: "file", Path: "p"},
			wantErr: `source "` + strings.Repeat("a", 41) + `": name: "` + strings.Repeat("a", 41) + `" must be 1 to 40 characters of a-z, 0-9, ".", "_", "-", starting with a letter or digit`,
		},
		{name: "uppercase", cfg: Config{Name: "Previews", Type: "file", Path: "p"}, wantErr: `source "Previews": name: "Previews" must be 1 to 40 characters of a-z, 0-9, ".", "_", "-", starting with a letter or digit`},
		{name: "leading hyphen", cfg: Config{Name: "-p", Type: "file", Path: "p"}, wantErr: `source "-p": name: "-p" must be 1 to 40 characters of a-z, 0-9, ".", "_", "-", starting with a letter or digit`},
		{name: "leading dot", cfg: Config{Name: ".p", Type: "file", Path: "p"}, wantErr: `source ".p": name: ".p" must be 1 to 40 characters of a-z, 0-9, ".", "_", "-", starting with a letter or digit`},
		{name: "slash", cfg: Config{Name: "a/b", Type: "file", Path: "p"}, wantErr: `source "a/b": name: "a/b" must be 1 to 40 characters of a-z, 0-9, ".", "_", "-", starting with a letter or digit`},
		{name: "non-ASCII", cfg: Config{Name: "prévu", Type: "file", Path: "p"}, wantErr: `source "prévu": name: "prévu" must be 1 to 40 characters of a-z, 0-9, ".", "_", "-", starting with a letter or digit`},
		{name: "type missing", cfg: Config{Name: "previews", Path: "p"}, wantErr: `source "previews": type: required (one of file, kubernetes, vercel, render, github, http)`},
		{name: "type unknown", cfg: Config{Name: "previews", Type: "netlify"}, wantErr: `source "previews": type: unknown type "netlify" (one of file, kubernetes, vercel, render, github, http)`},
		{name: "type is case-sensitive", cfg: Config{Name: "previews", Type: "File", Path: "p"}, wantErr: `source "previews": type: unknown type "File" (one of file, kubernetes, vercel, render, github, http)`},
		{name: "path missing", cfg: Config{Name: "previews", Type: "file"}, wantErr: `source "previews": path: required for type "file"`},
		{name: "path blank", cfg: Config{Name: "previews", Type: "file", Path: "  "}, wantErr: `source "previews": path: required for type "file"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.wantErr, got); diff != "" {
				t.Errorf("Validate() error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// A key meant for one type must not be silently ignored by another. Only
// file exists so far, so the check runs on a type whose key list is empty.
func TestConfigValidateRejectsOtherTypesKeys(t *testing.T) {
	keyless := sourceType{name: "keyless", validate: func(Config) error { return nil }}
	cfg := Config{Name: "previews", Type: "keyless", Path: "p"}
	err := validateType(cfg, keyless)
	want := `path: not a key of type "keyless"`
	if err == nil || err.Error() != want {
		t.Errorf("validateType() = %v, want %q", err, want)
	}
}

func TestNew(t *testing.T) {
	base := filepath.FromSlash("/etc/ldreaper")
	tests := []struct {
		name     string
		cfg      Config
		baseDir  string
		wantPath string
		wantErr  string
	}{
		{name: "relative path resolves against the config dir", cfg: Config{Name: "previews", Type: "file", Path: "previews.txt"}, baseDir: base, wantPath: filepath.Join(base, "previews.txt")},
		{name: "relative path with dots", cfg: Config{Name: "previews", Type: "file", Path: "../lists/p.yaml"}, baseDir: base, wantPath: filepath.FromSlash("/etc/lists/p.yaml")},
		{name: "absolute path is kept", cfg: Config{Name: "previews", Type: "file", Path: "/var/lib/p.json"}, baseDir: base, wantPath: filepath.FromSlash("/var/lib/p.json")},
		{name: "no base dir means the working dir", cfg: Config{Name: "previews", Type: "file", Path: "p.txt"}, baseDir: "", wantPath: "p.txt"},
		{name: "invalid config", cfg: Config{Name: "previews", Type: "file"}, baseDir: base, wantErr: `source "previews": path: required for type "file"`},
		{name: "unknown type", cfg: Config{Name: "previews", Type: "netlify"}, baseDir: base, wantErr: `source "previews": type: unknown type "netlify" (one of file, kubernetes, vercel, render, github, http)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := New(tt.cfg, Deps{BaseDir: tt.baseDir})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("New() = %v, %v; want error %q", src, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(): %v", err)
			}
			file, ok := src.(*File)
			if !ok {
				t.Fatalf("New() = %T, want *File", src)
			}
			if diff := cmp.Diff(tt.wantPath, file.path); diff != "" {
				t.Errorf("path mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.cfg.Name, file.Name()); diff != "" {
				t.Errorf("name mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewFileSourceLists(t *testing.T) {
	src, err := New(Config{Name: "previews", Type: "file", Path: "previews.yaml"}, Deps{BaseDir: "testdata"})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Complete || snap.Source != "previews" || len(snap.Items) != 3 {
		t.Errorf("List() = %+v, want a complete snapshot of 3 items from source previews", snap)
	}
}

// The toml tags are part of the config contract: users' files depend on them.
func TestConfigTOMLKeys(t *testing.T) {
	const doc = `
[[source]]
name = "previews"
type = "file"
allow_empty = true
path = "previews.txt"
key_template = "pr-{{ .Attrs.pr }}"
name_template = "PR {{ .Attrs.pr }}"
`
	var file struct {
		Source []Config `toml:"source"`
	}
	meta, err := toml.Decode(doc, &file)
	if err != nil {
		t.Fatal(err)
	}
	if undecoded := meta.Undecoded(); len(undecoded) > 0 {
		t.Errorf("keys not mapped to Config: %v", undecoded)
	}
	want := []Config{{
		Name: "previews", Type: "file", AllowEmpty: true, Path: "previews.txt",
		KeyTemplate: "pr-{{ .Attrs.pr }}", NameTemplate: "PR {{ .Attrs.pr }}",
	}}
	if diff := cmp.Diff(want, file.Source); diff != "" {
		t.Errorf("decoded config mismatch (-want +got):\n%s", diff)
	}
}
