// Package deploy holds ldreaper's Kubernetes manifests: a kustomize base,
// components and overlays, a one-off Job, and Prometheus alerting rules.
// It has no Go code; its tests render every overlay with kubectl kustomize,
// check the properties users rely on (non-root, read-only, probes, the
// config and token wiring), and run a server-side dry run against a real
// kube-apiserver (internal/kubetest).
package deploy
