package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/internal/kubetest"
	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/reconciler"
)

// TestOnceKubernetesEndToEnd runs the built binary with a kubernetes source
// against a real kube-apiserver (internal/kubetest) and ldfake.
func TestOnceKubernetesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and builds the binary; skipped with -short")
	}
	cluster := kubetest.Start(t)

	fake := ldfake.New(ldfake.Options{})
	fake.AddToken(e2eToken, ldfake.RoleWriter)
	fake.AddProject("proj")
	baseURL := serveFakeLD(t, fake, "proj", []ldfake.Environment{
		{Key: "staging", Name: "Staging", Color: "000000"},
		// An environment this source created for a namespace that is gone.
		{Key: "pr-1", Name: "PR 1", Color: "7B42BC", Tags: []string{"ldreaper", "ldreaper-src.previews"}},
	}...)
	e := &onceEnv{t: t, fake: fake, baseURL: baseURL, dir: t.TempDir()}
	config := func(kubeContext string) string {
		return e.writeFile("ldreaper.toml", `
[launchdarkly]
project = "proj"
base_url = "`+baseURL+`"
source_environment = "staging"
key_template = "{{ .Name | slug }}"

[safety]
max_deletes = 10
max_delete_percent = 100

[[source]]
name = "previews"
type = "kubernetes"
kubeconfig = "`+cluster.Kubeconfig(t)+`"
context = "`+kubeContext+`"
label_selector = "ldreaper.example.com/preview=true"
deliver_secret = true
`)
	}
	cluster.CreateNamespace(t, "pr-7", map[string]string{"ldreaper.example.com/preview": "true"}, nil)
	cluster.CreateNamespace(t, "pr-8", map[string]string{"ldreaper.example.com/preview": "true"}, nil)
	cluster.CreateNamespace(t, "unrelated", nil, nil)

	// Without RBAC on namespaces the source fails: exit 1, an error that
	// says so, and no delete of pr-1 on the strength of an empty list.
	r := e.run(e2eToken, "--config", config("restricted"), "--once", "--report", "json")
	if r.code != reconciler.ExitError {
		t.Fatalf("forbidden run: exit %d, want %d\nstdout:%s\nstderr:%s", r.code, reconciler.ExitError, r.stdout, r.stderr)
	}
	rep := decodeReport(t, r.stdout)
	if len(rep.Sources) != 1 || rep.Sources[0].Complete ||
		!strings.Contains(rep.Sources[0].Error, `User "kubetest-restricted" cannot list resource "namespaces"`) {
		t.Errorf("forbidden source report = %+v", rep.Sources)
	}
	for _, m := range fake.Mutations() {
		if m.Op == ldfake.OpDelete {
			t.Errorf("deleted %s on behalf of a failed source", m.Key)
		}
	}

	// A dry run writes no Secret.
	if r := e.run(e2eToken, "--config", config("admin"), "--once", "--dry-run"); r.code != 0 {
		t.Fatalf("dry run: exit %d\nstdout:%s\nstderr:%s", r.code, r.stdout, r.stderr)
	}
	if data, _, _ := cluster.Secret(t, "pr-7", "launchdarkly"); data != nil {
		t.Fatalf("a dry run wrote a Secret: %d keys", len(data))
	}

	// With access: one environment per live namespace, and pr-1 goes.
	n := len(fake.Mutations())
	if r := e.run(e2eToken, "--config", config("admin"), "--once"); r.code != 0 {
		t.Fatalf("first run: exit %d\nstdout:%s\nstderr:%s", r.code, r.stdout, r.stderr)
	}
	if diff := cmp.Diff([]string{"create pr-7", "create pr-8", "delete pr-1"}, slices.Sorted(slices.Values(e.mutationsSince(n)))); diff != "" {
		t.Errorf("first run mutations (-want +got):\n%s", diff)
	}

	// Each live namespace got a Secret with its own environment's keys.
	for _, ns := range []string{"pr-7", "pr-8"} {
		env, ok := fake.Environment("proj", ns)
		data, labels, _ := cluster.Secret(t, ns, "launchdarkly")
		if !ok || data == nil {
			t.Fatalf("namespace %s: environment %t, secret %v", ns, ok, data != nil)
		}
		if data["LAUNCHDARKLY_SDK_KEY"] != env.APIKey || data["LAUNCHDARKLY_MOBILE_KEY"] != env.MobileKey ||
			data["LAUNCHDARKLY_CLIENT_SIDE_ID"] != env.ID || data["LAUNCHDARKLY_ENVIRONMENT"] != ns {
			t.Errorf("namespace %s: the Secret does not hold its environment's keys", ns)
		}
		if labels["app.kubernetes.io/managed-by"] != "ldreaper" {
			t.Errorf("namespace %s: Secret labels %v", ns, labels)
		}
	}

	// The namespace is deleted: its environment goes on the next run.
	cluster.DeleteNamespace(t, "pr-7", true)
	n = len(fake.Mutations())
	if r := e.run(e2eToken, "--config", config("admin"), "--once"); r.code != 0 {
		t.Fatalf("run after deleting pr-7: exit %d\nstdout:%s\nstderr:%s", r.code, r.stdout, r.stderr)
	}
	if diff := cmp.Diff([]string{"delete pr-7"}, e.mutationsSince(n)); diff != "" {
		t.Errorf("mutations after deleting pr-7 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"pr-8", "staging"}, e.keys()); diff != "" {
		t.Errorf("environments at the end (-want +got):\n%s", diff)
	}
}
