# Paths and helpers of the real node (containerd + kubelet), shared by hack/node.sh,
# hack/build-images.sh, hack/cluster-up.sh and hack/cluster-down.sh. Source it after lib.sh and
# versions.env; it defines variables and functions only.
# shellcheck shell=bash
# shellcheck disable=SC2034 # variables for the scripts that source this file

CACHE_ROOT="${INCIDENT_OPERATOR_CACHE:-$HOME/.cache/incident-operator}"
K8S_BIN="$CACHE_ROOT/k8s-$K8S_VERSION/bin"
CTD_BIN="$CACHE_ROOT/containerd-$CONTAINERD_VERSION/bin"
PAUSE_ARCHIVE="$CACHE_ROOT/pause-$PAUSE_VERSION/pause.oci.tar"
PAUSE_IMAGE="registry.k8s.io/pause:$PAUSE_VERSION"
IMAGES_DIR="$CACHE_ROOT/images"
# the Debian bookworm + python3 base of every image (hack/build-images.sh); also loaded into
# containerd, for the canary of cluster-up.sh and for ad-hoc pods
BASE_REF=localhost/incident-base:bookworm

NODE_NAME=localhost
NODE_DIR="$STATE_DIR/node"
CTD_DIR="$NODE_DIR/containerd"
CTD_SOCK="$CTD_DIR/containerd.sock"
# containerd-shim-runc-v2 always puts its sockets here, whatever containerd's state dir is.
SHIM_SOCKET_DIR=/run/containerd/s
KUBELET_DIR="$NODE_DIR/kubelet"
KUBELET_ROOT="$KUBELET_DIR/root"
# the record of which image archives (by content key) containerd already holds
IMAGES_LOADED="$CTD_DIR/images-loaded"

ctr_k8s() { "$CTD_BIN/ctr" --address "$CTD_SOCK" --namespace k8s.io "$@"; }
containerd_up() { [[ -S "$CTD_SOCK" ]] && ctr_k8s version >/dev/null 2>&1; }

# load_image REF ARCHIVE KEY: imports ARCHIVE (OCI or docker archive) into containerd's k8s.io
# namespace as REF unless containerd already holds REF from an archive with the same KEY. The
# image is labelled pinned, so the kubelet's image garbage collection never removes it (the
# pods use imagePullPolicy: Never and could not get it back).
load_image() {
  local ref="$1" archive="$2" key="$3"
  if grep -qxF "$ref $key" "$IMAGES_LOADED" 2>/dev/null &&
     ctr_k8s images ls -q "name==$ref" 2>/dev/null | grep -qxF "$ref"; then
    return 0
  fi
  local out
  out="$(ctr_k8s images import "$archive" 2>&1)" || { printf '%s\n' "$out" >&2; return 1; }
  ctr_k8s images ls -q "name==$ref" 2>/dev/null | grep -qxF "$ref" || {
    printf 'load_image: %s did not provide %s\n%s\n' "$archive" "$ref" "$out" >&2
    return 1
  }
  ctr_k8s images label "$ref" io.cri-containerd.pinned=pinned >/dev/null 2>&1
  { grep -v "^$ref " "$IMAGES_LOADED" 2>/dev/null || true; echo "$ref $key"; } >"$IMAGES_LOADED.tmp"
  mv -f "$IMAGES_LOADED.tmp" "$IMAGES_LOADED"
}
