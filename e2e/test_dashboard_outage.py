"""Playbook: Dashboard Service Outage, end to end on a provoked failure."""

from __future__ import annotations

import pytest
from tests.fixtures.cluster import Objects, eventually, kubectl
from tests.fixtures.operator import OperatorFactory

from e2e.conftest import apply_runbook, approve, explain, phase_of, steps
from incident_demo.stack import LocalStack

pytestmark = pytest.mark.cluster
POLICY = {"timeScale": 60}


def incident() -> dict:  # type: ignore[type-arg]
    return {
        "kind": "Incident",
        "metadata": {"name": "dashboard-down"},
        "spec": {
            "service": "dashboard",
            "summary": "/health returning 5xx errors",
            "severity": 2,
            "acknowledgedBy": "oncall",
            "roles": {"incidentCommander": "vp-eng", "technicalLead": "tl"},
        },
    }


def test_crashed_dashboard_is_restarted_and_resolved(
    stack: LocalStack, objects: Objects, operator: OperatorFactory, namespace: str
) -> None:
    apply_runbook(stack, objects, "dashboard-outage")
    stack.inject("crash")
    eventually(lambda: stack.dashboard_health() is None, what="dashboard down")
    with operator(POLICY):
        objects.create("incidents", incident())
        eventually(
            lambda: phase_of(objects, "dashboard-down") == "Monitoring",
            timeout=120,
            what="runbook mitigated the outage",
        )
        assert stack.dashboard_health() == 200
        done = steps(objects, "dashboard-down")
        assert done["health-endpoint"]["phase"] == "Failed"
        assert done["restart"]["phase"] == "Succeeded"
        assert done["verify"]["phase"] == "Succeeded"
        assert done["rollback"]["phase"] == "Skipped"
        status = objects.status("incidents", "dashboard-down")
        assert "health-endpoint" in status["diagnosis"]["suspectedCause"]
        objects.patch_spec(
            "incidents",
            "dashboard-down",
            {"resolution": {"resolvedBy": "vp-eng", "rootCause": "dashboard process crashed"}},
        )
        eventually(lambda: phase_of(objects, "dashboard-down") == "Resolved", what="resolved")
    described = kubectl("describe", "inc", "dashboard-down", "-n", namespace).stdout
    for reason in (
        "Detected",
        "Classified",
        "RunbookSelected",
        "StepStarted",
        "StepFailed",
        "Diagnosed",
        "StepSucceeded",
        "Mitigated",
        "Resolved",
    ):
        assert reason in described, reason
    report = kubectl("get", "inc", "dashboard-down", "-n", namespace, "--no-headers").stdout
    assert "Resolved" in report and "dashboard-outage" in report


def test_bad_deploy_is_rolled_back_after_approval(
    stack: LocalStack, objects: Objects, operator: OperatorFactory, namespace: str
) -> None:
    apply_runbook(stack, objects, "dashboard-outage", {"verify": {"retries": 0}})
    kubectl(
        "set",
        "image",
        "deployment/dashboard",
        "dashboard=incident-operator/dashboard:v2-broken",
        "-n",
        namespace,
    )
    eventually(lambda: stack.dashboard_health() == 500, timeout=60, what="broken build live")
    with operator(POLICY):
        objects.create("incidents", incident())
        eventually(
            lambda: phase_of(objects, "dashboard-down") == "AwaitingApproval",
            timeout=120,
            what="rollback waits for the incident commander",
        )
        assert steps(objects, "dashboard-down")["verify"]["phase"] == "Failed"
        assert stack.dashboard_health() == 500  # restarting the bad build did not help
        approve(objects, "dashboard-down", "rollback")
        eventually(
            lambda: phase_of(objects, "dashboard-down") == "Monitoring",
            timeout=120,
            what="rolled back and verified",
            describe=lambda: explain(objects, "dashboard-down"),
        )
    assert stack.dashboard_health() == 200
    image = kubectl(
        "get",
        "deployment",
        "dashboard",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ).stdout
    assert image == "incident-operator/dashboard:v1"
    done = steps(objects, "dashboard-down")
    assert done["rollback"]["decidedBy"] == "incident-commander"
    assert done["verify-rollback"]["phase"] == "Succeeded"
