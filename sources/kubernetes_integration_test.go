package sources

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rs/zerolog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"

	"github.com/ldreaper/ldreaper/internal/kubetest"
)

// TestKubernetesAgainstAPIServer runs the source against a real
// kube-apiserver and etcd (see internal/kubetest). The subtests share one
// cluster and keep apart by label; they run in order because the RBAC ones
// build on the deploy manifests applied before them.
func TestKubernetesAgainstAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver; skipped with -short")
	}
	cluster := kubetest.Start(t)

	list := func(t *testing.T, cfg *rest.Config, opts KubernetesOptions) (Snapshot, error) {
		t.Helper()
		k, err := NewKubernetes("namespaces", cfg, opts, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		return k.List(t.Context())
	}
	names := func(snap Snapshot) []string {
		var out []string
		for _, item := range snap.Items {
			out = append(out, item.Name)
		}
		return out
	}

	t.Run("label selection, attrs and creation time", func(t *testing.T) {
		before := time.Now().Add(-time.Second).Truncate(time.Second)
		cluster.CreateNamespace(t, "sel-a", map[string]string{"ldreaper-test": "selection", "team": "payments", "example.com/pr": "12"},
			map[string]string{"example.com/title": "Fix login"})
		cluster.CreateNamespace(t, "sel-b", map[string]string{"ldreaper-test": "selection"}, nil)
		cluster.CreateNamespace(t, "sel-c", map[string]string{"ldreaper-test": "elsewhere"}, nil)
		after := time.Now().Add(time.Second)

		snap, err := list(t, cluster.RESTConfig(cluster.AdminToken), KubernetesOptions{
			LabelSelector: "ldreaper-test=selection", LabelAttrs: []string{"team"}, AnnotationAttrs: []string{"example.com/title"},
		})
		if err != nil {
			t.Fatal(err)
		}
		want := Snapshot{Source: "namespaces", Complete: true, Items: []Env{
			{Name: "sel-a", Attrs: map[string]string{"namespace": "sel-a", "label:team": "payments", "annotation:example.com/title": "Fix login"}},
			{Name: "sel-b", Attrs: map[string]string{"namespace": "sel-b"}},
		}}
		if diff := cmp.Diff(want, snap, cmpopts.IgnoreFields(Env{}, "CreatedAt")); diff != "" {
			t.Errorf("List mismatch (-want +got):\n%s", diff)
		}
		for _, item := range snap.Items {
			if item.CreatedAt.Before(before) || item.CreatedAt.After(after) {
				t.Errorf("%s: CreatedAt %v, want the creationTimestamp, between %v and %v", item.Name, item.CreatedAt, before, after)
			}
		}

		snap, err = list(t, cluster.RESTConfig(cluster.AdminToken), KubernetesOptions{
			LabelSelector: "ldreaper-test", FieldSelector: "metadata.name!=sel-b", NameLabel: "example.com/pr",
		})
		if err != nil {
			t.Fatal(err)
		}
		// sel-c passes the selectors but has no name label.
		if diff := cmp.Diff([]string{"12"}, names(snap)); diff != "" {
			t.Errorf("names with field selector and name label mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("paging across three pages", func(t *testing.T) {
		for _, name := range []string{"page-1", "page-2", "page-3", "page-4", "page-5"} {
			cluster.CreateNamespace(t, name, map[string]string{"ldreaper-test": "paging"}, nil)
		}
		var listCalls atomic.Int32
		cfg := cluster.RESTConfig(cluster.AdminToken)
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(req *http.Request) (*http.Response, error) {
				if req.URL.Path == "/api/v1/namespaces" && req.URL.Query().Get("limit") == "2" {
					listCalls.Add(1)
				}
				return rt.RoundTrip(req)
			})
		}
		snap, err := list(t, cfg, KubernetesOptions{LabelSelector: "ldreaper-test=paging", PageSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"page-1", "page-2", "page-3", "page-4", "page-5"}, names(snap)); diff != "" {
			t.Errorf("names mismatch (-want +got):\n%s", diff)
		}
		if got := listCalls.Load(); got != 3 {
			t.Errorf("made %d list requests with limit=2, want 3 pages", got)
		}
	})

	t.Run("a terminating namespace is not live", func(t *testing.T) {
		cluster.CreateNamespace(t, "term-live", map[string]string{"ldreaper-test": "terminating"}, nil)
		cluster.CreateNamespace(t, "term-going", map[string]string{"ldreaper-test": "terminating"}, nil)
		opts := KubernetesOptions{LabelSelector: "ldreaper-test=terminating"}
		cfg := cluster.RESTConfig(cluster.AdminToken)

		cluster.DeleteNamespace(t, "term-going", false)
		// Without a namespace controller it stays, Terminating, and is still
		// listed by the server; only the source leaves it out.
		out, err := cluster.Kubectl(t, "get", "namespace", "term-going", "-o", "jsonpath={.status.phase}")
		if err != nil || out != "Terminating" {
			t.Fatalf("namespace phase = %q (%v), want Terminating", out, err)
		}
		snap, err := list(t, cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"term-live"}, names(snap)); diff != "" {
			t.Errorf("names while terminating mismatch (-want +got):\n%s", diff)
		}

		cluster.DeleteNamespace(t, "term-live", true)
		snap, err = list(t, cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string(nil), names(snap)); diff != "" {
			t.Errorf("names after finalizing mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("forbidden is a failed snapshot", func(t *testing.T) {
		snap, err := list(t, cluster.RESTConfig(cluster.RestrictedToken), KubernetesOptions{LabelSelector: "ldreaper-test"})
		if diff := cmp.Diff(Snapshot{Source: "namespaces"}, snap); diff != "" {
			t.Errorf("snapshot mismatch (-want +got):\n%s", diff)
		}
		want := `listing kubernetes source "namespaces": listing namespaces with label selector "ldreaper-test", page 1: namespaces is forbidden: User "kubetest-restricted" cannot list resource "namespaces" in API group "" at the cluster scope`
		if err == nil || err.Error() != want {
			t.Errorf("List error = %v, want %s", err, want)
		}
		if !apierrors.IsForbidden(err) {
			t.Errorf("List error %v is not a Forbidden status", err)
		}
	})

	// The manifests in deploy/base are what users apply; the remaining
	// subtests run as the ServiceAccount they bind.
	cluster.CreateNamespace(t, "ldreaper", nil, nil)
	t.Run("deploy manifests pass a server-side dry run", func(t *testing.T) {
		for _, args := range [][]string{
			{"apply", "--dry-run=server", "-k", "../deploy/base"},
			{"apply", "--dry-run=server", "-n", "ldreaper", "-f", "../deploy/base/rbac-secret-delivery.yaml"},
		} {
			out, err := cluster.Kubectl(t, args...)
			if err != nil || !strings.Contains(out, "(server dry run)") {
				t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		out, err := cluster.Kubectl(t, "get", "clusterrole", "ldreaper-namespace-reader", "--ignore-not-found")
		if err != nil || out != "" {
			t.Errorf("a dry run created objects: %q (%v)", out, err)
		}
	})

	if out, err := cluster.Kubectl(t, "apply", "-k", "../deploy/base"); err != nil {
		t.Fatalf("applying deploy/base: %v\n%s", err, out)
	}
	saToken, err := cluster.Kubectl(t, "create", "token", "ldreaper", "-n", "ldreaper")
	if err != nil {
		t.Fatalf("creating a token for the ldreaper ServiceAccount: %v\n%s", err, saToken)
	}
	saConfig := cluster.RESTConfig(strings.TrimSpace(saToken))
	const sa = "--as=system:serviceaccount:ldreaper:ldreaper"

	t.Run("the base RBAC lists namespaces and nothing more", func(t *testing.T) {
		snap, err := list(t, saConfig, KubernetesOptions{LabelSelector: "ldreaper-test=paging"})
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Items) != 5 || !snap.Complete {
			t.Errorf("List as the ServiceAccount = %d items, complete %v; want 5, true", len(snap.Items), snap.Complete)
		}
		for _, check := range []struct{ verb, resource, want string }{
			{"list", "namespaces", "yes"}, {"watch", "namespaces", "yes"}, {"get", "namespaces", "yes"},
			{"create", "namespaces", "no"}, {"delete", "namespaces", "no"}, {"get", "secrets", "no"}, {"create", "secrets", "no"},
		} {
			out, _ := cluster.Kubectl(t, "auth", "can-i", sa, "-A", check.verb, check.resource)
			if got := strings.TrimSpace(out); got != check.want {
				t.Errorf("can the ServiceAccount %s %s? %q, want %q", check.verb, check.resource, got, check.want)
			}
		}
	})

	t.Run("secret delivery creates and updates the secret", func(t *testing.T) {
		if out, err := cluster.Kubectl(t, "apply", "-n", "ldreaper", "-f", "../deploy/base/rbac-secret-delivery.yaml"); err != nil {
			t.Fatalf("applying rbac-secret-delivery.yaml: %v\n%s", err, out)
		}
		cluster.CreateNamespace(t, "deliver-a", map[string]string{"ldreaper-test": "deliver"}, nil)
		cluster.CreateNamespace(t, "deliver-b", map[string]string{"ldreaper-test": "deliver"}, nil)
		k, err := NewKubernetes("namespaces", saConfig, KubernetesOptions{LabelSelector: "ldreaper-test=deliver", DeliverSecret: true}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		snap, err := k.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		deliveries := make([]Delivery, 0, len(snap.Items))
		for _, item := range snap.Items {
			deliveries = append(deliveries, Delivery{Item: item, SDKKey: "sdk-" + item.Name, MobileKey: "mob-" + item.Name,
				ClientSideID: "cid-" + item.Name, EnvironmentKey: item.Name, Project: "proj"})
		}
		if err := k.DeliverSecrets(t.Context(), deliveries); err != nil {
			t.Fatalf("first delivery: %v", err)
		}
		wantData := map[string]string{
			"LAUNCHDARKLY_SDK_KEY": "sdk-deliver-a", "LAUNCHDARKLY_MOBILE_KEY": "mob-deliver-a",
			"LAUNCHDARKLY_CLIENT_SIDE_ID": "cid-deliver-a", "LAUNCHDARKLY_ENVIRONMENT": "deliver-a", "LAUNCHDARKLY_PROJECT": "proj",
		}
		data, labels, createdVersion := cluster.Secret(t, "deliver-a", "launchdarkly")
		if diff := cmp.Diff(wantData, data); diff != "" {
			t.Errorf("created secret data mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]string{"app.kubernetes.io/managed-by": "ldreaper"}, labels); diff != "" {
			t.Errorf("created secret labels mismatch (-want +got):\n%s", diff)
		}
		if data, _, _ := cluster.Secret(t, "deliver-b", "launchdarkly"); data["LAUNCHDARKLY_SDK_KEY"] != "sdk-deliver-b" {
			t.Errorf("deliver-b secret data = %v", data)
		}

		// Unchanged keys: no write, so the resourceVersion stays.
		if err := k.DeliverSecrets(t.Context(), deliveries); err != nil {
			t.Fatalf("second delivery: %v", err)
		}
		if _, _, v := cluster.Secret(t, "deliver-a", "launchdarkly"); v != createdVersion {
			t.Errorf("an unchanged delivery rewrote the secret: resourceVersion %s -> %s", createdVersion, v)
		}

		deliveries[0].SDKKey = "sdk-rotated"
		if err := k.DeliverSecrets(t.Context(), deliveries); err != nil {
			t.Fatalf("delivery after rotation: %v", err)
		}
		wantData["LAUNCHDARKLY_SDK_KEY"] = "sdk-rotated"
		data, _, v := cluster.Secret(t, "deliver-a", "launchdarkly")
		if diff := cmp.Diff(wantData, data); diff != "" {
			t.Errorf("updated secret data mismatch (-want +got):\n%s", diff)
		}
		if v == createdVersion {
			t.Error("the rotated key did not update the secret")
		}

		// resourceNames keeps every other Secret out of reach.
		for _, check := range []struct{ verb, resource, want string }{
			{"get", "secrets/launchdarkly", "yes"}, {"update", "secrets/launchdarkly", "yes"}, {"create", "secrets", "yes"},
			{"get", "secrets/other", "no"}, {"list", "secrets", "no"}, {"delete", "secrets/launchdarkly", "no"},
		} {
			out, _ := cluster.Kubectl(t, "auth", "can-i", sa, "-n", "deliver-a", check.verb, check.resource)
			if got := strings.TrimSpace(out); got != check.want {
				t.Errorf("can the ServiceAccount %s %s? %q, want %q", check.verb, check.resource, got, check.want)
			}
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
