package reconciler

import (
	"fmt"
	"sort"

	"github.com/ldreaper/ldreaper/sources"
)

// RenderFunc turns one live source item into the LD environment key and
// name it asks for.
type RenderFunc func(source string, item sources.Env) (key, name string, err error)

// SourceRun is one source's List outcome together with how its items map to
// LD environments.
type SourceRun struct {
	Name       string
	Type       string
	AllowEmpty bool
	Snapshot   sources.Snapshot
	Err        error
	Render     RenderFunc
}

// Desired builds the desired environments from the sources' snapshots. It is
// pure. Sources are taken in the order given (the config order) and items by
// name, so when two items render to one key the winner is deterministic; the
// loser is held as a collision, which is never a reason to delete. An item
// whose key or name cannot be rendered makes its source incomplete: its LD
// environment may exist under a key we cannot compute, so none of that
// source's orphans may be deleted this run.
func BuildDesired(runs []SourceRun) ([]Desired, []SourceResult, []Action, map[string]string) {
	var desired []Desired
	var held []Action
	results := make([]SourceResult, 0, len(runs))
	problems := map[string]string{}
	claimed := map[string]Desired{}
	for _, run := range runs {
		res := SourceResult{
			Name:       run.Name,
			Items:      len(run.Snapshot.Items),
			Complete:   run.Err == nil && run.Snapshot.Complete,
			Failed:     run.Err != nil,
			AllowEmpty: run.AllowEmpty,
		}
		if run.Err != nil {
			problems[run.Name] = run.Err.Error()
		}
		items := append([]sources.Env(nil), run.Snapshot.Items...)
		sort.SliceStable(items, func(i, j int) bool { return items[i].Name < items[j].Name })
		renderFailures := 0
		for _, item := range items {
			key, name, err := run.Render(run.Name, item)
			if err != nil {
				renderFailures++
				held = append(held, Action{Op: OpCreate, Name: item.Name, Source: run.Name, Reason: ReasonTemplateError, Detail: err.Error()})
				continue
			}
			if prev, ok := claimed[key]; ok {
				held = append(held, Action{Op: OpCreate, Key: key, Name: name, Source: run.Name, Reason: ReasonCollision,
					Detail: fmt.Sprintf("item %q of source %q and item %q of source %q both map to this key", item.Name, run.Name, prev.Item, prev.Source)})
				continue
			}
			d := Desired{Key: key, Name: name, Source: run.Name, Item: item.Name}
			claimed[key] = d
			desired = append(desired, d)
		}
		if renderFailures > 0 {
			res.Complete = false
			if _, ok := problems[run.Name]; !ok {
				problems[run.Name] = fmt.Sprintf("%d item(s) could not be mapped to an environment key", renderFailures)
			}
		}
		results = append(results, res)
	}
	return desired, results, held, problems
}
