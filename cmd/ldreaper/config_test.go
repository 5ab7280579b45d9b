package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const minimalConfig = `
[launchdarkly]
project = "my-project"

[[source]]
name = "previews"
type = "file"
path = "previews.txt"
`

const sourceBlock = `
[[source]]
name = "previews"
type = "file"
path = "previews.txt"
`

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseConfig("ldreaper.toml", minimalConfig)
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	want.LaunchDarkly.Project = "my-project"
	want.Sources = cfg.Sources
	want.path = "ldreaper.toml"
	if diff := cmp.Diff(want, cfg, cmp.AllowUnexported(Config{})); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestParseConfigExample(t *testing.T) {
	// config.example.toml documents every key with its default: it must load,
	// and every default it shows must be the code's default.
	data, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig("config.example.toml", string(data))
	if err != nil {
		t.Fatalf("config.example.toml does not load: %v", err)
	}
	want := defaultConfig()
	want.LaunchDarkly.Project = "my-project"
	want.LaunchDarkly.SourceEnvironment = "staging"
	want.LaunchDarkly.ExtraTags = []string{}
	want.Safety.Protected = []string{}
	want.Sources = cfg.Sources
	want.path = "config.example.toml"
	if diff := cmp.Diff(want, cfg, cmp.AllowUnexported(Config{})); diff != "" {
		t.Errorf("config.example.toml differs from the defaults (-code +example):\n%s", diff)
	}
}

func TestParseConfigRedisDefaults(t *testing.T) {
	cfg, err := parseConfig("c.toml", minimalConfig+"\n[redis]\nurl = \"redis://127.0.0.1:6379/0\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Redis.LockKey != "ldreaper:leader" || cfg.Redis.LockTTL != 30*time.Second {
		t.Errorf("redis defaults not applied: %+v", *cfg.Redis)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // each must appear in the error, in this order
	}{
		{
			name: "unknown key with its line",
			text: "[launchdarkly]\nproject = \"p\"\n\n[safety]\nmax_delets = 3\n" + sourceBlock,
			want: []string{"c.toml:5: safety.max_delets: unknown key"},
		},
		{
			name: "unknown key inside a source table",
			text: "[launchdarkly]\nproject = \"p\"\n" + sourceBlock + "pathh = \"x\"\n",
			want: []string{"c.toml:8: source.pathh: unknown key"},
		},
		{
			name: "bad duration",
			text: "[launchdarkly]\nproject = \"p\"\n[safety]\norphan_grace = \"ten minutes\"\n" + sourceBlock,
			want: []string{"c.toml:4", "orphan_grace"},
		},
		{
			name: "missing project",
			text: "[launchdarkly]\n" + sourceBlock,
			want: []string{"c.toml: launchdarkly.project: required"},
		},
		{
			name: "bad managed tag and color on their lines",
			text: "[launchdarkly]\nproject = \"p\"\nmanaged_tag = \"has space\"\ncolor = \"#fff\"\n" + sourceBlock,
			want: []string{"c.toml:3: launchdarkly.managed_tag", "c.toml:4: launchdarkly.color"},
		},
		{
			name: "bad key template",
			text: "[launchdarkly]\nproject = \"p\"\nkey_template = \"{{ .Name | nosuchfunc }}\"\n" + sourceBlock,
			want: []string{"c.toml:3: launchdarkly.key_template"},
		},
		{
			name: "unknown template field",
			text: "[launchdarkly]\nproject = \"p\"\nkey_template = \"{{ .Nmae }}\"\n" + sourceBlock,
			want: []string{"c.toml:3: launchdarkly.key_template"},
		},
		{
			name: "duplicate source names",
			text: "[launchdarkly]\nproject = \"p\"\n" + sourceBlock + sourceBlock,
			want: []string{"c.toml:10: source[1].name: duplicate source name \"previews\""},
		},
		{
			name: "bad policy and schedule",
			text: "[launchdarkly]\nproject = \"p\"\n[reconcile]\npolicy = \"yolo\"\nschedule = \"@every 1s\"\n" + sourceBlock,
			want: []string{"c.toml:4: reconcile.policy", "c.toml:5: reconcile.schedule"},
		},
		{
			name: "negative mutation budget",
			text: "[launchdarkly]\nproject = \"p\"\n[reconcile]\nmax_mutations_per_run = -1\n" + sourceBlock,
			want: []string{"c.toml:4: reconcile.max_mutations_per_run: must not be negative"},
		},
		{
			name: "panicking cron spec is an error",
			text: "[launchdarkly]\nproject = \"p\"\n[reconcile]\nschedule = \"CRON_TZ=UTC\"\n" + sourceBlock,
			want: []string{"c.toml:4: reconcile.schedule"},
		},
		{
			name: "safety limits",
			text: "[launchdarkly]\nproject = \"p\"\n[safety]\nmax_deletes = 0\nmax_delete_percent = 150\nprotected = [\"*\"]\n" + sourceBlock,
			want: []string{"c.toml:4: safety.max_deletes", "c.toml:5: safety.max_delete_percent", "c.toml:6: safety.protected"},
		},
		{
			name: "no sources",
			text: "[launchdarkly]\nproject = \"p\"\n",
			want: []string{"source: at least one [[source]] is required"},
		},
		{
			name: "source without path",
			text: "[launchdarkly]\nproject = \"p\"\n[[source]]\nname = \"previews\"\ntype = \"file\"\n",
			want: []string{"c.toml:3: source[0]", "path"},
		},
		{
			name: "redis without url",
			text: "[launchdarkly]\nproject = \"p\"\n" + sourceBlock + "\n[redis]\nlock_ttl = \"1s\"\n",
			want: []string{"redis.url: required", "c.toml:10: redis.lock_ttl"},
		},
		{
			name: "toml syntax error",
			text: "[launchdarkly\nproject = \"p\"\n",
			want: []string{"c.toml:2: ", "end table name"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig("c.toml", tc.text)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range tc.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error %q does not contain %q", err.Error(), w)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

func TestToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("api-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LD_API_TOKEN": "api-from-env", "OTHER": " api-other "}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name    string
		ld      LaunchDarklyConfig
		want    string
		wantErr string
	}{
		{name: "default env", ld: LaunchDarklyConfig{TokenEnv: "LD_API_TOKEN"}, want: "api-from-env"},
		{name: "other env trimmed", ld: LaunchDarklyConfig{TokenEnv: "OTHER"}, want: "api-other"},
		{name: "file", ld: LaunchDarklyConfig{TokenFile: file}, want: "api-from-file"},
		{name: "unset env", ld: LaunchDarklyConfig{TokenEnv: "NOPE"}, wantErr: "NOPE is not set"},
		{name: "missing file", ld: LaunchDarklyConfig{TokenFile: filepath.Join(dir, "nope")}, wantErr: "token_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{LaunchDarkly: tc.ld}
			got, err := c.token(getenv)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("token = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := loadConfig(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
}
