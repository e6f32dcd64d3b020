#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, builds (or reuses) the local
# control plane, starts PostgreSQL, Redis and the cluster, then lints and runs pytest.
# To run against kind or another cluster instead of the local one:
#   INCIDENT_OPERATOR_TEST_KUBECONFIG=~/.kube/config hack/test.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
started=$(date +%s)

bash hack/bootstrap.sh
bin_dir="$(bash hack/build-k8s.sh | tail -n1)"
export PATH="$bin_dir:$PATH" KUBECTL="$bin_dir/kubectl"
bash hack/services-up.sh >/dev/null
# The real Alertmanager for tests/integration/test_alertmanager*.py (cached after the first build).
bash hack/build-alertmanager.sh >/dev/null
if [[ -z "${INCIDENT_OPERATOR_TEST_KUBECONFIG:-}" ]]; then
  INCIDENT_OPERATOR_TEST_KUBECONFIG="$(bash hack/cluster-up.sh | tail -n1)"
fi
export INCIDENT_OPERATOR_TEST_KUBECONFIG

echo "[test] static checks: ruff (lint and format), mypy, import-linter" >&2
.venv/bin/ruff check operator demo tests e2e bench
.venv/bin/ruff format --check operator demo tests e2e bench
.venv/bin/mypy
.venv/bin/lint-imports

echo "[test] pytest" >&2
set +e
.venv/bin/pytest -p no:cacheprovider "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "[test] pytest collected no tests: that is a failure" >&2
  exit 1
fi
echo "[test] finished in $(( $(date +%s) - started ))s with status $status" >&2
exit $status
