package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/ldclient"
)

// fakeWriter is a hand-written EnvironmentWriter. It records every call,
// tracks how many are in flight, and answers from per-key tables. Calls take
// callTime (fake time: use it only inside a synctest bubble) or, with
// untilCancelled, last until their context ends.
type fakeWriter struct {
	callTime       map[string]time.Duration // by key
	untilCancelled bool
	createErr      map[string]error
	existing       map[string]ldclient.Environment // create finds it already there
	gone           map[string]bool                 // delete finds it already gone
	deleteErr      map[string]error

	mu          sync.Mutex
	calls       []string // "create k"
	events      []string // "start create k", "end create k"
	projects    []string
	posts       []ldclient.EnvironmentPost
	inFlight    int
	maxInFlight int
}

func (w *fakeWriter) CreateEnvironment(ctx context.Context, project string, body ldclient.EnvironmentPost) (ldclient.CreateResult, error) {
	w.mu.Lock()
	w.posts = append(w.posts, body)
	w.mu.Unlock()
	if err := w.do(ctx, "create", project, body.Key); err != nil {
		return ldclient.CreateResult{}, err
	}
	if err := w.createErr[body.Key]; err != nil {
		return ldclient.CreateResult{}, err
	}
	if env, ok := w.existing[body.Key]; ok {
		return ldclient.CreateResult{Environment: env, Existed: true}, nil
	}
	return ldclient.CreateResult{Environment: ldclient.Environment{Key: body.Key, Name: body.Name, Tags: body.Tags}}, nil
}

func (w *fakeWriter) DeleteEnvironment(ctx context.Context, project, key string) (ldclient.DeleteResult, error) {
	if err := w.do(ctx, "delete", project, key); err != nil {
		return 0, err
	}
	if err := w.deleteErr[key]; err != nil {
		return 0, err
	}
	if w.gone[key] {
		return ldclient.AlreadyGone, nil
	}
	return ldclient.Deleted, nil
}

func (w *fakeWriter) do(ctx context.Context, op, project, key string) error {
	w.mu.Lock()
	w.calls = append(w.calls, op+" "+key)
	w.events = append(w.events, "start "+op+" "+key)
	w.projects = append(w.projects, project)
	w.inFlight++
	w.maxInFlight = max(w.maxInFlight, w.inFlight)
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inFlight--
		w.events = append(w.events, "end "+op+" "+key)
		w.mu.Unlock()
	}()
	switch {
	case w.untilCancelled:
		<-ctx.Done()
		return ctx.Err()
	case w.callTime[key] > 0:
		select {
		case <-time.After(w.callTime[key]):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Calls returns the calls made, sorted: concurrent calls start in no
// particular order.
func (w *fakeWriter) Calls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Sorted(slices.Values(w.calls))
}

// leaseLostAfter is a LeaseChecker that allows the first n checks.
type leaseLostAfter struct {
	n int

	mu     sync.Mutex
	checks int
}

var errLeaseLost = errors.New("lock lost to another replica")

func (l *leaseLostAfter) Check(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checks++
	if l.checks > l.n {
		return errLeaseLost
	}
	return nil
}

func testApplier(w EnvironmentWriter, concurrency int) *applier {
	return &applier{
		writer: w, project: "proj", concurrency: concurrency, managedTag: "ldreaper",
		post: func(a Action) ldclient.EnvironmentPost {
			return ldclient.EnvironmentPost{Key: a.Key, Name: a.Name, Tags: []string{"ldreaper", ProvenanceTag("ldreaper", a.Source)}}
		},
		log: zerolog.Nop(),
	}
}

func actionsFor(op Op, keys ...string) []Action {
	out := make([]Action, 0, len(keys))
	for _, k := range keys {
		out = append(out, Action{Op: op, Key: k, Name: strings.ToUpper(k), Source: "previews"})
	}
	return out
}

func keysN(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i+1)
	}
	return out
}

// statuses condenses results to "op key status reason" for tables.
func statuses(rs []result) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", r.Op, r.Key, r.Status, r.Reason)))
	}
	return out
}

func TestApplyDryRunCallsNothing(t *testing.T) {
	tests := []struct {
		name   string
		writer EnvironmentWriter
	}{
		{"with a writer", &fakeWriter{}},
		// A reconciler built for a Reader token has no writer at all.
		{"without a writer", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ap := testApplier(tt.writer, 4)
			ap.dryRun = true
			lease := &leaseLostAfter{n: 0}
			ap.lease = lease
			got := ap.apply(t.Context(), actionsFor(OpCreate, "c1", "c2"), actionsFor(OpDelete, "d1"))
			want := []string{"create c1 planned", "create c2 planned", "delete d1 planned"}
			if diff := cmp.Diff(want, statuses(got)); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			if w, ok := tt.writer.(*fakeWriter); ok && len(w.Calls()) != 0 {
				t.Errorf("dry run called the writer: %v", w.Calls())
			}
			if lease.checks != 0 {
				t.Errorf("dry run checked the lease %d times; it mutates nothing and must work without one", lease.checks)
			}
		})
	}
}

func TestApplyBoundsConcurrency(t *testing.T) {
	tests := []struct {
		concurrency, actions, wantMax int
	}{
		{concurrency: 0, actions: 6, wantMax: 1},
		{concurrency: 1, actions: 6, wantMax: 1},
		{concurrency: 3, actions: 10, wantMax: 3},
		{concurrency: 8, actions: 5, wantMax: 5},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("concurrency %d", tt.concurrency), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				keys := keysN("c", tt.actions)
				w := &fakeWriter{callTime: map[string]time.Duration{}}
				for _, k := range append(keys, "d1", "d2") {
					w.callTime[k] = time.Minute
				}
				got := testApplier(w, tt.concurrency).apply(t.Context(), actionsFor(OpCreate, keys...), actionsFor(OpDelete, "d1", "d2"))
				if w.maxInFlight != tt.wantMax {
					t.Errorf("max in flight = %d, want %d", w.maxInFlight, tt.wantMax)
				}
				for _, r := range got {
					if r.Status != StatusApplied {
						t.Errorf("%s %s: status %s, want applied", r.Op, r.Key, r.Status)
					}
				}
			})
		})
	}
}

func TestApplyFinishesCreatesBeforeAnyDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The slowest create is last in the list, so a delete would start
		// while it runs if the phases overlapped.
		w := &fakeWriter{callTime: map[string]time.Duration{"c1": time.Second, "c2": time.Second, "c3": time.Hour, "d1": time.Second, "d2": time.Second}}
		testApplier(w, 4).apply(t.Context(), actionsFor(OpCreate, "c1", "c2", "c3"), actionsFor(OpDelete, "d1", "d2"))
		lastCreateEnd, firstDeleteStart := -1, -1
		for i, e := range w.events {
			if strings.HasPrefix(e, "end create") {
				lastCreateEnd = i
			}
			if strings.HasPrefix(e, "start delete") && firstDeleteStart < 0 {
				firstDeleteStart = i
			}
		}
		if firstDeleteStart < 0 || lastCreateEnd > firstDeleteStart {
			t.Errorf("a delete started before every create finished: %v", w.events)
		}
	})
}

func TestApplyStopsWhenContextIsCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWriter{untilCancelled: true}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan []result, 1)
		go func() {
			done <- testApplier(w, 2).apply(ctx, actionsFor(OpCreate, "c1", "c2", "c3"), actionsFor(OpDelete, "d1", "d2"))
		}()
		synctest.Wait()
		if diff := cmp.Diff([]string{"create c1", "create c2"}, w.Calls()); diff != "" {
			t.Fatalf("calls in flight before cancel (-want +got):\n%s", diff)
		}
		cancel()
		got := <-done
		want := []string{
			"create c1 failed ld-error", // in flight: the writer saw the cancel
			"create c2 failed ld-error",
			"create c3 failed cancelled",
			"delete d1 failed cancelled",
			"delete d2 failed cancelled",
		}
		if diff := cmp.Diff(want, statuses(got)); diff != "" {
			t.Errorf("results (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"create c1", "create c2"}, w.Calls()); diff != "" {
			t.Errorf("a mutation started after cancel (-want +got):\n%s", diff)
		}
		for _, r := range got[2:] {
			if !strings.Contains(r.Detail, context.Canceled.Error()) {
				t.Errorf("%s %s: detail %q does not say why it did not start", r.Op, r.Key, r.Detail)
			}
		}
	})
}

func TestApplyStopsWhenLeaseIsLost(t *testing.T) {
	creates, deletes := actionsFor(OpCreate, "c1", "c2", "c3"), actionsFor(OpDelete, "d1", "d2")
	tests := []struct {
		name          string
		concurrency   int
		checksAllowed int
		callTime      map[string]time.Duration
		wantCalls     []string
		want          []string
		wantElapsed   time.Duration
	}{
		{
			name: "lost during creates", concurrency: 1, checksAllowed: 2,
			wantCalls: []string{"create c1", "create c2"},
			want: []string{"create c1 applied", "create c2 applied", "create c3 failed not-started",
				"delete d1 failed not-started", "delete d2 failed not-started"},
		},
		{
			name: "lost during deletes", concurrency: 1, checksAllowed: 4,
			wantCalls: []string{"create c1", "create c2", "create c3", "delete d1"},
			want: []string{"create c1 applied", "create c2 applied", "create c3 applied",
				"delete d1 applied", "delete d2 failed not-started"},
		},
		{
			name: "lost at once", concurrency: 3, checksAllowed: 0,
			want: []string{"create c1 failed not-started", "create c2 failed not-started", "create c3 failed not-started",
				"delete d1 failed not-started", "delete d2 failed not-started"},
		},
		{
			// Invariant 7: losing the lock also cancels what is in flight.
			// c1 ends after a minute, so c3's check finds the loss while c2
			// still has an hour to go.
			name: "lost while a mutation is in flight", concurrency: 2, checksAllowed: 2,
			callTime:  map[string]time.Duration{"c1": time.Minute, "c2": time.Hour},
			wantCalls: []string{"create c1", "create c2"},
			want: []string{"create c1 applied", "create c2 failed ld-error", "create c3 failed not-started",
				"delete d1 failed not-started", "delete d2 failed not-started"},
			wantElapsed: time.Minute,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &fakeWriter{callTime: tt.callTime}
				ap := testApplier(w, tt.concurrency)
				ap.lease = &leaseLostAfter{n: tt.checksAllowed}
				start := time.Now()
				got := ap.apply(t.Context(), creates, deletes)
				if elapsed := time.Since(start); elapsed != tt.wantElapsed {
					t.Errorf("apply took %s of fake time, want %s", elapsed, tt.wantElapsed)
				}
				if diff := cmp.Diff(tt.want, statuses(got)); diff != "" {
					t.Errorf("results (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.wantCalls, w.Calls()); diff != "" {
					t.Errorf("writer calls (-want +got):\n%s", diff)
				}
				for _, r := range got {
					if r.Reason == "not-started" && !strings.Contains(r.Detail, errLeaseLost.Error()) {
						t.Errorf("%s %s: detail %q does not name the lost lease", r.Op, r.Key, r.Detail)
					}
				}
			})
		})
	}
}

func TestApplyOutcomes(t *testing.T) {
	ldErr := errors.New("launchdarkly POST /api/v2/projects/proj/environments: status 400 invalid_request")
	tests := []struct {
		name   string
		writer *fakeWriter
		action Action
		want   result
	}{
		{
			name:   "create",
			writer: &fakeWriter{},
			action: Action{Op: OpCreate, Key: "pr-1", Name: "PR 1", Source: "previews"},
			want:   result{Action: Action{Op: OpCreate, Key: "pr-1", Name: "PR 1", Source: "previews"}, Status: StatusApplied},
		},
		{
			name: "create finds an environment with the managed tag (any case)",
			writer: &fakeWriter{existing: map[string]ldclient.Environment{
				"pr-1": {Key: "pr-1", Tags: []string{"LDReaper", "ldreaper-src.previews"}},
			}},
			action: Action{Op: OpCreate, Key: "pr-1", Name: "PR 1", Source: "previews"},
			want: result{Action: Action{Op: OpCreate, Key: "pr-1", Name: "PR 1", Source: "previews", Detail: "already existed"},
				Status: StatusApplied},
		},
		{
			name:   "create finds an unmanaged environment",
			writer: &fakeWriter{existing: map[string]ldclient.Environment{"pr-1": {Key: "pr-1", Tags: []string{"team-a"}}}},
			action: Action{Op: OpCreate, Key: "pr-1", Name: "PR 1", Source: "previews"},
			want: result{Action: Action{Op: OpCreate, Key: "pr-1", Name: "PR 1", Source: "previews", Reason: ReasonExistsUnmanaged,
				Detail: "an environment with this key exists without the managed tag"}, Status: StatusHeld},
		},
		{
			// A provenance tag alone is not ownership.
			name:   "create finds an environment with only a provenance tag",
			writer: &fakeWriter{existing: map[string]ldclient.Environment{"pr-1": {Key: "pr-1", Tags: []string{"ldreaper-src.previews"}}}},
			action: Action{Op: OpCreate, Key: "pr-1", Name: "PR 1", Source: "previews"},
			want: result{Action: Action{Op: OpCreate, Key: "pr-1", Name: "PR 1", Source: "previews", Reason: ReasonExistsUnmanaged,
				Detail: "an environment with this key exists without the managed tag"}, Status: StatusHeld},
		},
		{
			name:   "create fails",
			writer: &fakeWriter{createErr: map[string]error{"pr-1": ldErr}},
			action: Action{Op: OpCreate, Key: "pr-1", Name: "PR 1", Source: "previews"},
			want: result{Action: Action{Op: OpCreate, Key: "pr-1", Name: "PR 1", Source: "previews", Reason: "ld-error", Detail: ldErr.Error()},
				Status: StatusFailed},
		},
		{
			name:   "delete",
			writer: &fakeWriter{},
			action: Action{Op: OpDelete, Key: "pr-2", Name: "PR 2", Source: "previews"},
			want:   result{Action: Action{Op: OpDelete, Key: "pr-2", Name: "PR 2", Source: "previews"}, Status: StatusApplied, Deleted: true},
		},
		{
			name:   "delete finds it already gone",
			writer: &fakeWriter{gone: map[string]bool{"pr-2": true}},
			action: Action{Op: OpDelete, Key: "pr-2", Name: "PR 2", Source: "previews"},
			want: result{Action: Action{Op: OpDelete, Key: "pr-2", Name: "PR 2", Source: "previews", Detail: "already gone"},
				Status: StatusApplied, Deleted: true},
		},
		{
			name:   "delete fails",
			writer: &fakeWriter{deleteErr: map[string]error{"pr-2": ldErr}},
			action: Action{Op: OpDelete, Key: "pr-2", Name: "PR 2", Source: "previews"},
			want: result{Action: Action{Op: OpDelete, Key: "pr-2", Name: "PR 2", Source: "previews", Reason: "ld-error", Detail: ldErr.Error()},
				Status: StatusFailed},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var creates, deletes []Action
			if tt.action.Op == OpCreate {
				creates = []Action{tt.action}
			} else {
				deletes = []Action{tt.action}
			}
			got := testApplier(tt.writer, 2).apply(t.Context(), creates, deletes)
			if diff := cmp.Diff([]result{tt.want}, got, cmpopts.IgnoreFields(result{}, "Environment")); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			// An applied create carries the environment LD returned, for
			// SDK key delivery.
			if applied := got[0].Status == StatusApplied && tt.action.Op == OpCreate; applied != (got[0].Environment != nil) ||
				(applied && got[0].Environment.Key != tt.action.Key) {
				t.Errorf("Environment = %v for status %s", got[0].Environment, got[0].Status)
			}
			if diff := cmp.Diff([]string{"proj"}, tt.writer.projects); diff != "" {
				t.Errorf("project sent to the writer (-want +got):\n%s", diff)
			}
		})
	}
}

// TestApplySendsThePostBody checks that the writer gets what the reconciler's
// post function built, not a body of the applier's own making.
func TestApplySendsThePostBody(t *testing.T) {
	w := &fakeWriter{}
	testApplier(w, 1).apply(t.Context(), []Action{{Op: OpCreate, Key: "pr-1", Name: "PR 1", Source: "previews"}}, nil)
	want := []ldclient.EnvironmentPost{{Key: "pr-1", Name: "PR 1", Tags: []string{"ldreaper", "ldreaper-src.previews"}}}
	if diff := cmp.Diff(want, w.posts); diff != "" {
		t.Errorf("posted bodies (-want +got):\n%s", diff)
	}
}
