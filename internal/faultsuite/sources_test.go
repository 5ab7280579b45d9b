package faultsuite

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/reconciler"
)

// TestSourceFaults: one source fails, times out, comes back empty or comes
// back truncated for two runs while the other stays healthy. None of the
// bad source's environments may be deleted meanwhile (its items are live),
// its orphans are held with the reason, the healthy source's drift is
// applied, and once it recovers everything converges.
func TestSourceFaults(t *testing.T) {
	tests := []struct {
		name       string
		mode       sourceMode
		wantReason string
	}{
		{name: "failing", mode: sourceFails, wantReason: reconciler.ReasonSourceFailed},
		{name: "timing out", mode: sourceTimesOut, wantReason: reconciler.ReasonSourceFailed},
		{name: "empty", mode: sourceEmpty, wantReason: reconciler.ReasonSourceEmpty},
		{name: "truncated", mode: sourceTruncated, wantReason: reconciler.ReasonSourceIncomplete},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, ldfake.Options{Seed: int64(100 + i)}, layout{keep: 4, orphans: 6, creates: 6})
			client := w.client(writerToken)
			ledger := &leaseLedger{lease: &heldLease{}, writer: client}
			w.beforeRun = ledger.newRun
			rec := w.newReconciler(reconcilerConfig(), client, ledger, nil)
			opts := reconciler.RunOptions{Lease: ledger, NoGrace: true}

			w.sources["previews"].setMode(tt.mode)
			for run := range 2 {
				r := w.run(t.Context(), fmt.Sprintf("run %d with previews %s", run+1, tt.name), rec, opts)
				var badHeld, healthyDeleted []string
				for _, a := range r.report.Actions {
					switch {
					case a.Op == "delete" && strings.HasPrefix(a.Key, "previews-") && a.Status == reconciler.StatusHeld && a.Reason == tt.wantReason:
						badHeld = append(badHeld, a.Key)
					case a.Op == "delete" && strings.HasPrefix(a.Key, "k8s-old-") && a.Status == reconciler.StatusApplied:
						healthyDeleted = append(healthyDeleted, a.Key)
					}
				}
				// Every environment of the bad source that this run did not
				// see is held: orphans and live ones alike, except the two
				// the guards hold for reasons of their own.
				returned := keysOf(r.returned)
				wantHeld := 0
				for k, e := range r.before {
					if strings.HasPrefix(k, "previews-") && hasTag(e, managedTag) && !returned[k] {
						wantHeld++
					}
				}
				if len(badHeld) != wantHeld {
					t.Errorf("run %d: %d previews deletes held as %s, want %d: %v", run+1, len(badHeld), tt.wantReason, wantHeld, badHeld)
				}
				if run == 0 && len(healthyDeleted) != 6 {
					t.Errorf("run 1: the healthy source's orphans deleted: %v, want all 6", healthyDeleted)
				}
			}
			w.sources["previews"].setMode(sourceOK)
			w.converge(t.Context(), rec, opts)
			w.verify(true)
			ledger.verify(t)
			if diff := cmp.Diff(0, countPrefix(w.state(), "previews-old-")); diff != "" {
				t.Errorf("previews orphans left after recovery (-want +got):\n%s", diff)
			}
		})
	}
}

func countPrefix[V any](m map[string]V, prefix string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

func keysOf(keys []string) map[string]bool {
	out := make(map[string]bool, len(keys))
	for _, k := range keys {
		out[k] = true
	}
	return out
}
