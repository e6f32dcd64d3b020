"""Playbook: High Error Rate (>5%) and High Latency (p99 > 2000ms), seen through Prometheus."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.fixtures.cluster import Objects, eventually, kubectl
from tests.fixtures.operator import OperatorFactory

from e2e.conftest import apply_runbook, drive, steps
from incident_demo.stack import LocalStack

pytestmark = pytest.mark.cluster
POLICY = {"timeScale": 60}
ERROR_RATE = (
    'sum(rate(http_requests_total{code=~"5.."}[1m])) / '
    "clamp_min(sum(rate(http_requests_total[1m])), 1e-9)"
)


def prometheus_value(stack: LocalStack, query: str) -> float | None:
    answer = httpx.get(
        f"{stack.prometheus_url}/api/v1/query", params={"query": query}, timeout=5
    ).json()
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def alert_incident(name: str, alert: str, summary: str) -> dict[str, Any]:
    return {
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {
            "service": "dashboard",
            "summary": summary,
            "severity": 2,
            "acknowledgedBy": "oncall",
            "source": {"kind": "Alertmanager", "alertName": alert},
        },
    }


def test_high_error_rate_scales_out_and_recovers(
    stack: LocalStack,
    objects: Objects,
    operator: OperatorFactory,
    namespace: str,
    traffic: Callable[[str], None],
) -> None:
    apply_runbook(stack, objects, "high-error-rate")
    stack.inject("errors", rate=1.0)
    traffic("/api/inventory/stats")
    eventually(
        lambda: (prometheus_value(stack, ERROR_RATE) or 0) > 0.05,
        timeout=60,
        what="Prometheus sees the error rate",
    )
    with operator(POLICY):
        objects.create(
            "incidents", alert_incident("errors", "HighErrorRate", "Error rate above 5%")
        )
        drive(objects, "errors", until="Monitoring")
    done = steps(objects, "errors")
    assert done["error-rate"]["phase"] == "Failed"
    assert float(done["error-rate"]["findings"]["value"]) > 0.05
    assert done["scale-out"]["phase"] == "Succeeded"
    assert done["rollback"]["phase"] == "Skipped"  # one rollout only: not a bad deploy
    assert done["verify"]["phase"] == "Succeeded"
    replicas = kubectl(
        "get", "deployment", "dashboard", "-n", namespace, "-o", "jsonpath={.spec.replicas}"
    ).stdout
    assert replicas == "2"
    assert objects.status("incidents", "errors")["runbook"] == "high-error-rate"


def test_high_latency_gets_more_resources(
    stack: LocalStack,
    objects: Objects,
    operator: OperatorFactory,
    namespace: str,
    traffic: Callable[[str], None],
) -> None:
    apply_runbook(stack, objects, "high-latency")
    stack.inject("latency", rate=1.0, latencyMs=2500)
    traffic("/api/inventory/stats")
    with operator(POLICY):
        objects.create(
            "incidents", alert_incident("slow", "HighLatency", "p99 latency above 2000ms")
        )
        drive(objects, "slow", until="Monitoring", timeout=180)
    done = steps(objects, "slow")
    assert done["endpoint-latency"]["phase"] == "Failed"
    assert done["more-memory"]["phase"] == "Succeeded"
    assert done["more-memory"]["decidedBy"] == "incident-commander"
    assert done["verify"]["phase"] == "Succeeded"
    limit = kubectl(
        "get",
        "deployment",
        "dashboard",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].resources.limits.memory}",
    ).stdout
    assert limit == "4Gi"
