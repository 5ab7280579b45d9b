package faultsuite

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/reconciler"
)

// The four kinds of violation. Every test in this package asserts that
// there are none of any kind.
//
//   - lost: a create or delete that had to be planned and neither happened
//     nor was reported failed or held. Concretely: an action reported
//     "applied" whose effect is not in LD after the run (or that no mutation
//     of this run explains); an action left "planned" by a run that was not
//     a dry run; drift that a run which got as far as planning did not report
//     at all (a desired key the sources returned that LD lacked, or an owned
//     environment those sources no longer returned); and drift still there
//     after the faults stop and clean runs have had their chance.
//   - duplicated: two create mutations of one key, two deletes of one key,
//     or a delete of a key that was (re-)created. No test changes which keys
//     are live, so any of these is a repeat.
//   - forbidden: any mutation of an unmanaged, critical, protected or source
//     environment; a delete of an environment whose item is live; a create
//     of a key no source asked for; any mutation started without its own
//     passing lease check (see leaseLedger); any mutation, or any request but
//     GET, during a dry run.
//   - unreported: a mutation LD committed during a run that the run's report
//     does not show as applied or failed.
const (
	kindLost       = "lost"
	kindDuplicated = "duplicated"
	kindForbidden  = "forbidden"
	kindUnreported = "unreported"
)

// violation is one broken invariant.
type violation struct {
	Kind   string
	Run    string
	Detail string
}

func (v violation) String() string { return fmt.Sprintf("%s in %s: %s", v.Kind, v.Run, v.Detail) }

// facts are what the checker knows about the world, fixed for a test.
type facts struct {
	managedTag string
	// live are the keys of the items the sources really have.
	live map[string]bool
	// forbidden are keys that must never be mutated, with why.
	forbidden map[string]string
	// listLag is set when LD's list may hide environments created moments
	// ago; a run then cannot see every owned environment, and the
	// expectation that each one appears in its report is waived.
	listLag bool
}

// runRecord is one run as LD and the report saw it.
type runRecord struct {
	name   string
	dryRun bool
	// before and after are LD's environments around the run, by key.
	before, after map[string]ldfake.Environment
	// mutations and requests are what ldfake logged during the run.
	mutations []ldfake.Mutation
	requests  []ldfake.AuditEntry
	report    reconciler.Report
	// returned are the keys of the items the sources returned to this run.
	returned []string
}

// checkRun finds the violations one run committed on its own.
func checkRun(f facts, r runRecord) []violation {
	var out []violation
	add := func(kind, format string, args ...any) {
		out = append(out, violation{Kind: kind, Run: r.name, Detail: fmt.Sprintf(format, args...)})
	}
	reported := map[string]reconciler.ActionReport{}
	for _, a := range r.report.Actions {
		reported[a.Op+" "+a.Key] = a
	}
	mutated := map[string]bool{}
	for _, m := range r.mutations {
		op := string(m.Op) + " " + m.Key
		mutated[op] = true
		if why, ok := f.forbidden[m.Key]; ok {
			add(kindForbidden, "%s of %s", op, why)
		}
		switch {
		case m.Op == ldfake.OpDelete && f.live[m.Key]:
			add(kindForbidden, "%s: its item is live", op)
		case m.Op == ldfake.OpCreate && !f.live[m.Key]:
			add(kindForbidden, "%s: no source asked for it", op)
		case m.Op == ldfake.OpUpdate:
			add(kindForbidden, "%s: ldreaper never updates", op)
		}
		if r.dryRun {
			add(kindForbidden, "dry run committed %s", op)
			continue
		}
		if a, ok := reported[op]; !ok || a.Status != reconciler.StatusApplied && a.Status != reconciler.StatusFailed {
			add(kindUnreported, "%s committed, reported %q", op, a.Status)
		}
	}
	if r.dryRun {
		for _, req := range r.requests {
			if req.Method != http.MethodGet {
				add(kindForbidden, "dry run sent %s %s", req.Method, req.Path)
			}
		}
	}

	for _, a := range r.report.Actions {
		op := a.Op + " " + a.Key
		if r.dryRun {
			continue
		}
		_, inBefore := r.before[a.Key]
		_, inAfter := r.after[a.Key]
		switch {
		case a.Status == reconciler.StatusPlanned:
			add(kindLost, "%s left planned by a run that was not a dry run", op)
		case a.Status != reconciler.StatusApplied:
		case a.Op == string(reconciler.OpCreate) && (!inAfter || !mutated[op] && !inBefore):
			add(kindLost, "%s reported applied, but LD has it=%t and this run created it=%t", op, inAfter, mutated[op])
		case a.Op == string(reconciler.OpDelete) && (inAfter || !mutated[op] && inBefore):
			add(kindLost, "%s reported applied, but LD still has it=%t and this run deleted it=%t", op, inAfter, mutated[op])
		}
	}

	// A run that failed before planning reports no actions and owes none.
	if r.report.Error != "" && len(r.report.Actions) == 0 {
		return out
	}
	desired := map[string]bool{}
	for _, k := range r.returned {
		desired[k] = true
		if _, ok := r.before[k]; !ok {
			if _, ok := reported["create "+k]; !ok {
				add(kindLost, "create %s: LD lacked it and the run did not report it", k)
			}
		}
	}
	if !f.listLag {
		for _, k := range sortedKeys(r.before) {
			if !hasTag(r.before[k], f.managedTag) || desired[k] {
				continue
			}
			if _, ok := reported["delete "+k]; !ok {
				add(kindLost, "delete %s: owned, not returned by the sources, and not reported", k)
			}
		}
	}
	return out
}

// checkHistory finds repeats across every run of a test, in commit order.
func checkHistory(mutations []ldfake.Mutation) []violation {
	creates, deletes := map[string]int{}, map[string]int{}
	var out []violation
	for _, m := range mutations {
		switch m.Op {
		case ldfake.OpCreate:
			creates[m.Key]++
			if creates[m.Key] == 2 {
				out = append(out, violation{Kind: kindDuplicated, Run: "history", Detail: "second create of " + m.Key})
			}
		case ldfake.OpDelete:
			deletes[m.Key]++
			switch {
			case deletes[m.Key] == 2:
				out = append(out, violation{Kind: kindDuplicated, Run: "history", Detail: "second delete of " + m.Key})
			case creates[m.Key] > 0:
				out = append(out, violation{Kind: kindDuplicated, Run: "history", Detail: "delete of " + m.Key + ", which was created by a run"})
			}
		}
	}
	return out
}

// checkConverged compares LD's final state with the sources' truth: every
// live key has an environment, no owned environment outlives its item
// unless it is one the guards keep for good, and no forbidden environment
// changed.
func checkConverged(f facts, initial, final map[string]ldfake.Environment, keptForGood map[string]bool) []violation {
	var out []violation
	add := func(kind, format string, args ...any) {
		out = append(out, violation{Kind: kind, Run: "final state", Detail: fmt.Sprintf(format, args...)})
	}
	for _, k := range sortedKeys(f.live) {
		if _, ok := final[k]; !ok {
			add(kindLost, "create %s never happened", k)
		}
	}
	for _, k := range sortedKeys(final) {
		if hasTag(final[k], f.managedTag) && !f.live[k] && !keptForGood[k] {
			add(kindLost, "delete %s never happened", k)
		}
	}
	for _, k := range sortedKeys(f.forbidden) {
		was, wasThere := initial[k]
		is, isThere := final[k]
		if wasThere != isThere || was.ID != is.ID || !slices.Equal(was.Tags, is.Tags) || was.Version != is.Version {
			add(kindForbidden, "%s (%s) changed", k, f.forbidden[k])
		}
	}
	return out
}

func hasTag(e ldfake.Environment, tag string) bool {
	return slices.ContainsFunc(e.Tags, func(t string) bool { return strings.EqualFold(t, tag) })
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
