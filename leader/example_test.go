package leader_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/ldreaper/ldreaper/leader"
)

// reconcile stands in for one reconciler run: it checks the lease before
// every mutation and stops at the first refusal, so a replica that lost the
// lease mid-run makes no further changes.
func reconcile(ctx context.Context, lease *leader.Lease, deletes []string) error {
	for _, key := range deletes {
		if err := lease.Check(ctx); err != nil {
			return fmt.Errorf("delete environment %q: %w", key, err)
		}
		fmt.Printf("delete %s (generation stamped: %t)\n", key, lease.Generation() > 0)
	}
	return nil
}

// The daemon loop: every retry interval a follower calls TryAcquire; the
// leader runs its reconciles under lease.Context, checks the lease before
// each mutation, and releases on shutdown so a follower takes over at once.
func Example() {
	mr, err := miniredis.Run()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mr.Close()
	newClient := func() *redis.Client {
		return redis.NewClient(&redis.Options{
			Addr:                     mr.Addr(),
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		})
	}
	ctx := context.Background()

	clientA, clientB := newClient(), newClient()
	defer clientA.Close()
	defer clientB.Close()

	podA, err := leader.New(clientA, leader.Options{Key: "ldreaper:leader", TTL: 30 * time.Second, Identity: "pod-a:17"})
	if err != nil {
		fmt.Println(err)
		return
	}
	podB, err := leader.New(clientB, leader.Options{Key: "ldreaper:leader", TTL: 30 * time.Second, Identity: "pod-b:23"})
	if err != nil {
		fmt.Println(err)
		return
	}

	lease, err := podA.TryAcquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := podB.TryAcquire(ctx); errors.Is(err, leader.ErrNotLeader) {
		holder, _, _ := podB.Holder(ctx)
		fmt.Println("pod-b follows", holder)
	}

	runCtx, cancel := lease.Context(ctx)
	if err := reconcile(runCtx, lease, []string{"pr-12", "pr-13"}); err != nil {
		fmt.Println(err)
	}
	cancel()

	// Shutting down: hand over without waiting for the TTL.
	if err := lease.Release(ctx); err != nil {
		fmt.Println(err)
	}
	next, err := podB.TryAcquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer next.Release(ctx)
	fmt.Println("pod-b leads with a newer generation:", next.Generation() > lease.Generation())

	// A run that outlives its lease is refused before its next mutation.
	if err := reconcile(ctx, lease, []string{"pr-14"}); err != nil {
		fmt.Println("pod-a refused:", errors.Is(err, leader.ErrLeaseLost))
	}

	// Output:
	// pod-b follows pod-a:17
	// delete pr-12 (generation stamped: true)
	// delete pr-13 (generation stamped: true)
	// pod-b leads with a newer generation: true
	// pod-a refused: true
}
