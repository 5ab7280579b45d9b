package reconciler

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/sources"
)

// renderByAttr maps an item to the key in its "key" attr (its name when
// unset) and fails for items carrying a "bad" attr, so a table can state
// collisions and template failures directly in its inputs.
func renderByAttr(_ string, item sources.Env) (string, string, error) {
	if msg, bad := item.Attrs["bad"]; bad {
		return "", "", errors.New(msg)
	}
	key := item.Attrs["key"]
	if key == "" {
		key = item.Name
	}
	return key, "Preview " + item.Name, nil
}

func item(name string, attrs ...string) sources.Env {
	e := sources.Env{Name: name, Attrs: map[string]string{}}
	for i := 0; i+1 < len(attrs); i += 2 {
		e.Attrs[attrs[i]] = attrs[i+1]
	}
	return e
}

func sourceRun(name string, items ...sources.Env) SourceRun {
	return SourceRun{Name: name, Type: "file", Snapshot: sources.Snapshot{Source: name, Items: items, Complete: true}, Render: renderByAttr}
}

// desiredOutcome is everything BuildDesired returns, named for cmp output.
type desiredOutcome struct {
	Desired  []Desired
	Results  []SourceResult
	Held     []Action
	Problems map[string]string
}

func buildDesired(runs []SourceRun) desiredOutcome {
	d, r, h, p := BuildDesired(runs)
	return desiredOutcome{Desired: d, Results: r, Held: h, Problems: p}
}

func TestBuildDesired(t *testing.T) {
	failed := sourceRun("k8s")
	failed.Snapshot = sources.Snapshot{Source: "k8s"}
	failed.Err = errors.New("list namespaces: connection refused")

	partial := sourceRun("k8s", item("ns-1"))
	partial.Snapshot.Complete = false

	empty := sourceRun("previews")
	empty.AllowEmpty = true

	tests := []struct {
		name string
		runs []SourceRun
		want desiredOutcome
	}{
		{
			name: "one healthy source",
			runs: []SourceRun{sourceRun("previews", item("pr-2"), item("pr-1"))},
			want: desiredOutcome{
				Desired: []Desired{
					{Key: "pr-1", Name: "Preview pr-1", Source: "previews", Item: "pr-1"},
					{Key: "pr-2", Name: "Preview pr-2", Source: "previews", Item: "pr-2"},
				},
				Results:  []SourceResult{{Name: "previews", Items: 2, Complete: true}},
				Problems: map[string]string{},
			},
		},
		{
			// "a" sorts before "z", yet the source listed first in the
			// config wins: the winner must not depend on item names.
			name: "collision across sources: first source in config order wins",
			runs: []SourceRun{
				sourceRun("previews", item("z-branch", "key", "shared")),
				sourceRun("k8s", item("a-namespace", "key", "shared")),
			},
			want: desiredOutcome{
				Desired: []Desired{{Key: "shared", Name: "Preview z-branch", Source: "previews", Item: "z-branch"}},
				Results: []SourceResult{{Name: "previews", Items: 1, Complete: true}, {Name: "k8s", Items: 1, Complete: true}},
				Held: []Action{{Op: OpCreate, Key: "shared", Name: "Preview a-namespace", Source: "k8s", Reason: ReasonCollision,
					Detail: `item "a-namespace" of source "k8s" and item "z-branch" of source "previews" both map to this key`}},
				Problems: map[string]string{},
			},
		},
		{
			name: "collision within one source: the item first by name wins whatever the list order",
			runs: []SourceRun{sourceRun("previews", item("feature/B", "key", "feature-b"), item("feature/b", "key", "feature-b"))},
			want: desiredOutcome{
				Desired: []Desired{{Key: "feature-b", Name: "Preview feature/B", Source: "previews", Item: "feature/B"}},
				Results: []SourceResult{{Name: "previews", Items: 2, Complete: true}},
				Held: []Action{{Op: OpCreate, Key: "feature-b", Name: "Preview feature/b", Source: "previews", Reason: ReasonCollision,
					Detail: `item "feature/b" of source "previews" and item "feature/B" of source "previews" both map to this key`}},
				Problems: map[string]string{},
			},
		},
		{
			name: "render error: held as template-error, source incomplete, other items still desired",
			runs: []SourceRun{sourceRun("previews", item("pr-1"), item("pr-2", "bad", `key "pr/2" is not a valid key`))},
			want: desiredOutcome{
				Desired: []Desired{{Key: "pr-1", Name: "Preview pr-1", Source: "previews", Item: "pr-1"}},
				Results: []SourceResult{{Name: "previews", Items: 2, Complete: false}},
				Held: []Action{{Op: OpCreate, Name: "pr-2", Source: "previews", Reason: ReasonTemplateError,
					Detail: `key "pr/2" is not a valid key`}},
				Problems: map[string]string{"previews": "1 item(s) could not be mapped to an environment key"},
			},
		},
		{
			name: "failed source is Failed and incomplete with its error; a healthy one is untouched",
			runs: []SourceRun{sourceRun("previews", item("pr-1")), failed},
			want: desiredOutcome{
				Desired:  []Desired{{Key: "pr-1", Name: "Preview pr-1", Source: "previews", Item: "pr-1"}},
				Results:  []SourceResult{{Name: "previews", Items: 1, Complete: true}, {Name: "k8s", Failed: true}},
				Problems: map[string]string{"k8s": "list namespaces: connection refused"},
			},
		},
		{
			name: "incomplete snapshot without error: incomplete, not failed, no problem text",
			runs: []SourceRun{partial},
			want: desiredOutcome{
				Desired:  []Desired{{Key: "ns-1", Name: "Preview ns-1", Source: "k8s", Item: "ns-1"}},
				Results:  []SourceResult{{Name: "k8s", Items: 1}},
				Problems: map[string]string{},
			},
		},
		{
			name: "allow_empty is passed through",
			runs: []SourceRun{empty},
			want: desiredOutcome{
				Results:  []SourceResult{{Name: "previews", Complete: true, AllowEmpty: true}},
				Problems: map[string]string{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, buildDesired(tt.runs)); diff != "" {
				t.Errorf("BuildDesired (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBuildDesiredIsOrderIndependent lists the same items in every order: the
// outcome, collisions included, must not change, or runs would flap between
// winners.
func TestBuildDesiredIsOrderIndependent(t *testing.T) {
	items := []sources.Env{
		item("pr-3", "key", "dup"),
		item("pr-1", "key", "dup"),
		item("pr-2"),
		item("pr-4", "bad", "no key"),
	}
	first := buildDesired([]SourceRun{sourceRun("previews", items...), sourceRun("k8s", item("ns", "key", "dup"))})
	for perm := range permutations(len(items)) {
		shuffled := make([]sources.Env, len(items))
		for i, j := range perm {
			shuffled[i] = items[j]
		}
		got := buildDesired([]SourceRun{sourceRun("previews", shuffled...), sourceRun("k8s", item("ns", "key", "dup"))})
		if diff := cmp.Diff(first, got); diff != "" {
			t.Fatalf("order %v changed the outcome (-first +got):\n%s", perm, diff)
		}
	}
	if first.Desired[0].Item != "pr-1" || len(first.Held) != 3 {
		t.Errorf("want pr-1 to win \"dup\" and pr-3, ns and pr-4 held; got %+v", first)
	}
}

// TestBuildDesiredDoesNotReorderInput guards the caller's snapshot: the
// report and metrics read it after BuildDesired.
func TestBuildDesiredDoesNotReorderInput(t *testing.T) {
	items := []sources.Env{item("b"), item("a")}
	buildDesired([]SourceRun{sourceRun("previews", items...)})
	if got := []string{items[0].Name, items[1].Name}; !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("snapshot items reordered to %v", got)
	}
}

// permutations yields every ordering of 0..n-1.
func permutations(n int) func(yield func([]int) bool) {
	return func(yield func([]int) bool) {
		var gen func(prefix, rest []int) bool
		gen = func(prefix, rest []int) bool {
			if len(rest) == 0 {
				return yield(prefix)
			}
			for i := range rest {
				next := append(slices.Clone(prefix), rest[i])
				if !gen(next, slices.Concat(rest[:i], rest[i+1:])) {
					return false
				}
			}
			return true
		}
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		gen(nil, all)
	}
}
