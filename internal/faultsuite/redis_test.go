package faultsuite

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/ldreaper/ldreaper/internal/redistest"
	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/leader"
	"github.com/ldreaper/ldreaper/orphanstate"
	"github.com/ldreaper/ldreaper/reconciler"
)

// tripWriter passes mutations through and closes tripped when the n-th
// starts, so the test can strike in the middle of an apply.
type tripWriter struct {
	reconciler.EnvironmentWriter
	n       int
	tripped chan struct{}

	mu    sync.Mutex
	calls int
}

func (w *tripWriter) count() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.calls == w.n {
		close(w.tripped)
	}
}

func (w *tripWriter) CreateEnvironment(ctx context.Context, project string, body ldclient.EnvironmentPost) (ldclient.CreateResult, error) {
	w.count()
	return w.EnvironmentWriter.CreateEnvironment(ctx, project, body)
}

func (w *tripWriter) DeleteEnvironment(ctx context.Context, project, key string) (ldclient.DeleteResult, error) {
	w.count()
	return w.EnvironmentWriter.DeleteEnvironment(ctx, project, key)
}

// runDeadline bounds how long a run may take to end after Redis restarts
// before the test calls it hung; it is a guard, not a measurement.
const runDeadline = 30 * time.Second

// TestRedisRestartedMidRun kills Redis in the middle of an apply and starts
// it again empty, as a crash without persistence does. The leader loses its
// lease: the run stops mutating and does not save orphan state. A new leader
// on the empty Redis finishes the creates and, since the orphan state is
// gone, deletes nothing until the orphans have been seen for
// orphan_min_runs runs again.
func TestRedisRestartedMidRun(t *testing.T) {
	srv := redistest.Start(t)
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })

	w := newWorld(t, ldfake.Options{Seed: 21, Latency: 5 * time.Millisecond}, layout{keep: 4, orphans: 6, creates: 10})
	client := w.client(writerToken)
	store := orphanstate.NewRedis(rdb, "ldreaper:orphans:"+project)
	cfg := reconcilerConfig()
	cfg.Concurrency = 2
	cfg.Plan.OrphanMinRuns = 2

	acquire := func(identity string) (*leader.Lease, *leaseLedger) {
		t.Helper()
		// A long TTL keeps the watchdog out of the way: the lease is lost
		// through the check before a mutation, the path under test.
		e, err := leader.New(rdb, leader.Options{Key: "ldreaper:leader", TTL: 30 * time.Second, Identity: identity})
		if err != nil {
			t.Fatal(err)
		}
		lease, err := e.TryAcquire(t.Context())
		if err != nil {
			t.Fatalf("%s: acquire: %v", identity, err)
		}
		t.Cleanup(func() { _ = lease.Release(context.Background()) })
		return lease, &leaseLedger{lease: lease, writer: client}
	}

	first, firstLedger := acquire("pod-a")
	trip := &tripWriter{EnvironmentWriter: firstLedger, n: 4, tripped: make(chan struct{})}
	w.beforeRun = firstLedger.newRun
	rec := w.newReconciler(cfg, client, trip, store)
	runCtx, cancel := first.Context(t.Context())
	defer cancel()
	r := w.record("run interrupted by a Redis restart", false, nil, func() reconciler.Report {
		result := make(chan reconciler.Report, 1)
		go func() {
			rep, _ := rec.RunOnce(runCtx, reconciler.RunOptions{Lease: firstLedger, Generation: first.Generation()})
			result <- rep
		}()
		select {
		case <-trip.tripped:
			srv.Restart()
		case rep := <-result:
			t.Error("the run ended before Redis could be restarted")
			return rep
		}
		select {
		case rep := <-result:
			return rep
		case <-time.After(runDeadline):
			t.Fatalf("the run did not end %s after Redis restarted", runDeadline)
			return reconciler.Report{}
		}
	})
	if r.report.Error == "" {
		t.Error("the run that lost Redis reported no error")
	}
	if n := len(r.mutations); n < 1 || n >= 20 {
		t.Errorf("%d mutations in the interrupted run, want some but not all 20 creates", n)
	}

	second, secondLedger := acquire("pod-b")
	if second.Generation() <= first.Generation() {
		t.Errorf("generation after the restart = %d, want above %d", second.Generation(), first.Generation())
	}
	w.beforeRun = secondLedger.newRun
	rec = w.newReconciler(cfg, client, secondLedger, store)
	runCtx, cancel = second.Context(t.Context())
	defer cancel()
	opts2 := reconciler.RunOptions{Lease: secondLedger, Generation: second.Generation()}
	after := w.run(runCtx, "first run of the new leader", rec, opts2)
	for _, a := range after.report.Actions {
		if a.Op == "delete" && a.Status == reconciler.StatusApplied {
			t.Errorf("delete %s right after the orphan state was lost; grace must start over", a.Key)
		}
	}
	w.converge(runCtx, rec, opts2)

	w.verify(true)
	firstLedger.verify(t)
	secondLedger.verify(t)
}
