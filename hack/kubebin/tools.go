//go:build tools

// Package tools pins the commands that build.sh compiles, so that go.mod and
// go.sum record every module they need.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
