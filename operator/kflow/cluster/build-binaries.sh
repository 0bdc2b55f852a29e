#!/usr/bin/env bash
# Builds one component of the embedded cluster from its Go module through the
# Go module proxy (the wrapper-module recipe; nothing prebuilt is downloaded).
#
#   build-binaries.sh k8s  v1.36.3 OUT_DIR   -> kube-apiserver, kube-controller-manager,
#                                               kube-scheduler, kubectl
#   build-binaries.sh etcd v3.6.16 OUT_DIR   -> etcd
#
# Called by kflow.cluster.binaries, which holds the lock, chooses the cache
# directory and keeps the log. Lines starting with '==>' are progress.
set -euo pipefail
what=$1 version=$2 out=$3
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
work=$(mktemp -d "${TMPDIR:-/tmp}/kflow-build-$what.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir -p "$out"

case $what in
k8s)
  staging="v0.${version#v1.}"
  echo "==> resolving k8s.io/kubernetes@$version (staging modules at $staging)"
  go mod init localbuild/k8s-bins >/dev/null 2>&1
  kmod=$(go mod download -json "k8s.io/kubernetes@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  sed -n 's|^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*|\1|p' "$kmod" |
    while read -r m; do go mod edit -replace="$m=$m@$staging"; done
  go mod edit -go="$(sed -n 's/^go \(.*\)/\1/p' "$kmod")"
  godebug=$(sed -n 's/^godebug \(.*\)/\1/p' "$kmod")
  [ -z "$godebug" ] || go mod edit -godebug="$godebug"
  echo "==> downloading modules (go get -tool; slow when cold)"
  go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$version" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@$version" \
    "k8s.io/kubernetes/cmd/kube-scheduler@$version" \
    "k8s.io/kubernetes/cmd/kubectl@$version"
  minor=$(echo "$version" | cut -d. -f2)
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  note=" (compiles the packages the others share: the long part when cold)"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    echo "==> compiling $cmd$note"
    note=""
    go build -p 2 -trimpath -tags=notest,grpcnotrace -ldflags="$ld" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
  "$out/kube-apiserver" --version
  ;;
etcd)
  echo "==> resolving go.etcd.io/etcd/server/v3@$version"
  go mod init localbuild/etcd >/dev/null 2>&1
  go get -tool "go.etcd.io/etcd/server/v3@$version"
  echo "==> compiling etcd"
  go build -p 2 -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$version" -o "$out/etcd" go.etcd.io/etcd/server/v3
  "$out/etcd" --version
  ;;
*)
  echo "unknown component '$what' (expected k8s or etcd)" >&2; exit 2 ;;
esac
echo "==> done: $out"
