package reconciler

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/orphanstate"
)

// Policy says which kinds of change a run may make.
type Policy string

const (
	PolicySync       Policy = "sync"
	PolicyCreateOnly Policy = "create-only"
	PolicyDeleteOnly Policy = "delete-only"
)

// Valid reports whether p is one of the known policies.
func (p Policy) Valid() bool {
	return p == PolicySync || p == PolicyCreateOnly || p == PolicyDeleteOnly
}

// Op is what an action does to LD.
type Op string

const (
	OpCreate Op = "create"
	OpDelete Op = "delete"
)

// Reasons an action is held. They are part of the report contract.
const (
	ReasonExistsUnmanaged      = "exists-unmanaged"
	ReasonCritical             = "critical"
	ReasonSourceEnvironment    = "source-environment"
	ReasonProtected            = "protected"
	ReasonLastEnvironment      = "last-environment"
	ReasonSourceFailed         = "source-failed"
	ReasonSourceIncomplete     = "source-incomplete"
	ReasonSourceEmpty          = "source-empty"
	ReasonSourceNotConfigured  = "source-not-configured"
	ReasonNoProvenance         = "no-provenance"
	ReasonOrphanGrace          = "orphan-grace"
	ReasonMaxDeletes           = "max-deletes"
	ReasonMaxDeletePercent     = "max-delete-percent"
	ReasonPolicy               = "policy"
	ReasonCollision            = "collision"
	ReasonTemplateError        = "template-error"
	ReasonOrphanStateUnhealthy = "orphan-state-unavailable"
)

// Guard names, part of the report and metrics contract.
const (
	GuardMaxDeletes       = "max_deletes"
	GuardMaxDeletePercent = "max_delete_percent"
	GuardEmptySource      = "empty_source"
	GuardIncompleteSource = "incomplete_source"
	GuardFailedSource     = "failed_source"
	GuardOrphanGrace      = "orphan_grace"
	GuardLastEnvironment  = "last_environment"
)

// Desired is one LD environment that a live source item asks for.
type Desired struct {
	Key    string
	Name   string
	Source string
	// Item is the source item's name, for reports and collision messages.
	Item string
}

// SourceResult is how one source fared this run, as the planner needs it.
type SourceResult struct {
	Name       string
	Items      int
	Complete   bool
	Failed     bool
	AllowEmpty bool
}

// deletable says whether orphans provenanced to this source may be deleted,
// and if not, why.
func (s SourceResult) deletable() (reason string, ok bool) {
	switch {
	case s.Failed:
		return ReasonSourceFailed, false
	case !s.Complete:
		return ReasonSourceIncomplete, false
	case s.Items == 0 && !s.AllowEmpty:
		return ReasonSourceEmpty, false
	}
	return "", true
}

// PlanConfig is the part of the configuration the planner reads.
type PlanConfig struct {
	Policy             Policy
	ManagedTag         string
	SourceEnvironments []string
	// Protected are exact keys or path.Match globs that are never created or deleted.
	Protected        []string
	MaxDeletes       int
	MaxDeletePercent float64
	// PercentMinOwned is the number of owned environments below which the
	// percentage cap does not apply: with 3 previews, one closing PR is 33%.
	PercentMinOwned int
	OrphanGrace     time.Duration
	OrphanMinRuns   int
	// NoGrace is set for --once without shared state: such a run cannot see
	// time pass, so it applies no grace (and the report says so).
	NoGrace      bool
	ForceDeletes bool
}

// Input is everything the planner looks at. It is plain data: the planner
// does no I/O and reads no clock.
type Input struct {
	Config  PlanConfig
	Desired []Desired
	Sources []SourceResult
	// Existing is what the managed-tag list call returned; the planner
	// re-checks the tag itself.
	Existing []ldclient.Environment
	// ProjectEnvCount is the number of environments in the whole project.
	ProjectEnvCount int
	// Orphans is the orphan state before this run; OrphanStateErr is set when
	// it could not be loaded, in which case no orphan is deleted.
	Orphans        map[string]orphanstate.Record
	OrphanStateErr string
	Now            time.Time
}

// Action is one create or delete, planned or held.
type Action struct {
	Op     Op
	Key    string
	Name   string
	Source string
	// Reason is empty for a planned action, one of the Reason* constants for a
	// held one.
	Reason string
	// Detail explains the reason in words for reports.
	Detail string
}

// Guard is one safety guard's verdict for the run.
type Guard struct {
	Name    string
	Tripped bool
	Detail  string
}

// Plan is the planner's output.
type Plan struct {
	Creates []Action
	Deletes []Action
	Held    []Action
	Keeps   []string
	Guards  []Guard
	// Owned is the number of environments carrying the managed tag.
	Owned int
	// OrphanUpserts and OrphanRemovals are the orphan state to persist after a
	// run that is not a dry run.
	OrphanUpserts  map[string]orphanstate.Record
	OrphanRemovals []string
}

// ProvenanceTag is the tag that records which source asked for an environment.
func ProvenanceTag(managedTag, source string) string {
	return managedTag + "-src." + source
}

// provenancePrefix is what every provenance tag starts with, lower-cased
// because LD tags are case-insensitive.
func provenancePrefix(managedTag string) string {
	return strings.ToLower(managedTag) + "-src."
}

// Calculate plans one run. It is a pure function of its input.
func Calculate(in Input) Plan {
	cfg := in.Config
	plan := Plan{OrphanUpserts: map[string]orphanstate.Record{}}

	sources := make(map[string]SourceResult, len(in.Sources))
	for _, s := range in.Sources {
		sources[strings.ToLower(s.Name)] = s
	}

	desired := make(map[string]struct{}, len(in.Desired))
	for _, d := range in.Desired {
		desired[d.Key] = struct{}{}
	}

	// owned maps a key to its index in in.Existing: copying 100,000
	// environments into a map costs more than the rest of the plan.
	owned := make(map[string]int, len(in.Existing))
	unmanaged := map[string]bool{}
	var orphanKeys []string
	for i := range in.Existing {
		e := &in.Existing[i]
		if e.HasTag(cfg.ManagedTag) {
			if _, dup := owned[e.Key]; !dup {
				if _, ok := desired[e.Key]; !ok {
					orphanKeys = append(orphanKeys, e.Key)
				}
			}
			owned[e.Key] = i
		} else {
			unmanaged[e.Key] = true
		}
	}
	sort.Strings(orphanKeys)

	// Creates and keeps.
	for _, d := range in.Desired {
		a := Action{Op: OpCreate, Key: d.Key, Name: d.Name, Source: d.Source}
		switch {
		case has(owned, d.Key):
			plan.Keeps = append(plan.Keeps, d.Key)
			continue
		case unmanaged[d.Key]:
			a.Reason, a.Detail = ReasonExistsUnmanaged, "an environment with this key exists without the managed tag"
		case matchesAny(cfg.Protected, d.Key):
			a.Reason, a.Detail = ReasonProtected, "key matches a protected pattern"
		case contains(cfg.SourceEnvironments, d.Key):
			a.Reason, a.Detail = ReasonSourceEnvironment, "key is the source environment"
		case cfg.Policy == PolicyDeleteOnly:
			a.Reason, a.Detail = ReasonPolicy, "policy delete-only makes no creates"
		}
		if a.Reason != "" {
			plan.Held = append(plan.Held, a)
		} else {
			plan.Creates = append(plan.Creates, a)
		}
	}

	// Orphans: owned, not desired.
	var candidates []Action
	blocked := map[string]int{} // guard name → deletions it held
	for _, key := range orphanKeys {
		env := in.Existing[owned[key]]
		a := Action{Op: OpDelete, Key: key, Name: env.Name}
		srcName, srcReason := provenance(env, cfg.ManagedTag, sources)
		a.Source = srcName
		switch {
		case env.Critical:
			a.Reason, a.Detail = ReasonCritical, "environment is marked critical"
		case contains(cfg.SourceEnvironments, key):
			a.Reason, a.Detail = ReasonSourceEnvironment, "environment is the clone source"
		case matchesAny(cfg.Protected, key):
			a.Reason, a.Detail = ReasonProtected, "key matches a protected pattern"
		case srcReason != "":
			a.Reason = srcReason
			a.Detail = provenanceDetail(srcReason, srcName)
		case cfg.Policy == PolicyCreateOnly:
			a.Reason, a.Detail = ReasonPolicy, "policy create-only makes no deletes"
		}
		if a.Reason == "" {
			if reason, ok := sources[strings.ToLower(srcName)].deletable(); !ok {
				a.Reason = reason
				a.Detail = fmt.Sprintf("source %q is %s this run; its orphans are kept", srcName, sourceStateWord(reason))
				blocked[sourceGuard(reason)]++
			}
		}
		if a.Reason != "" {
			plan.Held = append(plan.Held, a)
			if !keepsOrphanState(a.Reason) {
				if _, ok := in.Orphans[key]; ok {
					plan.OrphanRemovals = append(plan.OrphanRemovals, key)
				}
			}
			continue
		}
		candidates = append(candidates, a)
	}

	// Orphan grace: this run counts as one more orphaned observation.
	var graceHeld int
	var deletes []Action
	for _, a := range candidates {
		if in.OrphanStateErr != "" && !cfg.NoGrace {
			a.Reason, a.Detail = ReasonOrphanStateUnhealthy, "orphan state could not be read: "+in.OrphanStateErr
			plan.Held = append(plan.Held, a)
			continue
		}
		rec, seen := in.Orphans[a.Key]
		if !seen || rec.FirstSeen.IsZero() || rec.FirstSeen.After(in.Now) {
			rec = orphanstate.Record{FirstSeen: in.Now}
		}
		rec.Runs++
		plan.OrphanUpserts[a.Key] = rec
		if !cfg.NoGrace {
			age := in.Now.Sub(rec.FirstSeen)
			if age < cfg.OrphanGrace || rec.Runs < cfg.OrphanMinRuns {
				a.Reason = ReasonOrphanGrace
				a.Detail = fmt.Sprintf("orphaned for %s of %s, %d of %d runs", age.Round(time.Second), cfg.OrphanGrace, rec.Runs, cfg.OrphanMinRuns)
				plan.Held = append(plan.Held, a)
				graceHeld++
				continue
			}
		}
		deletes = append(deletes, a)
	}

	// State of keys that are live again or gone from LD is dropped.
	for _, key := range sortedKeys(in.Orphans) {
		if _, isOwned := owned[key]; !isOwned || has(desired, key) {
			plan.OrphanRemovals = append(plan.OrphanRemovals, key)
		}
	}

	// Caps hold every delete of the run, never a partial batch.
	ownedCount := len(owned)
	capReason, capDetail := "", ""
	if !cfg.ForceDeletes && len(deletes) > 0 {
		switch {
		case len(deletes) > cfg.MaxDeletes:
			capReason = ReasonMaxDeletes
			capDetail = fmt.Sprintf("%d deletes planned, max_deletes is %d", len(deletes), cfg.MaxDeletes)
		case ownedCount >= cfg.PercentMinOwned && float64(len(deletes))*100 > cfg.MaxDeletePercent*float64(ownedCount):
			capReason = ReasonMaxDeletePercent
			capDetail = fmt.Sprintf("%d of %d owned environments (%.1f%%) planned for deletion, max_delete_percent is %g",
				len(deletes), ownedCount, float64(len(deletes))*100/float64(ownedCount), cfg.MaxDeletePercent)
		}
	}
	if capReason != "" {
		for _, a := range deletes {
			a.Reason, a.Detail = capReason, capDetail
			plan.Held = append(plan.Held, a)
		}
		deletes = nil
	}

	// Never delete the project's last environment, whatever else holds.
	lastHeld := 0
	for len(deletes) > 0 && in.ProjectEnvCount-len(deletes) < 1 {
		a := deletes[len(deletes)-1]
		deletes = deletes[:len(deletes)-1]
		a.Reason, a.Detail = ReasonLastEnvironment, "the project must keep at least one environment"
		plan.Held = append(plan.Held, a)
		lastHeld++
	}
	plan.Deletes = deletes
	plan.Owned = ownedCount

	plan.Guards = []Guard{
		{Name: GuardMaxDeletes, Tripped: capReason == ReasonMaxDeletes, Detail: guardDetail(capReason == ReasonMaxDeletes, capDetail, fmt.Sprintf("limit %d", cfg.MaxDeletes))},
		{Name: GuardMaxDeletePercent, Tripped: capReason == ReasonMaxDeletePercent, Detail: guardDetail(capReason == ReasonMaxDeletePercent, capDetail, fmt.Sprintf("limit %g%% when %d or more are owned", cfg.MaxDeletePercent, cfg.PercentMinOwned))},
		{Name: GuardEmptySource, Tripped: blocked[GuardEmptySource] > 0, Detail: countDetail(blocked[GuardEmptySource], "deletion(s) held because a source returned no items without allow_empty")},
		{Name: GuardIncompleteSource, Tripped: blocked[GuardIncompleteSource] > 0, Detail: countDetail(blocked[GuardIncompleteSource], "deletion(s) held because a source list was incomplete")},
		{Name: GuardFailedSource, Tripped: blocked[GuardFailedSource] > 0, Detail: countDetail(blocked[GuardFailedSource], "deletion(s) held because a source failed")},
		{Name: GuardOrphanGrace, Tripped: graceHeld > 0, Detail: graceGuardDetail(cfg, graceHeld)},
		{Name: GuardLastEnvironment, Tripped: lastHeld > 0, Detail: countDetail(lastHeld, "deletion(s) held to keep the project's last environment")},
	}
	if cfg.ForceDeletes && len(plan.Deletes) > 0 {
		plan.Guards[0].Detail = "lifted by --force-deletes for this run"
		plan.Guards[1].Detail = "lifted by --force-deletes for this run"
	}

	sortActions(plan.Creates)
	sortActions(plan.Deletes)
	sortActions(plan.Held)
	sort.Strings(plan.Keeps)
	plan.OrphanRemovals = dedupeSorted(plan.OrphanRemovals)
	for _, k := range plan.OrphanRemovals {
		delete(plan.OrphanUpserts, k)
	}
	return plan
}

// provenance finds which configured source an owned environment belongs to.
// An environment with no provenance tag, or only tags naming sources that are
// not configured, is held: a source renamed or removed from the config must
// not turn into a mass deletion.
func provenance(env ldclient.Environment, managedTag string, sources map[string]SourceResult) (name, reason string) {
	prefix := provenancePrefix(managedTag)
	var found []string
	for _, t := range env.Tags {
		if lt := strings.ToLower(t); strings.HasPrefix(lt, prefix) && len(lt) > len(prefix) {
			found = append(found, lt[len(prefix):])
		}
	}
	if len(found) == 0 {
		return "", ReasonNoProvenance
	}
	sort.Strings(found)
	for _, f := range found {
		if _, ok := sources[f]; !ok {
			return f, ReasonSourceNotConfigured
		}
	}
	if len(found) > 1 {
		// Asked for by several sources: deletable only if every one of them
		// is healthy, so report the first unhealthy one.
		for _, f := range found {
			if _, ok := sources[f].deletable(); !ok {
				return sources[f].Name, ""
			}
		}
	}
	return sources[found[0]].Name, ""
}

func provenanceDetail(reason, source string) string {
	if reason == ReasonNoProvenance {
		return "managed environment has no provenance tag; ldreaper cannot tell which source owns it"
	}
	return fmt.Sprintf("provenance source %q is not configured", source)
}

func sourceStateWord(reason string) string {
	switch reason {
	case ReasonSourceFailed:
		return "failed"
	case ReasonSourceIncomplete:
		return "incomplete"
	}
	return "empty (allow_empty is false)"
}

func sourceGuard(reason string) string {
	switch reason {
	case ReasonSourceFailed:
		return GuardFailedSource
	case ReasonSourceIncomplete:
		return GuardIncompleteSource
	}
	return GuardEmptySource
}

// keepsOrphanState says whether a held orphan keeps its grace state: an
// unhealthy source neither advances nor resets the count, while permanent
// exclusions have no use for it.
func keepsOrphanState(reason string) bool {
	return reason == ReasonSourceFailed || reason == ReasonSourceIncomplete || reason == ReasonSourceEmpty
}

func guardDetail(tripped bool, trippedDetail, idle string) string {
	if tripped {
		return trippedDetail
	}
	return idle
}

func countDetail(n int, what string) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d %s", n, what)
}

func graceGuardDetail(cfg PlanConfig, held int) string {
	if cfg.NoGrace {
		return "not applied: a --once run without [redis] cannot observe time passing"
	}
	d := fmt.Sprintf("grace %s and %d run(s)", cfg.OrphanGrace, cfg.OrphanMinRuns)
	if held > 0 {
		d = fmt.Sprintf("%d deletion(s) waiting: %s", held, d)
	}
	return d
}

func matchesAny(patterns []string, key string) bool {
	for _, p := range patterns {
		if p == key {
			return true
		}
		if ok, err := path.Match(p, key); err == nil && ok {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func has[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortActions(as []Action) {
	sort.SliceStable(as, func(i, j int) bool {
		if as[i].Op != as[j].Op {
			return as[i].Op < as[j].Op
		}
		return as[i].Key < as[j].Key
	})
}

func dedupeSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
