#!/usr/bin/env bash
# Builds the container runtime of the real node into a cache outside the checkout:
# - containerd, containerd-shim-runc-v2 and ctr ($CONTAINERD_VERSION) from Go modules
#   (CGO_ENABLED=0, no btrfs/devmapper/zfs snapshotters): $cache/containerd-$V/bin;
# - the pause image: build/pause/linux/pause.c of the kubernetes module ($K8S_VERSION), compiled
#   with `gcc -static`, alone in a one-layer OCI image archive named
#   registry.k8s.io/pause:$PAUSE_VERSION (containerd's pinned sandbox image):
#   $cache/pause-$PAUSE_VERSION/pause.oci.tar.
# runc comes from Debian's package (installed here when missing). Nothing is downloaded but Go
# modules and Debian packages. Cached: a second run only checks that the files exist.
# Last stdout line: the containerd bin dir. Progress goes to stderr on a cold build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${INCIDENT_OPERATOR_CACHE:-$HOME/.cache/incident-operator}"
ctd_dir="$cache_root/containerd-$CONTAINERD_VERSION"
bin_dir="$ctd_dir/bin"
pause_dir="$cache_root/pause-$PAUSE_VERSION"
pause_archive="$pause_dir/pause.oci.tar"
mkdir -p "$bin_dir" "$pause_dir"
# Concurrent runs wait for each other instead of writing the same files.
exec {build_lock}>"$cache_root/.build-runtime.lock"
flock -w 3600 "$build_lock" || { echo "build-runtime.sh: could not lock $cache_root/.build-runtime.lock" >&2; exit 1; }

log() { printf '[build-runtime %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

apt_install() {
  log "installing Debian packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
command -v runc >/dev/null || apt_install runc
command -v gcc >/dev/null || apt_install gcc libc6-dev

all_present() {
  local b
  for b in containerd containerd-shim-runc-v2 ctr; do [[ -x "$bin_dir/$b" ]] || return 1; done
  [[ -s "$pause_archive" ]]
}
if all_present; then
  echo "$bin_dir"
  exit 0
fi
start=$(date +%s)
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

# containerd: a wrapper module requiring the release, like etcd in build-k8s.sh.
mod="$ctd_dir/src"
mkdir -p "$mod"
printf 'module incident-operator.local/containerd\n\ngo 1.25\n\nrequire github.com/containerd/containerd/v2 %s\n' \
  "$CONTAINERD_VERSION" >"$mod/go.mod"
printf 'package main\n\nfunc main() {}\n' >"$mod/main.go"
pkg=github.com/containerd/containerd/v2
ldflags="-s -w -X $pkg/version.Version=$CONTAINERD_VERSION -X $pkg/version.Revision=release-$CONTAINERD_VERSION"
for b in containerd containerd-shim-runc-v2 ctr; do
  [[ -x "$bin_dir/$b" ]] && continue
  log "building $b $CONTAINERD_VERSION (a cold module cache adds a few minutes)"
  t0=$(date +%s)
  (cd "$mod" && go build -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags "$ldflags" \
    -o "$bin_dir/$b.tmp" "$pkg/cmd/$b")
  mv "$bin_dir/$b.tmp" "$bin_dir/$b"
  log "$b: done in $(( $(date +%s) - t0 ))s"
done

# pause: the source ships in the kubernetes module (already in the module cache after
# build-k8s.sh; downloaded otherwise).
if [[ ! -s "$pause_archive" ]]; then
  log "building the pause image registry.k8s.io/pause:$PAUSE_VERSION"
  k8s_src="$(cd "$mod" && GOFLAGS='' go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -f "$k8s_src/build/pause/linux/pause.c" ]] || { log "no pause.c in '$k8s_src'"; exit 1; }
  work="$(mktemp -d "$pause_dir/.work.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/rootfs" "$work/oci/blobs/sha256"
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-incident-operator" \
    -o "$work/rootfs/pause" "$k8s_src/build/pause/linux/pause.c"
  strip "$work/rootfs/pause"
  # One uncompressed layer holding /pause; fixed owner and mtime keep the digest stable.
  tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/rootfs" -cf "$work/layer.tar" pause
  blob() { # blob FILE: moves FILE into the layout; prints "sha256:<hex> <size>"
    local hex size
    hex="$(sha256sum "$1" | cut -d' ' -f1)"
    size="$(stat -c %s "$1")"
    mv "$1" "$work/oci/blobs/sha256/$hex"
    echo "sha256:$hex $size"
  }
  read -r layer_digest layer_size < <(blob "$work/layer.tar")
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$layer_digest" >"$work/config.json"
  read -r config_digest config_size < <(blob "$work/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$work/manifest.json"
  read -r manifest_digest manifest_size < <(blob "$work/manifest.json")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"io.containerd.image.name":"registry.k8s.io/pause:%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$manifest_size" "$PAUSE_VERSION" "$PAUSE_VERSION" >"$work/oci/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
  tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/oci" -cf "$pause_archive.tmp" .
  mv "$pause_archive.tmp" "$pause_archive"
  log "pause image: $(stat -c %s "$pause_archive") bytes"
fi

log "runtime built in $(( $(date +%s) - start ))s into $ctd_dir"
echo "$bin_dir"
