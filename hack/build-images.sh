#!/usr/bin/env bash
# Builds the container images of the real node with no registry, and loads them into its
# containerd when that runs (hack/cluster-up.sh starts it and then calls this script).
#
# 1. Base: a Debian bookworm minbase root filesystem with python3, made with debootstrap from
#    the Debian mirror apt uses here, trimmed, imported with podman as
#    localhost/incident-base:bookworm.
# 2. Images, each `podman build --network host --pull=never` from that base
#    (--build-arg BASE_IMAGE=...): localhost/incident-operator:dev (manifests/operator/
#    Dockerfile, context: pyproject.toml, README.md, operator/), localhost/incident-demo-
#    postgres|redis|prometheus:dev (manifests/images/<name>/), localhost/incident-demo-
#    dashboard:dev and :v2-broken (manifests/images/dashboard/ + the dashboard module).
# 3. Each image is saved as a docker archive in $cache/images/<name>-<key>.tar, where <key>
#    hashes the Dockerfile, the staged build context, the build args and the base's key, so an
#    image is rebuilt only when one of them changes. A warm run only hashes.
# 4. When the node's containerd answers, every archive it does not hold yet is imported into
#    its k8s.io namespace (pods use imagePullPolicy: Never).
#
# Usage: hack/build-images.sh [NAME...]   NAME: operator postgres redis prometheus dashboard
#        (default all; "base" builds only the base). Env: DASHBOARD_APP (path of the dashboard module; default the first of
#        demo/incident_demo/dashboard.py, demo/dashboard.py,
#        operator/incident_operator/demo/dashboard.py), INCIDENT_OPERATOR_CACHE,
#        INCIDENT_OPERATOR_STATE. Podman's storage and configuration live in $cache/podman.
# Last stdout line: $cache/images/images.list ("<ref> <archive> <key>" per image).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=lib-node.sh
source "$here/lib-node.sh"

log() { printf '[build-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
mkdir -p "$IMAGES_DIR"
exec {images_lock}>"$IMAGES_DIR/.lock"
flock -w "${LOCK_TIMEOUT:-1200}" "$images_lock" || die "could not lock $IMAGES_DIR/.lock"

need=()
command -v podman >/dev/null || need+=(podman)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v runc >/dev/null || need+=(runc)
if (( ${#need[@]} )); then
  log "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  quietly apt-get update
  quietly apt-get install -y --no-install-recommends "${need[@]}"
fi

# Podman with its own storage and settings. crun refuses these hosts' hybrid cgroups, so runc;
# the open-files hard limit is 20000, below podman's default ulimits; no CNI: host network.
podman_dir="$CACHE_ROOT/podman"
mkdir -p "$podman_dir"
cat >"$podman_dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
cat >"$podman_dir/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$podman_dir/storage"
runroot = "$podman_dir/run"
EOF
export CONTAINERS_CONF="$podman_dir/containers.conf" CONTAINERS_STORAGE_CONF="$podman_dir/storage.conf"
# The operator and dashboard builds run pip: the host's CA bundle is mounted over the base's
# during those builds (not kept in the images), so pip trusts what the host trusts, e.g. an
# egress proxy's CA.
# The base has ca-certificates already, so no package script rewrites the mounted file.
host_ca=/etc/ssl/certs/ca-certificates.crt
pip_mounts=()
[[ -s "$host_ca" ]] && pip_mounts=(--volume "$host_ca:/etc/ssl/certs/ca-certificates.crt:ro")

# hash_dir DIR: a content hash of the files below DIR (names, modes, contents).
hash_dir() {
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf - . | sha256sum | cut -c1-16
}

# ---------------------------------------------------------------------------------------------
# The base image.
# The mirrors apt uses here (one-line and deb822 sources): "<suite> <uri>" for bookworm,
# bookworm-updates and bookworm-security.
mirrors="$(python3 - <<'PY'
import glob, re
out = {}
def add(uri, suites, comps):
    for s in suites:
        if s in ("bookworm", "bookworm-updates", "bookworm-security") and "main" in comps:
            out.setdefault(s, uri.rstrip("/"))
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        line = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(line) >= 4 and line[0] == "deb":
            add(line[1], [line[2]], line[3:])
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for para in re.split(r"\n\s*\n", open(path).read()):
        f = {}
        for line in para.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            f[k.strip().lower()] = v.split()
        if "deb" in f.get("types", []) and f.get("enabled", ["yes"])[0] != "no":
            for uri in f.get("uris", []):
                add(uri, f.get("suites", []), f.get("components", []))
for s, u in out.items():
    print(s, u)
PY
)"
mirror="$(awk '$1 == "bookworm" { print $2 }' <<<"$mirrors")"
[[ -n "$mirror" ]] || mirror=http://deb.debian.org/debian
sources="deb $mirror bookworm main"$'\n'
while read -r suite uri; do
  [[ "$suite" == bookworm || -z "$suite" ]] || sources+="deb $uri $suite main"$'\n'
done <<<"$mirrors"

base_ref="$BASE_REF"
base_recipe_version=2   # bump when the debootstrap or trim steps below change
base_key="$(printf '%s\n%s\n' "$base_recipe_version" "$sources" | sha256sum | cut -c1-16)"
base_tar="$IMAGES_DIR/base-$base_key.tar.gz"

podman_has() { podman image exists "$1" && [[ "$(podman image inspect --format '{{index .Labels "io.incident-operator.key"}}' "$1")" == "$2" ]]; }

if [[ ! -s "$base_tar" ]]; then
  log "debootstrap: Debian bookworm minbase + python3, ca-certificates from $mirror (about 80 s)"
  t0=$(date +%s)
  rootfs="$IMAGES_DIR/.rootfs"
  rm -rf "$rootfs"
  quietly debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$rootfs" "$mirror" ||
    die "debootstrap failed"
  printf '%s' "$sources" >"$rootfs/etc/apt/sources.list"
  # What Debian's slim images do: no docs, man pages or translations from later installs,
  # no recommends, no services started by package scripts.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-incident-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$rootfs/etc/apt/apt.conf.d/01-incident-slim"
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/lintian \
    "$rootfs"/tmp/* "$rootfs"/var/tmp/*
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  find "$rootfs/usr/lib/python3" -name __pycache__ -type d -prune -exec rm -rf {} +
  tar --numeric-owner -C "$rootfs" -czf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$rootfs"
  find "$IMAGES_DIR" -maxdepth 1 -name 'base-*.tar.gz' -not -name "base-$base_key.tar.gz" -delete
  log "base rootfs: $(du -sh "$base_tar" | cut -f1) compressed, in $(( $(date +%s) - t0 ))s"
fi
ensure_base() {
  podman_has "$base_ref" "$base_key" && return 0
  log "importing $base_ref"
  quietly podman import --change "LABEL io.incident-operator.key=$base_key" \
    --change 'CMD ["/usr/bin/python3"]' "$base_tar" "$base_ref" || die "podman import failed"
}
list="$IMAGES_DIR/images.list"
touch "$list"
# record REF ARCHIVE KEY: the line of REF in images.list
record() {
  { grep -v "^$1 " "$list" || true; echo "$1 $2 $3"; } >"$list.tmp"
  mv -f "$list.tmp" "$list"
}
base_archive="$IMAGES_DIR/base-$base_key.tar"
if [[ ! -s "$base_archive" ]]; then
  ensure_base
  rm -f "$base_archive.tmp"
  quietly podman save --format docker-archive -o "$base_archive.tmp" "$base_ref" || die "podman save failed"
  mv "$base_archive.tmp" "$base_archive"
  find "$IMAGES_DIR" -maxdepth 1 -name 'base-*.tar' -not -name "base-$base_key.tar" -delete
fi
record "$base_ref" "$base_archive" "$base_key"

# ---------------------------------------------------------------------------------------------
# Images: name ref Dockerfile [build-arg...]; the context is staged by stage_context.
dashboard_app="${DASHBOARD_APP:-}"
if [[ -z "$dashboard_app" ]]; then
  for c in demo/incident_demo/dashboard.py demo/dashboard.py operator/incident_operator/demo/dashboard.py; do
    [[ -f "$root/$c" ]] && { dashboard_app="$root/$c"; break; }
  done
fi
# stage_context NAME DIR: copies exactly what NAME's build needs into DIR.
stage_context() {
  local name="$1" dir="$2"
  case "$name" in
    operator)
      cp "$root/pyproject.toml" "$root/README.md" "$dir/"
      mkdir -p "$dir/operator"
      tar -C "$root/operator" --exclude=__pycache__ --exclude='*.egg-info' -cf - . | tar -C "$dir/operator" -xf -
      ;;
    dashboard|dashboard-broken)
      [[ -f "$dashboard_app" ]] || die "no dashboard module (set DASHBOARD_APP)"
      cp "$dashboard_app" "$dir/dashboard.py"
      ;;
    *)
      tar -C "$root/manifests/images/$name" --exclude=Dockerfile -cf - . | tar -C "$dir" -xf -
      ;;
  esac
}
declare -A ref dockerfile args
ref[operator]=localhost/incident-operator:dev
dockerfile[operator]="$root/manifests/operator/Dockerfile"
for n in postgres redis prometheus; do
  ref[$n]=localhost/incident-demo-$n:dev
  dockerfile[$n]="$root/manifests/images/$n/Dockerfile"
done
ref[dashboard]=localhost/incident-demo-dashboard:dev
dockerfile[dashboard]="$root/manifests/images/dashboard/Dockerfile"
args[dashboard]="VERSION=v1"
ref[dashboard-broken]=localhost/incident-demo-dashboard:v2-broken
dockerfile[dashboard-broken]="$root/manifests/images/dashboard/Dockerfile"
args[dashboard-broken]="VERSION=v2-broken"
all=(operator postgres redis prometheus dashboard dashboard-broken)

wanted=("$@")
(( ${#wanted[@]} )) || wanted=("${all[@]}")
[[ "${wanted[*]}" == base ]] && wanted=()
for n in "${wanted[@]}"; do
  [[ -n "${ref[$n]:-}" ]] || die "unknown image '$n' (known: base ${all[*]})"
  [[ "$n" == dashboard ]] && wanted+=(dashboard-broken)
done

stage_root="$(mktemp -d "$IMAGES_DIR/.stage.XXXXXX")"
trap 'rm -rf "$stage_root"' EXIT
declare -A done_
for n in ${wanted[@]+"${wanted[@]}"}; do
  [[ -n "${done_[$n]:-}" ]] && continue
  done_[$n]=1
  ctx="$stage_root/$n"
  mkdir -p "$ctx"
  stage_context "$n" "$ctx"
  cp "${dockerfile[$n]}" "$ctx/.Dockerfile"
  key="$( { echo "base=$base_key args=${args[$n]:-}"; hash_dir "$ctx"; } | sha256sum | cut -c1-16)"
  archive="$IMAGES_DIR/$n-$key.tar"
  if [[ ! -s "$archive" ]]; then
    ensure_base
    log "building ${ref[$n]}"
    t0=$(date +%s)
    build_args=(--build-arg "BASE_IMAGE=$base_ref")
    [[ "$n" == operator || "$n" == dashboard* ]] && build_args+=("${pip_mounts[@]}")
    for a in ${args[$n]:-}; do build_args+=(--build-arg "$a"); done
    quietly podman build --network host --pull=never "${build_args[@]}" \
      --label "io.incident-operator.key=$key" -f "$ctx/.Dockerfile" -t "${ref[$n]}" "$ctx" ||
      die "podman build of ${ref[$n]} failed"
    rm -f "$archive.tmp"
    quietly podman save --format docker-archive -o "$archive.tmp" "${ref[$n]}" || die "podman save failed"
    mv "$archive.tmp" "$archive"
    find "$IMAGES_DIR" -maxdepth 1 -name "$n-*.tar" -not -name "$n-$key.tar" -delete
    size="$(podman image inspect --format '{{.Size}}' "${ref[$n]}")"
    log "${ref[$n]}: $(( size / 1000000 )) MB, built in $(( $(date +%s) - t0 ))s"
  fi
  record "${ref[$n]}" "$archive" "$key"
done

# Loading needs no lock on the archives (another state dir's node may be loading them too).
exec {images_lock}>&-
if containerd_up; then
  while read -r r a k; do
    [[ -s "$a" ]] || continue
    load_image "$r" "$a" "$k" || die "could not load $r into containerd"
  done <"$list"
fi
echo "$list"
