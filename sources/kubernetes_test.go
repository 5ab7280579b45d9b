package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metadatafake "k8s.io/client-go/metadata/fake"
	"k8s.io/client-go/rest"
)

// These tests use client-go's fake metadata client, which honours label
// selectors but not paging, field selectors or server defaults such as
// creationTimestamp; paging is tested with a hand-written lister here and
// everything against a real kube-apiserver in kubernetes_integration_test.go.

func namespace(name string, labels, annotations map[string]string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
	}
}

func fakeNamespaces(objs ...runtime.Object) namespaceLister {
	scheme := metadatafake.NewTestScheme()
	metav1.AddMetaToScheme(scheme)
	return metadatafake.NewSimpleMetadataClient(scheme, objs...).Resource(namespacesResource)
}

func TestKubernetesList(t *testing.T) {
	created := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	pr1 := namespace("preview-pr-1", map[string]string{"preview": "true", "team": "payments", "example.com/pr": "1"},
		map[string]string{"example.com/title": "Fix login", "example.com/branch": "fix/login"})
	pr1.CreationTimestamp = metav1.NewTime(created)
	pr2 := namespace("preview-pr-2", map[string]string{"preview": "true", "example.com/pr": "2"}, nil)
	noPR := namespace("preview-manual", map[string]string{"preview": "true"}, map[string]string{"example.com/branch": "two words"})
	terminating := namespace("preview-pr-3", map[string]string{"preview": "true", "example.com/pr": "3"}, nil)
	terminating.DeletionTimestamp = &metav1.Time{Time: created}
	unselected := namespace("kube-system", nil, nil)
	objs := []runtime.Object{pr1, pr2, noPR, terminating, unselected}

	tests := []struct {
		name string
		opts KubernetesOptions
		want []Env
	}{
		{
			name: "namespace names, selected and not terminating",
			opts: KubernetesOptions{LabelSelector: "preview=true"},
			want: []Env{
				{Name: "preview-manual", Attrs: map[string]string{"namespace": "preview-manual"}},
				{Name: "preview-pr-1", Attrs: map[string]string{"namespace": "preview-pr-1"}, CreatedAt: created},
				{Name: "preview-pr-2", Attrs: map[string]string{"namespace": "preview-pr-2"}},
			},
		},
		{
			name: "selector narrows",
			opts: KubernetesOptions{LabelSelector: "preview=true,team=payments"},
			want: []Env{{Name: "preview-pr-1", Attrs: map[string]string{"namespace": "preview-pr-1"}, CreatedAt: created}},
		},
		{
			name: "name from a label; namespaces without it are skipped",
			opts: KubernetesOptions{LabelSelector: "preview", NameLabel: "example.com/pr"},
			want: []Env{
				{Name: "1", Attrs: map[string]string{"namespace": "preview-pr-1"}, CreatedAt: created},
				{Name: "2", Attrs: map[string]string{"namespace": "preview-pr-2"}},
			},
		},
		{
			name: "name from an annotation; an unusable value is skipped",
			opts: KubernetesOptions{LabelSelector: "preview", NameAnnotation: "example.com/branch"},
			want: []Env{{Name: "fix/login", Attrs: map[string]string{"namespace": "preview-pr-1"}, CreatedAt: created}},
		},
		{
			name: "chosen labels and annotations become attrs when present",
			opts: KubernetesOptions{
				LabelSelector: "preview=true", LabelAttrs: []string{"team", "example.com/pr"},
				AnnotationAttrs: []string{"example.com/title", "missing"},
			},
			want: []Env{
				{Name: "preview-manual", Attrs: map[string]string{"namespace": "preview-manual"}},
				{Name: "preview-pr-1", Attrs: map[string]string{
					"namespace": "preview-pr-1", "label:team": "payments", "label:example.com/pr": "1",
					"annotation:example.com/title": "Fix login",
				}, CreatedAt: created},
				{Name: "preview-pr-2", Attrs: map[string]string{"namespace": "preview-pr-2", "label:example.com/pr": "2"}},
			},
		},
		{
			name: "nothing selected is a complete empty list",
			opts: KubernetesOptions{LabelSelector: "preview=false"},
			want: []Env{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := newKubernetes("namespaces", fakeNamespaces(objs...), nil, tt.opts, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.List(t.Context())
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			want := Snapshot{Source: "namespaces", Items: tt.want, Complete: true}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("List mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKubernetesListWarnsAboutSkippedNamespaces(t *testing.T) {
	var logs strings.Builder
	ns := namespace("preview-x", map[string]string{"preview": "true"}, nil)
	k, err := newKubernetes("namespaces", fakeNamespaces(ns), nil,
		KubernetesOptions{LabelSelector: "preview", NameLabel: "example.com/pr"}, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"level":"warn"`, `"namespace":"preview-x"`, `name label \"example.com/pr\" is missing or empty`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %s lacks %s", logs.String(), want)
		}
	}
}

// pagedLister serves scripted pages and records the options of each call.
type pagedLister struct {
	// responses are returned in order; an error ends the script's page.
	responses []pageResponse
	calls     []metav1.ListOptions
}

type pageResponse struct {
	names []string
	token string
	err   error
}

func (p *pagedLister) List(_ context.Context, opts metav1.ListOptions) (*metav1.PartialObjectMetadataList, error) {
	p.calls = append(p.calls, opts)
	if len(p.calls) > len(p.responses) {
		return nil, fmt.Errorf("unexpected call %d", len(p.calls))
	}
	r := p.responses[len(p.calls)-1]
	if r.err != nil {
		return nil, r.err
	}
	list := &metav1.PartialObjectMetadataList{ListMeta: metav1.ListMeta{Continue: r.token}}
	for _, name := range r.names {
		list.Items = append(list.Items, *namespace(name, nil, nil))
	}
	return list, nil
}

func expired() error {
	return apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result.")
}

func TestKubernetesListPaging(t *testing.T) {
	opts := KubernetesOptions{LabelSelector: "preview=true", FieldSelector: "status.phase=Active", PageSize: 2}
	call := func(cont string) metav1.ListOptions {
		return metav1.ListOptions{LabelSelector: "preview=true", FieldSelector: "status.phase=Active", Limit: 2, Continue: cont}
	}
	tests := []struct {
		name      string
		responses []pageResponse
		wantNames []string
		wantCalls []metav1.ListOptions
	}{
		{
			name:      "three pages",
			responses: []pageResponse{{names: []string{"a", "b"}, token: "t1"}, {names: []string{"c", "d"}, token: "t2"}, {names: []string{"e"}}},
			wantNames: []string{"a", "b", "c", "d", "e"},
			wantCalls: []metav1.ListOptions{call(""), call("t1"), call("t2")},
		},
		{
			name: "an expired token restarts the list from the first page",
			responses: []pageResponse{
				{names: []string{"a", "b"}, token: "t1"}, {err: expired()},
				{names: []string{"a", "c"}, token: "t3"}, {names: []string{"d"}},
			},
			wantNames: []string{"a", "c", "d"},
			wantCalls: []metav1.ListOptions{call(""), call("t1"), call(""), call("t3")},
		},
		{
			name: "a 410 Gone restarts too",
			responses: []pageResponse{
				{names: []string{"a"}, token: "t1"}, {err: apierrors.NewGone("gone")}, {names: []string{"a"}},
			},
			wantNames: []string{"a"},
			wantCalls: []metav1.ListOptions{call(""), call("t1"), call("")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lister := &pagedLister{responses: tt.responses}
			k, err := newKubernetes("namespaces", lister, nil, opts, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			snap, err := k.List(t.Context())
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			var names []string
			for _, item := range snap.Items {
				names = append(names, item.Name)
			}
			if diff := cmp.Diff(tt.wantNames, names); diff != "" {
				t.Errorf("names mismatch (-want +got):\n%s", diff)
			}
			if !snap.Complete {
				t.Error("snapshot is incomplete")
			}
			if diff := cmp.Diff(tt.wantCalls, lister.calls); diff != "" {
				t.Errorf("list calls mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKubernetesListFailuresAreIncomplete(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "", errors.New(`User "nobody" cannot list resource "namespaces" in API group "" at the cluster scope`))
	alwaysExpired := make([]pageResponse, 0, 2*(maxListRestarts+1))
	for range maxListRestarts + 1 {
		alwaysExpired = append(alwaysExpired, pageResponse{names: []string{"a"}, token: "t"}, pageResponse{err: expired()})
	}
	tests := []struct {
		name      string
		responses []pageResponse
		wantErr   string
		wantIs    func(error) bool // nil: no API error to keep
	}{
		{
			name:      "forbidden",
			responses: []pageResponse{{err: forbidden}},
			wantErr:   `listing kubernetes source "namespaces": listing namespaces with label selector "preview", page 1: namespaces is forbidden: User "nobody" cannot list resource "namespaces"`,
			wantIs:    apierrors.IsForbidden,
		},
		{
			name:      "a failure after the first page",
			responses: []pageResponse{{names: []string{"a"}, token: "t1"}, {err: apierrors.NewInternalError(errors.New("etcd down"))}},
			wantErr:   `page 2: Internal error occurred: etcd down`,
			wantIs:    apierrors.IsInternalError,
		},
		{
			name:      "expired on every attempt",
			responses: alwaysExpired,
			wantErr:   "page 2: The provided continue parameter is too old",
			wantIs:    apierrors.IsResourceExpired,
		},
		{
			name:      "a continue token that does not advance",
			responses: []pageResponse{{names: []string{"a"}, token: "t1"}, {names: []string{"b"}, token: "t1"}},
			wantErr:   "page 2: continue token did not advance",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lister := &pagedLister{responses: tt.responses}
			k, err := newKubernetes("namespaces", lister, nil, KubernetesOptions{LabelSelector: "preview", PageSize: 1}, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			snap, err := k.List(t.Context())
			if diff := cmp.Diff(Snapshot{Source: "namespaces"}, snap); diff != "" {
				t.Errorf("snapshot mismatch (-want +got):\n%s", diff)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("List error = %v, want it to contain %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !tt.wantIs(err) {
				t.Errorf("List error %v lost its kind through wrapping", err)
			}
			if len(lister.calls) != len(tt.responses) {
				t.Errorf("made %d list calls, want %d", len(lister.calls), len(tt.responses))
			}
		})
	}
}

func TestKubernetesConfigValidate(t *testing.T) {
	valid := Config{Name: "ns", Type: "kubernetes", LabelSelector: "preview=true"}
	with := func(edit func(*Config)) Config {
		c := valid
		edit(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // exact; "" means valid
	}{
		{name: "selector only", cfg: valid},
		{name: "every key", cfg: with(func(c *Config) {
			c.Kubeconfig, c.KubeContext, c.FieldSelector = "kubeconfig", "dev", "status.phase=Active"
			c.NameLabel, c.LabelAttrs, c.AnnotationAttrs = "example.com/pr", []string{"team"}, []string{"example.com/title"}
			c.PageSize, c.DeliverSecret, c.SecretName = 50, true, "ld-keys"
		})},
		{name: "name from an annotation", cfg: with(func(c *Config) { c.NameAnnotation = "example.com/branch" })},
		{name: "set-based selector", cfg: with(func(c *Config) { c.LabelSelector = "env in (preview, pr),!protected" })},
		{name: "selector missing", cfg: with(func(c *Config) { c.LabelSelector = "" }),
			wantErr: `source "ns": label_selector: required for type "kubernetes"; an empty selector would list every namespace`},
		{name: "selector blank", cfg: with(func(c *Config) { c.LabelSelector = " \t\n" }),
			wantErr: `source "ns": label_selector: required for type "kubernetes"; an empty selector would list every namespace`},
		{name: "selector invalid", cfg: with(func(c *Config) { c.LabelSelector = "a=(" }),
			wantErr: `source "ns": label_selector: unable to parse requirement: found '(', expected: identifier`},
		{name: "selector of nothing but a comma", cfg: with(func(c *Config) { c.LabelSelector = "," }),
			wantErr: `source "ns": label_selector: found ',', expected: !, identifier, or 'end of string'`},
		{name: "field selector invalid", cfg: with(func(c *Config) { c.FieldSelector = "status.phase" }),
			wantErr: `source "ns": field_selector: invalid selector: 'status.phase'; can't understand 'status.phase'`},
		{name: "context without kubeconfig", cfg: with(func(c *Config) { c.KubeContext = "dev" }),
			wantErr: `source "ns": context: needs kubeconfig (in-cluster config has no contexts)`},
		{name: "two name sources", cfg: with(func(c *Config) { c.NameLabel, c.NameAnnotation = "a", "b" }),
			wantErr: `source "ns": name_label, name_annotation: set at most one`},
		{name: "bad name label", cfg: with(func(c *Config) { c.NameLabel = "a b" }),
			wantErr: `source "ns": name_label: "a b" is not a valid label or annotation key: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`},
		{name: "bad label attr", cfg: with(func(c *Config) { c.LabelAttrs = []string{"ok", "/x"} }),
			wantErr: `source "ns": label_attrs: "/x" is not a valid label or annotation key: prefix part must be non-empty`},
		{name: "bad annotation attr", cfg: with(func(c *Config) { c.AnnotationAttrs = []string{""} }),
			wantErr: `source "ns": annotation_attrs: "" is not a valid label or annotation key: name part must be non-empty; name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`},
		{name: "negative page size", cfg: with(func(c *Config) { c.PageSize = -1 }),
			wantErr: `source "ns": page_size: -1 is negative`},
		{name: "secret name without delivery", cfg: with(func(c *Config) { c.SecretName = "ld" }),
			wantErr: `source "ns": secret_name: needs deliver_secret = true`},
		{name: "bad secret name", cfg: with(func(c *Config) { c.DeliverSecret, c.SecretName = true, "LD_Keys" }),
			wantErr: `source "ns": secret_name: "LD_Keys" is not a valid Secret name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{name: "a file key", cfg: with(func(c *Config) { c.Path = "p" }),
			wantErr: `source "ns": path: not a key of type "kubernetes"`},
		{name: "a kubernetes key on a file source", cfg: Config{Name: "f", Type: "file", Path: "p", LabelSelector: "a"},
			wantErr: `source "f": label_selector: not a key of type "file"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.wantErr, got); diff != "" {
				t.Errorf("Validate() error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

const testKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: dev
  cluster: {server: "https://dev.example.com:6443"}
- name: prod
  cluster: {server: "https://prod.example.com:6443"}
users:
- name: u
  user: {token: "not-a-real-token"}
contexts:
- name: dev
  context: {cluster: dev, user: u}
- name: prod
  context: {cluster: prod, user: u}
current-context: prod
`

func TestNewKubernetesFromConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cfg      Config
		wantHost string
		wantErr  string
	}{
		{name: "current context", cfg: Config{Kubeconfig: "kubeconfig"}, wantHost: "https://prod.example.com:6443"},
		{name: "named context", cfg: Config{Kubeconfig: "kubeconfig", KubeContext: "dev"}, wantHost: "https://dev.example.com:6443"},
		{name: "unknown context", cfg: Config{Kubeconfig: "kubeconfig", KubeContext: "staging"},
			wantErr: `source "ns": loading kubeconfig ` + filepath.Join(dir, "kubeconfig") + ` (context "staging"): context "staging" does not exist`},
		{name: "missing kubeconfig", cfg: Config{Kubeconfig: "nope"}, wantErr: filepath.Join(dir, "nope")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Name, tt.cfg.Type, tt.cfg.LabelSelector = "ns", "kubernetes", "preview"
			src, err := New(tt.cfg, Deps{BaseDir: dir, Logger: zerolog.Nop()})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			k, ok := src.(*Kubernetes)
			if !ok {
				t.Fatalf("New() = %T, want *Kubernetes", src)
			}
			if k.Name() != "ns" || k.DeliversSecrets() {
				t.Errorf("Name() = %q, DeliversSecrets() = %v; want ns, false", k.Name(), k.DeliversSecrets())
			}
			restConfig, err := KubeRESTConfig(filepath.Join(dir, "kubeconfig"), tt.cfg.KubeContext)
			if err != nil {
				t.Fatal(err)
			}
			if restConfig.Host != tt.wantHost {
				t.Errorf("Host = %q, want %q", restConfig.Host, tt.wantHost)
			}
		})
	}
}

// Outside a cluster, with no kubeconfig, there is nothing to fall back on:
// ldreaper never guesses a cluster from the environment.
func TestKubeRESTConfigInClusterOnly(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "would-be-used-by-kubectl"))
	_, err := KubeRESTConfig("", "")
	want := "loading in-cluster config (set kubeconfig when running outside a cluster): unable to load in-cluster configuration"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("KubeRESTConfig error = %v, want it to contain %q", err, want)
	}
}

func FuzzKubernetesOptionsValidate(f *testing.F) {
	f.Add("preview=true", "", "", "team")
	f.Add("env in (a,b),!protected", "status.phase=Active", "example.com/pr", "")
	f.Add(",", "a", "/", "x/y/z")
	f.Add("a!=b", "metadata.name!=x", "", "a.b/c")
	f.Fuzz(func(t *testing.T, labelSelector, fieldSelector, nameLabel, labelAttr string) {
		opts := KubernetesOptions{LabelSelector: labelSelector, FieldSelector: fieldSelector, NameLabel: nameLabel, LabelAttrs: []string{labelAttr}}
		if opts.validate() != nil {
			return
		}
		// Whatever passes validation must be a selector that narrows the list.
		sel, err := labels.Parse(labelSelector)
		if err != nil || sel.Empty() {
			t.Errorf("validate accepted label selector %q: parse error %v, empty %v", labelSelector, err, err == nil && sel.Empty())
		}
	})
}

func FuzzKubernetesEnv(f *testing.F) {
	f.Add("pr-1", "12", "fix/login")
	f.Add("x", "", "two words")
	f.Add("y", "a", "\x00")
	f.Fuzz(func(t *testing.T, nsName, labelValue, annotationValue string) {
		ns := namespace(nsName, map[string]string{"pr": labelValue}, map[string]string{"branch": annotationValue})
		for _, opts := range []KubernetesOptions{
			{LabelSelector: "a", NameLabel: "pr", LabelAttrs: []string{"pr"}},
			{LabelSelector: "a", NameAnnotation: "branch", AnnotationAttrs: []string{"branch"}},
		} {
			k, err := newKubernetes("ns", nil, nil, opts, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			env, err := k.env(*ns)
			if err != nil {
				continue
			}
			// A returned item always has a name usable as an identity and
			// always says which namespace it is.
			if env.Name == "" || env.Attrs["namespace"] != nsName {
				t.Errorf("env(%q) = %+v", nsName, env)
			}
			if opts.NameAnnotation != "" && checkName(env.Name) != nil {
				t.Errorf("env(%q) has unusable name %q", nsName, env.Name)
			}
		}
	})
}

// TestKubernetesListOverHTTP drives the real client-go stack against a
// scripted apiserver: a 410 Status must decode into an error that restarts
// the list, and Warning headers must reach the source's log.
func TestKubernetesListOverHTTP(t *testing.T) {
	type page struct {
		status int
		body   string
	}
	item := func(name string) string {
		return `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"` + name + `"}}`
	}
	list := func(cont string, names ...string) page {
		items := make([]string, 0, len(names))
		for _, n := range names {
			items = append(items, item(n))
		}
		return page{http.StatusOK, `{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{"continue":"` + cont +
			`"},"items":[` + strings.Join(items, ",") + `]}`}
	}
	pages := map[string][]page{
		// The first request for the first page, and the one after the restart.
		"": {list("t1", "a", "b"), list("t2", "a", "c")},
		"t1": {{http.StatusGone, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Expired","code":410,` +
			`"message":"The provided continue parameter is too old to display a consistent list result."}`}},
		"t2": {list("", "d")},
	}
	var requests []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		requests = append(requests, r.URL.Path+"?"+q.Encode())
		cont := q.Get("continue")
		if len(pages[cont]) == 0 {
			http.Error(w, "unexpected request", http.StatusTeapot)
			return
		}
		p := pages[cont][0]
		pages[cont] = pages[cont][1:]
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Warning", `299 - "example.com/preview is deprecated"`)
		w.WriteHeader(p.status)
		_, _ = io.WriteString(w, p.body)
	}))
	defer srv.Close()

	var logs strings.Builder
	k, err := NewKubernetes("namespaces", &rest.Config{Host: srv.URL}, KubernetesOptions{LabelSelector: "preview=true", PageSize: 2}, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := k.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var names []string
	for _, it := range snap.Items {
		names = append(names, it.Name)
	}
	if diff := cmp.Diff([]string{"a", "c", "d"}, names); diff != "" {
		t.Errorf("names mismatch (-want +got):\n%s", diff)
	}
	wantRequests := []string{
		"/api/v1/namespaces?labelSelector=preview%3Dtrue&limit=2",
		"/api/v1/namespaces?continue=t1&labelSelector=preview%3Dtrue&limit=2",
		"/api/v1/namespaces?labelSelector=preview%3Dtrue&limit=2",
		"/api/v1/namespaces?continue=t2&labelSelector=preview%3Dtrue&limit=2",
	}
	if diff := cmp.Diff(wantRequests, requests); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
	for _, want := range []string{`"warning":"example.com/preview is deprecated"`, `"message":"continue token expired; listing namespaces again"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}
