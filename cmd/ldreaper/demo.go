package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/reconciler"
)

var (
	//go:embed demo/ldreaper.toml
	demoConfig string
	//go:embed demo/previews.txt
	demoPreviews string
)

const demoToken = "api-demo-0000-0000-0000-000000000000"

// runDemo is the embedded default: an in-process fake LD with a seeded
// project, the example source file, a dry run, the real run, and a second
// dry run that shows nothing is left to do. No network, no account.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ldreaper demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("report", "text", "report format: text, json or markdown")
	logFormat := fs.String("log-format", "console", "json or console")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "ldreaper demo: %v\n", err)
		return 1
	}
	fake, baseURL, err := startDemoLD(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "ldreaper demo: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "ldreaper-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "ldreaper demo: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "previews.txt"), []byte(demoPreviews), 0o644); err != nil {
		fmt.Fprintf(stderr, "ldreaper demo: %v\n", err)
		return 1
	}
	cfg, err := parseConfig(filepath.Join(dir, "ldreaper.toml"), strings.Replace(demoConfig, "http://127.0.0.1:1", baseURL, 1))
	if err != nil {
		fmt.Fprintf(stderr, "ldreaper demo: %v\n", err)
		return 1
	}
	getenv := func(k string) string {
		if k == "LDREAPER_DEMO_TOKEN" {
			return demoToken
		}
		return ""
	}
	a, err := build(ctx, cfg, getenv, log)
	if err != nil {
		fmt.Fprintf(stderr, "ldreaper demo: %v\n", err)
		return 1
	}
	defer a.close()

	fmt.Fprintf(stdout, "ldreaper demo: a fake LaunchDarkly at %s with project %q:\n", baseURL, "demo")
	writeDemoEnvs(stdout, fake)
	fmt.Fprintf(stdout, "\nLive previews (source %q, file previews.txt):\n", "previews")
	for _, l := range strings.Split(demoPreviews, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			fmt.Fprintf(stdout, "  %s\n", l)
		}
	}
	steps := []struct {
		title string
		opts  reconciler.RunOptions
	}{
		{"1. Dry run: what ldreaper would do (only GET requests are sent)", reconciler.RunOptions{DryRun: true, NoGrace: true}},
		{"2. Apply", reconciler.RunOptions{NoGrace: true}},
		{"3. Dry run again: nothing left to do", reconciler.RunOptions{DryRun: true, NoGrace: true}},
	}
	for _, step := range steps {
		fmt.Fprintf(stdout, "\n== %s ==\n\n", step.title)
		rep, err := a.rec.RunOnce(ctx, step.opts)
		if werr := rep.Write(stdout, *format); werr != nil {
			fmt.Fprintf(stderr, "ldreaper demo: %v\n", werr)
			return 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "ldreaper demo: %v\n", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "\nProject %q now:\n", "demo")
	writeDemoEnvs(stdout, fake)
	fmt.Fprintln(stdout, "\nNext: write your own config (see config.example.toml) and run `ldreaper --once --dry-run` with a Reader token.")
	return 0
}

func startDemoLD(ctx context.Context) (*ldfake.Server, string, error) {
	fake := ldfake.New(ldfake.Options{})
	fake.AddToken(demoToken, ldfake.RoleWriter)
	fake.AddProject("demo")
	seed := []ldfake.Environment{
		{Key: "production", Name: "Production", Color: "417505", Critical: true},
		{Key: "staging", Name: "Staging", Color: "F5A623"},
		{Key: "qa-manual", Name: "QA (managed by hand)", Color: "333333", Tags: []string{"qa"}},
		{Key: "feature-checkout-v2", Name: "Preview feature/checkout-v2", Color: "7B42BC", Tags: []string{"ldreaper", "ldreaper-src.previews", "ephemeral"}},
		{Key: "fix-old-bug", Name: "Preview fix/old-bug", Color: "7B42BC", Tags: []string{"ldreaper", "ldreaper-src.previews", "ephemeral"}},
		{Key: "hotfix-payments", Name: "Preview hotfix/payments", Color: "7B42BC", Critical: true, Tags: []string{"ldreaper", "ldreaper-src.previews", "ephemeral"}},
	}
	for _, e := range seed {
		if _, err := fake.Seed("demo", e); err != nil {
			return nil, "", fmt.Errorf("seed fake LD: %w", err)
		}
	}
	baseURL, err := fake.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("start fake LD: %w", err)
	}
	return fake, baseURL, nil
}

func writeDemoEnvs(w io.Writer, fake *ldfake.Server) {
	for _, e := range fake.Environments("demo") {
		var notes []string
		if e.Critical {
			notes = append(notes, "critical")
		}
		if len(e.Tags) > 0 {
			notes = append(notes, "tags "+strings.Join(e.Tags, ","))
		}
		fmt.Fprintf(w, "  %-22s %s\n", e.Key, strings.Join(notes, "; "))
	}
}
