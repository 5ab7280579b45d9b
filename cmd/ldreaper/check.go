package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/ldclient"
)

// runCheck validates the config, reaches LD and every source, and prints
// one line per finding. It changes nothing. Exit 0 when everything is
// reachable, 1 otherwise.
func runCheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ldreaper check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv("LDREAPER_CONFIG")
	if def == "" {
		def = "ldreaper.toml"
	}
	path := fs.String("config", def, "config file (env LDREAPER_CONFIG)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL config: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "ok   config: %s (project %q, %d source(s), policy %s)\n", *path, cfg.LaunchDarkly.Project, len(cfg.Sources), cfg.Reconcile.Policy)
	a, err := build(ctx, cfg, getenv, zerolog.Nop())
	if err != nil {
		fmt.Fprintf(stdout, "FAIL setup: %v\n", err)
		return 1
	}
	defer a.close()
	return a.check(ctx, stdout)
}

func (a *app) check(ctx context.Context, stdout io.Writer) int {
	failed := false
	report := func(ok bool, format string, args ...any) {
		status := "ok  "
		if !ok {
			status, failed = "FAIL", true
		}
		fmt.Fprintf(stdout, "%s "+format+"\n", append([]any{status}, args...)...)
	}
	project := a.cfg.LaunchDarkly.Project
	if n, err := a.ld.CountEnvironments(ctx, project); err != nil {
		report(false, "launchdarkly: %s project %q: %v", a.cfg.LaunchDarkly.BaseURL, project, err)
	} else {
		report(true, "launchdarkly: %s project %q has %d environment(s)", a.cfg.LaunchDarkly.BaseURL, project, n)
		owned, err := a.ld.ListEnvironments(ctx, project, ldclient.ListFilter{Tags: []string{a.cfg.LaunchDarkly.ManagedTag}})
		report(err == nil, "launchdarkly: %d environment(s) tagged %q%s", len(owned), a.cfg.LaunchDarkly.ManagedTag, errSuffix(err))
		if se := a.cfg.LaunchDarkly.SourceEnvironment; se != "" {
			_, err := a.ld.GetEnvironment(ctx, project, se)
			report(err == nil, "launchdarkly: source environment %q%s", se, errSuffixOr(err, " exists"))
		}
	}
	for _, s := range a.sources {
		snap, err := s.Source.List(ctx)
		switch {
		case err != nil:
			report(false, "source %q (%s): %v", s.Source.Name(), s.Type, err)
		case !snap.Complete:
			report(false, "source %q (%s): %d item(s), incomplete list", s.Source.Name(), s.Type, len(snap.Items))
		case len(snap.Items) == 0 && !s.AllowEmpty:
			report(false, "source %q (%s): 0 items and allow_empty = false: its environments would never be deleted", s.Source.Name(), s.Type)
		default:
			report(true, "source %q (%s): %d item(s)", s.Source.Name(), s.Type, len(snap.Items))
		}
	}
	if a.redis != nil {
		err := a.redis.Ping(ctx).Err()
		report(err == nil, "redis: ping%s", errSuffix(err))
	}
	if failed {
		return 1
	}
	return 0
}

func errSuffix(err error) string { return errSuffixOr(err, "") }

func errSuffixOr(err error, ok string) string {
	if err != nil {
		return ": " + err.Error()
	}
	return ok
}
