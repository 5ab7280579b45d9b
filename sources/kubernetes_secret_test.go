package sources

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"
)

// Key values that must never show up in logs or errors.
const (
	testSDKKey       = "sdk-11111111-2222-3333-4444-555555555555"
	testMobileKey    = "mob-66666666-7777-8888-9999-000000000000"
	testClientSideID = "65f0c0ffee0123456789abcd"
)

func delivery(ns, env string) Delivery {
	return Delivery{
		Item:   Env{Name: ns, Attrs: map[string]string{"namespace": ns}},
		SDKKey: testSDKKey, MobileKey: testMobileKey, ClientSideID: testClientSideID,
		EnvironmentKey: env, Project: "proj",
	}
}

func secretObject(ns, name string, labels map[string]string, data map[string]string) *unstructured.Unstructured {
	encoded := map[string]string{}
	for k, v := range data {
		encoded[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	obj := newSecret(ns, name, encoded)
	obj.SetLabels(labels)
	return obj
}

// secretFixture is a Kubernetes source delivering through a fake dynamic
// client, with its log captured.
type secretFixture struct {
	k      *Kubernetes
	client *dynamicfake.FakeDynamicClient
	logs   *strings.Builder
}

func newSecretFixture(t *testing.T, opts KubernetesOptions, objs ...runtime.Object) secretFixture {
	t.Helper()
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{secretsResource: "SecretList"}, objs...)
	logs := &strings.Builder{}
	opts.LabelSelector = "preview"
	k, err := newKubernetes("namespaces", nil, func(ns string) secretClient { return client.Resource(secretsResource).Namespace(ns) },
		opts, zerolog.New(logs).Level(zerolog.DebugLevel))
	if err != nil {
		t.Fatal(err)
	}
	return secretFixture{k: k, client: client, logs: logs}
}

// secret returns the labels and decoded data of a Secret, nil if it does not exist.
func (f secretFixture) secret(t *testing.T, ns, name string) (labels, data map[string]string) {
	t.Helper()
	obj, err := f.client.Tracker().Get(secretsResource, ns, name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	u := obj.(*unstructured.Unstructured)
	encoded, _, err := unstructured.NestedStringMap(u.Object, "data")
	if err != nil {
		t.Fatal(err)
	}
	data = map[string]string{}
	for k, v := range encoded {
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatalf("data[%s] is not base64: %v", k, err)
		}
		data[k] = string(raw)
	}
	return u.GetLabels(), data
}

// writes lists the mutating verbs the client saw, as "verb namespace".
func (f secretFixture) writes() []string {
	var out []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() != "get" {
			out = append(out, a.GetVerb()+" "+a.GetNamespace())
		}
	}
	return out
}

func (f secretFixture) assertNoKeysLogged(t *testing.T, err error) {
	t.Helper()
	text := f.logs.String()
	if err != nil {
		text += err.Error()
	}
	for _, secret := range []string{testSDKKey, testMobileKey, testClientSideID, base64.StdEncoding.EncodeToString([]byte(testSDKKey))} {
		if strings.Contains(text, secret) {
			t.Errorf("a key value leaked into logs or errors: %s", text)
		}
	}
}

var managed = map[string]string{ManagedByLabel: ManagedByValue}

func wantData(env string) map[string]string {
	return map[string]string{
		"LAUNCHDARKLY_SDK_KEY": testSDKKey, "LAUNCHDARKLY_MOBILE_KEY": testMobileKey,
		"LAUNCHDARKLY_CLIENT_SIDE_ID": testClientSideID, "LAUNCHDARKLY_ENVIRONMENT": env, "LAUNCHDARKLY_PROJECT": "proj",
	}
}

func TestDeliverSecrets(t *testing.T) {
	rotated := delivery("pr-1", "pr-1")
	rotated.SDKKey = "sdk-rotated-0000"
	withExtra := wantData("pr-1")
	withExtra["EXTRA"] = "kept"
	wantRotated := wantData("pr-1")
	wantRotated["EXTRA"] = "kept"
	wantRotated["LAUNCHDARKLY_SDK_KEY"] = "sdk-rotated-0000"

	tests := []struct {
		name       string
		opts       KubernetesOptions
		existing   []runtime.Object
		deliveries []Delivery
		secretName string
		wantLabels map[string]string
		wantData   map[string]string
		wantWrites []string
	}{
		{
			name:       "creates a missing secret",
			opts:       KubernetesOptions{DeliverSecret: true},
			deliveries: []Delivery{delivery("pr-1", "pr-1")},
			secretName: "launchdarkly",
			wantLabels: managed, wantData: wantData("pr-1"),
			wantWrites: []string{"create pr-1"},
		},
		{
			name:       "uses the configured name",
			opts:       KubernetesOptions{DeliverSecret: true, SecretName: "ld-keys"},
			deliveries: []Delivery{delivery("pr-1", "pr-1")},
			secretName: "ld-keys",
			wantLabels: managed, wantData: wantData("pr-1"),
			wantWrites: []string{"create pr-1"},
		},
		{
			name:       "leaves an up-to-date secret alone",
			opts:       KubernetesOptions{DeliverSecret: true},
			existing:   []runtime.Object{secretObject("pr-1", "launchdarkly", managed, wantData("pr-1"))},
			deliveries: []Delivery{delivery("pr-1", "pr-1")},
			secretName: "launchdarkly",
			wantLabels: managed, wantData: wantData("pr-1"),
		},
		{
			name:       "updates changed keys and keeps other data",
			opts:       KubernetesOptions{DeliverSecret: true},
			existing:   []runtime.Object{secretObject("pr-1", "launchdarkly", managed, withExtra)},
			deliveries: []Delivery{rotated},
			secretName: "launchdarkly",
			wantLabels: managed, wantData: wantRotated,
			wantWrites: []string{"update pr-1"},
		},
		{
			name:       "off without deliver_secret",
			opts:       KubernetesOptions{},
			deliveries: []Delivery{delivery("pr-1", "pr-1")},
			secretName: "launchdarkly",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSecretFixture(t, tt.opts, tt.existing...)
			err := f.k.DeliverSecrets(t.Context(), tt.deliveries)
			if err != nil {
				t.Fatalf("DeliverSecrets: %v", err)
			}
			labels, data := f.secret(t, "pr-1", tt.secretName)
			if diff := cmp.Diff(tt.wantLabels, labels); diff != "" {
				t.Errorf("labels mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantData, data); diff != "" {
				t.Errorf("data mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWrites, f.writes()); diff != "" {
				t.Errorf("writes mismatch (-want +got):\n%s", diff)
			}
			f.assertNoKeysLogged(t, err)
		})
	}
}

func TestDeliverSecretsFailures(t *testing.T) {
	noNamespace := delivery("pr-1", "pr-1")
	noNamespace.Item.Attrs = map[string]string{}
	noKey := delivery("pr-2", "pr-2")
	noKey.SDKKey = ""
	unmanaged := secretObject("pr-3", "launchdarkly", map[string]string{"team": "x"}, map[string]string{"LAUNCHDARKLY_SDK_KEY": "theirs"})

	f := newSecretFixture(t, KubernetesOptions{DeliverSecret: true}, unmanaged)
	f.client.PrependReactor("get", "secrets", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() == "pr-4" {
			return true, nil, apierrors.NewForbidden(secretsResource.GroupResource(), "launchdarkly", errors.New("no rbac"))
		}
		return false, nil, nil
	})
	err := f.k.DeliverSecrets(t.Context(), []Delivery{
		noNamespace, noKey, delivery("pr-3", "pr-3"), delivery("pr-4", "pr-4"), delivery("pr-5", "pr-5"),
	})
	if err == nil {
		t.Fatal("DeliverSecrets succeeded, want the failures joined")
	}
	for _, want := range []string{
		`delivering secrets of kubernetes source "namespaces": `,
		`item "pr-1": no "namespace" attr to deliver to`,
		`secret pr-2/launchdarkly: environment "pr-2" of project "proj" has no SDK key`,
		`secret pr-3/launchdarkly exists without label app.kubernetes.io/managed-by=ldreaper; not overwriting a Secret ldreaper does not manage`,
		`reading secret pr-4/launchdarkly: secrets "launchdarkly" is forbidden: no rbac`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !apierrors.IsForbidden(err) {
		t.Errorf("error %v lost the Forbidden status through joining", err)
	}
	// The unmanaged Secret is untouched and the healthy namespace still
	// gets its Secret.
	if _, data := f.secret(t, "pr-3", "launchdarkly"); data["LAUNCHDARKLY_SDK_KEY"] != "theirs" {
		t.Errorf("unmanaged secret data = %v, want it untouched", data)
	}
	if diff := cmp.Diff([]string{"create pr-5"}, f.writes()); diff != "" {
		t.Errorf("writes mismatch (-want +got):\n%s", diff)
	}
	f.assertNoKeysLogged(t, err)
}

func TestDeliverSecretsLogsNamesNotValues(t *testing.T) {
	f := newSecretFixture(t, KubernetesOptions{DeliverSecret: true})
	if err := f.k.DeliverSecrets(t.Context(), []Delivery{delivery("pr-1", "pr-1")}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"namespace":"pr-1"`, `"secret":"launchdarkly"`, `"environment":"pr-1"`, `"outcome":"created"`, `"created":1`} {
		if !strings.Contains(f.logs.String(), want) {
			t.Errorf("log %s lacks %s", f.logs.String(), want)
		}
	}
	f.assertNoKeysLogged(t, nil)
}
