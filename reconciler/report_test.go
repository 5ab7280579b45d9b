package reconciler

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current output")

const noGraceDetail = "not applied: a --once run without [redis] cannot observe time passing"

// richReport has one of everything a report can show: creates and deletes
// applied, held actions with several reasons, a failed action, a failed
// source, a tripped guard, the no-grace note, and user text with the
// characters that break tables. Its actions are deliberately out of order.
func richReport() Report {
	rep := Report{
		SchemaVersion: SchemaVersion,
		RunID:         "5f2c9a7e01b3d4c6",
		Project:       "web-app",
		Policy:        "sync",
		Generation:    42,
		StartedAt:     time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC),
		FinishedAt:    time.Date(2026, 11, 22, 12, 0, 3, 500_000_000, time.UTC),
		Sources: []SourceReport{
			{Name: "previews", Type: "file", Items: 3, Complete: true},
			{Name: "namespaces", Type: "kubernetes", Error: "list namespaces: connection refused\nretrying | gave up"},
		},
		Actions: []ActionReport{
			{Op: "delete", Key: "pr-7", Name: "PR 7", Source: "previews", Status: StatusHeld, Reason: ReasonMaxDeletes,
				Detail: "3 deletes planned, max_deletes is 2"},
			{Op: "create", Key: "pr-12", Name: "PR 12 | fix <login>", Source: "previews", Status: StatusApplied},
			{Op: "delete", Key: "ns-old", Name: "ns-old", Source: "namespaces", Status: StatusHeld, Reason: ReasonSourceFailed,
				Detail: `source "namespaces" is failed this run; its orphans are kept`},
			{Op: "create", Key: "pr-13", Name: "PR 13", Source: "previews", Status: StatusFailed, Reason: "ld-error",
				Detail: "launchdarkly POST /api/v2/projects/web-app/environments (key \"pr-13\"): status 400 invalid_request: name | too long"},
			{Op: "create", Key: "qa", Name: "Preview qa", Source: "previews", Status: StatusHeld, Reason: ReasonExistsUnmanaged,
				Detail: "an environment with this key exists without the managed tag"},
			{Op: "delete", Key: "production", Name: "Production", Source: "", Status: StatusHeld, Reason: ReasonNoProvenance,
				Detail: "managed environment has no provenance tag; ldreaper cannot tell which source owns it"},
			{Op: "create", Name: "feature/`x`", Source: "previews", Status: StatusHeld, Reason: ReasonTemplateError,
				Detail: "key template: result \"feature/`x`\" is not a valid key"},
			{Op: "create", Key: "pr-14", Name: "PR 14 (b)", Source: "previews", Status: StatusHeld, Reason: ReasonCollision,
				Detail: `item "b" of source "previews" and item "a" of source "previews" both map to this key`},
			{Op: "create", Key: "pr-14", Name: "PR 14 (a)", Source: "previews", Status: StatusApplied, Detail: "already existed"},
			{Op: "delete", Key: "pr-3", Name: "PR 3", Source: "previews", Status: StatusApplied},
		},
		Guards: []GuardReport{
			{Name: GuardMaxDeletes, Tripped: true, Detail: "3 deletes planned, max_deletes is 2"},
			{Name: GuardMaxDeletePercent, Detail: "limit 25% when 10 or more are owned"},
			{Name: GuardEmptySource},
			{Name: GuardIncompleteSource},
			{Name: GuardFailedSource, Tripped: true, Detail: "1 deletion(s) held because a source failed"},
			{Name: GuardOrphanGrace, Detail: noGraceDetail},
			{Name: GuardLastEnvironment},
		},
		Summary: Summary{Keep: 4, Owned: 9},
	}
	rep.sortAndCount()
	return rep
}

func TestReportGolden(t *testing.T) {
	tests := []struct {
		format, file string
	}{
		{"text", "report.txt"},
		{"json", "report.json"},
		{"markdown", "report.md"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := richReport().Write(&buf, tt.format); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.file)
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestReportGolden -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), buf.String()); diff != "" {
				t.Errorf("%s report differs from %s (-want +got):\n%s", tt.format, path, diff)
			}
		})
	}
}

// TestReportJSONSchema holds the JSON to DESIGN.md's schema_version 1 key
// names. Keys beyond DESIGN.md are listed explicitly: adding one keeps the
// schema version, but renaming or dropping one must fail here.
func TestReportJSONSchema(t *testing.T) {
	rep := richReport()
	rep.Error = "save orphan state: connection refused"
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	first := func(key string) map[string]any {
		t.Helper()
		list, ok := doc[key].([]any)
		if !ok || len(list) == 0 {
			t.Fatalf("%s is %T %v, want a non-empty list", key, doc[key], doc[key])
		}
		obj, ok := list[0].(map[string]any)
		if !ok {
			t.Fatalf("%s[0] is %T, want an object", key, list[0])
		}
		return obj
	}
	summary, _ := doc["summary"].(map[string]any)
	got := map[string][]string{
		"top":     sortedKeys(doc),
		"sources": sortedKeys(first("sources")),
		"actions": sortedKeys(first("actions")),
		"guards":  sortedKeys(first("guards")),
		"summary": sortedKeys(summary),
	}
	want := map[string][]string{
		// DESIGN.md's keys, then the additions: generation (fencing, omitted
		// when zero) and error (omitted when the run completed).
		"top": sorted("schema_version", "run_id", "project", "dry_run", "policy", "started_at", "finished_at",
			"sources", "actions", "guards", "summary", "generation", "error"),
		"sources": sorted("name", "type", "items", "complete", "error"),
		// detail is an addition, omitted when empty.
		"actions": sorted("op", "key", "name", "source", "status", "reason", "detail"),
		"guards":  sorted("name", "tripped", "detail"),
		// owned is an addition.
		"summary": sorted("create", "delete", "keep", "held", "failed", "owned"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON keys (-want +got):\n%s", diff)
	}

	values := map[string]any{
		"schema_version": doc["schema_version"],
		"run_id":         doc["run_id"],
		"dry_run":        doc["dry_run"],
		"started_at":     doc["started_at"],
		"finished_at":    doc["finished_at"],
		"summary":        doc["summary"],
		"first source":   first("sources"),
	}
	wantValues := map[string]any{
		"schema_version": 1.0,
		"run_id":         "5f2c9a7e01b3d4c6",
		"dry_run":        false,
		"started_at":     "2026-11-22T12:00:00Z",
		"finished_at":    "2026-11-22T12:00:03.5Z",
		"summary":        map[string]any{"create": 2.0, "delete": 1.0, "keep": 4.0, "held": 6.0, "failed": 1.0, "owned": 9.0},
		"first source":   map[string]any{"name": "previews", "type": "file", "items": 3.0, "complete": true, "error": ""},
	}
	if diff := cmp.Diff(wantValues, values); diff != "" {
		t.Errorf("JSON values (-want +got):\n%s", diff)
	}
	for _, key := range []string{"started_at", "finished_at"} {
		if _, err := time.Parse(time.RFC3339, doc[key].(string)); err != nil {
			t.Errorf("%s is not RFC 3339: %v", key, err)
		}
	}
}

func sorted(s ...string) []string { return slices.Sorted(slices.Values(s)) }

// TestReportJSONEmptyListsAreArrays: consumers (jq, CI scripts) index
// .actions[] and would fail on null.
func TestReportJSONEmptyListsAreArrays(t *testing.T) {
	var buf bytes.Buffer
	if err := (Report{SchemaVersion: SchemaVersion}).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{"sources": doc["sources"], "actions": doc["actions"], "guards": doc["guards"]}
	want := map[string]any{"sources": []any{}, "actions": []any{}, "guards": []any{}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("empty lists (-want +got):\n%s", diff)
	}
	for _, key := range []string{"generation", "error"} {
		if _, ok := doc[key]; ok {
			t.Errorf("%s present in a report that has none", key)
		}
	}
}

func TestReportSortsByOpThenKey(t *testing.T) {
	rep := Report{Actions: []ActionReport{
		{Op: "delete", Key: "b"},
		{Op: "create", Key: "pr-2", Name: "second"},
		{Op: "delete", Key: "a"},
		{Op: "create", Key: "pr-10"},
		{Op: "create", Key: "pr-2", Name: "first"},
		{Op: "create", Key: "", Name: "unrenderable"},
	}}
	rep.sortAndCount()
	var got []string
	for _, a := range rep.Actions {
		got = append(got, a.Op+" "+a.Key+" "+a.Name)
	}
	want := []string{
		"create  unrenderable",
		"create pr-10 ",
		"create pr-2 first",
		"create pr-2 second",
		"delete a ",
		"delete b ",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("action order (-want +got):\n%s", diff)
	}
}

func TestReportSummaryCounts(t *testing.T) {
	if diff := cmp.Diff(Summary{Create: 2, Delete: 1, Keep: 4, Held: 6, Failed: 1, Owned: 9}, richReport().Summary); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}

// tableRows returns the Markdown table lines and how many cell separators
// each has; an escaped pipe is not a separator.
func tableRows(doc string) []int {
	var counts []int
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "|") {
			counts = append(counts, strings.Count(line, "|")-strings.Count(line, `\|`))
		}
	}
	return counts
}

func TestReportMarkdownEscapesUserText(t *testing.T) {
	const evil = "a | b\nc\r\n| d"
	tests := []struct {
		name   string
		modify func(*Report)
	}{
		{"source name", func(r *Report) { r.Sources[0].Name = evil }},
		{"source error", func(r *Report) { r.Sources[0].Error = evil }},
		{"action key", func(r *Report) { r.Actions[0].Key = evil }},
		{"action name", func(r *Report) { r.Actions[0].Name = evil }},
		{"action source", func(r *Report) { r.Actions[0].Source = evil }},
		{"action detail", func(r *Report) { r.Actions[0].Detail = evil }},
		{"guard detail", func(r *Report) { r.Guards[0].Detail = evil }},
		{"run error", func(r *Report) { r.Error = evil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Report{
				Project: "p", Policy: "sync", RunID: "r", Error: "list environments: status 503",
				Sources: []SourceReport{{Name: "previews", Type: "file", Complete: true}},
				Actions: []ActionReport{{Op: "create", Key: "pr-1", Name: "PR 1", Source: "previews", Status: StatusHeld, Reason: ReasonProtected}},
				Guards:  []GuardReport{{Name: GuardMaxDeletes, Tripped: true, Detail: "capped"}},
			}
			var clean bytes.Buffer
			if err := rep.WriteMarkdown(&clean); err != nil {
				t.Fatal(err)
			}
			tt.modify(&rep)
			var buf bytes.Buffer
			if err := rep.WriteMarkdown(&buf); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tableRows(clean.String()), tableRows(buf.String())); diff != "" {
				t.Errorf("user text changed the table's rows or cells (-want +got):\n%s\n%s", diff, buf.String())
			}
			if got, want := strings.Count(buf.String(), "\n"), strings.Count(clean.String(), "\n"); got != want {
				t.Errorf("user text added line breaks: %d lines, want %d:\n%s", got, want, buf.String())
			}
			if !strings.Contains(buf.String(), `a \| b c  \| d`) {
				t.Errorf("escaped text missing from:\n%s", buf.String())
			}
		})
	}
}

func TestReportTextKeepsUserTextInItsCell(t *testing.T) {
	rep := Report{
		Sources: []SourceReport{{Name: "previews", Type: "file", Error: "dial:\tconnection refused\nretry"}},
		Actions: []ActionReport{{Op: "create", Key: "pr-1", Name: "PR\t1\n(fix)", Status: StatusApplied}},
	}
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	for _, want := range []string{"dial: connection refused retry", "PR 1 (fix)"} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, want) }) {
			t.Errorf("no line holds %q whole:\n%s", want, buf.String())
		}
	}
}

func TestReportNoGraceNoteInEveryHumanFormat(t *testing.T) {
	for _, format := range []string{"text", "markdown"} {
		for _, noGrace := range []bool{true, false} {
			rep := richReport()
			if !noGrace {
				rep.Guards[5].Detail = "grace 10m0s and 2 run(s)"
			}
			var buf bytes.Buffer
			if err := rep.Write(&buf, format); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(buf.String(), "orphan grace "+noGraceDetail); got != noGrace {
				t.Errorf("%s report, no grace %t: note shown = %t\n%s", format, noGrace, got, buf.String())
			}
		}
	}
}

func TestReportWriteFormats(t *testing.T) {
	tests := []struct {
		format, wantPrefix string
		wantErr            bool
	}{
		{format: "", wantPrefix: "ldreaper apply"},
		{format: "text", wantPrefix: "ldreaper apply"},
		{format: "json", wantPrefix: "{\n"},
		{format: "markdown", wantPrefix: "### ldreaper run"},
		{format: "md", wantPrefix: "### ldreaper run"},
		{format: "yaml", wantErr: true},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		err := richReport().Write(&buf, tt.format)
		if (err != nil) != tt.wantErr || !strings.HasPrefix(buf.String(), tt.wantPrefix) {
			t.Errorf("Write(%q): err %v, output starts %q; want err %t, prefix %q", tt.format, err, buf.String()[:min(20, buf.Len())], tt.wantErr, tt.wantPrefix)
		}
	}
}

func TestReportExitCode(t *testing.T) {
	held := func(reason string) ActionReport {
		return ActionReport{Op: "delete", Key: "pr-1", Status: StatusHeld, Reason: reason}
	}
	planned := ActionReport{Op: "create", Key: "pr-2", Status: StatusPlanned}
	failed := ActionReport{Op: "create", Key: "pr-3", Status: StatusFailed, Reason: "ld-error"}
	tests := []struct {
		name     string
		rep      Report
		detailed bool
		want     int
	}{
		{name: "nothing to do", rep: Report{}, want: ExitOK},
		{name: "run error", rep: Report{Error: "list environments: status 503"}, want: ExitError},
		{name: "failed action", rep: Report{Actions: []ActionReport{failed}}, want: ExitError},
		{name: "failed source", rep: Report{Sources: []SourceReport{{Name: "k8s", Error: "connection refused"}}}, want: ExitError},
		{name: "max-deletes held", rep: Report{Actions: []ActionReport{held(ReasonMaxDeletes)}}, want: ExitGuarded},
		{name: "max-delete-percent held", rep: Report{Actions: []ActionReport{held(ReasonMaxDeletePercent)}}, want: ExitGuarded},
		{name: "source-empty held", rep: Report{Actions: []ActionReport{held(ReasonSourceEmpty)}}, want: ExitGuarded},
		{name: "permanent exclusions only", want: ExitOK, rep: Report{Actions: []ActionReport{
			held(ReasonExistsUnmanaged), held(ReasonCritical), held(ReasonProtected), held(ReasonSourceEnvironment),
			held(ReasonLastEnvironment), held(ReasonCollision), held(ReasonOrphanGrace),
		}}},
		{name: "drift, detailed dry run", rep: Report{DryRun: true, Actions: []ActionReport{planned}}, detailed: true, want: ExitDrift},
		{name: "drift, dry run without detailed", rep: Report{DryRun: true, Actions: []ActionReport{planned}}, want: ExitOK},
		{name: "applied changes are not drift", rep: Report{Actions: []ActionReport{{Op: "create", Key: "pr-2", Status: StatusApplied}}}, detailed: true, want: ExitOK},
		{name: "held only is not drift", rep: Report{DryRun: true, Actions: []ActionReport{held(ReasonProtected)}}, detailed: true, want: ExitOK},
		{name: "guard beats drift", rep: Report{DryRun: true, Actions: []ActionReport{planned, held(ReasonMaxDeletes)}}, detailed: true, want: ExitGuarded},
		{name: "error beats guard", rep: Report{Error: "save orphan state", Actions: []ActionReport{held(ReasonMaxDeletes)}}, want: ExitError},
		{name: "failed source beats guard", rep: Report{Sources: []SourceReport{{Name: "k8s", Error: "boom"}},
			Actions: []ActionReport{held(ReasonSourceEmpty)}}, want: ExitError},
		{name: "failed action beats guard and drift", rep: Report{DryRun: true, Actions: []ActionReport{planned, failed, held(ReasonMaxDeletes)}},
			detailed: true, want: ExitError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := tt.rep
			rep.sortAndCount()
			if got := rep.ExitCode(tt.detailed); got != tt.want {
				t.Errorf("ExitCode(%t) = %d, want %d", tt.detailed, got, tt.want)
			}
		})
	}
}
