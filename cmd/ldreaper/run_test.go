package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

func runForTest(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestRunCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "version", args: []string{"version"}, wantStdout: "ldreaper dev"},
		{name: "help", args: []string{"--help"}, wantStderr: "Exit codes of --once"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 1, wantStderr: `unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"--nope"}, wantCode: 1, wantStderr: "flag provided but not defined"},
		{name: "bad report format", args: []string{"--once", "--report", "yaml"}, wantCode: 1, wantStderr: `--report: "yaml"`},
		{name: "detailed exit code needs dry run", args: []string{"--once", "--detailed-exitcode"}, wantCode: 1, wantStderr: "--detailed-exitcode goes with --dry-run"},
		{name: "force deletes needs once", args: []string{"--force-deletes"}, wantCode: 1, wantStderr: "add --once"},
		{name: "missing config file", args: []string{"--config", "/nonexistent/ldreaper.toml", "--once"}, wantCode: 1, wantStderr: "read config"},
		{name: "stray argument", args: []string{"--once", "extra"}, wantCode: 1, wantStderr: `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runForTest(t, nil, tc.args...)
			if code != tc.wantCode || !strings.Contains(stdout, tc.wantStdout) || !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout, stderr)
			}
		})
	}
}

func TestRunFlagsOverrideConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(path, []byte(minimalConfig+"\n[log]\nlevel = \"error\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	o := options{logLevel: "debug", logFormat: "console", policy: "create-only"}
	if err := o.apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "debug" || cfg.Log.Format != "console" || cfg.Reconcile.Policy != "create-only" {
		t.Errorf("flags did not override: %+v %+v", cfg.Log, cfg.Reconcile)
	}
	bad := options{policy: "yolo", logLevel: "loud"}
	if err := bad.apply(&cfg); err == nil || !strings.Contains(err.Error(), "--policy") || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("bad flag values: %v", err)
	}
}

func TestRunDemo(t *testing.T) {
	code, stdout, stderr := runForTest(t, nil, "demo")
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout:%s\nstderr:%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"== 1. Dry run",
		"create  feat-dark-mode",
		"hotfix-payments",
		"critical",
		"exists-unmanaged",
		"== 3. Dry run again: nothing left to do",
		"Summary: 0 to create, 0 to delete",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout+stderr, demoToken) {
		t.Error("demo printed its token")
	}
}

func TestRunCheck(t *testing.T) {
	fake := ldfake.New(ldfake.Options{})
	fake.AddToken("api-check", ldfake.RoleReader)
	fake.AddProject("proj")
	if _, err := fake.Seed("proj", ldfake.Environment{Key: "staging", Name: "Staging", Color: "000000"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, err := fake.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgText := strings.Replace(minimalConfig, `project = "my-project"`, `project = "proj"`+"\nbase_url = \""+url+"\"\nsource_environment = \"staging\"", 1)
	path := filepath.Join(dir, "ldreaper.toml")
	if err := os.WriteFile(path, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "previews.txt"), []byte("a\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LD_API_TOKEN": "api-check"}
	code, stdout, _ := runForTest(t, env, "check", "--config", path)
	for _, want := range []string{"ok   config", "project \"proj\" has 1 environment(s)", "source environment \"staging\" exists", "source \"previews\" (file): 2 item(s)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, stdout)
		}
	}
	if code != 0 {
		t.Errorf("check exit %d:\n%s", code, stdout)
	}

	// A wrong token and a missing source file are both findings.
	os.Remove(filepath.Join(dir, "previews.txt"))
	code, stdout, _ = runForTest(t, map[string]string{"LD_API_TOKEN": "api-wrong"}, "check", "--config", path)
	if code != 1 || !strings.Contains(stdout, "FAIL launchdarkly") || !strings.Contains(stdout, "FAIL source \"previews\"") {
		t.Errorf("check exit %d:\n%s", code, stdout)
	}
	if strings.Contains(stdout, "api-wrong") {
		t.Error("check printed the token")
	}
}
