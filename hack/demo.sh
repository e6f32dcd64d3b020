#!/usr/bin/env bash
# The main job on a fresh machine: local control plane, real PostgreSQL/Redis/Prometheus, the
# demo workloads, the operator, a provoked outage, its Incident, the runbook, the timeline.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash hack/bootstrap.sh
bin_dir="$(bash hack/build-k8s.sh | tail -n1)"
export PATH="$bin_dir:$PATH" KUBECTL="$bin_dir/kubectl"
bash hack/services-up.sh >/dev/null
kubeconfig="$(bash hack/cluster-up.sh | tail -n1)"
exec .venv/bin/python -m incident_demo.story --kubeconfig "$kubeconfig" --kubectl "$KUBECTL"
