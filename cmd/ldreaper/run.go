package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/reconciler"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `ldreaper keeps LaunchDarkly environments in step with live ephemeral environments.

Usage:
  ldreaper [--config FILE] [--once] [--dry-run] [--report text|json|markdown]
           [--report-file FILE] [--detailed-exitcode] [--force-deletes]
           [--log-level LEVEL] [--log-format json|console]
  ldreaper check [--config FILE]   validate config, reach LD and every source
  ldreaper demo                    run against an in-process fake LD (no account needed)
  ldreaper version

Exit codes of --once: 0 done (with --dry-run --detailed-exitcode: no drift), 1 error,
2 drift pending (--dry-run --detailed-exitcode), 3 a guard held deletions.

Flags:
`

// options are the command-line flags of the main command.
type options struct {
	configPath       string
	once             bool
	dryRun           bool
	report           string
	reportFile       string
	detailedExitcode bool
	forceDeletes     bool
	logLevel         string
	logFormat        string
	policy           string
}

// run is the whole program; main only adds the process. It returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, restore the default handling so that a second
	// one ends the process at once instead of waiting for shutdown_timeout.
	go func() {
		<-ctx.Done()
		stop()
	}()

	cmd := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "ldreaper %s\n", version)
		return 0
	case "demo":
		return runDemo(ctx, args, stdout, stderr)
	case "check":
		return runCheck(ctx, args, getenv, stdout, stderr)
	case "", "run":
	default:
		fmt.Fprintf(stderr, "ldreaper: unknown command %q\n\n%s", cmd, usage)
		return 1
	}

	opts, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "ldreaper: %v\n", err)
		return 1
	}
	cfg, err := loadConfig(opts.configPath)
	if err != nil {
		fmt.Fprintf(stderr, "ldreaper: %v\n", err)
		return 1
	}
	if err := opts.apply(&cfg); err != nil {
		fmt.Fprintf(stderr, "ldreaper: %v\n", err)
		return 1
	}
	log, err := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintf(stderr, "ldreaper: %v\n", err)
		return 1
	}
	if opts.once {
		return runOnce(ctx, cfg, opts, getenv, stdout, log)
	}
	return runDaemon(ctx, cfg, getenv, log)
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("ldreaper", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	defConfig := getenv("LDREAPER_CONFIG")
	if defConfig == "" {
		defConfig = "ldreaper.toml"
	}
	fs.StringVar(&o.configPath, "config", defConfig, "config file (env LDREAPER_CONFIG)")
	fs.BoolVar(&o.once, "once", false, "run one reconciliation and exit")
	fs.BoolVar(&o.dryRun, "dry-run", false, "plan and report only; sends only GET requests to LD")
	fs.StringVar(&o.report, "report", "text", "report format of --once: text, json or markdown")
	fs.StringVar(&o.reportFile, "report-file", "", "also write the report to FILE (format from .json/.md, else --report)")
	fs.BoolVar(&o.detailedExitcode, "detailed-exitcode", false, "with --dry-run: exit 2 when changes are pending")
	fs.BoolVar(&o.forceDeletes, "force-deletes", false, "with --once: lift max_deletes/max_delete_percent for this run")
	fs.StringVar(&o.logLevel, "log-level", "", "debug, info, warn or error (overrides [log] level)")
	fs.StringVar(&o.logFormat, "log-format", "", "json or console (overrides [log] format)")
	fs.StringVar(&o.policy, "policy", "", "sync, create-only or delete-only (overrides [reconcile] policy)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch o.report {
	case "text", "json", "markdown":
	default:
		return o, fmt.Errorf("--report: %q is not text, json or markdown", o.report)
	}
	if o.forceDeletes && !o.once {
		return o, errors.New("--force-deletes lifts the delete caps for one --once run only; add --once")
	}
	if o.detailedExitcode && !o.dryRun {
		return o, errors.New("--detailed-exitcode goes with --dry-run")
	}
	return o, nil
}

// apply lets flags override the file.
func (o options) apply(cfg *Config) error {
	var errs ConfigErrors
	if o.logLevel != "" {
		if _, err := parseLevel(o.logLevel); err != nil {
			errs = append(errs, ConfigError{File: "--log-level", Why: err.Error()})
		}
		cfg.Log.Level = o.logLevel
	}
	if o.logFormat != "" {
		if o.logFormat != "json" && o.logFormat != "console" {
			errs = append(errs, ConfigError{File: "--log-format", Why: fmt.Sprintf("%q is not json or console", o.logFormat)})
		}
		cfg.Log.Format = o.logFormat
	}
	if o.policy != "" {
		if !reconciler.Policy(o.policy).Valid() {
			errs = append(errs, ConfigError{File: "--policy", Why: fmt.Sprintf("%q is not one of sync, create-only, delete-only", o.policy)})
		}
		cfg.Reconcile.Policy = o.policy
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func parseLevel(s string) (zerolog.Level, error) {
	switch s {
	case "debug", "info", "warn", "error":
		return zerolog.ParseLevel(s)
	}
	return zerolog.NoLevel, fmt.Errorf("log level %q is not debug, info, warn or error", s)
}

func newLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05"}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("app", "ldreaper").Logger(), nil
}

// runOnce does one reconciliation, writes the report and returns the exit code.
func runOnce(ctx context.Context, cfg Config, opts options, getenv func(string) string, stdout io.Writer, log zerolog.Logger) int {
	a, err := build(ctx, cfg, getenv, log)
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		return 1
	}
	defer a.close()
	runOpts := reconciler.RunOptions{DryRun: opts.dryRun, ForceDeletes: opts.forceDeletes, NoGrace: a.redis == nil}
	if a.redis == nil && !opts.dryRun {
		log.Warn().Msg("orphan grace not applied: a --once run without [redis] cannot observe time passing")
	}
	if a.redis != nil && !opts.dryRun {
		lease, err := a.acquireLease(ctx)
		if err != nil {
			log.Error().Err(err).Msg("cannot take the leader lock; another instance is reconciling")
			return 1
		}
		defer lease.Release(context.WithoutCancel(ctx))
		runCtx, cancel := lease.Context(ctx)
		defer cancel()
		ctx = runCtx
		runOpts.Lease, runOpts.Generation = lease, lease.Generation()
	}
	rep, _ := a.rec.RunOnce(ctx, runOpts)
	if err := writeReports(rep, opts, stdout); err != nil {
		log.Error().Err(err).Msg("write report")
		return 1
	}
	return rep.ExitCode(opts.detailedExitcode)
}

func writeReports(rep reconciler.Report, opts options, stdout io.Writer) error {
	if err := rep.Write(stdout, opts.report); err != nil {
		return err
	}
	if opts.reportFile == "" {
		return nil
	}
	format := opts.report
	switch strings.ToLower(filepath.Ext(opts.reportFile)) {
	case ".json":
		format = "json"
	case ".md", ".markdown":
		format = "markdown"
	case ".txt":
		format = "text"
	}
	f, err := os.Create(opts.reportFile)
	if err != nil {
		return fmt.Errorf("create report file: %w", err)
	}
	if err := rep.Write(f, format); err != nil {
		f.Close()
		return fmt.Errorf("write report file %s: %w", opts.reportFile, err)
	}
	return f.Close()
}
