"""The Incident's clock never waits for a running step (issue: a step blocked the clock).

A runbook's first step runs for 60 s. While it runs, a responder acknowledges, and a
stakeholder update falls due: both are decided and committed on time, not when the step ends.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import kubernetes
import pytest

from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import OperatorFactory
from tests.fixtures.receiver import Receiver

pytestmark = pytest.mark.cluster
STEP_SECONDS = 60
CADENCE_SECONDS = 20

RUNBOOK = {
    "kind": "Runbook",
    "metadata": {"name": "slow"},
    "spec": {
        "title": "A first step that takes a minute",
        "match": {"services": ["dashboard"]},
        "rto": {"mitigation": "10m"},
        "diagnosis": [
            {
                "name": "settle",
                "timeout": f"{STEP_SECONDS + 30}s",
                "action": {"type": "wait", "duration": f"{STEP_SECONDS}s"},
            },
        ],
    },
}


def _policy() -> dict[str, Any]:
    return {
        "deliveryAttempts": 1,
        "deliveryTimeout": "2s",
        "channels": [
            {"name": "ops", "kind": "webhook", "urlSecretRef": {"name": "hooks", "key": "url"}}
        ],
        # Level 3: respond within 30 s, an update every 20 s: both fall inside the step.
        "levels": [{"level": 3, "responseTime": "30s", "updateCadence": f"{CADENCE_SECONDS}s"}],
    }


def _time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _step(status: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((s for s in status.get("steps", []) if s["name"] == name), None)


def test_acknowledgement_and_updates_are_decided_while_a_step_runs(
    objects: Objects,
    operator: OperatorFactory,
    api_client: kubernetes.client.ApiClient,
    namespace: str,
    receiver: Receiver,
) -> None:
    kubernetes.client.CoreV1Api(api_client).create_namespaced_secret(
        namespace, {"metadata": {"name": "hooks"}, "stringData": {"url": receiver.url}}
    )
    with operator(policy=_policy()):
        objects.create("runbooks", RUNBOOK)
        created = objects.create(
            "incidents",
            {
                "kind": "Incident",
                "metadata": {"name": "slow"},
                "spec": {"service": "dashboard", "summary": "Dashboard slow", "severity": 3},
            },
        )
        eventually(
            lambda: (
                (_step(objects.status("incidents", "slow"), "settle") or {}).get("phase")
                == "Running"
            ),
            what="the minute-long step to start",
        )
        born = _time(created["metadata"]["creationTimestamp"])
        time.sleep(max(0.0, born + 5 - time.time()))  # acknowledge 5 s after creation
        patched_at = time.time()
        objects.patch_spec("incidents", "slow", {"acknowledgedBy": "alice"})
        status = eventually(
            lambda: (s := objects.status("incidents", "slow")).get("acknowledgedAt") and s,
            timeout=10,
            what="acknowledgedAt",
        )
        noticed = time.time()
        assert _step(status, "settle")["phase"] == "Running", "the ack waited for the step"
        assert abs(_time(status["acknowledgedAt"]) - patched_at) <= 2.0
        assert noticed - patched_at < 5, "the acknowledgement was not decided promptly"

        first_update = eventually(
            lambda: receiver.of_kind("Update"), timeout=CADENCE_SECONDS + 10, what="update #1"
        )[0]
        status = objects.status("incidents", "slow")
        initial_at = _time(status["notifications"]["initialSentAt"])
        assert first_update["receivedAt"] - (initial_at + CADENCE_SECONDS) < 3.0
        assert _step(status, "settle")["phase"] == "Running", "the update waited for the step"

        final = eventually(
            lambda: (
                (s := objects.status("incidents", "slow"))
                and (_step(s, "settle") or {}).get("phase") == "Succeeded"
                and s
            ),
            timeout=STEP_SECONDS + 30,
            what="the step to finish",
        )
    conditions = {c["type"]: c for c in final.get("conditions", [])}
    assert "ResponseSLABreached" not in conditions
    assert conditions["Acknowledged"]["status"] == "True"
    assert final["timeToAcknowledgeSeconds"] < 7
