package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/ldclient"
)

// EnvironmentWriter is what the applier needs of LD.
type EnvironmentWriter interface {
	CreateEnvironment(ctx context.Context, project string, body ldclient.EnvironmentPost) (ldclient.CreateResult, error)
	DeleteEnvironment(ctx context.Context, project, key string) (ldclient.DeleteResult, error)
}

// LeaseChecker confirms, before each mutation, that this process still holds
// the leader lock with enough time left.
type LeaseChecker interface {
	Check(ctx context.Context) error
}

// ReasonRateBudget holds an action that did not fit in the run's mutation
// budget (max_mutations_per_run). It is not a guard: nothing is wrong, the
// action is planned again and done by a later run, so it does not change
// the exit code.
const ReasonRateBudget = "rate-budget"

// result is the outcome of one action.
type result struct {
	Action
	Status string
	// Deleted is set for a delete that LD confirmed (or found already gone).
	Deleted bool
	// Environment is what LD returned for a create, ours or found.
	Environment *ldclient.Environment
}

// applier executes a plan. It is the only place dry-run is honoured: in a dry
// run it calls nothing on the writer.
type applier struct {
	writer      EnvironmentWriter
	project     string
	concurrency int
	// maxMutations caps the creates and deletes of one run; 0 is no cap.
	maxMutations int
	dryRun       bool
	lease        LeaseChecker
	managedTag   string
	post         func(Action) ldclient.EnvironmentPost
	log          zerolog.Logger
}

// apply runs creates, then deletes (so the project never dips towards zero
// environments), each with bounded concurrency. Once ctx is cancelled or the
// lease is lost, no further mutation starts. Actions beyond the run's
// mutation budget are held for a later run, in a dry run too, so that its
// report shows what the real run would do.
func (ap *applier) apply(ctx context.Context, creates, deletes []Action) []result {
	creates, deletes, deferred := splitBudget(creates, deletes, ap.maxMutations)
	out := make([]result, 0, len(creates)+len(deletes)+len(deferred))
	for _, a := range deferred {
		a.Reason = ReasonRateBudget
		a.Detail = fmt.Sprintf("deferred to a later run: max_mutations_per_run is %d", ap.maxMutations)
		out = append(out, result{Action: a, Status: StatusHeld})
	}
	if len(deferred) > 0 {
		ap.log.Info().Int("max_mutations_per_run", ap.maxMutations).Int("deferred", len(deferred)).Msg("mutations deferred to a later run")
	}
	if ap.dryRun {
		for _, a := range append(append([]Action(nil), creates...), deletes...) {
			out = append(out, result{Action: a, Status: StatusPlanned})
		}
		return out
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out = append(out, ap.run(ctx, cancel, creates, ap.create)...)
	return append(out, ap.run(ctx, cancel, deletes, ap.delete)...)
}

// splitBudget keeps at most limit actions (no limit when limit <= 0) and
// returns the rest as deferred. Creates come first: someone is waiting for
// a new preview's environment, while an orphan costs nothing by waiting, so
// a short budget spreads deletes over runs rather than delaying creates.
func splitBudget(creates, deletes []Action, limit int) (keptCreates, keptDeletes, deferred []Action) {
	if limit <= 0 || len(creates)+len(deletes) <= limit {
		return creates, deletes, nil
	}
	nc := min(len(creates), limit)
	nd := min(len(deletes), limit-nc)
	deferred = append(append(deferred, creates[nc:]...), deletes[nd:]...)
	return creates[:nc], deletes[:nd], deferred
}

func (ap *applier) run(ctx context.Context, cancel context.CancelCauseFunc, actions []Action, do func(context.Context, Action) result) []result {
	out := make([]result, len(actions))
	n := ap.concurrency
	if n < 1 {
		n = 1
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, a := range actions {
		acquired := false
		select {
		case sem <- struct{}{}:
			acquired = true
		case <-ctx.Done():
		}
		if err := ap.mayMutate(ctx); err != nil {
			if acquired {
				<-sem
			}
			out[i] = result{Action: notStarted(a, err), Status: StatusFailed}
			cancel(err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = do(ctx, a)
		}()
	}
	wg.Wait()
	return out
}

// mayMutate is checked before every mutation.
func (ap *applier) mayMutate(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if ap.lease != nil {
		if err := ap.lease.Check(ctx); err != nil {
			return fmt.Errorf("leader lease: %w", err)
		}
	}
	return nil
}

func notStarted(a Action, err error) Action {
	a.Reason = "not-started"
	a.Detail = err.Error()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		a.Reason = "cancelled"
	}
	return a
}

func (ap *applier) create(ctx context.Context, a Action) result {
	res, err := ap.writer.CreateEnvironment(ctx, ap.project, ap.post(a))
	log := ap.log.With().Str("op", "create").Str("key", a.Key).Str("source", a.Source).Logger()
	switch {
	case err != nil:
		log.Error().Err(err).Msg("action failed")
		a.Reason, a.Detail = "ld-error", err.Error()
		return result{Action: a, Status: StatusFailed}
	case res.Existed && !res.Environment.HasTag(ap.managedTag):
		log.Warn().Msg("key exists without the managed tag; left alone")
		a.Reason, a.Detail = ReasonExistsUnmanaged, "an environment with this key exists without the managed tag"
		return result{Action: a, Status: StatusHeld}
	case res.Existed:
		log.Info().Msg("environment already existed with the managed tag")
		a.Detail = "already existed"
	default:
		log.Info().Msg("environment created")
	}
	return result{Action: a, Status: StatusApplied, Environment: &res.Environment}
}

func (ap *applier) delete(ctx context.Context, a Action) result {
	res, err := ap.writer.DeleteEnvironment(ctx, ap.project, a.Key)
	log := ap.log.With().Str("op", "delete").Str("key", a.Key).Str("source", a.Source).Logger()
	if err != nil {
		log.Error().Err(err).Msg("action failed")
		a.Reason, a.Detail = "ld-error", err.Error()
		return result{Action: a, Status: StatusFailed}
	}
	if res == ldclient.AlreadyGone {
		a.Detail = "already gone"
	}
	log.Info().Str("result", res.String()).Msg("environment deleted")
	return result{Action: a, Status: StatusApplied, Deleted: true}
}
