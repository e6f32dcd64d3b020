#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet (the real node
# of hack/node.sh), etcd, kwok and kwokctl from Go modules into a cache outside the checkout, so
# CI and later runs reuse them.
# Our machines have Go and the module proxy but no Docker and no binary downloads.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${INCIDENT_OPERATOR_CACHE:-$HOME/.cache/incident-operator}"
bin_dir="$cache_root/k8s-$K8S_VERSION/bin"
work_dir="$cache_root/k8s-$K8S_VERSION/src"
mkdir -p "$bin_dir" "$work_dir"
# Concurrent runs (parallel scripts, other engineers) wait for each other instead of writing
# the same files.
exec {build_lock}>"$cache_root/.build-k8s.lock"
flock -w 3600 "$build_lock" || { echo "build-k8s.sh: could not lock $cache_root/.build-k8s.lock" >&2; exit 1; }

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

log() { printf '[build-k8s %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

k8s_binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet)
all_present() {
  for b in "${k8s_binaries[@]}" etcd kwok kwokctl; do [[ -x "$bin_dir/$b" ]] || return 1; done
}
if all_present; then
  log "cached: $bin_dir"
  echo "$bin_dir"
  exit 0
fi

start=$(date +%s)
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.buildDate=$build_date"
done

# k8s.io/kubernetes pins its staging repos at v0.0.0; a consumer module must map each one
# to its published tag.
staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt
  kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming)

k8s_mod="$work_dir/kubernetes"
mkdir -p "$k8s_mod"
{
  echo "module incident-operator.local/k8s-tools"
  echo
  echo "go 1.25"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  for s in "${staging[@]}"; do echo "	k8s.io/$s => k8s.io/$s $K8S_STAGING_VERSION"; done
  echo ")"
} > "$k8s_mod/go.mod"
printf 'package main\n\nfunc main() {}\n' > "$k8s_mod/main.go"

for b in "${k8s_binaries[@]}"; do
  if [[ -x "$bin_dir/$b" ]]; then log "$b: cached"; continue; fi
  log "building $b $K8S_VERSION (first build downloads modules and compiles for many minutes)"
  t0=$(date +%s)
  (cd "$k8s_mod" && go build -trimpath -ldflags "-s -w $ldflags" -o "$bin_dir/$b.tmp" "k8s.io/kubernetes/cmd/$b")
  mv "$bin_dir/$b.tmp" "$bin_dir/$b"
  log "$b: done in $(( $(date +%s) - t0 ))s"
done

if [[ ! -x "$bin_dir/etcd" ]]; then
  log "building etcd $ETCD_VERSION"
  t0=$(date +%s)
  etcd_mod="$work_dir/etcd"
  mkdir -p "$etcd_mod"
  printf 'module incident-operator.local/etcd\n\ngo 1.25\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$etcd_mod/go.mod"
  printf 'package main\n\nfunc main() {}\n' > "$etcd_mod/main.go"
  (cd "$etcd_mod" && go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$bin_dir/etcd.tmp" "$bin_dir/etcd"
  log "etcd: done in $(( $(date +%s) - t0 ))s"
fi

for b in kwok kwokctl; do
  if [[ -x "$bin_dir/$b" ]]; then log "$b: cached"; continue; fi
  log "building $b $KWOK_VERSION"
  t0=$(date +%s)
  GOBIN="$bin_dir" GOFLAGS='' go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/$b@$KWOK_VERSION"
  log "$b: done in $(( $(date +%s) - t0 ))s"
done

log "all binaries built in $(( $(date +%s) - start ))s into $bin_dir"
echo "$bin_dir"
