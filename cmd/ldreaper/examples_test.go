package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// TestExampleConfigsLoad loads every config in examples/configs with the
// real loader. Each is named after the one source type it shows, and
// together they show every type.
func TestExampleConfigsLoad(t *testing.T) {
	paths, err := filepath.Glob("../../examples/configs/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	var shown []string
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cfg, err := loadConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, s := range cfg.Sources {
				types = append(types, s.Type)
			}
			want := strings.TrimSuffix(filepath.Base(path), ".toml")
			if diff := cmp.Diff([]string{want}, slices.Compact(types)); diff != "" {
				t.Errorf("source types mismatch (-want +got):\n%s", diff)
			}
		})
		shown = append(shown, strings.TrimSuffix(filepath.Base(path), ".toml"))
	}
	slices.Sort(shown)
	if diff := cmp.Diff([]string{"file", "github", "http", "kubernetes", "render", "vercel"}, shown); diff != "" {
		t.Errorf("example configs per source type mismatch (-want +got):\n%s", diff)
	}
}

// workflowStep returns the run script of the step with the given id.
func workflowStep(t *testing.T, path, id string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				ID    string `yaml:"id"`
				Shell string `yaml:"shell"`
				Run   string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, job := range wf.Jobs {
		for _, step := range job.Steps {
			if step.ID == id {
				if step.Shell != "bash" {
					t.Fatalf("%s: step %s runs in shell %q; the test runs it as GitHub runs bash", path, id, step.Shell)
				}
				return step.Run
			}
		}
	}
	t.Fatalf("%s: no step with id %s", path, id)
	return ""
}

// TestExampleWorkflowExitCodes runs the audit step of the example GitHub
// Actions workflow as the runner would (bash -eo pipefail) with a stand-in
// ldreaper that exits with each code, and checks that drift is a notice,
// not a failure, that a guard and an error fail the job, and that the report
// reaches the job summary in every case.
func TestExampleWorkflowExitCodes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not found")
	}
	script := workflowStep(t, "../../examples/github-actions/ldreaper-audit.yml", "audit")
	const report = "| op | key | status |\n| create | pr-12 | planned |\n"
	tests := []struct {
		name       string
		ldreaper   int // exit code of the stand-in
		wantStatus int
		wantOutput string // what the step writes to $GITHUB_OUTPUT
		wantLog    string // in the step's stdout
	}{
		{name: "no drift", ldreaper: 0, wantStatus: 0, wantOutput: "drift=false\n", wantLog: "No drift"},
		{name: "drift pending", ldreaper: 2, wantStatus: 0, wantOutput: "drift=true\n", wantLog: "::notice title=ldreaper::drift pending"},
		{name: "guard held deletions", ldreaper: 3, wantStatus: 3, wantOutput: "drift=true\n", wantLog: "::error title=ldreaper::a safety guard"},
		{name: "error", ldreaper: 1, wantStatus: 1, wantOutput: "", wantLog: "::error title=ldreaper::ldreaper failed with exit code 1"},
		{name: "killed", ldreaper: 137, wantStatus: 1, wantOutput: "", wantLog: "::error title=ldreaper::ldreaper failed with exit code 137"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			if err := os.Mkdir(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			standIn := "#!/bin/sh\nprintf '%s\\n' \"$*\" > \"$STAND_IN_ARGS\"\nprintf '%s' \"$STAND_IN_REPORT\"\nexit \"$STAND_IN_EXIT\"\n"
			if err := os.WriteFile(filepath.Join(bin, "ldreaper"), []byte(standIn), 0o755); err != nil {
				t.Fatal(err)
			}
			scriptPath := filepath.Join(dir, "step.sh")
			if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			summary, output, args := filepath.Join(dir, "summary.md"), filepath.Join(dir, "output"), filepath.Join(dir, "args")
			for _, f := range []string{summary, output} {
				if err := os.WriteFile(f, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.CommandContext(t.Context(), bash, "--noprofile", "--norc", "-eo", "pipefail", scriptPath)
			cmd.Dir = dir
			cmd.Env = []string{
				"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
				"GITHUB_STEP_SUMMARY=" + summary, "GITHUB_OUTPUT=" + output,
				"STAND_IN_ARGS=" + args, "STAND_IN_REPORT=" + report, "STAND_IN_EXIT=" + strconv.Itoa(tc.ldreaper),
			}
			log, err := cmd.Output()
			status := 0
			if exitErr := (*exec.ExitError)(nil); errors.As(err, &exitErr) {
				status = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tc.wantStatus {
				t.Errorf("step exited %d, want %d; log:\n%s", status, tc.wantStatus, log)
			}
			if !strings.Contains(string(log), tc.wantLog) {
				t.Errorf("step log lacks %q:\n%s", tc.wantLog, log)
			}
			got := map[string]string{}
			for name, path := range map[string]string{"output": output, "summary": summary, "args": args} {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				got[name] = string(data)
			}
			want := map[string]string{
				"output":  tc.wantOutput,
				"summary": "## ldreaper drift audit\n\n" + report,
				"args":    "--once --dry-run --report markdown --detailed-exitcode --report-file ldreaper-report.json\n",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("step files mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
