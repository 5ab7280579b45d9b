package sources

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Delivery is one live item with the keys of its LD environment.
type Delivery struct {
	Item           Env
	SDKKey         string
	MobileKey      string
	ClientSideID   string
	EnvironmentKey string
	Project        string
}

// Data keys of the delivered Secret, named as environment variables so that
// a Deployment can take them all with envFrom.
const (
	SecretKeySDKKey       = "LAUNCHDARKLY_SDK_KEY"
	SecretKeyMobileKey    = "LAUNCHDARKLY_MOBILE_KEY"
	SecretKeyClientSideID = "LAUNCHDARKLY_CLIENT_SIDE_ID"
	SecretKeyEnvironment  = "LAUNCHDARKLY_ENVIRONMENT"
	SecretKeyProject      = "LAUNCHDARKLY_PROJECT"
)

// ManagedByLabel marks the Secrets ldreaper writes; one without it is never
// overwritten.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "ldreaper"
)

var secretsResource = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// secretClient is what delivery needs in one namespace;
// dynamic.ResourceInterface provides it. Secrets go through the dynamic
// client as unstructured objects because the typed core/v1 client would
// link every API group's types into the binary.
type secretClient interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions, subresources ...string) (*unstructured.Unstructured, error)
	Create(ctx context.Context, obj *unstructured.Unstructured, opts metav1.CreateOptions, subresources ...string) (*unstructured.Unstructured, error)
	Update(ctx context.Context, obj *unstructured.Unstructured, opts metav1.UpdateOptions, subresources ...string) (*unstructured.Unstructured, error)
}

// DeliversSecrets reports whether deliver_secret is on.
func (k *Kubernetes) DeliversSecrets() bool { return k.opts.DeliverSecret }

// DeliverSecrets writes, in each delivery's namespace, the Secret holding
// its environment's keys: it creates a missing one, updates one whose keys
// changed and leaves an up-to-date one alone. It carries on past a failed
// namespace and returns every failure joined. It does nothing unless
// deliver_secret is on. The caller must not call it in a dry run: it writes.
//
// The Secret is never deleted: it lives in the namespace, so it goes when
// the namespace goes. Key values never appear in logs or errors.
func (k *Kubernetes) DeliverSecrets(ctx context.Context, ds []Delivery) error {
	if !k.opts.DeliverSecret {
		return nil
	}
	var errs []error
	counts := map[deliveryOutcome]int{}
	for _, d := range ds {
		outcome, err := k.deliver(ctx, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		counts[outcome]++
		if outcome != unchanged {
			// Names only: the values are secrets.
			k.log.Info().Str("namespace", d.Item.Attrs[attrNamespace]).Str("secret", k.opts.SecretName).
				Str("environment", d.EnvironmentKey).Str("outcome", string(outcome)).Msg("delivered sdk keys")
		}
	}
	k.log.Debug().Int("created", counts[created]).Int("updated", counts[updated]).Int("unchanged", counts[unchanged]).
		Int("failed", len(errs)).Msg("secret delivery finished")
	if len(errs) > 0 {
		return fmt.Errorf("delivering secrets of kubernetes source %q: %w", k.name, errors.Join(errs...))
	}
	return nil
}

type deliveryOutcome string

const (
	created   deliveryOutcome = "created"
	updated   deliveryOutcome = "updated"
	unchanged deliveryOutcome = "unchanged"
)

func (k *Kubernetes) deliver(ctx context.Context, d Delivery) (deliveryOutcome, error) {
	ns := d.Item.Attrs[attrNamespace]
	if ns == "" {
		return "", fmt.Errorf("item %q: no %q attr to deliver to", d.Item.Name, attrNamespace)
	}
	where := fmt.Sprintf("secret %s/%s", ns, k.opts.SecretName)
	if d.SDKKey == "" {
		return "", fmt.Errorf("%s: environment %q of project %q has no SDK key", where, d.EnvironmentKey, d.Project)
	}
	want := secretData(d)
	secrets := k.secrets(ns)
	current, err := secrets.Get(ctx, k.opts.SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := secrets.Create(ctx, newSecret(ns, k.opts.SecretName, want), metav1.CreateOptions{}); err != nil {
			return "", fmt.Errorf("creating %s: %w", where, err)
		}
		return created, nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", where, err)
	}
	if current.GetLabels()[ManagedByLabel] != ManagedByValue {
		return "", fmt.Errorf("%s exists without label %s=%s; not overwriting a Secret ldreaper does not manage", where, ManagedByLabel, ManagedByValue)
	}
	data, _, err := unstructured.NestedStringMap(current.Object, "data")
	if err != nil {
		return "", fmt.Errorf("reading %s: data: %w", where, err)
	}
	if data == nil {
		data = map[string]string{}
	}
	changed := false
	for key, value := range want {
		if data[key] != value {
			data[key] = value
			changed = true
		}
	}
	if !changed {
		return unchanged, nil
	}
	// Other data keys and metadata stay as they are; the resourceVersion
	// from the Get makes a concurrent writer fail this update rather than
	// be overwritten, and the next run tries again.
	if err := unstructured.SetNestedStringMap(current.Object, data, "data"); err != nil {
		return "", fmt.Errorf("updating %s: %w", where, err)
	}
	if _, err := secrets.Update(ctx, current, metav1.UpdateOptions{}); err != nil {
		return "", fmt.Errorf("updating %s: %w", where, err)
	}
	return updated, nil
}

// secretData is the Secret's data in its wire form, base64 per value.
func secretData(d Delivery) map[string]string {
	plain := map[string]string{
		SecretKeySDKKey:       d.SDKKey,
		SecretKeyMobileKey:    d.MobileKey,
		SecretKeyClientSideID: d.ClientSideID,
		SecretKeyEnvironment:  d.EnvironmentKey,
		SecretKeyProject:      d.Project,
	}
	data := make(map[string]string, len(plain))
	for key, value := range plain {
		data[key] = base64.StdEncoding.EncodeToString([]byte(value))
	}
	return data
}

func newSecret(namespace, name string, data map[string]string) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"type":       "Opaque",
	}}
	obj.SetNamespace(namespace)
	obj.SetName(name)
	obj.SetLabels(map[string]string{ManagedByLabel: ManagedByValue})
	// SetNestedStringMap cannot fail on a map without a "data" entry.
	_ = unstructured.SetNestedStringMap(obj.Object, data, "data")
	return obj
}
