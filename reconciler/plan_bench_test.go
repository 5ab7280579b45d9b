package reconciler

import (
	"fmt"
	"testing"
	"time"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/orphanstate"
)

// benchInput is a project of n owned environments from one complete source.
// driftEvery > 0 makes every driftEvery-th item new (a create) and every
// driftEvery-th owned environment an orphan (a delete).
func benchInput(n, driftEvery int) Input {
	in := Input{
		Config: PlanConfig{
			Policy: PolicySync, ManagedTag: "ldreaper", SourceEnvironments: []string{"staging"},
			Protected: []string{"production", "perf-*"}, MaxDeletes: n, MaxDeletePercent: 100, OrphanMinRuns: 1, NoGrace: true,
		},
		Sources:         []SourceResult{{Name: "previews", Items: n, Complete: true}},
		ProjectEnvCount: n + 2,
		Orphans:         map[string]orphanstate.Record{},
		Now:             time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
	}
	tags := []string{"ldreaper", ProvenanceTag("ldreaper", "previews")}
	for i := range n {
		key := fmt.Sprintf("pr-%06d", i)
		desiredKey := key
		if driftEvery > 0 && i%driftEvery == 0 {
			desiredKey = fmt.Sprintf("new-%06d", i)
		}
		in.Desired = append(in.Desired, Desired{Key: desiredKey, Name: "Preview " + desiredKey, Source: "previews", Item: desiredKey})
		in.Existing = append(in.Existing, ldclient.Environment{Key: key, Name: "Preview " + key, Tags: tags})
	}
	return in
}

// BenchmarkCalculate plans projects of growing size. ns/env should stay
// roughly flat as n grows tenfold; P3 of cmd/ldreaper-bench holds the
// 100,000 case to 50 ms.
func BenchmarkCalculate(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		for _, drift := range []struct {
			name  string
			every int
		}{{"no-drift", 0}, {"drift-10pct", 10}} {
			b.Run(fmt.Sprintf("envs=%d/%s", n, drift.name), func(b *testing.B) {
				in := benchInput(n, drift.every)
				var plan Plan
				for b.Loop() {
					plan = Calculate(in)
				}
				if drift.every == 0 && len(plan.Keeps) != n || drift.every > 0 && len(plan.Creates) != n/drift.every {
					b.Fatalf("unexpected plan: %d keeps, %d creates, %d deletes", len(plan.Keeps), len(plan.Creates), len(plan.Deletes))
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/env")
			})
		}
	}
}
