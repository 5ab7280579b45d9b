package sources

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rs/zerolog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubernetesType plugs Kubernetes into Config and New.
func kubernetesType() sourceType {
	return sourceType{
		name: "kubernetes",
		keys: []string{
			"kubeconfig", "context", "label_selector", "field_selector", "name_label", "name_annotation",
			"label_attrs", "annotation_attrs", "page_size", "deliver_secret", "secret_name",
		},
		validate: func(c Config) error {
			if c.KubeContext != "" && c.Kubeconfig == "" {
				return errors.New("context: needs kubeconfig (in-cluster config has no contexts)")
			}
			return kubernetesOptions(c).validate()
		},
		build: func(c Config, deps Deps) (Source, error) {
			kubeconfig := ""
			if c.Kubeconfig != "" {
				kubeconfig = resolvePath(deps.BaseDir, c.Kubeconfig)
			}
			restConfig, err := KubeRESTConfig(kubeconfig, c.KubeContext)
			if err != nil {
				return nil, err
			}
			return NewKubernetes(c.Name, restConfig, kubernetesOptions(c), deps.Logger)
		},
	}
}

func kubernetesOptions(c Config) KubernetesOptions {
	return KubernetesOptions{
		LabelSelector:   c.LabelSelector,
		FieldSelector:   c.FieldSelector,
		NameLabel:       c.NameLabel,
		NameAnnotation:  c.NameAnnotation,
		LabelAttrs:      c.LabelAttrs,
		AnnotationAttrs: c.AnnotationAttrs,
		PageSize:        int64(c.PageSize),
		DeliverSecret:   c.DeliverSecret,
		SecretName:      c.SecretName,
	}
}

// KubeRESTConfig returns the client config for a kubeconfig file and context
// ("" is the file's current context), or the in-cluster config when
// kubeconfig is "". It deliberately ignores $KUBECONFIG and ~/.kube/config:
// a reaper that silently followed whatever context a shell had selected
// could delete the environments of another cluster's namespaces.
func KubeRESTConfig(kubeconfig, kubeContext string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("loading in-cluster config (set kubeconfig when running outside a cluster): %w", err)
		}
		return cfg, nil
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext},
	)
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s (context %q): %w", kubeconfig, kubeContext, err)
	}
	return cfg, nil
}

// Attribute names a Kubernetes item carries. Labels and annotations are
// prefixed because their keys share one namespace with "namespace" and with
// each other; templates read them with {{ attr "label:team" }}.
const (
	attrNamespace        = "namespace"
	attrLabelPrefix      = "label:"
	attrAnnotationPrefix = "annotation:"
)

// Defaults of KubernetesOptions.
const (
	DefaultKubernetesPageSize = 500
	DefaultSecretName         = "launchdarkly"
)

// maxListRestarts bounds how often one List starts over after its continue
// token expired; a cluster that churns faster than we can page is reported
// as a failure rather than retried forever.
const maxListRestarts = 3

// KubernetesOptions say which namespaces are live and what they carry.
type KubernetesOptions struct {
	// LabelSelector is required and must select something less than every
	// namespace: a whole-cluster list would create an LD environment for
	// kube-system.
	LabelSelector string
	// FieldSelector further narrows the list server-side (namespaces support
	// metadata.name and status.phase).
	FieldSelector string
	// NameLabel or NameAnnotation, at most one, names the item; by default
	// the namespace name does. A selected namespace without it is skipped
	// with a warning.
	NameLabel      string
	NameAnnotation string
	// LabelAttrs and AnnotationAttrs are copied into Attrs as
	// "label:<key>" and "annotation:<key>" when the namespace has them.
	LabelAttrs      []string
	AnnotationAttrs []string
	// PageSize is the list page size; zero means DefaultKubernetesPageSize.
	PageSize int64
	// DeliverSecret enables DeliverSecrets; SecretName ("" means
	// DefaultSecretName) is the Secret it writes in each namespace.
	DeliverSecret bool
	SecretName    string
}

// validate checks o; errors name the config key.
func (o KubernetesOptions) validate() error {
	sel, err := labels.Parse(o.LabelSelector)
	if err != nil {
		return fmt.Errorf("label_selector: %w", err)
	}
	if sel.Empty() {
		return errors.New(`label_selector: required for type "kubernetes"; an empty selector would list every namespace`)
	}
	if _, err := fields.ParseSelector(o.FieldSelector); err != nil {
		return fmt.Errorf("field_selector: %w", err)
	}
	if o.NameLabel != "" && o.NameAnnotation != "" {
		return errors.New("name_label, name_annotation: set at most one")
	}
	keys := []struct {
		key    string
		values []string
	}{
		{"name_label", nonEmptyList(o.NameLabel)},
		{"name_annotation", nonEmptyList(o.NameAnnotation)},
		{"label_attrs", o.LabelAttrs},
		{"annotation_attrs", o.AnnotationAttrs},
	}
	for _, k := range keys {
		for _, v := range k.values {
			// Annotation keys follow the same qualified-name rule as label keys.
			if problems := content.IsLabelKey(v); len(problems) > 0 {
				return fmt.Errorf("%s: %q is not a valid label or annotation key: %s", k.key, v, strings.Join(problems, "; "))
			}
		}
	}
	if o.PageSize < 0 {
		return fmt.Errorf("page_size: %d is negative", o.PageSize)
	}
	if o.SecretName != "" {
		if !o.DeliverSecret {
			return errors.New("secret_name: needs deliver_secret = true")
		}
		if problems := content.IsDNS1123Subdomain(o.SecretName); len(problems) > 0 {
			return fmt.Errorf("secret_name: %q is not a valid Secret name: %s", o.SecretName, strings.Join(problems, "; "))
		}
	}
	return nil
}

func nonEmptyList(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// namespaceLister is the one call List needs; metadata.ResourceInterface
// provides it.
type namespaceLister interface {
	List(ctx context.Context, opts metav1.ListOptions) (*metav1.PartialObjectMetadataList, error)
}

var namespacesResource = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// Kubernetes lists namespaces as live environments: every namespace the
// label (and field) selector matches, except those being deleted. It reads
// only metadata, through the metadata client, which keeps client-go's typed
// API scheme out of the binary (the typed clients would add about 19 MB to a
// stripped build).
//
// Items come back sorted by name. Attrs always has "namespace", plus the
// configured labels and annotations; CreatedAt is the namespace's
// creationTimestamp.
type Kubernetes struct {
	name       string
	opts       KubernetesOptions
	namespaces namespaceLister
	secrets    func(namespace string) secretClient
	log        zerolog.Logger
}

// NewKubernetes returns a source named name that lists namespaces with
// restConfig. It makes no request.
func NewKubernetes(name string, restConfig *rest.Config, opts KubernetesOptions, log zerolog.Logger) (*Kubernetes, error) {
	cfg := rest.CopyConfig(restConfig)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "ldreaper"
	}
	// client-go's client-side limiter defaults to 5 requests/s, which would
	// stretch secret delivery (one GET per namespace) across minutes.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 20, 40
	}
	// By default client-go prints API warnings (deprecations, policy
	// notices) to stderr through klog, outside the structured log.
	cfg.WarningHandler = warningLogger{log: log}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("building kubernetes HTTP client: %w", err)
	}
	meta, err := metadata.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("building kubernetes metadata client: %w", err)
	}
	var secrets func(string) secretClient
	if opts.DeliverSecret {
		dyn, err := dynamic.NewForConfigAndClient(cfg, httpClient)
		if err != nil {
			return nil, fmt.Errorf("building kubernetes dynamic client: %w", err)
		}
		secrets = func(ns string) secretClient { return dyn.Resource(secretsResource).Namespace(ns) }
	}
	return newKubernetes(name, meta.Resource(namespacesResource), secrets, opts, log)
}

// newKubernetes is NewKubernetes with the clients given, for tests.
func newKubernetes(name string, namespaces namespaceLister, secrets func(string) secretClient, opts KubernetesOptions, log zerolog.Logger) (*Kubernetes, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.PageSize == 0 {
		opts.PageSize = DefaultKubernetesPageSize
	}
	if opts.SecretName == "" {
		opts.SecretName = DefaultSecretName
	}
	return &Kubernetes{name: name, opts: opts, namespaces: namespaces, secrets: secrets, log: log}, nil
}

// Name returns the configured source name.
func (k *Kubernetes) Name() string { return k.name }

// List pages through the selected namespaces. Any failure, including a
// restart budget exhausted by expired continue tokens, returns an incomplete
// snapshot with the error: a partial page sequence must never look like the
// whole list.
func (k *Kubernetes) List(ctx context.Context) (Snapshot, error) {
	incomplete := Snapshot{Source: k.name}
	namespaces, err := k.listAll(ctx)
	if err != nil {
		return incomplete, fmt.Errorf("listing kubernetes source %q: %w", k.name, err)
	}
	items := make([]Env, 0, len(namespaces))
	for _, ns := range namespaces {
		// A Terminating namespace is going away; its LD environment should
		// go with it rather than wait for the finalizers.
		if ns.DeletionTimestamp != nil {
			continue
		}
		env, err := k.env(ns)
		if err != nil {
			k.log.Warn().Str("namespace", ns.Name).Err(err).Msg("skipping namespace")
			continue
		}
		items = append(items, env)
	}
	slices.SortFunc(items, func(a, b Env) int { return cmp.Compare(a.Name, b.Name) })
	return Snapshot{Source: k.name, Items: items, Complete: true}, nil
}

// listAll lists every selected namespace, starting over when the server
// says a continue token has expired (410): pages from two different
// snapshots of the cluster must not be stitched together.
func (k *Kubernetes) listAll(ctx context.Context) ([]metav1.PartialObjectMetadata, error) {
	for restarts := 0; ; restarts++ {
		namespaces, err := k.listPages(ctx)
		if err == nil {
			return namespaces, nil
		}
		if !isExpired(err) || restarts == maxListRestarts {
			return nil, err
		}
		k.log.Warn().Err(err).Int("restart", restarts+1).Msg("continue token expired; listing namespaces again")
	}
}

func isExpired(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}

func (k *Kubernetes) listPages(ctx context.Context) ([]metav1.PartialObjectMetadata, error) {
	opts := metav1.ListOptions{LabelSelector: k.opts.LabelSelector, FieldSelector: k.opts.FieldSelector, Limit: k.opts.PageSize}
	var namespaces []metav1.PartialObjectMetadata
	for page := 1; ; page++ {
		list, err := k.namespaces.List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing namespaces with label selector %q, page %d: %w", k.opts.LabelSelector, page, err)
		}
		namespaces = append(namespaces, list.Items...)
		if list.Continue == "" {
			return namespaces, nil
		}
		// A server that hands back the token it was given would page forever.
		if list.Continue == opts.Continue {
			return nil, fmt.Errorf("listing namespaces with label selector %q, page %d: continue token did not advance", k.opts.LabelSelector, page)
		}
		opts.Continue = list.Continue
	}
}

// env turns a namespace into an item, or says why it is not one.
func (k *Kubernetes) env(ns metav1.PartialObjectMetadata) (Env, error) {
	name := ns.Name
	switch {
	case k.opts.NameLabel != "":
		name = ns.Labels[k.opts.NameLabel]
		if name == "" {
			return Env{}, fmt.Errorf("name label %q is missing or empty", k.opts.NameLabel)
		}
	case k.opts.NameAnnotation != "":
		name = ns.Annotations[k.opts.NameAnnotation]
		// Annotation values are free text, unlike label values.
		if err := checkName(name); err != nil {
			return Env{}, fmt.Errorf("name annotation %q: %w", k.opts.NameAnnotation, err)
		}
	}
	attrs := map[string]string{attrNamespace: ns.Name}
	for _, key := range k.opts.LabelAttrs {
		if v, ok := ns.Labels[key]; ok {
			attrs[attrLabelPrefix+key] = v
		}
	}
	for _, key := range k.opts.AnnotationAttrs {
		if v, ok := ns.Annotations[key]; ok {
			attrs[attrAnnotationPrefix+key] = v
		}
	}
	return Env{Name: name, Attrs: attrs, CreatedAt: ns.CreationTimestamp.UTC()}, nil
}

// warningLogger passes the apiserver's Warning headers to the source's log.
type warningLogger struct{ log zerolog.Logger }

func (w warningLogger) HandleWarningHeader(code int, agent, text string) {
	w.log.Warn().Int("code", code).Str("agent", agent).Str("warning", text).Msg("kubernetes api warning")
}
