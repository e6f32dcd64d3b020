"""The real Alertmanager posts to the operator's receiver: one Incident per group, repeats
counted, resolution from alerts with verification, maintenance windows, and a receiver that
refuses to start without a token."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import yaml

from incident_demo import _proc
from tests.fixtures.alerting import Alertmanager, alertmanager_bin, run_alertmanager
from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import LOOPBACK_TARGETS, OperatorFactory

pytestmark = pytest.mark.cluster
__all__ = ["alertmanager_bin"]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch, namespace: str) -> dict[str, str]:
    port = _proc.free_port()
    token = secrets.token_hex(16)
    monkeypatch.setenv("INCIDENT_OPERATOR_WEBHOOK_HOST", "127.0.0.1")
    monkeypatch.setenv("INCIDENT_OPERATOR_WEBHOOK_PORT", str(port))
    monkeypatch.setenv("INCIDENT_OPERATOR_WEBHOOK_TOKEN", token)
    monkeypatch.setenv("INCIDENT_OPERATOR_WATCH_NAMESPACES", namespace)
    return {"url": f"http://127.0.0.1:{port}/alertmanager", "token": token}


@pytest.fixture
def alertmanager(
    alertmanager_bin: Path, receiver: dict[str, str], tmp_path: Path
) -> Iterator[Alertmanager]:
    with run_alertmanager(
        alertmanager_bin, tmp_path / "am", receiver["url"], receiver["token"]
    ) as am:
        yield am


def am_alert(name: str, instance: str, *, resolved: bool = False, **labels: str) -> dict[str, Any]:
    """An alert as Prometheus posts it to Alertmanager's API v2."""
    now = dt.datetime.now(dt.UTC)
    body: dict[str, Any] = {
        "labels": {
            "alertname": name,
            "service": "dashboard",
            "severity": "critical",
            "instance": instance,
            **labels,
        },
        "annotations": {"summary": f"{name} on {instance}", "description": "seen by the test"},
        "startsAt": (now - dt.timedelta(minutes=1)).isoformat(),
        "generatorURL": "http://127.0.0.1:9090/graph",
    }
    if resolved:
        body["endsAt"] = now.isoformat()
    return body


def incidents(objects: Objects) -> list[dict[str, Any]]:
    listed = objects.custom.list_namespaced_custom_object(
        "incidents.dev", "v1alpha1", objects.namespace, "incidents"
    )
    items: list[dict[str, Any]] = listed["items"]
    return items


def reasons(objects: Objects, name: str) -> list[str]:
    return [e["reason"] for e in objects.status("incidents", name).get("timeline", [])]


RUNBOOK = {
    "kind": "Runbook",
    "metadata": {"name": "dashboard-outage"},
    "spec": {
        "title": "Dashboard outage",
        "rto": {"mitigation": "5m"},
        "match": {"alertNames": ["DashboardDown"]},
        "recovery": [{"name": "settle", "action": {"type": "wait", "duration": "100ms"}}],
    },
}


def test_one_group_one_incident_repeats_counted_and_resolved_from_alerts(
    objects: Objects, operator: OperatorFactory, alertmanager: Alertmanager
) -> None:
    objects.create("runbooks", RUNBOOK)
    policy = {
        "timeScale": 60,
        "alerts": {"resolveFromAlerts": {"enabled": True, "quietPeriod": "2m"}},
    }
    with operator(policy=policy):
        eventually(lambda: _answers(alertmanager), what="operator receiver up")
        alertmanager.post_alerts([am_alert("DashboardDown", f"d{i}:9000") for i in range(3)])
        (first,) = eventually(lambda: incidents(objects), what="the group's Incident")
        name = first["metadata"]["name"]
        assert name.startswith("am-dashboarddown-")
        alertmanager.post_alerts([am_alert("DashboardDown", f"d{i}:9000") for i in range(5)])
        status = eventually(
            lambda: (
                (s := objects.status("incidents", name)).get("alerts", {}).get("total") == 5 and s
            ),
            what="the later alerts joined the same Incident",
        )
        assert status["runbook"] == "dashboard-outage"
        assert len(incidents(objects)) == 1, "alerts of one group open one Incident"
        eventually(
            lambda: objects.status("incidents", name).get("phase") == "Monitoring",
            what="runbook finished: Monitoring",
        )
        alertmanager.post_alerts(
            [am_alert("DashboardDown", f"d{i}:9000", resolved=True) for i in range(5)]
        )
        resolved = eventually(
            lambda: (s := objects.status("incidents", name)).get("phase") == "Resolved" and s,
            timeout=60,
            what="resolved by the operator after the quiet period",
        )
    assert resolved["resolvedBy"] == "incident-operator"
    told = reasons(objects, name)
    for reason in (
        "AlertFiring",
        "AlertsResolved",
        "MonitoringAlerts",
        "AlertsVerified",
        "Resolved",
    ):
        assert reason in told, told
    cond = {c["type"]: c for c in resolved["conditions"]}
    assert cond["Resolved"]["reason"] == "ResolvedFromAlerts"
    assert resolved["alerts"]["firing"] == 0 and resolved["alerts"]["notifications"] >= 2


def _answers(am: Alertmanager) -> bool:
    status = httpx.get(f"{am.url}/api/v2/status", timeout=5)
    return status.status_code == 200


def test_without_the_option_resolved_alerts_are_only_recorded_and_maintenance_suppresses(
    objects: Objects,
    operator: OperatorFactory,
    alertmanager: Alertmanager,
    api_client: kubernetes.client.ApiClient,
) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    now = dt.datetime.now(dt.UTC)
    window = {
        "name": "db-upgrade",
        "services": ["postgres"],
        "start": (now - dt.timedelta(minutes=5)).isoformat(),
        "end": (now + dt.timedelta(hours=1)).isoformat(),
        "reason": "planned upgrade",
    }
    with operator(policy={"maintenance": [window]}):
        alertmanager.post_alerts([am_alert("DashboardDown", "d1:9000")])
        alertmanager.post_alerts([am_alert("PostgresDown", "p1:5432", service="postgres")])
        (incident,) = eventually(lambda: incidents(objects), what="dashboard Incident")
        name = incident["metadata"]["name"]
        events = eventually(
            lambda: [
                e
                for e in core.list_namespaced_event(objects.namespace).items
                if e.reason == "IncidentSuppressed"
            ],
            what="the suppression told as an Event",
        )
        assert "db-upgrade" in events[0].message and "PostgresDown" in events[0].message
        alertmanager.post_alerts([am_alert("DashboardDown", "d1:9000", resolved=True)])
        eventually(lambda: "AlertsResolved" in reasons(objects, name), what="resolution recorded")
        assert objects.status("incidents", name)["phase"] != "Resolved"  # a human resolves
    assert len(incidents(objects)) == 1


def test_alerts_for_namespaces_not_allowed_are_refused_alone(
    objects: Objects, operator: OperatorFactory, receiver: dict[str, str]
) -> None:
    body = {
        "status": "firing",
        "groupKey": "g1",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "A", "namespace": "kube-system"}},
            {"status": "firing", "labels": {"alertname": "A", "service": "api"}},
        ],
    }
    headers = {"Authorization": f"Bearer {receiver['token']}"}
    with operator():
        answer = eventually(lambda: _post(receiver["url"], body, headers), what="receiver up")
        assert answer.status_code == 207, answer.text
        entries = answer.json()["alerts"]
        assert entries[0]["status"] == "rejected" and "not allowed" in entries[0]["error"]
        assert entries[1]["outcome"] == "created"
        again = _post(receiver["url"], body, headers)
        assert again is not None and again.json()["alerts"][1]["outcome"] == "repeat"
        assert _post(receiver["url"], body, {"Authorization": receiver["token"]}).status_code == 401
    (incident,) = incidents(objects)
    assert incident["spec"]["service"] == "api"


def _post(url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response | None:
    try:
        return httpx.post(url, json=body, headers=headers, timeout=10)
    except httpx.ConnectError:
        return None


def test_the_receiver_refuses_to_start_without_a_token(
    kubeconfig: str, namespace: str, receiver: dict[str, str]
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "INCIDENT_OPERATOR_WEBHOOK_TOKEN"}
    command = ["run", "--no-leader-election", "-n", namespace]  # straight to the start-up
    done = subprocess.run(
        [sys.executable, "-m", "incident_operator", *command],
        env={**env, "INCIDENT_OPERATOR_NAMESPACE": namespace},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "alert receiver: receiver default has no token" in done.stderr


def test_a_destructive_step_runs_under_a_silence_removed_at_its_end(
    objects: Objects,
    operator: OperatorFactory,
    alertmanager: Alertmanager,
    services_env: dict[str, str],
) -> None:
    runbook = {
        "kind": "Runbook",
        "metadata": {"name": "redis-memory"},
        "spec": {
            "title": "Redis memory",
            "rto": {"mitigation": "5m"},
            "match": {"alertNames": ["RedisMemoryHigh"]},
            "targets": {
                "redis": {"host": "127.0.0.1", "port": int(services_env["REDIS_PORT"]), "db": 11}
            },
            "recovery": [{"name": "flush", "action": {"type": "redisFlushDb"}}],
        },
    }
    objects.create("runbooks", runbook)
    policy = {"alerts": {"silences": {"alertmanagerUrl": alertmanager.url, "duration": "10m"}}}
    with operator(policy=policy):
        eventually(lambda: _answers(alertmanager), what="Alertmanager up")
        alertmanager.post_alerts([am_alert("RedisMemoryHigh", "r1:6379", service="redis")])
        (incident,) = eventually(lambda: incidents(objects), what="the Redis Incident")
        name = incident["metadata"]["name"]
        eventually(lambda: "StepSucceeded" in reasons(objects, name), what="the step's result")
    told = reasons(objects, name)
    order = [told.index(r) for r in ("SilenceCreated", "SilenceRemoved", "StepSucceeded")]
    assert order == sorted(order), told
    (silence,) = [s for s in alertmanager.silences() if name in s["comment"]]
    assert silence["status"]["state"] == "expired"
    assert silence["matchers"] == [
        {"name": "service", "value": "redis", "isRegex": False, "isEqual": True}
    ]


def test_an_answered_alert_survives_an_operator_killed_right_after(
    objects: Objects,
    namespace: str,
    operator_identity: str,
    receiver: dict[str, str],
    tmp_path: Path,
) -> None:
    """The 2xx comes after the Incident and its status.alerts are committed: SIGKILL the
    operator the moment it answers, and every answered alert is in the cluster."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(LOOPBACK_TARGETS))
    env = {
        **os.environ,
        "INCIDENT_OPERATOR_POLICY": str(policy),
        "INCIDENT_OPERATOR_NAMESPACE": namespace,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "incident_operator", "run", "--standalone", "-n", namespace],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    body = {
        "status": "firing",
        "groupKey": '{}:{alertname="DashboardDown"}',
        "groupLabels": {"alertname": "DashboardDown"},
        "alerts": [
            {
                "status": "firing",
                "fingerprint": f"{i:04x}",
                "labels": {
                    "alertname": "DashboardDown",
                    "service": "dashboard",
                    "instance": f"d{i}",
                },
            }
            for i in range(7)
        ],
    }
    headers = {"Authorization": f"Bearer {receiver['token']}"}
    try:
        answer = eventually(lambda: _post(receiver["url"], body, headers), what="receiver up")
        process.kill()  # no graceful shutdown: as if the node died right after the answer
    finally:
        process.kill()
        process.wait(30)
    assert answer.status_code == 200, answer.text
    (name,) = [ref.split("/")[1] for ref in answer.json()["incidents"]]
    status = objects.status("incidents", name)
    assert status["alerts"]["total"] == 7 and status["alerts"]["firing"] == 7
    assert len(status["alerts"]["items"]) == 7


def test_correlation_merges_groups_of_one_service_into_one_incident(
    objects: Objects, operator: OperatorFactory, alertmanager: Alertmanager
) -> None:
    policy = {"alerts": {"correlation": {"byService": True, "window": "10m"}}}
    with operator(policy=policy):
        eventually(lambda: _answers(alertmanager), what="Alertmanager up")
        alertmanager.post_alerts([am_alert("DashboardDown", "d1:9000")])
        (first,) = eventually(lambda: incidents(objects), what="the first group's Incident")
        name = first["metadata"]["name"]
        alertmanager.post_alerts([am_alert("DashboardHighErrorRate", "d1:9000")])
        status = eventually(
            lambda: (
                len((s := objects.status("incidents", name)).get("alerts", {}).get("groups", []))
                == 2
                and s
            ),
            what="the second group joined",
        )
        alertmanager.post_alerts([am_alert("DashboardHighErrorRate", "d2:9000")])
        eventually(
            lambda: objects.status("incidents", name)["alerts"]["total"] == 3,
            what="the merged group's next notification found the same Incident",
        )
    assert len(incidents(objects)) == 1
    assert status["alerts"]["groupsMerged"] == 1
    assert "AlertGroupJoined" in reasons(objects, name)
