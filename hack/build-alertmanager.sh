#!/usr/bin/env bash
# Builds Alertmanager and amtool from Go modules into a cache outside the checkout, like
# hack/build-k8s.sh does for the control plane, so CI and later runs reuse them. The tests run
# the real Alertmanager on loopback (tests/fixtures/alerting.py).
# Prints the bin directory as its last stdout line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${INCIDENT_OPERATOR_CACHE:-$HOME/.cache/incident-operator}"
bin_dir="$cache_root/alertmanager-$ALERTMANAGER_VERSION/bin"
mkdir -p "$bin_dir"
exec {build_lock}>"$cache_root/.build-alertmanager.lock"
flock -w 1800 "$build_lock" || { echo "build-alertmanager.sh: could not lock" >&2; exit 1; }

# The module's own go.mod decides its dependencies (go install pkg@version ignores ours).
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

log() { printf '[build-alertmanager %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -x "$bin_dir/alertmanager" && -x "$bin_dir/amtool" ]]; then
  log "cached: $bin_dir"
  echo "$bin_dir"
  exit 0
fi

start=$(date +%s)
pkg=github.com/prometheus/common/version
ldflags="-s -w -X $pkg.Version=${ALERTMANAGER_VERSION#v} -X $pkg.Branch=HEAD"
ldflags+=" -X $pkg.BuildUser=incident-operator -X $pkg.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)"
for b in alertmanager amtool; do
  if [[ -x "$bin_dir/$b" ]]; then log "$b: cached"; continue; fi
  log "building $b $ALERTMANAGER_VERSION (a cold build downloads modules and compiles for minutes)"
  t0=$(date +%s)
  GOBIN="$bin_dir" GOFLAGS='' go install -trimpath -ldflags "$ldflags" \
    "github.com/prometheus/alertmanager/cmd/$b@$ALERTMANAGER_VERSION"
  log "$b: done in $(( $(date +%s) - t0 ))s"
done
"$bin_dir/alertmanager" --version >&2
log "built in $(( $(date +%s) - start ))s into $bin_dir"
echo "$bin_dir"
