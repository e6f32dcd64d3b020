"""The playbook's response lifecycle on a real API server with a real webhook receiver.

Policy durations run under a time scale (the same code at real scale in production), so a
level-2 response window of 5 minutes lasts one second here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import kubernetes
import pytest

from tests.fixtures.cluster import Objects, eventually, kubectl
from tests.fixtures.operator import OperatorFactory
from tests.fixtures.receiver import Receiver

pytestmark = pytest.mark.cluster
SCALE = 300  # level 2: respond within 5m -> 1s, update every 15m -> 3s


def policy(receiver_secret: str = "hooks", **extra: Any) -> dict[str, Any]:
    return {
        "timeScale": SCALE,
        "deliveryAttempts": 2,
        "deliveryTimeout": "1s",
        "channels": [
            {
                "name": "ops",
                "kind": "webhook",
                "urlSecretRef": {"name": receiver_secret, "key": "url"},
            }
        ],
        **extra,
    }


@pytest.fixture
def hooks_secret(
    api_client: kubernetes.client.ApiClient, namespace: str, receiver: Receiver
) -> str:
    kubernetes.client.CoreV1Api(api_client).create_namespaced_secret(
        namespace, {"metadata": {"name": "hooks"}, "stringData": {"url": receiver.url}}
    )
    return "hooks"


def incident(name: str = "dash", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"service": "dashboard", "summary": "Dashboard returns 503", **spec},
    }


def condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), None)


def reasons(status: dict[str, Any]) -> list[str]:
    return [entry["reason"] for entry in status.get("timeline", [])]


def test_operator_triages_a_new_incident(
    objects: Objects, operator: OperatorFactory, namespace: str
) -> None:
    with operator():
        objects.create("incidents", incident(impact={"revenueImpacting": True}))
        status = eventually(
            lambda: (
                objects.status("incidents", "dash").get("phase")
                and objects.status("incidents", "dash")
            ),
            what="status.phase",
        )
    assert status["severity"] == 1 and status["severityName"] == "CRITICAL"
    assert status["classifiedBy"] == "impact.revenueImpacting"
    assert condition(status, "Triaged")["status"] == "True"
    assert condition(status, "RunbookReady")["reason"] == "NoMatchingRunbook"
    assert reasons(status)[:2] == ["Detected", "Classified"]
    row = kubectl("get", "inc", "dash", "-n", namespace, "--no-headers").stdout.split()
    assert row[1:4] == ["1", "Escalated", "dashboard"]
    described = kubectl("describe", "inc", "dash", "-n", namespace).stdout
    assert "Classified" in described and "NoMatchingRunbook" in described


def test_escalation_cadence_ack_handover_resolve(
    objects: Objects,
    operator: OperatorFactory,
    hooks_secret: str,
    receiver: Receiver,
    namespace: str,
) -> None:
    with operator(policy()):
        objects.create("incidents", incident(severity=2, roles={"incidentCommander": "alice"}))
        eventually(lambda: receiver.of_kind("Initial"), what="initial notification")
        # Unacknowledged for 2+ response windows: two steps up the chain.
        eventually(
            lambda: len(receiver.of_kind("Escalation")) >= 2, timeout=20, what="two escalations"
        )
        status = objects.status("incidents", "dash")
        assert status["escalation"]["contacts"][:2] == ["On-Call Engineer", "Engineering Lead"]
        assert condition(status, "ResponseSLABreached")["reason"] == "NotAcknowledgedInTime"
        eventually(lambda: receiver.of_kind("Update"), timeout=20, what="update #1")
        assert "INCIDENT UPDATE #1" in receiver.of_kind("Update")[0]["text"]

        objects.patch_spec("incidents", "dash", {"acknowledgedBy": "bob"})
        acked = eventually(
            lambda: objects.status("incidents", "dash").get("acknowledgedBy"),
            what="acknowledgement",
        )
        assert acked == "bob"
        level_at_ack = objects.status("incidents", "dash")["escalation"]["level"]
        objects.patch_spec("incidents", "dash", {"roles": {"incidentCommander": "carol"}})
        eventually(
            lambda: objects.status("incidents", "dash").get("commander") == "carol", what="handover"
        )
        eventually(lambda: len(receiver.of_kind("Update")) >= 2, timeout=20, what="update #2")
        assert objects.status("incidents", "dash")["escalation"]["level"] == level_at_ack

        objects.patch_spec(
            "incidents",
            "dash",
            {
                "resolution": {
                    "resolvedBy": "carol",
                    "rootCause": "connection pool exhausted",
                    "impact": "dashboard users for 12 minutes",
                }
            },
        )
        resolved = eventually(lambda: receiver.of_kind("Resolution"), what="resolution message")
    text = resolved[0]["text"]
    assert "INCIDENT RESOLVED" in text and "Root Cause: connection pool exhausted" in text
    status = objects.status("incidents", "dash")
    assert status["phase"] == "Resolved" and status["resolvedBy"] == "carol"
    assert status["review"]["required"] is True and status["review"]["dueAt"]
    assert "CommandHandedOver" in reasons(status)
    numbers = [r["key"].rsplit("/", 1)[1] for r in receiver.of_kind("Update")]
    assert numbers == [str(n) for n in range(1, len(numbers) + 1)]
    assert len(receiver.keys()) == len(set(receiver.keys())), "a notification was sent twice"


def test_restart_keeps_numbering_and_never_resends(
    objects: Objects, operator: OperatorFactory, hooks_secret: str, receiver: Receiver
) -> None:
    with operator(policy()):
        objects.create("incidents", incident(severity=2, acknowledgedBy="alice"))
        eventually(lambda: receiver.of_kind("Update"), timeout=20, what="update #1")
    before = objects.status("incidents", "dash")
    sent_before = before["notifications"]["updatesSent"]
    deadline_before = before["responseDeadline"]
    with operator(policy()):
        eventually(
            lambda: len(receiver.of_kind("Update")) >= sent_before + 2,
            timeout=30,
            what="updates after restart",
        )
    after = objects.status("incidents", "dash")
    assert after["responseDeadline"] == deadline_before
    numbers = [int(r["key"].rsplit("/", 1)[1]) for r in receiver.of_kind("Update")]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(receiver.of_kind("Initial")) == 1
    assert len(receiver.keys()) == len(set(receiver.keys()))


@pytest.mark.parametrize("mode", ["fail", "hang"])
def test_failing_receiver_is_retried_and_response_goes_on(
    objects: Objects, operator: OperatorFactory, hooks_secret: str, receiver: Receiver, mode: str
) -> None:
    receiver.mode = mode
    with operator(policy()):
        objects.create("incidents", incident(severity=2))
        status = eventually(
            lambda: "NotificationFailed" in reasons(s := objects.status("incidents", "dash")) and s,
            timeout=30,
            what="NotificationFailed in the timeline",
        )
        failed = next(e for e in status["timeline"] if e["reason"] == "NotificationFailed")
        assert "after 2 attempts" in failed["message"]
        assert receiver.url not in str(status), "webhook URLs are secrets"
        # The response is not held up by the receiver: escalation still happens.
        eventually(
            lambda: objects.status("incidents", "dash").get("escalation"),
            timeout=20,
            what="escalation despite failing receiver",
        )
    assert receiver.attempts >= 2


# (severity, time scale): each scale makes the level's response window about one second.
LEVELS = [(1, 120), (2, 300), (3, 900), (4, 7200)]


@pytest.mark.parametrize(("severity", "scale"), LEVELS, ids=[f"level{s}" for s, _ in LEVELS])
def test_each_level_escalates_and_updates_on_its_own_clock(
    objects: Objects,
    operator: OperatorFactory,
    hooks_secret: str,
    receiver: Receiver,
    severity: int,
    scale: int,
) -> None:
    from incident_operator.domain.policy import load_policy

    level = load_policy().level(severity)
    with operator(policy(timeScale=scale)):
        objects.create("incidents", incident(severity=severity))
        eventually(
            lambda: len(receiver.of_kind("Escalation")) >= 2,
            timeout=30,
            what=f"level {severity} escalations",
        )
        eventually(lambda: receiver.of_kind("Update"), timeout=30, what="first update")
    status = objects.status("incidents", "dash")
    assert status["severityName"] == level.name
    assert status["escalation"]["contacts"][:2] == ["On-Call Engineer", "Engineering Lead"]
    detected = dt.datetime.fromisoformat(status["detectedAt"].replace("Z", "+00:00"))
    deadline = dt.datetime.fromisoformat(status["responseDeadline"].replace("Z", "+00:00"))
    assert (deadline - detected).total_seconds() == pytest.approx(
        level.response_seconds / scale, abs=0.01
    )
    sent = dt.datetime.fromisoformat(status["notifications"]["lastUpdateAt"].replace("Z", "+00:00"))
    initial = dt.datetime.fromisoformat(
        status["notifications"]["initialSentAt"].replace("Z", "+00:00")
    )
    # The first update comes one cadence after the initial notification (plus one tick at most).
    cadence = level.cadence_seconds / scale
    assert cadence <= (sent - initial).total_seconds() <= cadence + 1.5
    text = receiver.of_kind("Initial")[0]["text"]
    assert f"Severity: Level {severity} ({level.name})" in text
    assert f"Updates: Every {level.update_cadence}" in text
