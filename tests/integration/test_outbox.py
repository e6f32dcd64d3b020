"""At-least-once notifications: a message committed to status is delivered even when the
operator dies before sending it, with the same Idempotency-Key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import LOOPBACK_TARGETS, operator_process
from tests.fixtures.receiver import Receiver

pytestmark = pytest.mark.cluster


def _outbox(objects: Objects) -> list[dict[str, Any]]:
    state = objects.status("incidents", "lost").get("notifications") or {}
    outbox: list[dict[str, Any]] = state.get("outbox", [])
    return outbox


def test_a_committed_message_survives_a_crash_before_it_was_sent(
    objects: Objects,
    operator_identity: str,
    namespace: str,
    tmp_path: Path,
    receiver: Receiver,
    api_client: kubernetes.client.ApiClient,
) -> None:
    kubernetes.client.CoreV1Api(api_client).create_namespaced_secret(
        namespace, {"metadata": {"name": "hooks"}, "stringData": {"url": receiver.url}}
    )
    policy = {
        **LOOPBACK_TARGETS,
        "deliveryAttempts": 1,
        "deliveryTimeout": "30s",
        "channels": [
            {"name": "ops", "kind": "webhook", "urlSecretRef": {"name": "hooks", "key": "url"}}
        ],
    }
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    env = {"INCIDENT_OPERATOR_POLICY": str(policy_path)}
    receiver.mode, receiver.hang_seconds = "hang", 60.0  # the first send never completes
    incident = {
        "kind": "Incident",
        "metadata": {"name": "lost"},
        "spec": {"service": "dashboard", "summary": "down", "severity": 2},
    }
    with operator_process(namespace, tmp_path, env=env) as first:
        objects.create("incidents", incident)
        eventually(lambda: receiver.attempts >= 1, what="the first delivery to start")
        assert "Initial" in [m["kind"] for m in _outbox(objects)], "committed, not sent"
        first.kill()  # dies mid-send: the message is in status, not at the receiver
    assert receiver.of_kind("Initial") == []
    receiver.mode = "ok"
    with operator_process(namespace, tmp_path, env=env):
        delivered = eventually(lambda: receiver.of_kind("Initial"), what="the redelivery")
        eventually(lambda: not _outbox(objects), what="the outbox to empty")
    key = delivered[0]["idempotencyKey"]
    assert key.endswith("/Initial/0") and all(
        m["idempotencyKey"] == key for m in receiver.of_kind("Initial")
    )
    delivered_lines = [
        e["message"]
        for e in objects.status("incidents", "lost")["timeline"]
        if e["reason"] == "NotificationDelivered"
    ]
    assert sum(line.startswith("Initial ") for line in delivered_lines) == 1
