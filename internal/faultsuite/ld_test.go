package faultsuite

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/reconciler"
)

// faultyRuns is how many runs each LD fault scenario gets before the faults
// stop and clean runs converge.
const faultyRuns = 3

func TestLDFaults(t *testing.T) {
	tests := []struct {
		name   string
		opts   ldfake.Options
		faults ldfake.Faults
		client func(*ldclient.Options)
		// struck says which audit entries show the fault at work; the test
		// fails if none does, so a fault that stopped striking is noticed.
		struck  func(ldfake.AuditEntry) bool
		listLag bool
	}{
		{name: "30% 5xx before acting",
			faults: ldfake.Faults{Error5xxBefore: 0.3},
			struck: faultIs(ldfake.Fault5xxBefore)},
		{name: "5xx after commit",
			faults: ldfake.Faults{Error5xxAfter: 0.3},
			struck: faultIs(ldfake.Fault5xxAfter)},
		{name: "connection resets before and after acting",
			faults: ldfake.Faults{Drop: 0.15, DropAfter: 0.15},
			struck: faultIs(ldfake.FaultDrop, ldfake.FaultDropAfter)},
		{name: "stalls longer than the request timeout",
			faults: ldfake.Faults{Stall: 0.2, StallFor: time.Second},
			struck: faultIs(ldfake.FaultCanceled)},
		{name: "429 storm, pacing off",
			opts:   ldfake.Options{GlobalBudget: 4, RateWindow: 50 * time.Millisecond},
			client: func(o *ldclient.Options) { o.Headroom = -1 },
			struck: func(a ldfake.AuditEntry) bool { return a.Status == http.StatusTooManyRequests }},
		{name: "load balancer HTML 502s and code-less errors",
			faults: ldfake.Faults{HTML502: 0.25, NoCodeErrors: true},
			struck: faultIs(ldfake.FaultHTML502)},
		{name: "everything at once, with list lag and shuffled pages",
			opts: ldfake.Options{MaxPageSize: 7},
			faults: ldfake.Faults{Error5xxBefore: 0.1, Error5xxAfter: 0.1, Drop: 0.05, DropAfter: 0.05, Stall: 0.05, StallFor: time.Second,
				HTML502: 0.05, ListLag: 300 * time.Millisecond, ShuffleOrder: true},
			struck:  faultIs(ldfake.Fault5xxBefore, ldfake.Fault5xxAfter, ldfake.FaultDrop, ldfake.FaultDropAfter),
			listLag: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Seed = int64(i + 1)
			w := newWorld(t, tt.opts, layout{keep: 5, orphans: 10, creates: 10})
			w.facts.listLag = tt.listLag
			var clientOpts []func(*ldclient.Options)
			if tt.client != nil {
				clientOpts = append(clientOpts, tt.client)
			}
			client := w.client(writerToken, clientOpts...)
			ledger := &leaseLedger{lease: &heldLease{}, writer: client}
			w.beforeRun = ledger.newRun
			rec := w.newReconciler(reconcilerConfig(), client, ledger, nil)
			opts := reconciler.RunOptions{Lease: ledger, NoGrace: true}

			w.fake.SetFaults(tt.faults)
			for i := range faultyRuns {
				w.run(t.Context(), fmt.Sprintf("faulty run %d", i+1), rec, opts)
			}
			w.fake.SetFaults(ldfake.Faults{})
			w.converge(t.Context(), rec, opts)

			w.verify(true)
			ledger.verify(t)
			struck := 0
			for _, a := range w.fake.Audit() {
				if tt.struck(a) {
					struck++
				}
			}
			if struck == 0 {
				t.Error("the fault never struck; the scenario tested nothing")
			}
		})
	}
}

func faultIs(names ...string) func(ldfake.AuditEntry) bool {
	return func(a ldfake.AuditEntry) bool {
		for _, n := range names {
			if a.Fault == n {
				return true
			}
		}
		return false
	}
}

// TestDryRunUnderFaults: a dry run with a Reader token, while LD fails and
// drops connections, sends only GETs and changes nothing, and still reports
// all the drift of every run that got as far as planning.
func TestDryRunUnderFaults(t *testing.T) {
	t.Parallel()
	w := newWorld(t, ldfake.Options{Seed: 11}, layout{keep: 5, orphans: 10, creates: 10})
	reader := w.client(readerToken)
	rec := w.newReconciler(reconcilerConfig(), reader, nil, nil)
	w.fake.SetFaults(ldfake.Faults{Error5xxBefore: 0.3, Drop: 0.1, Stall: 0.1, StallFor: time.Second})
	planned := 0
	for i := range faultyRuns {
		r := w.run(t.Context(), fmt.Sprintf("dry run %d", i+1), rec, reconciler.RunOptions{DryRun: true})
		planned += r.report.Summary.Create + r.report.Summary.Delete
	}
	w.verify(false)
	if planned == 0 {
		t.Error("no dry run reported any drift; the scenario tested nothing")
	}
}

// TestLeaseLostMidApply: the lease is lost after a few mutations. Nothing
// starts after that, what was in flight ends reported, and the next leader
// finishes the job without repeating any of it.
func TestLeaseLostMidApply(t *testing.T) {
	t.Parallel()
	w := newWorld(t, ldfake.Options{Seed: 12, Latency: 2 * time.Millisecond}, layout{keep: 5, orphans: 10, creates: 10})
	client := w.client(writerToken)
	lease := &heldLease{passesMax: 6}
	ledger := &leaseLedger{lease: lease, writer: client}
	w.beforeRun = ledger.newRun
	rec := w.newReconciler(reconcilerConfig(), client, ledger, nil)
	r := w.run(t.Context(), "run losing its lease", rec, reconciler.RunOptions{Lease: ledger, NoGrace: true})
	if n := len(r.mutations); n == 0 || n > 6 {
		t.Errorf("%d mutations under a lease good for 6 checks", n)
	}
	if r.report.Error == "" {
		t.Error("a run that lost its lease reported no error")
	}

	successor := &leaseLedger{lease: &heldLease{}, writer: client}
	w.beforeRun = successor.newRun
	rec = w.newReconciler(reconcilerConfig(), client, successor, nil)
	w.converge(t.Context(), rec, reconciler.RunOptions{Lease: successor, NoGrace: true})
	w.verify(true)
	ledger.verify(t)
	successor.verify(t)
}
