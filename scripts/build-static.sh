#!/bin/sh
# Builds the release binary: static (no cgo, no dynamic loader), without
# local paths (-trimpath), stripped, with the version stamped in. The
# Dockerfile runs exactly this script, and cmd/ldreaper/image_test.go runs
# it too, so CI exercises the image's build command even without a
# container engine.
#
#   scripts/build-static.sh OUTPUT [VERSION]
#
# VERSION defaults to $VERSION, then "dev". GOOS and GOARCH pass through
# for cross-builds (the Dockerfile sets them from the target platform).
set -eu

out=${1:?usage: scripts/build-static.sh OUTPUT [VERSION]}
version=${2:-${VERSION:-dev}}
case $version in
  *[!A-Za-z0-9._+-]*|'')
    echo "build-static.sh: version \"$version\" may hold only letters, digits, '.', '_', '+', '-'" >&2
    exit 2 ;;
esac

# OUTPUT is relative to where the script was called from, not the repository.
case $out in
  /*) ;;
  *) out=$PWD/$out ;;
esac
cd "$(dirname "$0")/.."
# -buildvcs=false: the image build context has no .git, so stamping would
# differ between a checkout and the image; the version comes from VERSION.
CGO_ENABLED=0 exec go build -trimpath -buildvcs=false \
  -ldflags "-s -w -X main.version=$version" \
  -o "$out" ./cmd/ldreaper
