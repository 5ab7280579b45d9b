package reconciler

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// SchemaVersion is the version of the JSON report. It changes only when a
// key is removed or changes meaning; adding keys keeps it.
const SchemaVersion = 1

// Action statuses in reports.
const (
	StatusPlanned = "planned"
	StatusApplied = "applied"
	StatusFailed  = "failed"
	StatusHeld    = "held"
)

// Report is the outcome of one run, rendered as text, JSON or Markdown.
type Report struct {
	SchemaVersion int            `json:"schema_version"`
	RunID         string         `json:"run_id"`
	Project       string         `json:"project"`
	DryRun        bool           `json:"dry_run"`
	Policy        string         `json:"policy"`
	Generation    int64          `json:"generation,omitempty"`
	StartedAt     time.Time      `json:"started_at"`
	FinishedAt    time.Time      `json:"finished_at"`
	Sources       []SourceReport `json:"sources"`
	Actions       []ActionReport `json:"actions"`
	Guards        []GuardReport  `json:"guards"`
	Summary       Summary        `json:"summary"`
	// Error is set when the run itself failed (LD unreachable, state store
	// down); the other fields say how far it got.
	Error string `json:"error,omitempty"`
}

// SourceReport is one source's line in a report.
type SourceReport struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Items    int    `json:"items"`
	Complete bool   `json:"complete"`
	Error    string `json:"error"`
}

// ActionReport is one create or delete in a report.
type ActionReport struct {
	Op     string `json:"op"`
	Key    string `json:"key"`
	Name   string `json:"name"`
	Source string `json:"source"`
	Status string `json:"status"`
	Reason string `json:"reason"`
	// Detail says in words why, for people; Reason is the stable code.
	Detail string `json:"detail,omitempty"`
}

// GuardReport is one safety guard's verdict in a report.
type GuardReport struct {
	Name    string `json:"name"`
	Tripped bool   `json:"tripped"`
	Detail  string `json:"detail"`
}

// Summary counts a report's actions.
type Summary struct {
	Create int `json:"create"`
	Delete int `json:"delete"`
	Keep   int `json:"keep"`
	Held   int `json:"held"`
	Failed int `json:"failed"`
	// Owned counts the environments carrying the managed tag at plan time.
	Owned int `json:"owned"`
}

// Exit codes of a --once run; part of the CLI contract.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitDrift   = 2
	ExitGuarded = 3
)

// ExitCode maps a report to the exit code of a --once run. An error wins over
// a guard, a guard over drift. Drift (2) is reported only when asked for
// with --detailed-exitcode on a dry run.
func (r Report) ExitCode(detailed bool) int {
	if r.Error != "" || r.Summary.Failed > 0 {
		return ExitError
	}
	for _, s := range r.Sources {
		// A truncated list is a source failure too, even when it came
		// without an error.
		if s.Error != "" || !s.Complete {
			return ExitError
		}
	}
	for _, a := range r.Actions {
		if a.Status == StatusHeld && guardReasons[a.Reason] {
			return ExitGuarded
		}
	}
	if detailed && r.DryRun && r.Summary.Create+r.Summary.Delete > 0 {
		return ExitDrift
	}
	return ExitOK
}

// guardReasons are the held reasons that change the exit code: deletions a
// guard held that would otherwise have been made. Permanent exclusions
// (critical, protected, …) do not.
var guardReasons = map[string]bool{
	ReasonMaxDeletes:       true,
	ReasonMaxDeletePercent: true,
	ReasonSourceEmpty:      true,
}

func (r *Report) sortAndCount() {
	sort.SliceStable(r.Actions, func(i, j int) bool {
		a, b := r.Actions[i], r.Actions[j]
		if a.Op != b.Op {
			return a.Op < b.Op
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Name < b.Name
	})
	r.Summary = Summary{Keep: r.Summary.Keep, Owned: r.Summary.Owned}
	for _, a := range r.Actions {
		switch a.Status {
		case StatusHeld:
			r.Summary.Held++
		case StatusFailed:
			r.Summary.Failed++
		default:
			if a.Op == string(OpCreate) {
				r.Summary.Create++
			} else {
				r.Summary.Delete++
			}
		}
	}
}

// WriteJSON writes the report as indented JSON (schema_version 1).
func (r Report) WriteJSON(w io.Writer) error {
	if r.Actions == nil {
		r.Actions = []ActionReport{}
	}
	if r.Sources == nil {
		r.Sources = []SourceReport{}
	}
	if r.Guards == nil {
		r.Guards = []GuardReport{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteText writes a human table for a terminal.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	mode := "apply"
	if r.DryRun {
		mode = "dry run"
	}
	fmt.Fprintf(&b, "ldreaper %s · project %s · policy %s · run %s", mode, r.Project, r.Policy, r.RunID)
	if r.Generation != 0 {
		fmt.Fprintf(&b, " · generation %d", r.Generation)
	}
	b.WriteString("\n\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tTYPE\tITEMS\tCOMPLETE\tERROR")
	for _, s := range r.Sources {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", cell(s.Name), cell(s.Type), s.Items, yesNo(s.Complete), cell(dash(s.Error)))
	}
	tw.Flush()
	b.WriteString("\n")
	if len(r.Actions) == 0 {
		b.WriteString("No changes.\n")
	} else {
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "OP\tKEY\tNAME\tSOURCE\tSTATUS\tREASON\tDETAIL")
		for _, a := range r.Actions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Op, cell(dash(a.Key)), cell(a.Name), cell(dash(a.Source)), a.Status, cell(dash(a.Reason)), cell(a.Detail))
		}
		tw.Flush()
	}
	tripped := r.trippedGuards()
	if len(tripped) > 0 {
		b.WriteString("\nGuards tripped:\n")
		for _, g := range tripped {
			fmt.Fprintf(&b, "  %s: %s\n", g.Name, g.Detail)
		}
	}
	if note := r.noGraceNote(); note != "" {
		fmt.Fprintf(&b, "\nNote: orphan grace %s\n", note)
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "\nError: %s\n", r.Error)
	}
	fmt.Fprintf(&b, "\nSummary: "+r.summaryFormat()+"\n",
		r.Summary.Create, r.Summary.Delete, r.Summary.Keep, r.Summary.Held, r.Summary.Failed)
	_, err := io.WriteString(w, b.String())
	return err
}

// summaryFormat words the counts by mode: a dry run has changes "to"
// make, an applied run has made them.
func (r Report) summaryFormat() string {
	if r.DryRun {
		return "%d to create, %d to delete, %d kept, %d held, %d failed"
	}
	return "%d created, %d deleted, %d kept, %d held, %d failed"
}

// WriteMarkdown writes the report for a PR comment or a CI job summary.
func (r Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	title := "ldreaper run"
	if r.DryRun {
		title = "ldreaper dry run"
	}
	fmt.Fprintf(&b, "### %s: `%s`\n\n", title, md(r.Project))
	fmt.Fprintf(&b, "Policy `%s` · run `%s`", md(r.Policy), md(r.RunID))
	if r.Generation != 0 {
		fmt.Fprintf(&b, " · generation %d", r.Generation)
	}
	fmt.Fprintf(&b, "\n\n"+strings.NewReplacer("%d to", "**%d** to", "%d created", "**%d** created", "%d deleted", "**%d** deleted", ", ", " · ").Replace(r.summaryFormat())+"\n\n",
		r.Summary.Create, r.Summary.Delete, r.Summary.Keep, r.Summary.Held, r.Summary.Failed)
	b.WriteString("| source | type | items | complete | error |\n|---|---|---:|---|---|\n")
	for _, s := range r.Sources {
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n", md(s.Name), md(s.Type), s.Items, yesNo(s.Complete), md(dash(s.Error)))
	}
	b.WriteString("\n")
	if len(r.Actions) == 0 {
		b.WriteString("No changes.\n")
	} else {
		b.WriteString("| op | key | name | source | status | reason |\n|---|---|---|---|---|---|\n")
		for _, a := range r.Actions {
			reason := a.Reason
			switch {
			case reason == "":
				reason = dash(a.Detail)
			case a.Detail != "":
				reason += ": " + a.Detail
			}
			fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s |\n", a.Op, md(dash(a.Key)), md(a.Name), md(dash(a.Source)), a.Status, md(reason))
		}
	}
	if tripped := r.trippedGuards(); len(tripped) > 0 {
		b.WriteString("\n**Guards tripped**\n\n")
		for _, g := range tripped {
			fmt.Fprintf(&b, "- `%s`: %s\n", g.Name, md(g.Detail))
		}
	}
	if note := r.noGraceNote(); note != "" {
		fmt.Fprintf(&b, "\n**Note:** orphan grace %s\n", md(note))
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "\n**Error:** %s\n", md(r.Error))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Write renders the report in the named format: text, json or markdown.
func (r Report) Write(w io.Writer, format string) error {
	switch format {
	case "json":
		return r.WriteJSON(w)
	case "markdown", "md":
		return r.WriteMarkdown(w)
	case "text", "":
		return r.WriteText(w)
	}
	return fmt.Errorf("unknown report format %q (want text, json or markdown)", format)
}

func (r Report) trippedGuards() []GuardReport {
	var out []GuardReport
	for _, g := range r.Guards {
		if g.Tripped {
			out = append(out, g)
		}
	}
	return out
}

// noGraceNote is the orphan grace guard's detail when the run applied no
// grace; DESIGN.md promises every report format says so.
func (r Report) noGraceNote() string {
	for _, g := range r.Guards {
		if g.Name == GuardOrphanGrace && strings.HasPrefix(g.Detail, "not applied") {
			return g.Detail
		}
	}
	return ""
}

// cell keeps user text on one line and in its own column of a text table:
// a tab or line break would shift every cell after it.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return ' '
		}
		return r
	}, s)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// md keeps user-controlled text from breaking a Markdown table.
var mdReplacer = strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "`", "'", "<", "&lt;", ">", "&gt;")

func md(s string) string { return mdReplacer.Replace(s) }
