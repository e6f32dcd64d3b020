"""Alertmanager posts to the operator's webhook; firing alerts become Incidents, once."""

from __future__ import annotations

import os
import socket
from typing import Any

import httpx
import pytest

from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import OperatorFactory

pytestmark = pytest.mark.cluster


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def payload(namespace: str, status: str = "firing") -> dict[str, Any]:
    return {
        "version": "4",
        "status": status,
        "receiver": "incident-operator",
        "groupLabels": {"alertname": "DashboardHighErrorRate"},
        "alerts": [
            {
                "status": status,
                "fingerprint": "c0ffee00d15ea5e5",
                "labels": {
                    "alertname": "DashboardHighErrorRate",
                    "severity": "critical",
                    "service": "dashboard",
                    "namespace": namespace,
                },
                "annotations": {
                    "summary": "5xx ratio above 5%",
                    "description": "error rate 0.07 over 5m",
                },
                "startsAt": "2026-11-27T12:00:00Z",
            }
        ],
    }


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> str:
    port = free_port()
    monkeypatch.setenv("INCIDENT_OPERATOR_WEBHOOK_HOST", "127.0.0.1")
    monkeypatch.setenv("INCIDENT_OPERATOR_WEBHOOK_PORT", str(port))
    monkeypatch.setenv("INCIDENT_OPERATOR_WEBHOOK_TOKEN", "test-token-123")
    return f"http://127.0.0.1:{port}/alertmanager"


def post(url: str, body: dict[str, Any], token: str = "test-token-123") -> httpx.Response:
    return httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_alerts_open_one_incident_and_resolution_is_recorded(
    objects: Objects, operator: OperatorFactory, namespace: str, webhook: str
) -> None:
    with operator():
        first = eventually(lambda: _try_post(webhook, payload(namespace)), what="webhook answering")
        name = first.json()["created"][0].split("/")[1]
        assert name.startswith("am-dashboardhigherrorrate-c0ffee00d1-")
        assert first.json()["created"] == [f"{namespace}/{name}"]
        again = post(webhook, payload(namespace))
        assert again.json()["existing"] == [f"{namespace}/{name}"]  # same fingerprint: no dupe
        status = eventually(
            lambda: (
                objects.status("incidents", name).get("severity")
                and objects.status("incidents", name)
            ),
            what="incident triaged",
        )
        assert status["severity"] == 1 and status["classifiedBy"] == "spec.severity"
        spec = objects.get("incidents", name)["spec"]
        assert spec["source"]["alertName"] == "DashboardHighErrorRate"
        assert spec["summary"] == "5xx ratio above 5%"

        assert post(webhook, payload(namespace, "resolved")).json()["resolved"]
        eventually(
            lambda: (
                "AlertResolved"
                in [e["reason"] for e in objects.status("incidents", name).get("timeline", [])]
            ),
            what="AlertResolved in the timeline",
        )
        assert objects.status("incidents", name)["phase"] != "Resolved"  # a human resolves

        assert post(webhook, payload(namespace), token="wrong").status_code == 401
        assert post(webhook, {"not": "alertmanager"}).status_code == 400
    items = objects.custom.list_namespaced_custom_object(
        "incidents.dev", "v1alpha1", namespace, "incidents"
    )["items"]
    assert len(items) == 1


def _try_post(url: str, body: dict[str, Any]) -> httpx.Response | None:
    try:
        return post(url, body)
    except httpx.ConnectError:
        return None


def test_operator_without_webhook_port_serves_nothing(
    objects: Objects, operator: OperatorFactory
) -> None:
    assert "INCIDENT_OPERATOR_WEBHOOK_PORT" not in os.environ
    with operator():
        objects.create(
            "incidents",
            {
                "kind": "Incident",
                "metadata": {"name": "plain"},
                "spec": {"service": "dashboard", "summary": "x", "severity": 4},
            },
        )
        eventually(
            lambda: objects.status("incidents", "plain").get("phase"), what="operator running"
        )
