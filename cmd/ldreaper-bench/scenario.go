package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/orphanstate"
	"github.com/ldreaper/ldreaper/reconciler"
	"github.com/ldreaper/ldreaper/reconciler/keys"
	"github.com/ldreaper/ldreaper/sources"
)

const (
	managedTag        = "ldreaper"
	sourceName        = "previews"
	provenanceTag     = managedTag + "-src." + sourceName
	sourceEnvironment = "staging"
	pageSize          = 100
	// planRepeats is how often the plan is timed; the median is reported.
	planRepeats = 5
	// sampleEvery is the memory sampling interval.
	sampleEvery = 5 * time.Millisecond
)

// kind says what a scenario measures and so which lower bound applies.
type kind int

const (
	// noDrift lists every owned environment and changes nothing: the bound
	// is the fewest list calls, one after another, each paying the latency.
	noDrift kind = iota + 1
	// burst creates and deletes many environments under a rate budget: the
	// bound is the slower of the budget and the latency spread over the
	// workers.
	burst
)

// scenario is one row of the table.
type scenario struct {
	id   string
	name string
	kind kind
	fake fakeSpec
	// items are the source's live items, keyed itemPrefix plus an index.
	items      int
	itemPrefix string
	// concurrency is the applier's; headroom the client's (-1: no pacing).
	concurrency int
	headroom    int
	// naive marks the sequential, unpaced client P2 is compared with.
	naive bool
	// maxRSS is the RSS target in bytes; 0 is none.
	maxRSS uint64
	// maxPlan is the plan-time target; 0 is none.
	maxPlan time.Duration
	// maxRatio is the wall/bound target; 0 is none.
	maxRatio float64
}

// budgetRate is what the fake's window leaves this client per second after
// the headroom, in requests; 0 when there is no budget.
func (sc scenario) budgetRate() float64 {
	if sc.fake.GlobalBudget <= 0 {
		return 0
	}
	usable := sc.fake.GlobalBudget - max(sc.headroom, 0)
	return float64(usable) / sc.fake.RateWindow.Seconds()
}

// scenarios returns the benchmark plan: the sizes, or with quick
// sizes small enough for a test to run in seconds.
func scenarios(quick bool) []scenario {
	type sizes struct {
		p1, p2, p3                 int
		latency, p3Latency         time.Duration
		window                     time.Duration
		budget, headroom, parallel int
	}
	z := sizes{p1: 10_000, p2: 1_000, p3: 100_000, latency: 20 * time.Millisecond, p3Latency: 5 * time.Millisecond,
		window: time.Second, budget: 440, headroom: 40, parallel: 10}
	if quick {
		z = sizes{p1: 1_000, p2: 100, p3: 5_000, latency: 2 * time.Millisecond, p3Latency: time.Millisecond,
			window: 100 * time.Millisecond, budget: 44, headroom: 4, parallel: 10}
	}
	fake := func(owned int, prefix string, latency time.Duration) fakeSpec {
		return fakeSpec{MaxPageSize: pageSize, RateWindow: z.window, GlobalBudget: z.budget, Latency: latency, Owned: owned, OwnedPrefix: prefix}
	}
	// The RSS targets are the issue's, stated for 10,000 and 100,000
	// environments; other sizes get none.
	rssTarget := func(n int) uint64 {
		switch n {
		case 10_000:
			return 64 << 20
		case 100_000:
			return 300 << 20
		}
		return 0
	}
	return []scenario{
		{id: "P1", name: fmt.Sprintf("P1 no drift, %d owned", z.p1), kind: noDrift,
			fake: fake(z.p1, "pr-", z.latency), items: z.p1, itemPrefix: "pr-",
			concurrency: z.parallel, headroom: z.headroom, maxRatio: 1.2, maxRSS: rssTarget(z.p1)},
		{id: "P2", name: fmt.Sprintf("P2 %d creates + %d deletes, paced, %d workers", z.p2, z.p2, z.parallel), kind: burst,
			fake: fake(z.p2, "old-", z.latency), items: z.p2, itemPrefix: "new-",
			concurrency: z.parallel, headroom: z.headroom, maxRatio: 1.15},
		{id: "P2-naive", name: "P2 same, naive sequential client", kind: burst, naive: true,
			fake: fake(z.p2, "old-", z.latency), items: z.p2, itemPrefix: "new-",
			concurrency: 1, headroom: -1},
		{id: "P3", name: fmt.Sprintf("P3 no drift, %d owned", z.p3), kind: noDrift,
			fake: fake(z.p3, "pr-", z.p3Latency), items: z.p3, itemPrefix: "pr-",
			concurrency: z.parallel, headroom: z.headroom, maxRSS: rssTarget(z.p3), maxPlan: 50 * time.Millisecond},
	}
}

// measurement is what one scenario run showed.
type measurement struct {
	scenario
	wall  time.Duration
	bound time.Duration
	// minCalls is the fewest LD calls the scenario can make.
	minCalls  int
	plan      time.Duration
	planned   int // creates plus deletes the planner asked for
	heap, rss uint64
	stats     fakeStats
	summary   reconciler.Summary
	runErr    string
}

// ratio is wall time over the lower bound.
func (m measurement) ratio() float64 {
	if m.bound <= 0 {
		return 0
	}
	return m.wall.Seconds() / m.bound.Seconds()
}

// measure runs one scenario against a fresh child fake.
func measure(ctx context.Context, sc scenario, stderr io.Writer) (measurement, error) {
	fake, err := startFake(ctx, sc.fake, stderr)
	if err != nil {
		return measurement{}, err
	}
	defer fake.stop()

	client, err := ldclient.New(ldclient.Options{
		BaseURL:  fake.url,
		Token:    benchToken,
		Headroom: sc.headroom,
		PageSize: pageSize,
	})
	if err != nil {
		return measurement{}, fmt.Errorf("scenario %s: %w", sc.id, err)
	}
	render, err := benchRender()
	if err != nil {
		return measurement{}, fmt.Errorf("scenario %s: %w", sc.id, err)
	}
	src := benchSource{prefix: sc.itemPrefix, count: sc.items}
	reader := &capturingReader{EnvironmentReader: client}
	cfg := reconciler.Config{
		Project:           benchProject,
		SourceEnvironment: sourceEnvironment,
		Color:             "7B42BC",
		Concurrency:       sc.concurrency,
		Plan:              planConfig(),
	}
	// Logging at info to nowhere keeps the cost of building each line, as
	// a real run pays it.
	log := zerolog.New(io.Discard).Level(zerolog.InfoLevel)
	rec := reconciler.New(cfg, reader, client, []reconciler.SourceSpec{{Source: src, Type: "bench", Render: render}}, orphanstate.NewMemory(), log, time.Now)

	mem := startMemoryPeak(sampleEvery)
	start := time.Now()
	rep, runErr := rec.RunOnce(ctx, reconciler.RunOptions{NoGrace: true})
	wall := time.Since(start)
	heap, rss := mem.finish()

	m := measurement{scenario: sc, wall: wall, heap: heap, rss: rss, summary: rep.Summary}
	if runErr != nil {
		m.runErr = runErr.Error()
	}
	if m.stats, err = fake.stats(ctx); err != nil {
		return measurement{}, fmt.Errorf("scenario %s: %w", sc.id, err)
	}
	in, err := reader.planInput(ctx, src, render)
	if err != nil {
		return measurement{}, fmt.Errorf("scenario %s: %w", sc.id, err)
	}
	m.plan, m.planned = timePlan(in)
	m.minCalls, m.bound = lowerBound(sc, m.planned)
	return m, nil
}

// lowerBound is the scenario's bound computed from this run's own numbers.
func lowerBound(sc scenario, planned int) (minCalls int, bound time.Duration) {
	switch sc.kind {
	case noDrift:
		// Every owned environment in pages, plus the one-item page that
		// counts the project.
		pages := (sc.fake.Owned + pageSize - 1) / pageSize
		minCalls = pages + 1
		return minCalls, time.Duration(minCalls) * sc.fake.Latency
	case burst:
		byLatency := time.Duration(planned) * sc.fake.Latency / time.Duration(max(sc.concurrency, 1))
		var byBudget time.Duration
		if rate := sc.budgetRate(); rate > 0 {
			byBudget = time.Duration(float64(planned) / rate * float64(time.Second))
		}
		return planned, max(byLatency, byBudget)
	}
	return 0, 0
}

func planConfig() reconciler.PlanConfig {
	return reconciler.PlanConfig{
		Policy:             reconciler.PolicySync,
		ManagedTag:         managedTag,
		SourceEnvironments: []string{sourceEnvironment},
		// The burst deletes a thousand at once on purpose; the caps are
		// the planner's business and are tested there.
		MaxDeletes:       1 << 30,
		MaxDeletePercent: 100,
		OrphanMinRuns:    1,
		NoGrace:          true,
	}
}

// timePlan times the planner on in and returns the median and the number
// of creates and deletes it planned.
func timePlan(in reconciler.Input) (time.Duration, int) {
	times := make([]time.Duration, planRepeats)
	var plan reconciler.Plan
	for i := range times {
		start := time.Now()
		plan = reconciler.Calculate(in)
		times[i] = time.Since(start)
	}
	slices.Sort(times)
	return times[len(times)/2], len(plan.Creates) + len(plan.Deletes)
}

func benchRender() (reconciler.RenderFunc, error) {
	keyT, err := keys.ParseKey("{{ .Name | slug }}")
	if err != nil {
		return nil, err
	}
	nameT, err := keys.ParseName("Preview {{ .Name }}")
	if err != nil {
		return nil, err
	}
	return func(source string, item sources.Env) (string, string, error) {
		in := keys.Input{Name: item.Name, Source: source, Attrs: item.Attrs, CreatedAt: item.CreatedAt}
		key, err := keyT.Render(in)
		if err != nil {
			return "", "", err
		}
		name, err := nameT.Render(in)
		return key, name, err
	}, nil
}

func itemName(prefix string, i int) string { return fmt.Sprintf("%s%06d", prefix, i) }

// benchSource lists count items. It builds them on every List, as a real
// source decodes them, so that their memory counts in the run.
type benchSource struct {
	prefix string
	count  int
}

func (s benchSource) Name() string { return sourceName }

func (s benchSource) List(context.Context) (sources.Snapshot, error) {
	items := make([]sources.Env, s.count)
	for i := range items {
		items[i] = sources.Env{Name: itemName(s.prefix, i)}
	}
	return sources.Snapshot{Source: sourceName, Items: items, Complete: true}, nil
}

// capturingReader keeps what the run listed, so the plan can be timed on
// exactly the input the run planned with, without listing again.
type capturingReader struct {
	reconciler.EnvironmentReader

	mu       sync.Mutex
	existing []ldclient.Environment
	count    int
}

func (r *capturingReader) ListEnvironments(ctx context.Context, project string, f ldclient.ListFilter) ([]ldclient.Environment, error) {
	envs, err := r.EnvironmentReader.ListEnvironments(ctx, project, f)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.existing = envs
	return envs, err
}

func (r *capturingReader) CountEnvironments(ctx context.Context, project string) (int, error) {
	n, err := r.EnvironmentReader.CountEnvironments(ctx, project)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count = n
	return n, err
}

// planInput rebuilds the planner's input for the listed state.
func (r *capturingReader) planInput(ctx context.Context, src benchSource, render reconciler.RenderFunc) (reconciler.Input, error) {
	snap, err := src.List(ctx)
	if err != nil {
		return reconciler.Input{}, fmt.Errorf("list bench source: %w", err)
	}
	desired, results, _, _ := reconciler.BuildDesired([]reconciler.SourceRun{{Name: sourceName, Type: "bench", Snapshot: snap, Render: render}})
	r.mu.Lock()
	defer r.mu.Unlock()
	return reconciler.Input{
		Config:          planConfig(),
		Desired:         desired,
		Sources:         results,
		Existing:        r.existing,
		ProjectEnvCount: r.count,
		Orphans:         map[string]orphanstate.Record{},
		Now:             time.Now(),
	}, nil
}
