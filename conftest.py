"""Shared by tests/ and e2e/: the cluster, the operator, the real servers, a webhook receiver."""

import os
from pathlib import Path

# The kubernetes client (and Kopf's login through it) reads KUBECONFIG once, at import time,
# so the cluster the tests use is fixed here, before anything imports it.
_state = Path(
    os.environ.get("INCIDENT_OPERATOR_STATE", Path.home() / ".cache" / "incident-operator" / "run")
)
os.environ["KUBECONFIG"] = os.environ.get(
    "INCIDENT_OPERATOR_TEST_KUBECONFIG", str(_state / "kubeconfig")
)

pytest_plugins = [
    "tests.fixtures.cluster",
    "tests.fixtures.identity",
    "tests.fixtures.operator",
    "tests.fixtures.services",
    "tests.fixtures.receiver",
]
