#!/usr/bin/env bash
# Builds helm from its Go module through the Go module proxy (the wrapper-module
# recipe; nothing prebuilt is downloaded).
#
#   build-helm.sh helm v3.22.0 OUT_DIR   -> helm
#
# Called by kflow.cluster.binaries (a script of its own, so changing it does not
# invalidate the cached Kubernetes build). Lines starting with '==>' are progress.
set -euo pipefail
what=$1 version=$2 out=$3
[ "$what" = helm ] || { echo "build-helm.sh builds helm, not '$what'" >&2; exit 2; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
work=$(mktemp -d "${TMPDIR:-/tmp}/kflow-build-helm.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir -p "$out"
echo "==> resolving helm.sh/helm/v3@$version"
go mod init localbuild/helm >/dev/null 2>&1
go get -tool "helm.sh/helm/v3/cmd/helm@$version"
echo "==> compiling helm"
go build -p 2 -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
  -o "$out/helm" helm.sh/helm/v3/cmd/helm
"$out/helm" version --short
echo "==> done: $out"
