// Package reconciler keeps LD environments in step with live sources: it
// turns source snapshots into desired environments, plans against the
// environments ldreaper owns (a pure function with every safety guard),
// applies the plan (the one place dry-run is enforced) and reports.
//
// One run:
//   - list every source (concurrently; a failure blocks only that source's deletes),
//     and meanwhile list the LD environments carrying the managed tag and count
//     the project's environments;
//   - render keys and names, detect collisions;
//   - load orphan state, Calculate the plan, apply it, save orphan state;
//   - return a Report.
package reconciler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/orphanstate"
	"github.com/ldreaper/ldreaper/sources"
)

// EnvironmentReader is what a run needs to read from LD. A dry run uses
// nothing else, so it works with a Reader token.
type EnvironmentReader interface {
	ListEnvironments(ctx context.Context, project string, f ldclient.ListFilter) ([]ldclient.Environment, error)
	CountEnvironments(ctx context.Context, project string) (int, error)
	GetEnvironment(ctx context.Context, project, key string) (ldclient.Environment, error)
}

// OrphanStore remembers orphan grace state between runs.
type OrphanStore interface {
	Load(ctx context.Context) (map[string]orphanstate.Record, error)
	Save(ctx context.Context, upsert map[string]orphanstate.Record, remove []string) error
}

// SourceSpec is one configured source and how its items become environments.
type SourceSpec struct {
	Source     sources.Source
	Type       string
	AllowEmpty bool
	Render     RenderFunc
	// Deliverer, when set, is handed the keys of each live item's LD
	// environment after every run that is not a dry run.
	Deliverer SecretDeliverer
}

// SecretDeliverer hands live items the keys of their LD environments, for
// example as a Kubernetes Secret in each preview namespace.
type SecretDeliverer interface {
	DeliverSecrets(ctx context.Context, ds []sources.Delivery) error
}

// Config is what a Reconciler is built with.
type Config struct {
	Project           string
	SourceEnvironment string
	Color             string
	ExtraTags         []string
	Plan              PlanConfig
	Concurrency       int
	// MaxMutationsPerRun caps the creates and deletes one run makes; the
	// rest are held with ReasonRateBudget and done by later runs, so that a
	// burst (many PRs closing after a release) is spread out instead of
	// spending the account's rate limit at once. Zero is no cap.
	MaxMutationsPerRun int
	// SourceTimeout bounds each source's List; zero means no extra bound.
	SourceTimeout time.Duration
}

// RunOptions vary per run.
type RunOptions struct {
	DryRun       bool
	ForceDeletes bool
	// NoGrace: see PlanConfig.NoGrace.
	NoGrace bool
	// Lease, when set, is checked before every mutation.
	Lease      LeaseChecker
	Generation int64
}

// Reconciler runs reconciliation passes.
type Reconciler struct {
	cfg     Config
	reader  EnvironmentReader
	writer  EnvironmentWriter
	sources []SourceSpec
	store   OrphanStore
	log     zerolog.Logger
	now     func() time.Time
}

// New builds a Reconciler. writer may be nil for a reconciler that only ever
// dry-runs.
func New(cfg Config, reader EnvironmentReader, writer EnvironmentWriter, srcs []SourceSpec, store OrphanStore, log zerolog.Logger, now func() time.Time) *Reconciler {
	if now == nil {
		now = time.Now
	}
	if store == nil {
		store = orphanstate.NewMemory()
	}
	return &Reconciler{cfg: cfg, reader: reader, writer: writer, sources: srcs, store: store, log: log, now: now}
}

// RunOnce does one pass. The report is always filled as far as the run got;
// the error is set when the run could not complete (and is also in
// Report.Error).
func (r *Reconciler) RunOnce(ctx context.Context, opts RunOptions) (Report, error) {
	rep := Report{
		SchemaVersion: SchemaVersion,
		RunID:         newRunID(),
		Project:       r.cfg.Project,
		DryRun:        opts.DryRun,
		Policy:        string(r.cfg.Plan.Policy),
		Generation:    opts.Generation,
		StartedAt:     r.now().UTC(),
	}
	log := r.log.With().Str("run_id", rep.RunID).Int64("generation", opts.Generation).Bool("dry_run", opts.DryRun).Logger()
	fail := func(err error) (Report, error) {
		rep.Error = err.Error()
		rep.FinishedAt = r.now().UTC()
		rep.sortAndCount()
		log.Error().Err(err).Msg("run failed")
		return rep, err
	}
	if !opts.DryRun && r.writer == nil {
		return fail(fmt.Errorf("reconciler has no LD writer; only dry runs are possible"))
	}

	// LD is read while the sources are: both only read, so a run takes the
	// slower of the two rather than their sum.
	ld := r.readLD(ctx)
	runs := r.listSources(ctx)
	desired, results, held, problems := BuildDesired(runs)
	for i, run := range runs {
		rep.Sources = append(rep.Sources, SourceReport{
			Name: run.Name, Type: run.Type, Items: results[i].Items, Complete: results[i].Complete, Error: problems[run.Name],
		})
		ev := log.Info()
		if problems[run.Name] != "" {
			ev = log.Warn().Str("error", problems[run.Name])
		}
		ev.Str("source", run.Name).Int("items", results[i].Items).Bool("complete", results[i].Complete).Msg("source listed")
	}

	existing, count, err := ld()
	if err != nil {
		return fail(err)
	}

	// The managed list cannot show an unmanaged environment that already
	// holds a desired key. Apply finds out from the create's 409; a dry run,
	// which must not POST, asks with a GET so its report is exact.
	if opts.DryRun {
		probed, err := r.probeCreates(ctx, desired, existing)
		if err != nil {
			return fail(err)
		}
		existing = append(existing, probed...)
	}

	orphans, stateErr := r.store.Load(ctx)
	in := Input{
		Config:          r.cfg.Plan,
		Desired:         desired,
		Sources:         results,
		Existing:        existing,
		ProjectEnvCount: count,
		Orphans:         orphans,
		Now:             r.now(),
	}
	in.Config.ForceDeletes = opts.ForceDeletes
	in.Config.NoGrace = opts.NoGrace
	if stateErr != nil {
		in.OrphanStateErr = stateErr.Error()
		log.Error().Err(stateErr).Msg("orphan state unavailable; holding deletes")
	}
	plan := Calculate(in)
	rep.Summary.Keep = len(plan.Keeps)
	rep.Summary.Owned = plan.Owned
	for _, g := range plan.Guards {
		rep.Guards = append(rep.Guards, GuardReport(g))
		if g.Tripped {
			log.Warn().Str("guard", g.Name).Str("detail", g.Detail).Msg("guard tripped")
		}
	}
	for _, a := range append(held, plan.Held...) {
		rep.Actions = append(rep.Actions, actionReport(a, StatusHeld))
	}

	ap := &applier{
		writer: r.writer, project: r.cfg.Project, concurrency: r.cfg.Concurrency, maxMutations: r.cfg.MaxMutationsPerRun, dryRun: opts.DryRun,
		lease: opts.Lease, managedTag: r.cfg.Plan.ManagedTag, post: r.post, log: log,
	}
	applied := ap.apply(ctx, plan.Creates, plan.Deletes)
	removals := plan.OrphanRemovals
	live := make(map[string]ldclient.Environment, len(existing))
	for _, e := range existing {
		if e.HasTag(r.cfg.Plan.ManagedTag) {
			live[e.Key] = e
		}
	}
	for _, res := range applied {
		rep.Actions = append(rep.Actions, actionReport(res.Action, res.Status))
		if res.Deleted {
			removals = append(removals, res.Key)
			delete(plan.OrphanUpserts, res.Key)
		}
		if res.Environment != nil {
			live[res.Key] = *res.Environment
		}
	}
	if !opts.DryRun && ctx.Err() == nil {
		r.deliver(ctx, runs, desired, live, rep.Sources, log)
	}
	rep.FinishedAt = r.now().UTC()
	rep.sortAndCount()

	if !opts.DryRun && stateErr == nil {
		// A replica that lost the lease mid-run must not overwrite the new
		// leader's orphan state.
		if opts.Lease != nil {
			if err := opts.Lease.Check(context.WithoutCancel(ctx)); err != nil {
				return fail(fmt.Errorf("orphan state not saved: leader lease: %w", err))
			}
		}
		upserts := plan.OrphanUpserts
		if context.Cause(ctx) != nil {
			// An interrupted run is not a successful one: it must not count
			// towards orphan_min_runs. What it deleted is still forgotten.
			upserts = nil
		}
		if err := r.store.Save(context.WithoutCancel(ctx), upserts, dedupeSorted(removals)); err != nil {
			return fail(fmt.Errorf("save orphan state: %w", err))
		}
	}
	if err := context.Cause(ctx); err != nil && !opts.DryRun {
		return fail(fmt.Errorf("run interrupted: %w", err))
	}
	if stateErr != nil {
		return fail(fmt.Errorf("orphan state unavailable, every delete held: %w", stateErr))
	}
	log.Info().Int("create", rep.Summary.Create).Int("delete", rep.Summary.Delete).Int("keep", rep.Summary.Keep).
		Int("held", rep.Summary.Held).Int("failed", rep.Summary.Failed).Msg("run finished")
	return rep, nil
}

// readLD starts listing the managed environments and counting the
// project's, and returns a function that waits for both.
func (r *Reconciler) readLD(ctx context.Context) func() ([]ldclient.Environment, int, error) {
	var (
		wg                sync.WaitGroup
		existing          []ldclient.Environment
		count             int
		listErr, countErr error
	)
	wg.Go(func() {
		existing, listErr = r.reader.ListEnvironments(ctx, r.cfg.Project, ldclient.ListFilter{Tags: []string{r.cfg.Plan.ManagedTag}})
		if listErr != nil {
			listErr = fmt.Errorf("list environments tagged %q in project %q: %w", r.cfg.Plan.ManagedTag, r.cfg.Project, listErr)
		}
	})
	wg.Go(func() {
		count, countErr = r.reader.CountEnvironments(ctx, r.cfg.Project)
		if countErr != nil {
			countErr = fmt.Errorf("count environments in project %q: %w", r.cfg.Project, countErr)
		}
	})
	return func() ([]ldclient.Environment, int, error) {
		wg.Wait()
		if listErr != nil {
			return nil, 0, listErr
		}
		return existing, count, countErr
	}
}

// deliver hands each delivering source the keys of its live items' LD
// environments. A failure is recorded as that source's error (exit 1), never
// as a reason to change LD.
func (r *Reconciler) deliver(ctx context.Context, runs []SourceRun, desired []Desired, live map[string]ldclient.Environment, reports []SourceReport, log zerolog.Logger) {
	for i, spec := range r.sources {
		if spec.Deliverer == nil || runs[i].Err != nil {
			continue
		}
		items := make(map[string]sources.Env, len(runs[i].Snapshot.Items))
		for _, it := range runs[i].Snapshot.Items {
			items[it.Name] = it
		}
		var ds []sources.Delivery
		for _, d := range desired {
			env, ok := live[d.Key]
			item, isItem := items[d.Item]
			if d.Source != runs[i].Name || !ok || !isItem {
				continue
			}
			if env.APIKey == "" {
				log.Warn().Str("source", d.Source).Str("key", d.Key).Msg("LD returned no SDK key for the environment; nothing to deliver")
				continue
			}
			ds = append(ds, sources.Delivery{
				Item: item, SDKKey: env.APIKey, MobileKey: env.MobileKey, ClientSideID: env.ClientSideID,
				EnvironmentKey: env.Key, Project: r.cfg.Project,
			})
		}
		if err := spec.Deliverer.DeliverSecrets(ctx, ds); err != nil {
			log.Error().Err(err).Str("source", runs[i].Name).Msg("deliver SDK keys")
			msg := "deliver SDK keys: " + err.Error()
			if reports[i].Error != "" {
				msg = reports[i].Error + "; " + msg
			}
			reports[i].Error = msg
			continue
		}
		log.Info().Str("source", runs[i].Name).Int("delivered", len(ds)).Msg("SDK keys delivered")
	}
}

func (r *Reconciler) listSources(ctx context.Context) []SourceRun {
	runs := make([]SourceRun, len(r.sources))
	var wg sync.WaitGroup
	for i, spec := range r.sources {
		wg.Go(func() {
			sctx, cancel := ctx, context.CancelFunc(func() {})
			if r.cfg.SourceTimeout > 0 {
				sctx, cancel = context.WithTimeout(ctx, r.cfg.SourceTimeout)
			}
			defer cancel()
			snap, err := safeList(sctx, spec.Source)
			if err == nil && sctx.Err() != nil {
				// A list that returned while its context ended may be short.
				err = fmt.Errorf("list source %q: %w", spec.Source.Name(), sctx.Err())
			}
			runs[i] = SourceRun{Name: spec.Source.Name(), Type: spec.Type, AllowEmpty: spec.AllowEmpty, Snapshot: snap, Err: err, Render: spec.Render}
		})
	}
	wg.Wait()
	return runs
}

// safeList turns a panicking source into a failed one.
func safeList(ctx context.Context, s sources.Source) (snap sources.Snapshot, err error) {
	defer func() {
		if p := recover(); p != nil {
			snap, err = sources.Snapshot{Source: s.Name()}, fmt.Errorf("list source %q: panic: %v", s.Name(), p)
		}
	}()
	return s.List(ctx)
}

func (r *Reconciler) probeCreates(ctx context.Context, desired []Desired, existing []ldclient.Environment) ([]ldclient.Environment, error) {
	seen := make(map[string]bool, len(existing))
	for _, e := range existing {
		seen[e.Key] = true
	}
	var found []ldclient.Environment
	for _, d := range desired {
		if seen[d.Key] {
			continue
		}
		env, err := r.reader.GetEnvironment(ctx, r.cfg.Project, d.Key)
		switch {
		case ldclient.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("check whether environment %q exists in project %q: %w", d.Key, r.cfg.Project, err)
		default:
			found = append(found, env)
		}
	}
	return found, nil
}

func (r *Reconciler) post(a Action) ldclient.EnvironmentPost {
	tags := []string{r.cfg.Plan.ManagedTag, ProvenanceTag(r.cfg.Plan.ManagedTag, a.Source)}
	tags = append(tags, r.cfg.ExtraTags...)
	p := ldclient.EnvironmentPost{Key: a.Key, Name: a.Name, Color: r.cfg.Color, Tags: tags}
	if r.cfg.SourceEnvironment != "" {
		p.Source = &ldclient.SourceEnv{Key: r.cfg.SourceEnvironment}
	}
	return p
}

func actionReport(a Action, status string) ActionReport {
	return ActionReport{Op: string(a.Op), Key: a.Key, Name: a.Name, Source: a.Source, Status: status, Reason: a.Reason, Detail: a.Detail}
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
