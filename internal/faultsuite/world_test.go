package faultsuite

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/reconciler"
	"github.com/ldreaper/ldreaper/sources"
)

const (
	project     = "proj"
	writerToken = "api-faultsuite-writer-5d0c-must-never-print"
	readerToken = "api-faultsuite-reader-91aa-must-never-print"
	managedTag  = "ldreaper"
	// convergeRuns bounds the clean runs a test gets after its faults stop.
	convergeRuns = 5
)

// layout is the project every test starts from. Two sources, "previews" and
// "k8s", each with environments to keep, orphans to delete and new items to
// create, surrounded by environments that must never be touched.
type layout struct {
	keep, orphans, creates int
}

func (l layout) items(prefix string) []string {
	var out []string
	for i := range l.keep {
		out = append(out, fmt.Sprintf("%s-live-%02d", prefix, i))
	}
	for i := range l.creates {
		out = append(out, fmt.Sprintf("%s-new-%02d", prefix, i))
	}
	return out
}

// world is a fake LD project, its sources and the record of every run.
type world struct {
	t       *testing.T
	fake    *ldfake.Server
	url     string
	facts   facts
	sources map[string]*scriptedSource
	// keptForGood are owned environments the guards never delete.
	keptForGood map[string]bool
	initial     map[string]ldfake.Environment
	conns       *connTracker
	// transports are the clients' own, closed after every run.
	transports []*http.Transport
	// beforeRun, if set, is called before every run starts.
	beforeRun func()
	// tap, if set, sees every request before the fake does.
	tap func(*http.Request)

	mu   sync.Mutex
	runs []runRecord
}

func newWorld(t *testing.T, opts ldfake.Options, l layout) *world {
	t.Helper()
	fake := ldfake.New(opts)
	fake.AddToken(writerToken, ldfake.RoleWriter)
	fake.AddToken(readerToken, ldfake.RoleReader)
	fake.AddProject(project)
	w := &world{
		t:    t,
		fake: fake,
		facts: facts{
			managedTag: managedTag,
			live:       map[string]bool{},
			forbidden: map[string]string{
				"staging":     "the source environment",
				"production":  "a critical environment",
				"manual":      "an unmanaged environment",
				"previews-x":  "an unmanaged environment holding a live item's key",
				"crit-owned":  "an owned critical environment",
				"keep-owned":  "an owned protected environment",
				"ghost-owned": "an owned environment of an unconfigured source",
			},
		},
		sources:     map[string]*scriptedSource{},
		keptForGood: map[string]bool{"crit-owned": true, "keep-owned": true, "ghost-owned": true},
		conns:       newConnTracker(),
	}
	owned := func(key, source string) ldfake.Environment {
		return ldfake.Environment{Key: key, Name: "Preview " + key, Tags: []string{managedTag, reconciler.ProvenanceTag(managedTag, source)}}
	}
	seed := []ldfake.Environment{
		{Key: "staging", Name: "Staging"},
		{Key: "production", Name: "Production", Critical: true},
		{Key: "manual", Name: "Manual", Tags: []string{"team"}},
		{Key: "previews-x", Name: "Someone else's", Tags: []string{"team"}},
		{Key: "crit-owned", Name: "Critical preview", Critical: true, Tags: owned("crit-owned", "previews").Tags},
		owned("keep-owned", "previews"),
		owned("ghost-owned", "retired-source"),
	}
	for _, src := range []string{"previews", "k8s"} {
		items := l.items(src)
		if src == "previews" {
			items = append(items, "previews-x")
		}
		w.sources[src] = &scriptedSource{name: src, items: items}
		for _, k := range items {
			w.facts.live[k] = true
		}
		for i := range l.keep {
			seed = append(seed, owned(fmt.Sprintf("%s-live-%02d", src, i), src))
		}
		for i := range l.orphans {
			seed = append(seed, owned(fmt.Sprintf("%s-old-%02d", src, i), src))
		}
	}
	start := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	for i, e := range seed {
		e.CreatedOn = start.Add(time.Duration(i) * time.Second)
		if _, err := fake.Seed(project, e); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		tap := w.tap
		w.mu.Unlock()
		if tap != nil {
			tap(r)
		}
		fake.ServeHTTP(rw, r)
	}))
	srv.Config.ConnState = w.conns.hook
	srv.Start()
	t.Cleanup(srv.Close)
	w.url = srv.URL
	w.initial = w.state()
	return w
}

// state is LD's environments by key.
func (w *world) state() map[string]ldfake.Environment {
	out := map[string]ldfake.Environment{}
	for _, e := range w.fake.Environments(project) {
		out[e.Key] = e
	}
	return out
}

// client is a real LD client with timeouts and backoffs cut to test size.
func (w *world) client(token string, mutate ...func(*ldclient.Options)) *ldclient.Client {
	w.t.Helper()
	transport := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute}
	w.mu.Lock()
	w.transports = append(w.transports, transport)
	w.mu.Unlock()
	o := ldclient.Options{
		HTTPClient:     &http.Client{Transport: transport},
		BaseURL:        w.url,
		Token:          token,
		RequestTimeout: 250 * time.Millisecond,
		MaxRetries:     6,
		BaseBackoff:    2 * time.Millisecond,
		MaxWait:        500 * time.Millisecond,
	}
	for _, m := range mutate {
		m(&o)
	}
	c, err := ldclient.New(o)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// reconcilerConfig deletes orphans on first sight unless a test sets grace.
func reconcilerConfig() reconciler.Config {
	return reconciler.Config{
		Project:           project,
		SourceEnvironment: "staging",
		Color:             "7B42BC",
		Concurrency:       4,
		SourceTimeout:     200 * time.Millisecond,
		Plan: reconciler.PlanConfig{
			Policy: reconciler.PolicySync, ManagedTag: managedTag, SourceEnvironments: []string{"staging"},
			Protected: []string{"production", "keep-*"}, MaxDeletes: 1000, MaxDeletePercent: 100, OrphanMinRuns: 1,
		},
	}
}

// specs are the world's sources, in a fixed order, rendering key = name.
func (w *world) specs() []reconciler.SourceSpec {
	var out []reconciler.SourceSpec
	for _, name := range sortedKeys(w.sources) {
		out = append(out, reconciler.SourceSpec{Source: w.sources[name], Type: "scripted", Render: renderIdentity})
	}
	return out
}

func renderIdentity(_ string, item sources.Env) (string, string, error) {
	return item.Name, "Preview " + item.Name, nil
}

// newReconciler builds a reconciler over the world's sources. A nil store is
// an in-memory one.
func (w *world) newReconciler(cfg reconciler.Config, reader reconciler.EnvironmentReader, writer reconciler.EnvironmentWriter, store reconciler.OrphanStore) *reconciler.Reconciler {
	return reconciler.New(cfg, reader, writer, w.specs(), store, zerolog.Nop(), nil)
}

// record runs do as one run named name and keeps what LD logged meanwhile.
// do returns the run's report. What the sources returned to the run is
// taken from the scripted sources, or from returned when it is not nil
// (a binary reads its own sources).
func (w *world) record(name string, dryRun bool, returned []string, do func() reconciler.Report) runRecord {
	w.t.Helper()
	if w.beforeRun != nil {
		w.beforeRun()
	}
	w.settle()
	mutationsBefore, auditBefore := len(w.fake.Mutations()), len(w.fake.Audit())
	for _, s := range w.sources {
		s.resetReturned()
	}
	before := w.state()
	rep := do()
	w.settle()
	r := runRecord{
		name: name, dryRun: dryRun, before: before, after: w.state(),
		mutations: w.fake.Mutations()[mutationsBefore:], requests: w.fake.Audit()[auditBefore:],
		report: rep,
	}
	r.returned = slices.Clone(returned)
	if returned == nil {
		for _, s := range w.sources {
			r.returned = append(r.returned, s.returnedKeys()...)
		}
	}
	slices.Sort(r.returned)
	w.mu.Lock()
	w.runs = append(w.runs, r)
	w.mu.Unlock()
	return r
}

// settle closes the clients' idle connections and waits until the fake has
// closed all of them, so that every request sent so far has been handled.
func (w *world) settle() {
	w.t.Helper()
	w.mu.Lock()
	transports := slices.Clone(w.transports)
	w.mu.Unlock()
	for _, tr := range transports {
		tr.CloseIdleConnections()
	}
	if err := w.conns.waitClosed(30 * time.Second); err != nil {
		w.t.Fatal(err)
	}
}

// run does one in-process reconciler run and records it.
func (w *world) run(ctx context.Context, name string, rec *reconciler.Reconciler, opts reconciler.RunOptions) runRecord {
	w.t.Helper()
	return w.record(name, opts.DryRun, nil, func() reconciler.Report {
		rep, _ := rec.RunOnce(ctx, opts) // the report carries the error
		return rep
	})
}

// converge runs clean runs until one changes nothing, or convergeRuns ran.
func (w *world) converge(ctx context.Context, rec *reconciler.Reconciler, opts reconciler.RunOptions) {
	w.t.Helper()
	for i := range convergeRuns {
		r := w.run(ctx, fmt.Sprintf("clean run %d", i+1), rec, opts)
		if len(r.mutations) == 0 && r.report.Error == "" && r.report.Summary.Failed == 0 && !deferred(r.report) {
			return
		}
	}
}

func deferred(rep reconciler.Report) bool {
	return slices.ContainsFunc(rep.Actions, func(a reconciler.ActionReport) bool {
		return a.Status == reconciler.StatusHeld && (a.Reason == reconciler.ReasonOrphanGrace || a.Reason == reconciler.ReasonRateBudget)
	})
}

// verify checks every recorded run, the history and, when converged is
// set, that the final state is the sources' truth; it fails the test on any
// violation.
func (w *world) verify(converged bool) {
	w.t.Helper()
	w.mu.Lock()
	runs := slices.Clone(w.runs)
	w.mu.Unlock()
	var all []violation
	var mutations []ldfake.Mutation
	for _, r := range runs {
		all = append(all, checkRun(w.facts, r)...)
		mutations = append(mutations, r.mutations...)
	}
	if n := len(w.fake.Mutations()); n != len(mutations) {
		all = append(all, violation{Kind: kindUnreported, Run: "between runs", Detail: fmt.Sprintf("%d mutations outside any run", n-len(mutations))})
	}
	all = append(all, checkHistory(mutations)...)
	if converged {
		all = append(all, checkConverged(w.facts, w.initial, w.state(), w.keptForGood)...)
	}
	for _, v := range all {
		w.t.Error(v)
	}
	if len(all) > 0 {
		w.t.Logf("runs:\n%s", describeRuns(runs))
	}
}

func describeRuns(runs []runRecord) string {
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "  %s: %d mutations, %d requests, summary %+v, error %q\n", r.name, len(r.mutations), len(r.requests), r.report.Summary, r.report.Error)
	}
	return b.String()
}

// connTracker counts the fake's open connections. After a run its client
// closes its idle connections, and once the server has closed every
// connection it has also handled every request that reached it, including
// one its client gave up on, which LD may still commit: such a straggler
// then lands in the window of the run that sent it.
type connTracker struct {
	mu   sync.Mutex
	cond *sync.Cond
	open int
}

func newConnTracker() *connTracker {
	c := &connTracker{}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *connTracker) hook(_ net.Conn, state http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch state {
	case http.StateNew:
		c.open++
	case http.StateClosed, http.StateHijacked:
		c.open--
		c.cond.Broadcast()
	}
}

// waitClosed waits until no connection is open, or timeout.
func (c *connTracker) waitClosed(timeout time.Duration) error {
	wake := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.cond.Broadcast()
	})
	defer wake.Stop()
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.open > 0 {
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%d connections to the fake still open after %s", c.open, timeout)
		}
		c.cond.Wait()
	}
	return nil
}

// sourceMode is how a scripted source behaves on its next List.
type sourceMode int

const (
	sourceOK sourceMode = iota
	sourceFails
	sourceTimesOut
	sourceEmpty
	sourceTruncated
)

// scriptedSource lists its items, or fails the way its mode says, and
// remembers what it returned.
type scriptedSource struct {
	name  string
	items []string

	mu       sync.Mutex
	mode     sourceMode
	returned []string
}

func (s *scriptedSource) Name() string { return s.name }

func (s *scriptedSource) setMode(m sourceMode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
}

func (s *scriptedSource) resetReturned() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.returned = nil
}

func (s *scriptedSource) returnedKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.returned)
}

func (s *scriptedSource) List(ctx context.Context) (sources.Snapshot, error) {
	s.mu.Lock()
	mode := s.mode
	s.mu.Unlock()
	snap := sources.Snapshot{Source: s.name, Complete: true}
	items := s.items
	switch mode {
	case sourceFails:
		return sources.Snapshot{Source: s.name}, fmt.Errorf("list source %q: upstream answered 503", s.name)
	case sourceTimesOut:
		<-ctx.Done()
		return sources.Snapshot{Source: s.name}, ctx.Err()
	case sourceEmpty:
		items = nil
	case sourceTruncated:
		items = items[:len(items)/2]
		snap.Complete = false
	}
	for _, n := range items {
		snap.Items = append(snap.Items, sources.Env{Name: n})
	}
	s.mu.Lock()
	s.returned = slices.Clone(items)
	s.mu.Unlock()
	return snap, nil
}

// leaseLedger wraps a lease and the writer it guards and checks that every
// mutation the applier starts was preceded by a passing lease check of its
// own: each pass grants one mutation, each mutation spends one grant.
type leaseLedger struct {
	lease  reconciler.LeaseChecker
	writer reconciler.EnvironmentWriter

	mu         sync.Mutex
	grants     int
	violations []string
}

func (l *leaseLedger) Check(ctx context.Context) error {
	err := l.lease.Check(ctx)
	if err == nil {
		l.mu.Lock()
		l.grants++
		l.mu.Unlock()
	}
	return err
}

// newRun drops grants left over from the previous run's final check.
func (l *leaseLedger) newRun() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.grants = 0
}

func (l *leaseLedger) spend(op string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.grants == 0 {
		l.violations = append(l.violations, op+" started without a passing lease check")
		return
	}
	l.grants--
}

func (l *leaseLedger) CreateEnvironment(ctx context.Context, project string, body ldclient.EnvironmentPost) (ldclient.CreateResult, error) {
	l.spend("create " + body.Key)
	return l.writer.CreateEnvironment(ctx, project, body)
}

func (l *leaseLedger) DeleteEnvironment(ctx context.Context, project, key string) (ldclient.DeleteResult, error) {
	l.spend("delete " + key)
	return l.writer.DeleteEnvironment(ctx, project, key)
}

func (l *leaseLedger) verify(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range l.violations {
		t.Errorf("%s: %s", kindForbidden, v)
	}
}

// heldLease is a lease that holds until revoke is called, or after a set
// number of passing checks.
type heldLease struct {
	mu        sync.Mutex
	revoked   bool
	passesMax int // 0 is no limit
	passes    int
}

func (l *heldLease) Check(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.revoked || l.passesMax > 0 && l.passes >= l.passesMax {
		l.revoked = true
		return fmt.Errorf("lease %q: %w", "ldreaper:leader", errLeaseLost)
	}
	l.passes++
	return nil
}

var errLeaseLost = errors.New("leader lease lost")
