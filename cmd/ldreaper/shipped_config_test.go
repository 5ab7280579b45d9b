package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// configMapTOML returns the ldreaper.toml that a ConfigMap manifest holds.
func configMapTOML(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Kind     string `yaml:"kind"`
		Metadata struct{ Name string }
		Data     map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(data, &cm); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	text, ok := cm.Data["ldreaper.toml"]
	if cm.Kind != "ConfigMap" || cm.Metadata.Name != "ldreaper-config" || !ok {
		t.Fatalf("%s: want ConfigMap ldreaper-config with data ldreaper.toml, got %s %s with keys %v", path, cm.Kind, cm.Metadata.Name, slices.Sorted(maps.Keys(cm.Data)))
	}
	return text
}

// TestShippedConfigsLoad runs the configs that the Kubernetes manifests
// mount through ldreaper's own loader and validation, so a manifest cannot
// ship a config that the pods would refuse at start.
func TestShippedConfigsLoad(t *testing.T) {
	overlayConfig, err := os.ReadFile("../../deploy/overlays/example/ldreaper.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, text string
	}{
		{"deploy/base/configmap.yaml", configMapTOML(t, "../../deploy/base/configmap.yaml")},
		{"deploy/overlays/example/ldreaper.toml", string(overlayConfig)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(tc.name, tc.text)
			if err != nil {
				t.Fatal(err)
			}
			// The manifests mount the token as a file and run two replicas.
			if cfg.LaunchDarkly.TokenFile == "" || cfg.Redis == nil {
				t.Errorf("token_file %q, [redis] %v: want the token from a file and Redis for two replicas", cfg.LaunchDarkly.TokenFile, cfg.Redis)
			}
		})
	}
}

// customRole is docs/ld-custom-role.json, in the shape of LD's
// CustomRolePost.
type customRole struct {
	Key             string      `json:"key"`
	Name            string      `json:"name"`
	Description     string      `json:"description"`
	BasePermissions string      `json:"basePermissions"`
	Policy          []statement `json:"policy"`
}

type statement struct {
	Effect       string   `json:"effect"`
	Actions      []string `json:"actions,omitempty"`
	NotActions   []string `json:"notActions,omitempty"`
	Resources    []string `json:"resources,omitempty"`
	NotResources []string `json:"notResources,omitempty"`
}

// TestCustomRoleFitsShippedConfig checks the least-privilege role against
// the config the manifests ship: it may view the project, create and delete
// only environments with the keys and the tag that config produces, and
// nothing else, and it denies tag changes (which would let anyone make an
// environment look like ldreaper's).
func TestCustomRoleFitsShippedConfig(t *testing.T) {
	data, err := os.ReadFile("../../docs/ld-custom-role.json")
	if err != nil {
		t.Fatal(err)
	}
	var role customRole
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&role); err != nil {
		t.Fatalf("docs/ld-custom-role.json: %v", err)
	}
	cfg, err := parseConfig("configmap.yaml", configMapTOML(t, "../../deploy/base/configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	prefix := ""
	for i, s := range cfg.Sources {
		if i > 0 && s.KeyPrefix != prefix {
			t.Fatalf("sources use key prefixes %q and %q; the role allows one", prefix, s.KeyPrefix)
		}
		prefix = s.KeyPrefix
	}
	if prefix == "" {
		t.Fatal("the shipped config's sources set no key_prefix, so the role cannot limit keys")
	}
	project := "proj/" + cfg.LaunchDarkly.Project
	owned := fmt.Sprintf("%s:env/%s*;%s", project, prefix, cfg.LaunchDarkly.ManagedTag)
	want := customRole{
		Key: role.Key, Name: role.Name, Description: role.Description,
		BasePermissions: "no_access",
		Policy: []statement{
			{Effect: "allow", Actions: []string{"viewProject"}, Resources: []string{project}},
			{Effect: "allow", Actions: []string{"createEnvironment", "deleteEnvironment"}, Resources: []string{owned}},
			{Effect: "deny", Actions: []string{"deleteEnvironment", "updateTags"}, NotResources: []string{owned}},
		},
	}
	if diff := cmp.Diff(want, role); diff != "" {
		t.Errorf("docs/ld-custom-role.json does not fit the shipped config (project %q, key_prefix %q, managed_tag %q) (-want +got):\n%s",
			cfg.LaunchDarkly.Project, prefix, cfg.LaunchDarkly.ManagedTag, diff)
	}
}
