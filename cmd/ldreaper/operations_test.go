package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/reconciler"
)

// servedFamilies returns the ldreaper_ metric families a daemon serves
// once every series has a value, by type.
func servedFamilies(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	m := newMetrics()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m.observeRequest(ldclient.RequestRecord{Route: ldclient.RouteListEnvironments, Status: 200, Duration: time.Millisecond})
	m.observeRun(reconciler.Report{
		StartedAt: start, FinishedAt: start.Add(time.Second),
		Sources: []reconciler.SourceReport{{Name: "previews", Items: 1, Complete: true}},
		Actions: []reconciler.ActionReport{{Op: "delete", Key: "pr-1", Status: reconciler.StatusHeld, Reason: reconciler.ReasonMaxDeletes}},
		Guards:  []reconciler.GuardReport{{Name: reconciler.GuardMaxDeletes, Tripped: true}},
	}, ldclient.RateLimitState{Global: ldclient.RateLimitWindow{Remaining: 10}})
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]dto.MetricType{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "ldreaper_") {
			served[f.GetName()] = f.GetType()
		}
	}
	return served
}

// mentionedSeries returns the ldreaper_ metric names in text, with the
// _bucket, _sum and _count of a served histogram taken back to its name.
func mentionedSeries(text string, served map[string]dto.MetricType) []string {
	var names []string
	for _, name := range regexp.MustCompile(`ldreaper_[a-z_]*[a-z]`).FindAllString(text, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && served[base] == dto.MetricType_HISTOGRAM {
				name = base
			}
		}
		names = append(names, name)
	}
	return sortedSet(names)
}

// TestOperationsDocsMetrics keeps docs/operations.md and the alerting rules
// in step with the metrics: every series the daemon serves is documented,
// and neither file names a series it does not serve.
func TestOperationsDocsMetrics(t *testing.T) {
	served := servedFamilies(t)
	var names []string
	for name := range served {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) < 14 {
		t.Fatalf("only %d ldreaper_ families served; the synthetic run missed some: %v", len(names), names)
	}

	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var undocumented []string
	for _, name := range names {
		if !strings.Contains(string(ops), "`"+name+"{") && !strings.Contains(string(ops), "`"+name+"`") {
			undocumented = append(undocumented, name)
		}
	}
	if len(undocumented) > 0 {
		t.Errorf("docs/operations.md does not document these metrics: %v", undocumented)
	}
	for _, path := range []string{"../../docs/operations.md", "../../deploy/prometheus-rules.yaml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var unknown []string
		for _, name := range mentionedSeries(string(data), served) {
			if _, ok := served[name]; !ok {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) > 0 {
			t.Errorf("%s names metrics the daemon does not serve: %v", path, unknown)
		}
	}
}

// TestAlertRules checks the shape of deploy/prometheus-rules.yaml that
// Prometheus and the on-call person rely on: unique alert names, an
// expression, a severity, a summary, and a runbook link to a section of
// docs/operations.md that exists.
func TestAlertRules(t *testing.T) {
	data, err := os.ReadFile("../../deploy/prometheus-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("deploy/prometheus-rules.yaml: %v", err)
	}
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	const runbooks = "https://github.com/ldreaper/ldreaper/blob/main/docs/operations.md#"
	var alerts []string
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %q: want an expr and a summary", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if want := runbooks + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !strings.Contains(string(ops), "\n### "+r.Alert+"\n") {
				t.Errorf("alert %s: docs/operations.md has no section \"### %s\" for its runbook link", r.Alert, r.Alert)
			}
		}
	}
	if len(alerts) == 0 || len(sortedSet(alerts)) != len(alerts) {
		t.Errorf("alert names are missing or repeated: %v", alerts)
	}
}
