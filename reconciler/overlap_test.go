package reconciler

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/sources"
)

// slowReader answers like staticReader after delay, per call.
type slowReader struct {
	staticReader
	delay time.Duration
}

func (s slowReader) ListEnvironments(ctx context.Context, project string, f ldclient.ListFilter) ([]ldclient.Environment, error) {
	time.Sleep(s.delay)
	return s.staticReader.ListEnvironments(ctx, project, f)
}

func (s slowReader) CountEnvironments(ctx context.Context, project string) (int, error) {
	time.Sleep(s.delay)
	return s.staticReader.CountEnvironments(ctx, project)
}

// sleepySource lists its items after delay.
type sleepySource struct {
	stubSource
	delay time.Duration
}

func (s sleepySource) List(ctx context.Context) (sources.Snapshot, error) {
	time.Sleep(s.delay)
	return s.stubSource.List(ctx)
}

// TestRunOnceReadsLDWhileListingSources: the managed list, the project count
// and the sources are all reads, so a run waits for the slowest of them,
// not for their sum.
func TestRunOnceReadsLDWhileListingSources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay = 10 * time.Second
		reader := slowReader{staticReader: staticReader{envs: []ldclient.Environment{{Key: "staging"}}}, delay: delay}
		src := sleepySource{stubSource: stubSource{name: "previews", items: []string{"pr-1"}}, delay: delay}
		r := New(runConfig(), reader, nil, specs(src), nil, zerolog.Nop(), nil)
		start := time.Now()
		rep, err := r.RunOnce(t.Context(), RunOptions{DryRun: true})
		if err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
		if elapsed := time.Since(start); elapsed != delay {
			t.Errorf("run took %s; reading LD and the source, %s each, at the same time takes %s", elapsed, delay, delay)
		}
		if got := actionLines(rep); len(got) != 1 || got[0] != "create pr-1 planned" {
			t.Errorf("actions = %q, want the one create", got)
		}
	})
}
