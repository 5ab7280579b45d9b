package reconciler

import (
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/orphanstate"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func ownedEnv(key, source string, extra ...string) ldclient.Environment {
	tags := []string{"ldreaper"}
	if source != "" {
		tags = append(tags, ProvenanceTag("ldreaper", source))
	}
	return ldclient.Environment{Key: key, Name: key, Tags: append(tags, extra...)}
}

func baseConfig() PlanConfig {
	return PlanConfig{
		Policy:             PolicySync,
		ManagedTag:         "ldreaper",
		SourceEnvironments: []string{"staging"},
		Protected:          []string{"production", "keep-*"},
		MaxDeletes:         10,
		MaxDeletePercent:   50,
		PercentMinOwned:    10,
		OrphanMinRuns:      1,
	}
}

func healthy(names ...string) []SourceResult {
	var out []SourceResult
	for _, n := range names {
		out = append(out, SourceResult{Name: n, Items: 1, Complete: true})
	}
	return out
}

func want(key, src string) Desired { return Desired{Key: key, Name: key, Source: src, Item: key} }

// outcome is the part of a Plan the table compares.
type outcome struct {
	Creates []string
	Deletes []string
	Held    map[string]string // "op key" → reason
	Tripped []string
}

func summarize(p Plan) outcome {
	o := outcome{Held: map[string]string{}}
	for _, a := range p.Creates {
		o.Creates = append(o.Creates, a.Key)
	}
	for _, a := range p.Deletes {
		o.Deletes = append(o.Deletes, a.Key)
	}
	for _, a := range p.Held {
		o.Held[string(a.Op)+" "+a.Key] = a.Reason
	}
	for _, g := range p.Guards {
		if g.Tripped {
			o.Tripped = append(o.Tripped, g.Name)
		}
	}
	return o
}

func TestCalculate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Input)
		want   outcome
	}{
		{
			name: "creates missing, keeps live, deletes orphan",
			modify: func(in *Input) {
				in.Desired = []Desired{want("pr-1", "previews"), want("pr-2", "previews")}
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews"), ownedEnv("pr-9", "previews")}
			},
			want: outcome{Creates: []string{"pr-2"}, Deletes: []string{"pr-9"}},
		},
		{
			name: "environment without the managed tag is never deleted",
			modify: func(in *Input) {
				in.Existing = []ldclient.Environment{{Key: "pr-5", Tags: []string{"ldreaper-src.previews"}}, {Key: "qa"}}
			},
			want: outcome{},
		},
		{
			name: "managed tag and provenance match case-insensitively",
			modify: func(in *Input) {
				in.Existing = []ldclient.Environment{{Key: "pr-5", Tags: []string{"LDReaper", "LDREAPER-SRC.Previews"}}}
			},
			want: outcome{Deletes: []string{"pr-5"}},
		},
		{
			name: "desired key held by an unmanaged environment is exists-unmanaged",
			modify: func(in *Input) {
				in.Desired = []Desired{want("qa", "previews")}
				in.Existing = []ldclient.Environment{{Key: "qa", Tags: []string{"team-a"}}}
			},
			want: outcome{Held: map[string]string{"create qa": ReasonExistsUnmanaged}},
		},
		{
			name: "critical orphan is held",
			modify: func(in *Input) {
				e := ownedEnv("pr-7", "previews")
				e.Critical = true
				in.Existing = []ldclient.Environment{e}
			},
			want: outcome{Held: map[string]string{"delete pr-7": ReasonCritical}},
		},
		{
			name: "source environment is never deleted even if tagged",
			modify: func(in *Input) {
				in.Existing = []ldclient.Environment{ownedEnv("staging", "previews")}
			},
			want: outcome{Held: map[string]string{"delete staging": ReasonSourceEnvironment}},
		},
		{
			name: "protected exact key and glob are never deleted or created",
			modify: func(in *Input) {
				in.Desired = []Desired{want("keep-new", "previews")}
				in.Existing = []ldclient.Environment{ownedEnv("production", "previews"), ownedEnv("keep-me", "previews")}
			},
			want: outcome{Held: map[string]string{
				"delete production": ReasonProtected, "delete keep-me": ReasonProtected, "create keep-new": ReasonProtected,
			}},
		},
		{
			name: "desired key equal to the source environment is not created",
			modify: func(in *Input) {
				in.Desired = []Desired{want("staging", "previews")}
			},
			want: outcome{Held: map[string]string{"create staging": ReasonSourceEnvironment}},
		},
		{
			name: "the project's last environment is never deleted",
			modify: func(in *Input) {
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews"), ownedEnv("pr-2", "previews")}
				in.ProjectEnvCount = 2
			},
			want: outcome{Deletes: []string{"pr-1"}, Held: map[string]string{"delete pr-2": ReasonLastEnvironment}, Tripped: []string{GuardLastEnvironment}},
		},
		{
			name: "failed source blocks only its own orphans; healthy sources go on",
			modify: func(in *Input) {
				in.Sources = []SourceResult{{Name: "previews", Failed: true}, {Name: "k8s", Items: 1, Complete: true}}
				in.Desired = []Desired{want("ns-2", "k8s")}
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews"), ownedEnv("ns-1", "k8s")}
			},
			want: outcome{Creates: []string{"ns-2"}, Deletes: []string{"ns-1"}, Held: map[string]string{"delete pr-1": ReasonSourceFailed}, Tripped: []string{GuardFailedSource}},
		},
		{
			name: "incomplete source blocks its orphans",
			modify: func(in *Input) {
				in.Sources = []SourceResult{{Name: "previews", Items: 3, Complete: false}}
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews")}
			},
			want: outcome{Held: map[string]string{"delete pr-1": ReasonSourceIncomplete}, Tripped: []string{GuardIncompleteSource}},
		},
		{
			name: "empty source without allow_empty blocks its orphans",
			modify: func(in *Input) {
				in.Sources = []SourceResult{{Name: "previews", Items: 0, Complete: true}}
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews")}
			},
			want: outcome{Held: map[string]string{"delete pr-1": ReasonSourceEmpty}, Tripped: []string{GuardEmptySource}},
		},
		{
			name: "empty source with allow_empty deletes its orphans",
			modify: func(in *Input) {
				in.Sources = []SourceResult{{Name: "previews", Items: 0, Complete: true, AllowEmpty: true}}
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews")}
			},
			want: outcome{Deletes: []string{"pr-1"}},
		},
		{
			name: "managed environment without provenance is held",
			modify: func(in *Input) {
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "")}
			},
			want: outcome{Held: map[string]string{"delete pr-1": ReasonNoProvenance}},
		},
		{
			name: "provenance naming an unconfigured source is held",
			modify: func(in *Input) {
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "renamed")}
			},
			want: outcome{Held: map[string]string{"delete pr-1": ReasonSourceNotConfigured}},
		},
		{
			name: "orphan grace holds a first-seen orphan",
			modify: func(in *Input) {
				in.Config.OrphanGrace = 10 * time.Minute
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews")}
			},
			want: outcome{Held: map[string]string{"delete pr-1": ReasonOrphanGrace}, Tripped: []string{GuardOrphanGrace}},
		},
		{
			name: "orphan grace releases after the duration and the run count",
			modify: func(in *Input) {
				in.Config.OrphanGrace = 10 * time.Minute
				in.Config.OrphanMinRuns = 2
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews"), ownedEnv("pr-2", "previews"), ownedEnv("pr-3", "previews")}
				in.Orphans = map[string]orphanstate.Record{
					"pr-1": {FirstSeen: t0.Add(-11 * time.Minute), Runs: 1}, // now 2 runs, 11m: delete
					"pr-2": {FirstSeen: t0.Add(-5 * time.Minute), Runs: 9},  // too young
					"pr-3": {FirstSeen: t0.Add(-time.Hour), Runs: 0},        // now 1 run of 2
				}
			},
			want: outcome{Deletes: []string{"pr-1"}, Held: map[string]string{"delete pr-2": ReasonOrphanGrace, "delete pr-3": ReasonOrphanGrace}, Tripped: []string{GuardOrphanGrace}},
		},
		{
			name: "no grace in a run that cannot observe time",
			modify: func(in *Input) {
				in.Config.OrphanGrace = 10 * time.Minute
				in.Config.OrphanMinRuns = 3
				in.Config.NoGrace = true
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews")}
			},
			want: outcome{Deletes: []string{"pr-1"}},
		},
		{
			name: "unreadable orphan state holds deletes",
			modify: func(in *Input) {
				in.OrphanStateErr = "redis down"
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews")}
			},
			want: outcome{Held: map[string]string{"delete pr-1": ReasonOrphanStateUnhealthy}},
		},
		{
			name: "over max_deletes every delete is held",
			modify: func(in *Input) {
				in.Config.MaxDeletes = 2
				in.Config.MaxDeletePercent = 100
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews"), ownedEnv("pr-2", "previews"), ownedEnv("pr-3", "previews")}
			},
			want: outcome{Held: map[string]string{"delete pr-1": ReasonMaxDeletes, "delete pr-2": ReasonMaxDeletes, "delete pr-3": ReasonMaxDeletes}, Tripped: []string{GuardMaxDeletes}},
		},
		{
			name: "exactly max_deletes is allowed",
			modify: func(in *Input) {
				in.Config.MaxDeletes = 2
				in.Config.MaxDeletePercent = 100
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews"), ownedEnv("pr-2", "previews")}
			},
			want: outcome{Deletes: []string{"pr-1", "pr-2"}},
		},
		{
			name: "over max_delete_percent every delete is held",
			modify: func(in *Input) {
				in.Config.MaxDeletes = 100
				in.Config.MaxDeletePercent = 20
				var desired []Desired
				for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
					in.Existing = append(in.Existing, ownedEnv(k, "previews"))
					desired = append(desired, want(k, "previews"))
				}
				in.Desired = desired
				in.Existing = append(in.Existing, ownedEnv("x", "previews"), ownedEnv("y", "previews"), ownedEnv("z", "previews"))
			},
			want: outcome{Held: map[string]string{"delete x": ReasonMaxDeletePercent, "delete y": ReasonMaxDeletePercent, "delete z": ReasonMaxDeletePercent}, Tripped: []string{GuardMaxDeletePercent}},
		},
		{
			name: "percentage cap does not apply below percent_min_owned",
			modify: func(in *Input) {
				in.Config.MaxDeletePercent = 20
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews"), ownedEnv("pr-2", "previews")}
			},
			want: outcome{Deletes: []string{"pr-1", "pr-2"}},
		},
		{
			name: "force-deletes lifts the caps",
			modify: func(in *Input) {
				in.Config.MaxDeletes = 1
				in.Config.ForceDeletes = true
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews"), ownedEnv("pr-2", "previews")}
			},
			want: outcome{Deletes: []string{"pr-1", "pr-2"}},
		},
		{
			name: "force-deletes does not lift permanent exclusions or source guards",
			modify: func(in *Input) {
				in.Config.ForceDeletes = true
				in.Sources = []SourceResult{{Name: "previews", Complete: true}}
				e := ownedEnv("crit", "k8s")
				e.Critical = true
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews"), e}
				in.Sources = append(in.Sources, SourceResult{Name: "k8s", Items: 1, Complete: true})
			},
			want: outcome{Held: map[string]string{"delete pr-1": ReasonSourceEmpty, "delete crit": ReasonCritical}, Tripped: []string{GuardEmptySource}},
		},
		{
			name: "create-only holds deletes",
			modify: func(in *Input) {
				in.Config.Policy = PolicyCreateOnly
				in.Desired = []Desired{want("pr-2", "previews")}
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews")}
			},
			want: outcome{Creates: []string{"pr-2"}, Held: map[string]string{"delete pr-1": ReasonPolicy}},
		},
		{
			name: "delete-only holds creates",
			modify: func(in *Input) {
				in.Config.Policy = PolicyDeleteOnly
				in.Desired = []Desired{want("pr-2", "previews")}
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews")}
			},
			want: outcome{Deletes: []string{"pr-1"}, Held: map[string]string{"create pr-2": ReasonPolicy}},
		},
		{
			name: "environment provenanced to two sources waits for both",
			modify: func(in *Input) {
				in.Sources = []SourceResult{{Name: "previews", Items: 1, Complete: true}, {Name: "k8s", Failed: true}}
				in.Existing = []ldclient.Environment{ownedEnv("pr-1", "previews", ProvenanceTag("ldreaper", "k8s"))}
			},
			want: outcome{Held: map[string]string{"delete pr-1": ReasonSourceFailed}, Tripped: []string{GuardFailedSource}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{
				Config:          baseConfig(),
				Sources:         healthy("previews"),
				ProjectEnvCount: 100,
				Now:             t0,
			}
			tc.modify(&in)
			got := summarize(Calculate(in))
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("plan mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCalculateOrphanState(t *testing.T) {
	in := Input{
		Config:  baseConfig(),
		Sources: []SourceResult{{Name: "previews", Items: 1, Complete: true}, {Name: "k8s", Failed: true}},
		Desired: []Desired{want("pr-1", "previews")},
		Existing: []ldclient.Environment{
			ownedEnv("pr-1", "previews"), // live again: state cleared
			ownedEnv("pr-2", "previews"), // orphan, seen before: runs advance
			ownedEnv("pr-3", "previews"), // orphan, new
			ownedEnv("ns-1", "k8s"),      // source failed: state untouched
		},
		ProjectEnvCount: 100,
		Orphans: map[string]orphanstate.Record{
			"pr-1": {FirstSeen: t0.Add(-time.Hour), Runs: 4},
			"pr-2": {FirstSeen: t0.Add(-time.Minute), Runs: 1},
			"ns-1": {FirstSeen: t0.Add(-time.Hour), Runs: 2},
			"gone": {FirstSeen: t0.Add(-time.Hour), Runs: 2}, // no longer in LD
		},
		Now: t0,
	}
	in.Config.OrphanGrace = time.Hour
	p := Calculate(in)
	wantUpserts := map[string]orphanstate.Record{
		"pr-2": {FirstSeen: t0.Add(-time.Minute), Runs: 2},
		"pr-3": {FirstSeen: t0, Runs: 1},
	}
	if diff := cmp.Diff(wantUpserts, p.OrphanUpserts); diff != "" {
		t.Errorf("upserts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"gone", "pr-1"}, p.OrphanRemovals); diff != "" {
		t.Errorf("removals (-want +got):\n%s", diff)
	}
}

func TestCalculateIsDeterministic(t *testing.T) {
	in := Input{
		Config:          baseConfig(),
		Sources:         healthy("previews"),
		Desired:         []Desired{want("b", "previews"), want("a", "previews")},
		Existing:        []ldclient.Environment{ownedEnv("z", "previews"), ownedEnv("y", "previews")},
		ProjectEnvCount: 10,
		Now:             t0,
	}
	first := Calculate(in)
	in.Desired[0], in.Desired[1] = in.Desired[1], in.Desired[0]
	in.Existing[0], in.Existing[1] = in.Existing[1], in.Existing[0]
	if diff := cmp.Diff(first, Calculate(in)); diff != "" {
		t.Errorf("plan depends on input order (-first +second):\n%s", diff)
	}
	if !sort.SliceIsSorted(first.Creates, func(i, j int) bool { return first.Creates[i].Key < first.Creates[j].Key }) {
		t.Errorf("creates not sorted: %v", first.Creates)
	}
}
