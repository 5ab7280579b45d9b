package leader

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/ldreaper/ldreaper/internal/redistest"
)

// These tests run against a real redis-server and real time, because only
// a real server shows a crash and an empty restart. They assert bounds, not
// exact times, and use a 1s TTL to stay fast.

const integrationTTL = time.Second

func realClient(t *testing.T, s *redistest.Server) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatalf("parse %q: %v", s.URL(), err)
	}
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func realElector(t *testing.T, rdb redis.UniversalClient, identity string) *Elector {
	t.Helper()
	e, err := New(rdb, Options{Key: testKey, TTL: integrationTTL, Identity: identity})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func TestIntegrationRaceHasOneWinner(t *testing.T) {
	s := redistest.Start(t)
	electors := []*Elector{
		realElector(t, realClient(t, s), "pod-a"),
		realElector(t, realClient(t, s), "pod-b"),
	}
	ctx := t.Context()
	var lastGeneration int64
	for round := range 50 {
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			leases  = make([]*Lease, len(electors))
			errs    = make([]error, len(electors))
			winners []*Lease
		)
		for i, e := range electors {
			wg.Go(func() {
				<-start
				leases[i], errs[i] = e.TryAcquire(ctx)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			switch {
			case err == nil:
				winners = append(winners, leases[i])
			case !errors.Is(err, ErrNotLeader):
				t.Fatalf("round %d: TryAcquire(%s): %v", round, electors[i].identity, err)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d winners, want exactly 1", round, len(winners))
		}
		if g := winners[0].Generation(); g <= lastGeneration {
			t.Fatalf("round %d: generation %d, want > %d", round, g, lastGeneration)
		}
		lastGeneration = winners[0].Generation()
		if err := winners[0].Release(ctx); err != nil {
			t.Fatalf("round %d: Release: %v", round, err)
		}
	}
}

func TestIntegrationCrashLosesLeaseAndRestartKeepsFencing(t *testing.T) {
	s := redistest.Start(t)
	rdb := realClient(t, s)
	lease, err := realElector(t, rdb, "pod-a").TryAcquire(t.Context())
	if err != nil {
		t.Fatalf("TryAcquire: %v", err)
	}
	defer lease.Release(context.Background())
	runCtx, cancel := lease.Context(t.Context())
	defer cancel()

	crashedAt := time.Now()
	s.Stop()
	select {
	case <-lease.Done():
	case <-time.After(2 * integrationTTL):
		t.Fatal("lease still held 2×TTL after Redis died")
	}
	if elapsed := time.Since(crashedAt); elapsed >= integrationTTL {
		t.Errorf("lease lost %s after the crash, want under the TTL %s", elapsed, integrationTTL)
	}
	<-runCtx.Done()
	if !errors.Is(context.Cause(runCtx), ErrLeaseLost) {
		t.Errorf("run context cause = %v, want ErrLeaseLost", context.Cause(runCtx))
	}

	// The restarted server is empty: a plain INCR would issue generation 1 again.
	s.Restart()
	successor, err := realElector(t, realClient(t, s), "pod-b").TryAcquire(t.Context())
	if err != nil {
		t.Fatalf("TryAcquire after restart: %v", err)
	}
	defer successor.Release(context.Background())
	if successor.Generation() <= lease.Generation() {
		t.Errorf("generation after data loss = %d, want > %d", successor.Generation(), lease.Generation())
	}
}
