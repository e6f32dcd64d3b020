"""Playbook: Dashboard Service Outage. A killed server (a restart fixes it) and a bad deploy
(only the approved rollback does)."""

from __future__ import annotations

import pytest
from tests.fixtures.cluster import eventually

from e2e.conftest import E2E_LABEL, apply_runbooks, phases, record_recovery, unique
from incident_demo.incidents import Incidents
from incident_demo.kube import Kubectl
from incident_demo.stack import COMMANDER, NAMESPACE, ONCALL, Stack

pytestmark = pytest.mark.cluster


def outage(summary: str) -> dict[str, object]:
    return {
        "service": "dashboard",
        "summary": summary,
        "severity": 2,
        "acknowledgedBy": ONCALL,
        "roles": {"incidentCommander": COMMANDER, "technicalLead": ONCALL},
    }


def test_killed_server_is_restarted(
    stack: Stack, incidents: Incidents, kube: Kubectl, request: pytest.FixtureRequest
) -> None:
    apply_runbooks(stack)
    before = stack.container("dashboard")
    stack.kill_server("dashboard")
    eventually(lambda: stack.health() == 0, what="the dashboard's server gone")
    eventually(lambda: not stack.ready("dashboard"), what="the dashboard pod not Ready")
    name = unique("dashboard-killed")
    incidents.open(name, outage("Dashboard not loading: /health timing out"), ONCALL, E2E_LABEL)

    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=180)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    assert status["runbook"] == "dashboard-outage"
    done = phases(incidents.steps(name))
    assert done["health-endpoint"] == "Failed"
    assert done["service-status"] == "Failed"  # the pod is not Ready
    assert done["restart"] == done["settle"] == done["verify"] == "Succeeded"
    assert done["rollback"] == done["verify-rollback"] == "Skipped"
    assert done["monitor-errors"] == "Succeeded"
    assert "health-endpoint" in status["diagnosis"]["suspectedCause"]
    # A new container, and a new server process in it.
    assert stack.health() == 200
    assert stack.container("dashboard") not in (None, before)
    record_recovery(request, status, name)

    incidents.resolve(name, COMMANDER, "dashboard server process killed", "dashboard down")
    incidents.wait(name, {"Resolved"}, timeout=60)
    described = kube.out("-n", NAMESPACE, "describe", "incident", name)
    for reason in (
        "Detected",
        "Classified",
        "RunbookSelected",
        "StepFailed",
        "Diagnosed",
        "StepSucceeded",
        "StepSkipped",
        "Mitigated",
        "Resolved",
    ):
        assert reason in described, reason


def test_bad_deploy_is_rolled_back_after_approval(
    stack: Stack, incidents: Incidents, kube: Kubectl, request: pytest.FixtureRequest
) -> None:
    apply_runbooks(stack, {"dashboard-outage": {"verify": {"retries": 0}}})
    deploy = ("-n", NAMESPACE, "deployment/dashboard")
    kube.out("set", "image", *deploy, "dashboard=localhost/incident-demo-dashboard:v2-broken")
    eventually(lambda: stack.health() == 500, timeout=120, what="the broken build live")
    name = unique("dashboard-bad-deploy")
    incidents.open(name, outage("/health returning 5xx errors after deploy"), ONCALL, E2E_LABEL)

    # The restart brings back the same broken build: the runbook asks for a rollback.
    status = incidents.wait(name, {"AwaitingApproval", "Escalated"}, timeout=240)
    assert status["phase"] == "AwaitingApproval", incidents.explain(name)
    assert status["currentStep"] == "rollback"
    steps = incidents.steps(name)
    assert steps["restart"]["phase"] == "Failed"  # the new pod never got Ready
    assert steps["verify"]["phase"] == "Failed"
    assert steps["recent-deployments"]["findings"]["image"].endswith(":v2-broken")
    assert stack.health() == 500

    incidents.approve(name, "rollback", COMMANDER)
    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=180)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    done = incidents.steps(name)
    assert done["rollback"]["phase"] == "Succeeded"
    assert done["rollback"]["decidedBy"] == COMMANDER
    assert done["rollback"]["findings"]["previousImage"].endswith(":v2-broken")
    assert done["verify-rollback"]["phase"] == done["monitor-errors"]["phase"] == "Succeeded"
    image = kube.out(
        "-n", NAMESPACE, "get", "deployment/dashboard",
        "-o", "jsonpath={.spec.template.spec.containers[0].image}",
    )  # fmt: skip
    assert image == "localhost/incident-demo-dashboard:dev"
    assert stack.health() == 200
    record_recovery(request, status, name)
    incidents.resolve(name, COMMANDER, "build v2 broke /health; rolled back to v1")
    assert incidents.wait(name, {"Resolved"}, timeout=60)["phase"] == "Resolved"
