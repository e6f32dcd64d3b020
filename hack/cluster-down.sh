#!/usr/bin/env bash
# Deletes the local cluster started by hack/cluster-up.sh: stops the real node (kubelet,
# containerd, shims and every pod process; unmounts its volumes and container filesystems;
# removes its cgroups and $STATE_DIR/node, images loaded into containerd included), then the
# control plane (kwokctl delete: its processes, its workdir) and $STATE_DIR/kubeconfig.
# Idempotent; builds nothing. The image archives in the build cache stay.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
take_lock cluster
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=lib-node.sh
source "$here/lib-node.sh"

[[ -d "$NODE_DIR" ]] && { "$here/node.sh" down || die "hack/node.sh down failed"; }
export KWOK_WORKDIR="$STATE_DIR/kwok"
kwokctl="$K8S_BIN/kwokctl"
if [[ -x "$kwokctl" ]] && "$kwokctl" get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  quietly "$kwokctl" delete cluster --name "$CLUSTER_NAME" --kubeconfig "$STATE_DIR/kubeconfig"
fi
rm -f "$STATE_DIR/kubeconfig"
