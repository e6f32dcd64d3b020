"""``kubectl describe inc`` reads as the timeline: Events in the order status lists them.

Many timeline entries share a second (creation alone gives Detected, Classified, the runbook
choice and the initial notification); Events with microsecond ``eventTime`` keep them in order.
"""

from __future__ import annotations

import pytest

from tests.fixtures.cluster import Objects, eventually, kubectl
from tests.fixtures.operator import OperatorFactory

pytestmark = pytest.mark.cluster

QUICK = {
    "kind": "Runbook",
    "metadata": {"name": "quick"},
    "spec": {
        "title": "Quick steps",
        "match": {"services": ["dashboard"]},
        "rto": {"mitigation": "5m"},
        "diagnosis": [
            {"name": f"pause-{i}", "action": {"type": "wait", "duration": "10ms"}} for i in range(3)
        ],
        "recovery": [{"name": "settle", "action": {"type": "wait", "duration": "10ms"}}],
    },
}


def _described_reasons(namespace: str) -> list[str]:
    text = kubectl("describe", "inc", "quick", "-n", namespace).stdout
    events = text[text.index("Events:") :].splitlines()[3:]
    return [line.split()[1] for line in events if line.strip()]


def test_describe_lists_events_in_timeline_order(
    objects: Objects, operator: OperatorFactory, namespace: str
) -> None:
    objects.create("runbooks", QUICK)
    with operator():
        objects.create(
            "incidents",
            {
                "kind": "Incident",
                "metadata": {"name": "quick"},
                "spec": {
                    "service": "dashboard",
                    "summary": "down",
                    "severity": 3,
                    "acknowledgedBy": "alice",
                },
            },
        )
        status = eventually(
            lambda: (s := objects.status("incidents", "quick")).get("phase") == "Monitoring" and s,
            what="the runbook to finish",
        )
        timeline = [entry["reason"] for entry in status["timeline"]]
        described = eventually(
            lambda: len(r := _described_reasons(namespace)) >= len(timeline) and r,
            what="every Event to be listed",
            describe=lambda: kubectl("describe", "inc", "quick", "-n", namespace).stdout,
        )
    assert described == timeline, kubectl("describe", "inc", "quick", "-n", namespace).stdout
    assert len({e["time"] for e in status["timeline"]}) == len(timeline), "times are distinct"
