package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/leader"
	"github.com/ldreaper/ldreaper/reconciler"
)

// The daemon's unit tests run its loops inside synctest bubbles: time only
// moves when every goroutine waits, so periods, timeouts and deadlines are
// exact and nothing really sleeps.

const testReconcileToken = "reconcile-secret"

// fakeRunner records runs; run decides each one's outcome.
type fakeRunner struct {
	run func(ctx context.Context, opts reconciler.RunOptions) (reconciler.Report, error)

	mu    sync.Mutex
	calls []reconciler.RunOptions
	// causes holds context.Cause of each run's context when it returned.
	causes []error
}

func (f *fakeRunner) RunOnce(ctx context.Context, opts reconciler.RunOptions) (reconciler.Report, error) {
	f.mu.Lock()
	f.calls = append(f.calls, opts)
	f.mu.Unlock()
	rep, err := reconciler.Report{RunID: "run", Generation: opts.Generation}, error(nil)
	if f.run != nil {
		rep, err = f.run(ctx, opts)
	}
	f.mu.Lock()
	f.causes = append(f.causes, context.Cause(ctx))
	f.mu.Unlock()
	return rep, err
}

func (f *fakeRunner) runs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeRunner) lastCause() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.causes) == 0 {
		return nil
	}
	return f.causes[len(f.causes)-1]
}

// fakeLease is held until lose or Release.
type fakeLease struct {
	generation int64
	done       chan struct{}
	once       sync.Once

	mu       sync.Mutex
	released bool
}

func newFakeLease(generation int64) *fakeLease {
	return &fakeLease{generation: generation, done: make(chan struct{})}
}

func (l *fakeLease) Generation() int64           { return l.generation }
func (l *fakeLease) Done() <-chan struct{}       { return l.done }
func (l *fakeLease) Check(context.Context) error { return nil }
func (l *fakeLease) lose()                       { l.once.Do(func() { close(l.done) }) }

func (l *fakeLease) Release(context.Context) error {
	l.lose()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = true
	return nil
}

func (l *fakeLease) wasReleased() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.released
}

// fakeElector answers TryAcquire from a script of results, repeating the
// last one; a nil lease and nil error means "block until ctx ends", a
// stuck Redis call.
type fakeElector struct {
	mu      sync.Mutex
	results []acquireResult
	holder  holderResult
}

type acquireResult struct {
	lease *fakeLease
	err   error
}

type holderResult struct {
	identity   string
	generation int64
	err        error
}

func (e *fakeElector) TryAcquire(ctx context.Context) (lease, error) {
	e.mu.Lock()
	r := e.results[0]
	if len(e.results) > 1 {
		e.results = e.results[1:]
	}
	e.mu.Unlock()
	switch {
	case r.err != nil:
		return nil, r.err
	case r.lease == nil:
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return r.lease, nil
}

func (e *fakeElector) Holder(context.Context) (string, int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.holder.identity, e.holder.generation, e.holder.err
}

func (e *fakeElector) setHolder(h holderResult) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.holder = h
}

var errNotLeaderForTest = fmt.Errorf("acquire lease %q: %w", "ldreaper:leader", leader.ErrNotLeader)

func mustSchedule(t *testing.T, spec string) *reconciler.Schedule {
	t.Helper()
	s, err := reconciler.ParseSchedule(spec, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testDaemonOptions: a one-minute schedule, 3 ready periods, a 10-minute
// run timeout and a 30-second shutdown timeout.
func testDaemonOptions(t *testing.T, r runner, e elector) daemonOptions {
	o := daemonOptions{
		Runner: r, Schedule: mustSchedule(t, "@every 1m"), Metrics: newMetrics(), Log: zerolog.Nop(),
		Identity: "host-a/1", ReconcileToken: testReconcileToken, RetryEvery: time.Second, LockTTL: 3 * time.Second,
		RunTimeout: 10 * time.Minute, ShutdownTimeout: 30 * time.Second, ReadyPeriods: 3,
	}
	if e != nil {
		o.Elector = e
	}
	return o
}

// startDaemon runs d in the bubble; the returned stop cancels it and waits
// for its loop to return.
func startDaemon(d *daemon) (cancel context.CancelFunc, stopped <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.run(ctx)
	}()
	return cancel, done
}

type httpResult struct {
	Code int
	Body string
}

func serve(d *daemon, method, path, authorization string) httpResult {
	req := httptest.NewRequest(method, path, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	d.routes().ServeHTTP(rec, req)
	return httpResult{Code: rec.Code, Body: strings.TrimSpace(rec.Body.String())}
}

func TestReadyz(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		st   daemonState
		want httpResult
	}{
		{
			name: "leader with a fresh success",
			st:   daemonState{Leader: true, LeaderSince: now.Add(-time.Hour), LastSuccess: now.Add(-2 * time.Minute)},
			want: httpResult{Code: http.StatusOK, Body: "ok: leader"},
		},
		{
			name: "leader whose last success is older than ready_periods",
			st:   daemonState{Leader: true, LeaderSince: now.Add(-time.Hour), LastSuccess: now.Add(-3*time.Minute - time.Second)},
			want: httpResult{Code: http.StatusServiceUnavailable, Body: "no successful run for 3m1s (limit 3m0s)"},
		},
		{
			name: "new leader before its first run",
			st:   daemonState{Leader: true, LeaderSince: now.Add(-time.Minute)},
			want: httpResult{Code: http.StatusOK, Body: "ok: leader"},
		},
		{
			name: "leader that never succeeded in ready_periods",
			st:   daemonState{Leader: true, LeaderSince: now.Add(-5 * time.Minute)},
			want: httpResult{Code: http.StatusServiceUnavailable, Body: "no successful run for 5m0s (limit 3m0s)"},
		},
		{
			name: "re-elected leader whose last success is from an earlier term",
			st:   daemonState{Leader: true, LeaderSince: now.Add(-time.Minute), LastSuccess: now.Add(-time.Hour)},
			want: httpResult{Code: http.StatusOK, Body: "ok: leader"},
		},
		{
			name: "follower",
			st:   daemonState{Holder: "host-b/2", HolderGeneration: 9},
			want: httpResult{Code: http.StatusOK, Body: "ok: follower"},
		},
		{
			name: "follower that cannot reach redis",
			st:   daemonState{RedisError: "dial tcp 127.0.0.1:6379: connection refused"},
			want: httpResult{Code: http.StatusServiceUnavailable, Body: "redis unreachable: dial tcp 127.0.0.1:6379: connection refused"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testDaemonOptions(t, &fakeRunner{}, &fakeElector{})
			o.Now = func() time.Time { return now }
			d := newDaemon(o)
			d.st = tc.st
			if diff := cmp.Diff(tc.want, serve(d, http.MethodGet, "/readyz", "")); diff != "" {
				t.Errorf("GET /readyz (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLivez(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// Period 1m: an idle loop may go 3m+1m without a heartbeat; a run may
	// take run_timeout (10m) plus 1m.
	tests := []struct {
		name string
		st   daemonState
		want httpResult
	}{
		{
			name: "idle with a recent heartbeat",
			st:   daemonState{Heartbeat: now.Add(-4 * time.Minute)},
			want: httpResult{Code: http.StatusOK, Body: "ok"},
		},
		{
			name: "idle loop stalled",
			st:   daemonState{Heartbeat: now.Add(-4*time.Minute - time.Second)},
			want: httpResult{Code: http.StatusServiceUnavailable, Body: "loop stalled: last heartbeat 4m1s ago"},
		},
		{
			name: "long run within its bound",
			st:   daemonState{Running: true, RunStarted: now.Add(-11 * time.Minute), Heartbeat: now.Add(-11 * time.Minute)},
			want: httpResult{Code: http.StatusOK, Body: "ok"},
		},
		{
			name: "run hung past run_timeout",
			st:   daemonState{Running: true, RunStarted: now.Add(-11*time.Minute - time.Second), Heartbeat: now.Add(-11 * time.Minute)},
			want: httpResult{Code: http.StatusServiceUnavailable, Body: "run started 11m1s ago and has not finished"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testDaemonOptions(t, &fakeRunner{}, &fakeElector{})
			o.Now = func() time.Time { return now }
			d := newDaemon(o)
			d.st = tc.st
			if diff := cmp.Diff(tc.want, serve(d, http.MethodGet, "/livez", "")); diff != "" {
				t.Errorf("GET /livez (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLivezStalledElectionLoop drives the real loop: a TryAcquire that never
// returns stops the heartbeat, and /livez notices after 3 periods + 1m.
func TestLivezStalledElectionLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		el := &fakeElector{results: []acquireResult{{err: errNotLeaderForTest}, {}}}
		d := newDaemon(testDaemonOptions(t, &fakeRunner{}, el))
		stop, stopped := startDaemon(d)
		synctest.Wait()
		// The first attempt answered; the second, a second later, hangs.
		time.Sleep(time.Second)
		synctest.Wait()
		time.Sleep(4 * time.Minute)
		if got := serve(d, http.MethodGet, "/livez", ""); got.Code != http.StatusOK {
			t.Errorf("GET /livez at the limit = %+v, want 200", got)
		}
		time.Sleep(time.Second)
		want := httpResult{Code: http.StatusServiceUnavailable, Body: "loop stalled: last heartbeat 4m1s ago"}
		if diff := cmp.Diff(want, serve(d, http.MethodGet, "/livez", "")); diff != "" {
			t.Errorf("GET /livez past the limit (-want +got):\n%s", diff)
		}
		stop()
		<-stopped
	})
}

func TestStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		guards := []reconciler.GuardReport{
			{Name: reconciler.GuardOrphanGrace, Tripped: true, Detail: "1 held"},
			{Name: "max_deletes", Detail: "0 of 10"},
		}
		r := &fakeRunner{run: func(_ context.Context, opts reconciler.RunOptions) (reconciler.Report, error) {
			time.Sleep(2 * time.Second)
			return reconciler.Report{
				RunID: "run-1", Generation: opts.Generation, StartedAt: start, FinishedAt: time.Now(),
				Summary: reconciler.Summary{Create: 2, Keep: 3, Held: 1, Owned: 4}, Guards: guards,
			}, nil
		}}
		el := &fakeElector{results: []acquireResult{{lease: newFakeLease(42)}}}
		d := newDaemon(testDaemonOptions(t, r, el))
		stop, stopped := startDaemon(d)
		synctest.Wait()

		status := func() daemonState {
			res := serve(d, http.MethodGet, "/status", "")
			var got daemonState
			if err := json.Unmarshal([]byte(res.Body), &got); err != nil {
				t.Fatalf("GET /status: %v\n%s", err, res.Body)
			}
			return got
		}
		running := daemonState{
			Identity: "host-a/1", Leader: true, Generation: 42, LeaderSince: start,
			Holder: "host-a/1", HolderGeneration: 42, Schedule: "@every 1m",
			Running: true, RunStarted: start, Heartbeat: start, Started: start,
		}
		if diff := cmp.Diff(running, status()); diff != "" {
			t.Errorf("GET /status during the first run (-want +got):\n%s", diff)
		}

		time.Sleep(2 * time.Second)
		synctest.Wait()
		finished := start.Add(2 * time.Second)
		idle := running
		idle.Running, idle.NextRun, idle.LastSuccess, idle.Heartbeat = false, finished.Add(time.Minute), finished, finished
		idle.LastRun = &lastRun{
			RunID: "run-1", Generation: 42, StartedAt: start, FinishedAt: finished,
			Summary: reconciler.Summary{Create: 2, Keep: 3, Held: 1, Owned: 4}, Result: resultSuccess,
		}
		idle.Guards = guards
		if diff := cmp.Diff(idle, status()); diff != "" {
			t.Errorf("GET /status after the first run (-want +got):\n%s", diff)
		}
		stop()
		<-stopped
	})
}

// TestElectionLoop follows one replica through a term: leader, lease lost
// to another replica, follower, Redis down, and release on shutdown.
func TestElectionLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first, second := newFakeLease(7), newFakeLease(9)
		el := &fakeElector{results: []acquireResult{{lease: first}, {err: errNotLeaderForTest}}}
		r := &fakeRunner{}
		o := testDaemonOptions(t, r, el)
		d := newDaemon(o)
		stop, stopped := startDaemon(d)
		synctest.Wait()
		type view struct {
			Leader           bool
			Generation       int64
			Holder           string
			HolderGeneration int64
			RedisError       string
			Runs             int
			ReadyCode        int
		}
		look := func() view {
			st := d.state()
			return view{st.Leader, st.Generation, st.Holder, st.HolderGeneration, st.RedisError, r.runs(), serve(d, http.MethodGet, "/readyz", "").Code}
		}
		steps := []struct {
			name string
			act  func()
			want view
		}{
			{"elected: runs at once", func() {}, view{true, 7, "host-a/1", 7, "", 1, 200}},
			{"lease lost to another replica", func() {
				el.setHolder(holderResult{identity: "host-b/2", generation: 8})
				first.lose()
			}, view{false, 0, "host-b/2", 8, "", 1, 200}},
			{"redis down", func() {
				el.mu.Lock()
				el.results = []acquireResult{{err: errors.New("dial tcp: connection refused")}}
				el.mu.Unlock()
				time.Sleep(time.Second)
			}, view{false, 0, "", 0, "dial tcp: connection refused", 1, 503}},
			{"redis back: elected again, runs at once", func() {
				el.mu.Lock()
				el.results = []acquireResult{{lease: second}}
				el.mu.Unlock()
				time.Sleep(time.Second)
			}, view{true, 9, "host-a/1", 9, "", 2, 200}},
		}
		for _, s := range steps {
			s.act()
			synctest.Wait()
			if diff := cmp.Diff(s.want, look()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", s.name, diff)
			}
		}
		if !first.wasReleased() {
			t.Error("the lost lease was not released")
		}
		stop()
		<-stopped
		if !second.wasReleased() {
			t.Error("the lease was not released on shutdown")
		}
		if got := serve(d, http.MethodGet, "/metrics", ""); !strings.Contains(got.Body, "\nldreaper_leader 0\n") {
			t.Errorf("ldreaper_leader after shutdown is not 0:\n%s", got.Body)
		}
	})
}

func leaderElector1() *fakeElector {
	return &fakeElector{results: []acquireResult{{lease: newFakeLease(1)}}}
}

func followerElector() *fakeElector {
	return &fakeElector{results: []acquireResult{{err: errNotLeaderForTest}}}
}

func TestReconcileEndpoint(t *testing.T) {
	tests := []struct {
		name          string
		token         string // configured; empty disables the endpoint
		authorization string
		// elector builds the replica's elector inside the bubble, where its
		// channels must be made; nil runs a single instance.
		elector  func() *fakeElector
		want     httpResult
		wantRuns int // after the request; the leader's first run counts
	}{
		{
			name: "disabled without a configured token", authorization: "Bearer " + testReconcileToken,
			elector: leaderElector1,
			want:    httpResult{Code: http.StatusNotFound, Body: "POST /reconcile is disabled: set [http] reconcile_token_env"}, wantRuns: 1,
		},
		{
			name: "wrong bearer token", token: testReconcileToken, authorization: "Bearer guess",
			elector: leaderElector1,
			want:    httpResult{Code: http.StatusUnauthorized, Body: "unauthorized"}, wantRuns: 1,
		},
		{
			name: "raw token without Bearer", token: testReconcileToken, authorization: testReconcileToken,
			elector: leaderElector1,
			want:    httpResult{Code: http.StatusUnauthorized, Body: "unauthorized"}, wantRuns: 1,
		},
		{
			name: "follower", token: testReconcileToken, authorization: "Bearer " + testReconcileToken,
			elector: followerElector,
			want:    httpResult{Code: http.StatusConflict, Body: "not the leader; send it to the leader (see /status)"}, wantRuns: 0,
		},
		{
			name: "leader", token: testReconcileToken, authorization: "Bearer " + testReconcileToken,
			elector: leaderElector1,
			want:    httpResult{Code: http.StatusAccepted, Body: "reconcile queued"}, wantRuns: 2,
		},
		{
			name: "single instance", token: testReconcileToken, authorization: "Bearer " + testReconcileToken,
			want: httpResult{Code: http.StatusAccepted, Body: "reconcile queued"}, wantRuns: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				r := &fakeRunner{}
				var el elector
				if tc.elector != nil {
					el = tc.elector()
				}
				o := testDaemonOptions(t, r, el)
				o.ReconcileToken = tc.token
				d := newDaemon(o)
				stop, stopped := startDaemon(d)
				synctest.Wait()
				got := serve(d, http.MethodPost, "/reconcile", tc.authorization)
				// A queued run starts without the clock moving: it is the
				// trigger, not the one-minute schedule.
				synctest.Wait()
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("POST /reconcile (-want +got):\n%s", diff)
				}
				if got := r.runs(); got != tc.wantRuns || time.Since(start) != 0 {
					t.Errorf("%d runs after %s, want %d at once", got, time.Since(start), tc.wantRuns)
				}
				stop()
				<-stopped
			})
		})
	}
}

// TestRunCancellation: after SIGTERM a run gets exactly shutdown_timeout; a
// lost lease cancels it at once; run_timeout bounds it always.
func TestRunCancellation(t *testing.T) {
	tests := []struct {
		name string
		// runFor is how long the run works before returning; 0 waits for
		// its context.
		runFor time.Duration
		// act is done one second into the run.
		act        func(stop context.CancelFunc, l *fakeLease)
		wantCause  error
		wantLength time.Duration
	}{
		{
			name: "run outlives shutdown_timeout", act: func(stop context.CancelFunc, _ *fakeLease) { stop() },
			wantCause: errShutdownTimeout, wantLength: time.Second + 30*time.Second,
		},
		{
			name: "run finishes within shutdown_timeout", runFor: 20 * time.Second,
			act:       func(stop context.CancelFunc, _ *fakeLease) { stop() },
			wantCause: nil, wantLength: 20 * time.Second,
		},
		{
			name: "lease lost mid-run", act: func(_ context.CancelFunc, l *fakeLease) { l.lose() },
			wantCause: leader.ErrLeaseLost, wantLength: time.Second,
		},
		{
			name: "lease lost during shutdown", act: func(stop context.CancelFunc, l *fakeLease) { stop(); l.lose() },
			wantCause: leader.ErrLeaseLost, wantLength: time.Second,
		},
		{
			name: "run hangs past run_timeout", act: func(context.CancelFunc, *fakeLease) {},
			wantCause: errRunTimeout, wantLength: 10 * time.Minute,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lengths := make(chan time.Duration, 1)
				r := &fakeRunner{run: func(ctx context.Context, opts reconciler.RunOptions) (reconciler.Report, error) {
					began := time.Now()
					defer func() { lengths <- time.Since(began) }()
					if tc.runFor > 0 {
						time.Sleep(tc.runFor)
						return reconciler.Report{}, nil
					}
					<-ctx.Done()
					return reconciler.Report{Error: "interrupted"}, context.Cause(ctx)
				}}
				l := newFakeLease(5)
				d := newDaemon(testDaemonOptions(t, r, &fakeElector{results: []acquireResult{{lease: l}, {err: errNotLeaderForTest}}}))
				stop, stopped := startDaemon(d)
				time.Sleep(time.Second)
				tc.act(stop, l)
				length := <-lengths
				synctest.Wait()
				if !errors.Is(r.lastCause(), tc.wantCause) || (tc.wantCause == nil && r.lastCause() != nil) {
					t.Errorf("run context cause = %v, want %v", r.lastCause(), tc.wantCause)
				}
				if length != tc.wantLength {
					t.Errorf("run lasted %s, want %s", length, tc.wantLength)
				}
				stop()
				<-stopped
				if !l.wasReleased() {
					t.Error("lease not released")
				}
			})
		})
	}
}
