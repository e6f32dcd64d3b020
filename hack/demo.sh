#!/usr/bin/env bash
# The demo on a fresh machine, with no step by hand: the venv, the Kubernetes binaries, the
# runtime and the images (all cached after the first run), the local cluster with its real
# node, then python -m incident_demo.story: the operator installed in the cluster
# (kubectl apply -k manifests/overlays/local), the staging stack as real pods
# (manifests/demo), the shipped runbooks, a bad deploy, its Incident, the runbook, an approved
# rollback, the resolution, and the timeline and report. The cluster keeps running.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
started=$(date +%s)
bash hack/bootstrap.sh
bin_dir="$(bash hack/build-k8s.sh | tail -n1)"
kubeconfig="$(bash hack/cluster-up.sh | tail -n1)"
echo "[demo] set-up done in $(( $(date +%s) - started ))s" >&2
.venv/bin/python -m incident_demo.story --kubeconfig "$kubeconfig" --kubectl "$bin_dir/kubectl"
echo "[demo] finished in $(( $(date +%s) - started ))s" >&2
