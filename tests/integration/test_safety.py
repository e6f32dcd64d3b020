"""Safety on the real API server: one remediation per workload, cooldowns across incidents."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import OperatorFactory

pytestmark = pytest.mark.cluster

#: A real container on the node (the image is built there, nothing is pulled); sleep as PID 1
#: ignores SIGTERM, so a replaced pod stops after its 1 s grace period.
SLEEPER: dict[str, Any] = {
    "terminationGracePeriodSeconds": 1,
    "containers": [
        {
            "name": "c",
            "image": "localhost/incident-base:bookworm",
            "imagePullPolicy": "Never",
            "command": ["sleep", "infinity"],
        }
    ],
}


def deployment(api_client: Any, namespace: str, blocked: bool = False) -> Any:
    apps = kubernetes.client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "dashboard"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "dashboard"}},
                "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": {"app": "dashboard"}},
                    "spec": SLEEPER,
                },
            },
        },
    )
    eventually(
        lambda: apps.read_namespaced_deployment("dashboard", namespace).status.ready_replicas == 1,
        timeout=120,
        what="deployment ready (a real container on the node)",
    )
    if blocked:  # a quota of one pod: a restart's rollout cannot finish
        kubernetes.client.CoreV1Api(api_client).create_namespaced_resource_quota(
            namespace, {"metadata": {"name": "one-pod"}, "spec": {"hard": {"pods": "1"}}}
        )
    return apps


def restart_runbook(timeout: str = "20s") -> dict[str, Any]:
    return {
        "kind": "Runbook",
        "metadata": {"name": "restart"},
        "spec": {
            "title": "Restart dashboard",
            "rto": {"mitigation": "5m"},
            "match": {"services": ["dashboard"]},
            "recovery": [
                {
                    "name": "restart",
                    "timeout": timeout,
                    "onFailure": "Escalate",
                    "action": {"type": "restartWorkload", "workload": {"name": "dashboard"}},
                }
            ],
            "safety": {"cooldown": "10m", "maxAttemptsPerTarget": 3},
        },
    }


def incident(name: str) -> dict[str, Any]:
    return {
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {
            "service": "dashboard",
            "summary": "down",
            "severity": 3,
            "acknowledgedBy": "alice",
        },
    }


def timeline(objects: Objects, name: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = objects.status("incidents", name).get("timeline", [])
    return entries


def test_second_incident_waits_while_the_first_remediates(
    objects: Objects, operator: OperatorFactory, api_client: Any, namespace: str
) -> None:
    deployment(api_client, namespace, blocked=True)
    objects.create("runbooks", restart_runbook())
    with operator():
        objects.create("incidents", incident("first"))
        eventually(
            lambda: any(
                s["name"] == "restart" and s["phase"] == "Running"
                for s in objects.status("incidents", "first").get("steps", [])
            ),
            what="first incident restarting",
        )
        objects.create("incidents", incident("second"))
        waiting = eventually(
            lambda: next(
                (e for e in timeline(objects, "second") if e["reason"] == "WaitingForTarget"), None
            ),
            what="second incident waiting for the target",
        )
        assert f"holds target {namespace}-deployment-dashboard" in waiting["message"]
        (step,) = objects.status("incidents", "second")["steps"]
        # Recorded as waiting, never started: no attempt, and the gate's reason as data.
        assert (step["phase"], step["attempts"], step["blockedBy"]) == ("Pending", 0, "TargetBusy")


def test_flapping_service_is_not_restarted_in_a_loop(
    objects: Objects, operator: OperatorFactory, api_client: Any, namespace: str
) -> None:
    apps = deployment(api_client, namespace)
    objects.create("runbooks", restart_runbook())
    with operator():
        objects.create("incidents", incident("first"))
        eventually(
            lambda: objects.status("incidents", "first").get("phase") == "Monitoring",
            timeout=60,
            what="first restart done",
        )
        generation = apps.read_namespaced_deployment("dashboard", namespace).metadata.generation
        objects.create("incidents", incident("again"))
        status = eventually(
            lambda: (s := objects.status("incidents", "again")).get("escalation") and s,
            what="second incident escalated",
        )
    restart = next(s for s in status["steps"] if s["name"] == "restart")
    assert restart["phase"] == "Failed" and restart["findings"]["guard"] == "CooldownActive"
    assert "cooling down" in restart["message"]
    assert (
        apps.read_namespaced_deployment("dashboard", namespace).metadata.generation == generation
    )  # not restarted a second time
