"""End to end: the shipped runbooks, run by the operator in the cluster, against real failures
of the demo stack's real pods.

The session installs the operator as users do (``kubectl apply -k manifests/overlays/local``,
restarted so it runs the image now on the node), creates the stack's Secrets, and applies the
stack (``manifests/demo``). Before each test every server is brought back to a healthy baseline
and the operator's safety history (its Leases) is cleared, so each test starts like a fresh
day; the seven runbooks are applied as ``manifests/demo/runbooks`` localizes them, with the
test's own overrides. People act with ``kubectl --as`` (``incident_demo.stack.ONCALL`` ...).

It needs a cluster whose one schedulable node runs the stack and the operator with host
networking (see manifests/demo/README.md, "Running against kind or another cluster").
"""

from __future__ import annotations

import copy
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from incident_demo.incidents import Incidents
from incident_demo.kube import Kubectl
from incident_demo.stack import NAMESPACE, Stack

#: Label of every Incident an e2e test opens (deleted after the test).
E2E_LABEL = {"incidents.dev/e2e": "true"}
#: Overrides every test applies: the dashboard runbook's "wait 30 seconds for startup" only
#: waits for the clock, so the tests wait 5.
COMMON_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "dashboard-outage": {"settle": {"action": {"duration": "5s"}}},
}
#: (test, runbook, incident, time to recover in s, RTO in s) of each recovered Incident.
RECOVERIES: list[tuple[str, str, str, float, float]] = []


@pytest.fixture(scope="session")
def kube(kubeconfig: str) -> Kubectl:
    return Kubectl(kubeconfig, os.environ.get("KUBECTL", "kubectl"))


@pytest.fixture(scope="session")
def demo_stack(kube: Kubectl) -> Iterator[Stack]:
    """The operator and the stack, installed once; held against other runs on this machine."""
    stack = Stack(kube)
    with stack.exclusive():
        stack.install_operator(restart=True)
        stack.ensure_secrets()
        stack.heal(timeout=300)
        yield stack


@pytest.fixture
def stack(demo_stack: Stack, kube: Kubectl) -> Iterator[Stack]:
    # Each test starts like a fresh day: no remediation history (the safety gate would
    # rightly refuse restarting the same workload again minutes later), a healthy stack.
    demo_stack.forget_remediations()
    demo_stack.heal()
    forget_rollouts(kube)
    yield demo_stack
    Incidents(kube, NAMESPACE).delete("incidents.dev/e2e=true")


@pytest.fixture
def incidents(kube: Kubectl) -> Incidents:
    return Incidents(kube, NAMESPACE)


def forget_rollouts(kube: Kubectl) -> None:
    """Delete the dashboard's old ReplicaSets: each test starts with one revision, not with
    the builds earlier tests rolled out (a rollback picks among them)."""
    sets = kube.json("-n", NAMESPACE, "get", "replicasets", "-l", "app=dashboard")["items"]
    old = [rs["metadata"]["name"] for rs in sets if not rs["spec"].get("replicas")]
    if old:
        kube.out("-n", NAMESPACE, "delete", "replicaset", *old, "--ignore-not-found")


def apply_runbooks(
    stack: Stack, overrides: dict[str, dict[str, dict[str, Any]]] | None = None
) -> dict[str, dict[str, Any]]:
    """The seven runbooks as localized, with step fields overridden per runbook and step
    (``{"dashboard-outage": {"verify": {"retries": 0, "action": {...}}}}``)."""
    merged = copy.deepcopy(COMMON_OVERRIDES)
    for runbook, steps in (overrides or {}).items():
        for step, fields in steps.items():
            merged.setdefault(runbook, {}).setdefault(step, {}).update(fields)
    docs = stack.runbooks()
    for doc in docs:
        for stage in ("diagnosis", "recovery"):
            for step in doc["spec"].get(stage, []):
                for key, value in (
                    merged.get(doc["metadata"]["name"], {}).get(step["name"], {}).items()
                ):
                    if key == "action":
                        step["action"].update(value)
                    else:
                        step[key] = value
    stack.apply_docs(docs)
    stack.wait_runbooks_checked([doc["metadata"]["name"] for doc in docs])
    return {doc["metadata"]["name"]: doc for doc in docs}


def psql_session(kube: Kubectl, app: str, sql: str) -> subprocess.Popen[str]:
    """A psql session in the PostgreSQL container that runs until its query ends."""
    return kube.popen(
        "-n", NAMESPACE, "exec", "postgres-0", "-c", "postgres", "--",
        "env", f"PGAPPNAME={app}", "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", sql,
    )  # fmt: skip


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def record_recovery(request: pytest.FixtureRequest, status: dict[str, Any], name: str) -> float:
    """Note the Incident's time to recover (detection to mitigation) for the summary."""
    ttr = float(status["timeToRecoverSeconds"])
    RECOVERIES.append(
        (request.node.name, str(status.get("runbook")), name, ttr, float(status["rtoSeconds"]))
    )
    return ttr


def phases(steps: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: step["phase"] for name, step in steps.items()}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RECOVERIES:
        return
    terminalreporter.section("time to recover (detection to mitigation) vs the runbook's RTO")
    for test, runbook, incident, ttr, rto in RECOVERIES:
        verdict = "within" if ttr <= rto else "OVER"
        terminalreporter.write_line(
            f"{runbook:26} {ttr:7.1f} s  {verdict} RTO {rto / 60:g} min  ({incident}, {test})"
        )
