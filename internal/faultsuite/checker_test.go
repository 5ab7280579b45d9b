package faultsuite

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/reconciler"
)

// The checker is what every other test here trusts, so it is tested on
// made-up runs: each case breaks one invariant and must be caught.

func envs(keys ...string) map[string]ldfake.Environment {
	out := map[string]ldfake.Environment{}
	for _, k := range keys {
		out[k] = ldfake.Environment{Key: k, Tags: []string{managedTag}}
	}
	return out
}

func mutation(op ldfake.MutationOp, key string) ldfake.Mutation {
	return ldfake.Mutation{Op: op, Key: key, Project: project}
}

func action(op, key, status string) reconciler.ActionReport {
	return reconciler.ActionReport{Op: op, Key: key, Status: status}
}

func kinds(vs []violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Kind+": "+v.Detail)
	}
	return out
}

func TestCheckRun(t *testing.T) {
	f := facts{managedTag: managedTag, live: map[string]bool{"new": true, "kept": true}, forbidden: map[string]string{"staging": "the source environment"}}
	// clean: "new" is created, "old" deleted, "kept" kept.
	clean := func() runRecord {
		r := runRecord{
			name:      "run",
			before:    envs("kept", "old"),
			after:     envs("kept", "new"),
			mutations: []ldfake.Mutation{mutation(ldfake.OpCreate, "new"), mutation(ldfake.OpDelete, "old")},
			requests:  []ldfake.AuditEntry{{Method: "POST"}, {Method: "DELETE"}},
			report:    reconciler.Report{Actions: []reconciler.ActionReport{action("create", "new", "applied"), action("delete", "old", "applied")}},
			returned:  []string{"kept", "new"},
		}
		// staging is the unmanaged source environment.
		r.before["staging"] = ldfake.Environment{Key: "staging"}
		r.after["staging"] = ldfake.Environment{Key: "staging"}
		return r
	}
	tests := []struct {
		name  string
		facts facts
		edit  func(r *runRecord)
		want  []string
	}{
		{name: "clean run", edit: func(*runRecord) {}},
		{name: "applied create that did not happen", edit: func(r *runRecord) {
			r.mutations = r.mutations[1:]
			delete(r.after, "new")
		}, want: []string{"lost: create new reported applied, but LD has it=false and this run created it=false"}},
		{name: "applied delete that did not happen", edit: func(r *runRecord) {
			r.mutations = r.mutations[:1]
			r.after["old"] = ldfake.Environment{Key: "old"}
		}, want: []string{"lost: delete old reported applied, but LD still has it=true and this run deleted it=false"}},
		{name: "planned action after a real run", edit: func(r *runRecord) {
			r.mutations = r.mutations[:1]
			r.after["old"] = ldfake.Environment{Key: "old"}
			r.report.Actions[1].Status = "planned"
		}, want: []string{"lost: delete old left planned by a run that was not a dry run"}},
		{name: "drift the report does not mention", edit: func(r *runRecord) {
			r.report.Actions = nil
			r.mutations = nil
			r.after = r.before
		}, want: []string{"lost: create new: LD lacked it and the run did not report it", "lost: delete old: owned, not returned by the sources, and not reported"}},
		{name: "list lag waives only the delete expectation", facts: facts{managedTag: managedTag, live: f.live, forbidden: f.forbidden, listLag: true}, edit: func(r *runRecord) {
			r.report.Actions = nil
			r.mutations = nil
			r.after = r.before
		}, want: []string{"lost: create new: LD lacked it and the run did not report it"}},
		{name: "a run that failed before planning owes nothing", edit: func(r *runRecord) {
			r.report = reconciler.Report{Error: "list environments: 503"}
			r.mutations = nil
			r.after = r.before
		}},
		{name: "mutation the report does not show", edit: func(r *runRecord) {
			r.report.Actions = r.report.Actions[:1]
			r.report.Actions = append(r.report.Actions, action("delete", "old", "held"))
		}, want: []string{`unreported: delete old committed, reported "held"`}},
		{name: "mutation of a forbidden environment", edit: func(r *runRecord) {
			r.mutations = append(r.mutations, mutation(ldfake.OpDelete, "staging"))
			r.report.Actions = append(r.report.Actions, action("delete", "staging", "failed"))
			delete(r.after, "staging")
		}, want: []string{"forbidden: delete staging of the source environment"}},
		{name: "delete of a live environment", edit: func(r *runRecord) {
			r.mutations = append(r.mutations, mutation(ldfake.OpDelete, "kept"))
			r.report.Actions = append(r.report.Actions, action("delete", "kept", "applied"))
			delete(r.after, "kept")
		}, want: []string{"forbidden: delete kept: its item is live"}},
		{name: "create nobody asked for", edit: func(r *runRecord) {
			r.mutations = append(r.mutations, mutation(ldfake.OpCreate, "stray"))
			r.report.Actions = append(r.report.Actions, action("create", "stray", "applied"))
			r.after["stray"] = ldfake.Environment{Key: "stray"}
		}, want: []string{"forbidden: create stray: no source asked for it"}},
		{name: "dry run that mutates", edit: func(r *runRecord) {
			r.dryRun = true
			r.report.Actions[0].Status, r.report.Actions[1].Status = "planned", "planned"
		}, want: []string{"forbidden: dry run committed create new", "forbidden: dry run committed delete old", "forbidden: dry run sent POST ", "forbidden: dry run sent DELETE "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := clean()
			tt.edit(&r)
			ff := f
			if tt.facts.managedTag != "" {
				ff = tt.facts
			}
			got := kinds(checkRun(ff, r))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckHistory(t *testing.T) {
	tests := []struct {
		name string
		ms   []ldfake.Mutation
		want []string
	}{
		{"each once", []ldfake.Mutation{mutation(ldfake.OpCreate, "a"), mutation(ldfake.OpDelete, "b")}, nil},
		{"created twice", []ldfake.Mutation{mutation(ldfake.OpCreate, "a"), mutation(ldfake.OpCreate, "a")}, []string{"duplicated: second create of a"}},
		{"deleted twice", []ldfake.Mutation{mutation(ldfake.OpDelete, "b"), mutation(ldfake.OpDelete, "b")}, []string{"duplicated: second delete of b"}},
		{"created, then deleted", []ldfake.Mutation{mutation(ldfake.OpCreate, "a"), mutation(ldfake.OpDelete, "a")}, []string{"duplicated: delete of a, which was created by a run"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, kinds(checkHistory(tt.ms))); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckConverged(t *testing.T) {
	f := facts{managedTag: managedTag, live: map[string]bool{"a": true}, forbidden: map[string]string{"staging": "the source environment"}}
	initial := map[string]ldfake.Environment{"staging": {Key: "staging", ID: "1"}, "crit": {Key: "crit", Tags: []string{managedTag}}}
	tests := []struct {
		name  string
		final map[string]ldfake.Environment
		want  []string
	}{
		{"converged", map[string]ldfake.Environment{"a": {Key: "a", Tags: []string{managedTag}}, "staging": {Key: "staging", ID: "1"}, "crit": {Key: "crit", Tags: []string{managedTag}}}, nil},
		{"missing and left over", map[string]ldfake.Environment{"old": {Key: "old", Tags: []string{managedTag}}, "staging": {Key: "staging", ID: "1"}},
			[]string{"lost: create a never happened", "lost: delete old never happened"}},
		{"forbidden environment replaced", map[string]ldfake.Environment{"a": {Key: "a"}, "staging": {Key: "staging", ID: "2"}},
			[]string{"forbidden: staging (the source environment) changed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := kinds(checkConverged(f, initial, tt.final, map[string]bool{"crit": true}))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}
