#!/usr/bin/env bash
# Deletes the local cluster started by hack/cluster-up.sh (stops its processes, removes its
# kwokctl workdir and $STATE_DIR/kubeconfig). Idempotent; builds nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
take_lock cluster
# shellcheck source=versions.env
source "$here/versions.env"

bin_dir="${INCIDENT_OPERATOR_CACHE:-$HOME/.cache/incident-operator}/k8s-$K8S_VERSION/bin"
export KWOK_WORKDIR="$STATE_DIR/kwok"
kwokctl="$bin_dir/kwokctl"
if [[ -x "$kwokctl" ]] && "$kwokctl" get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  quietly "$kwokctl" delete cluster --name "$CLUSTER_NAME" --kubeconfig "$STATE_DIR/kubeconfig"
fi
rm -f "$STATE_DIR/kubeconfig"
