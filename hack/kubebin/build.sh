#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from the Go module proxy for the
# Kubernetes integration tests (internal/kubetest) and prints the directory
# that holds them on stdout (progress goes to stderr).
#
# The binaries are cached outside the repository, keyed by version, in
#   ${LDREAPER_KUBEBIN_CACHE:-$HOME/.cache/ldreaper-kubebin}/v1.36.3/
# and rebuilt only when go.mod, go.sum or this script change. A cold build
# compiles kube-apiserver (about 770 CPU-seconds: 7-12 minutes on 2 cores);
# with a warm Go build cache a rebuild takes seconds.
#
# Usage: hack/kubebin/build.sh            # build if needed, print the directory
#        export LDREAPER_KUBEBIN_DIR=$(hack/kubebin/build.sh)
set -euo pipefail
cd "$(dirname "$0")"

version=1.36.3
cache_root="${LDREAPER_KUBEBIN_CACHE:-$HOME/.cache/ldreaper-kubebin}"
out="$cache_root/v$version"
stamp=$(cat go.mod go.sum build.sh | sha256sum | cut -d' ' -f1)

if [[ -x "$out/kube-apiserver" && -x "$out/etcd" && -x "$out/kubectl" &&
      "$(cat "$out/.stamp" 2>/dev/null)" == "$stamp" ]]; then
  echo "kubebin: cached in $out" >&2
  echo "$out"
  exit 0
fi

# Build into a scratch directory next to the cache and move it into place at
# the end, so an interrupted build never looks like a finished one.
mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# -X flags: without them the binaries report v0.0.0 and kubectl warns about
# version skew against the apiserver.
IFS=. read -r major minor _ <<<"$version"
vflags="-X k8s.io/component-base/version.gitVersion=v$version -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
build() { # build OUTPUT PACKAGE LDFLAGS
  local start=$SECONDS
  echo "kubebin: building $1 ($2)" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $3" -o "$work/$1" "$2"
  echo "kubebin: built $1 in $((SECONDS - start))s" >&2
}
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$vflags"
build etcd go.etcd.io/etcd/server/v3 ""
build kubectl k8s.io/kubernetes/cmd/kubectl "$vflags -X k8s.io/client-go/pkg/version.gitVersion=v$version"

chmod 755 "$work"
echo "$stamp" > "$work/.stamp"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
echo "kubebin: installed in $out" >&2
echo "$out"
