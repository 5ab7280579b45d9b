package reconciler

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rs/zerolog"
)

func TestSplitBudget(t *testing.T) {
	keys := func(as []Action) []string {
		out := make([]string, 0, len(as))
		for _, a := range as {
			out = append(out, string(a.Op)+" "+a.Key)
		}
		return out
	}
	tests := []struct {
		name                    string
		creates, deletes, limit int
		want                    [3][]string // kept creates, kept deletes, deferred
	}{
		{name: "no limit", creates: 2, deletes: 2, limit: 0,
			want: [3][]string{{"create c1", "create c2"}, {"delete d1", "delete d2"}, nil}},
		{name: "everything fits", creates: 1, deletes: 2, limit: 3,
			want: [3][]string{{"create c1"}, {"delete d1", "delete d2"}, nil}},
		{name: "creates first, deletes get the rest", creates: 2, deletes: 3, limit: 3,
			want: [3][]string{{"create c1", "create c2"}, {"delete d1"}, {"delete d2", "delete d3"}}},
		{name: "more creates than the budget", creates: 3, deletes: 1, limit: 2,
			want: [3][]string{{"create c1", "create c2"}, nil, {"create c3", "delete d1"}}},
		{name: "only deletes", creates: 0, deletes: 4, limit: 1,
			want: [3][]string{nil, {"delete d1"}, {"delete d2", "delete d3", "delete d4"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, d, deferred := splitBudget(actionsFor(OpCreate, keysN("c", tt.creates)...), actionsFor(OpDelete, keysN("d", tt.deletes)...), tt.limit)
			got := [3][]string{keys(c), keys(d), keys(deferred)}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("split (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyHoldsWhatIsOverTheBudget(t *testing.T) {
	for _, dryRun := range []bool{false, true} {
		t.Run(map[bool]string{false: "apply", true: "dry run"}[dryRun], func(t *testing.T) {
			w := &fakeWriter{}
			ap := testApplier(w, 2)
			ap.maxMutations, ap.dryRun = 3, dryRun
			got := statuses(ap.apply(t.Context(), actionsFor(OpCreate, "c1", "c2"), actionsFor(OpDelete, "d1", "d2", "d3")))
			done := map[bool]string{false: "applied", true: "planned"}[dryRun]
			want := []string{
				"delete d2 held rate-budget", "delete d3 held rate-budget",
				"create c1 " + done, "create c2 " + done, "delete d1 " + done,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			wantCalls := map[bool][]string{false: {"create c1", "create c2", "delete d1"}, true: nil}[dryRun]
			if diff := cmp.Diff(wantCalls, w.Calls(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("writer calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunOnceSpreadsMutationsOverRuns: a budget of 3 per run turns a burst of
// 2 creates and 4 deletes into two runs, without a guard and with exit 0,
// and the held deletes stay orphans so the next run does them.
func TestRunOnceSpreadsMutationsOverRuns(t *testing.T) {
	h := newLDHarness(t, managed("old-1", "previews"), managed("old-2", "previews"), managed("old-3", "previews"), managed("old-4", "previews"))
	w := h.client(t, writerToken)
	cfg := runConfig()
	cfg.MaxMutationsPerRun = 3
	r := New(cfg, w, w, specs(stubSource{name: "previews", items: []string{"new-1", "new-2"}}), newRecordingStore(), zerolog.Nop(), nil)

	runs := [][]string{
		{"create new-1 applied", "create new-2 applied", "delete old-1 applied", "delete old-2 held rate-budget", "delete old-3 held rate-budget", "delete old-4 held rate-budget"},
		{"delete old-2 applied", "delete old-3 applied", "delete old-4 applied"},
		nil,
	}
	for i, want := range runs {
		rep, err := r.RunOnce(t.Context(), RunOptions{})
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		if diff := cmp.Diff(want, actionLines(rep), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("run %d: actions (-want +got):\n%s", i+1, diff)
		}
		if code := rep.ExitCode(false); code != ExitOK {
			t.Errorf("run %d: exit code %d, want %d: deferral is not a guard", i+1, code, ExitOK)
		}
		for _, g := range rep.Guards {
			if g.Tripped {
				t.Errorf("run %d: guard %s tripped", i+1, g.Name)
			}
		}
	}
	if diff := cmp.Diff([]string{"new-1", "new-2", "production", "staging"}, h.keys()); diff != "" {
		t.Errorf("environments after the runs (-want +got):\n%s", diff)
	}
}
