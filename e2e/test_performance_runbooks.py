"""Playbook: High Error Rate (>5%) and High Latency (p99 > 2000ms): faults injected through
the dashboard's /admin/fault under real traffic, seen by the runbooks through Prometheus."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest
from tests.fixtures.cluster import eventually

from e2e.conftest import E2E_LABEL, apply_runbooks, record_recovery, unique
from incident_demo.incidents import Incidents
from incident_demo.kube import Kubectl
from incident_demo.stack import COMMANDER, NAMESPACE, ONCALL, Stack

pytestmark = pytest.mark.cluster
ERROR_RATIO = (
    'sum(rate(http_requests_total{code=~"5.."}[1m])) / '
    "clamp_min(sum(rate(http_requests_total[1m])), 1e-9)"
)
P99_MS = (
    "histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket[1m])) by (le)) * 1000"
)


def alert(alertname: str, summary: str) -> dict[str, object]:
    return {
        "service": "dashboard",
        "summary": summary,
        "severity": 2,
        "acknowledgedBy": ONCALL,
        "roles": {"incidentCommander": COMMANDER},
        "source": {"kind": "Alertmanager", "alertName": alertname},
    }


@pytest.fixture
def traffic(stack: Stack) -> Iterator[Callable[[str], None]]:
    """Requests to the dashboard from inside its pod, so Prometheus has rates. They end with
    the pod; one the test left running is restarted, so no traffic outlives the test."""
    started: list[tuple[str, subprocess.Popen[str]]] = []

    def start(path: str) -> None:
        pod = (stack.pod("dashboard") or {}).get("metadata", {}).get("name", "")
        started.append((pod, stack.traffic(path, seconds=240)))

    yield start
    for pod, process in started:
        process.kill()
        process.communicate(timeout=30)
        current = stack.pod("dashboard")
        if current is not None and current["metadata"]["name"] == pod:
            stack.rollout("restart", "dashboard")
            stack.rollout("status", "dashboard")


def deployment(kube: Kubectl, path: str) -> str:
    return kube.out("-n", NAMESPACE, "get", "deployment/dashboard", "-o", f"jsonpath={path}")


def test_errors_after_a_release_are_rolled_back(
    stack: Stack,
    incidents: Incidents,
    kube: Kubectl,
    traffic: Callable[[str], None],
    request: pytest.FixtureRequest,
) -> None:
    apply_runbooks(stack)
    # A release goes out (a new revision), and its API starts failing.
    release = unique("release")
    kube.out("-n", NAMESPACE, "set", "env", "deployment/dashboard", f"RELEASE={release}")
    stack.rollout("status", "dashboard")
    eventually(lambda: stack.health() == 200, timeout=60, what="the release up")
    stack.inject("errors", rate=1.0)
    traffic("/api/inventory/stats")
    eventually(
        lambda: (stack.prometheus(ERROR_RATIO) or 0) > 0.5,
        timeout=60,
        what="Prometheus seeing the 5xx ratio",
    )
    name = unique("errors")
    incidents.open(name, alert("HighErrorRate", "Error rate above 5%"), ONCALL, E2E_LABEL)

    # The commander approves what the runbook asks for (cache flush, rollback) as it comes.
    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=240, approver=COMMANDER)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    assert status["runbook"] == "high-error-rate"
    done = incidents.steps(name)
    assert done["error-rate"]["phase"] == "Failed"
    assert float(done["error-rate"]["findings"]["value"]) > 0.05
    assert int(done["recent-deployments"]["findings"]["rollouts"]) >= 2
    assert done["circuit-breaker"]["phase"] == "Failed"  # the API answers 500
    assert done["error-source"]["phase"] == "Succeeded"
    assert int(done["error-source"]["findings"]["matches"]) > 0  # ERROR lines in the log
    assert done["scale-out"]["phase"] == "Succeeded"  # two replicas share the host port
    assert done["reindex"]["phase"] in ("Skipped", "Succeeded")
    assert done["clear-cache"]["phase"] in ("Skipped", "Succeeded")
    assert done["recheck-error-rate"]["phase"] == "Failed"  # scaling out did not help
    assert done["rollback"]["phase"] == "Succeeded"
    assert done["rollback"]["decidedBy"] == COMMANDER
    assert done["verify"]["phase"] == "Succeeded"
    assert deployment(kube, "{.spec.replicas}") == "2"
    assert release not in deployment(kube, "{.spec.template.spec.containers[0].env}")
    answer = stack.http("GET", "/api/inventory/stats")
    assert answer is not None and answer[0] == 200
    record_recovery(request, status, name)
    incidents.resolve(name, COMMANDER, "the release failed every inventory request")
    kube.out("-n", NAMESPACE, "set", "env", "deployment/dashboard", "RELEASE-")


def test_slow_api_gets_more_memory(
    stack: Stack,
    incidents: Incidents,
    kube: Kubectl,
    traffic: Callable[[str], None],
    request: pytest.FixtureRequest,
) -> None:
    apply_runbooks(stack)
    stack.inject("latency", rate=1.0, latencyMs=2500)
    traffic("/api/inventory/stats")
    eventually(
        lambda: (stack.prometheus(P99_MS) or 0) > 2000,
        timeout=90,
        what="Prometheus seeing p99 above 2000 ms",
    )
    name = unique("slow")
    incidents.open(name, alert("HighLatency", "p99 latency above 2000ms"), ONCALL, E2E_LABEL)

    status = incidents.wait(name, {"AwaitingApproval", "Escalated"}, timeout=180)
    assert status["phase"] == "AwaitingApproval", incidents.explain(name)
    assert status["runbook"] == "high-latency"
    assert status["currentStep"] == "more-memory"
    found = incidents.steps(name)
    assert found["p99-latency"]["phase"] == "Failed"
    assert float(found["p99-latency"]["findings"]["value"]) > 2000
    assert found["endpoint-latency"]["phase"] == "Failed"  # 2.5 s > maxLatency 2s

    incidents.approve(name, "more-memory", COMMANDER)
    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=180)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    done = incidents.steps(name)
    assert done["more-memory"]["phase"] == done["verify"]["phase"] == "Succeeded"
    assert done["index-inventory-sku"]["phase"] in ("Skipped", "Succeeded")
    resources = "{.spec.template.spec.containers[0].resources"
    assert deployment(kube, resources + ".limits.memory}") == "4Gi"
    assert deployment(kube, resources + ".requests.memory}") == "1Gi"
    record_recovery(request, status, name)
    incidents.resolve(name, COMMANDER, "the dashboard slowed down; restarted with more memory")
