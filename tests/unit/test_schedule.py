"""The clock wakes an Incident exactly when a decision would change, and not before.

For each scenario: decide once, ask ``next_due``, then decide again at moments before the
due time (nothing changes) and at it (something does). A resolved Incident is never due.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from incident_operator.domain import engine, lifecycle, schedule
from incident_operator.domain.policy import load_policy
from incident_operator.domain.story import RunbookChoice
from incident_operator.models.incident import IncidentStatus
from incident_operator.models.objects import IncidentObject
from incident_operator.models.runbook import RunbookSpec

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
POLICY = load_policy()
CHOICE = RunbookChoice("gated", "RunbookSelected", "named", None, 300)
GATED = RunbookSpec.model_validate(
    {
        "title": "Gated",
        "rto": {"mitigation": "5m"},
        "safety": {"approvalTimeout": "3m"},
        "recovery": [
            {
                "name": "flush",
                "requiresApproval": True,
                "action": {"type": "redisFlushDb"},
            }
        ],
        "targets": {"redis": {"host": "127.0.0.1"}},
    }
)


def _incident(spec: dict[str, Any], status: IncidentStatus) -> IncidentObject:
    return IncidentObject.parse(
        {
            "metadata": {
                "name": "i",
                "namespace": "n",
                "uid": "u",
                "generation": 1,
                "creationTimestamp": T0.isoformat(),
            },
            "spec": {"service": "cache", "summary": "cache full", **spec},
            "status": status.to_k8s(),
        }
    )


def _decide(
    spec: dict[str, Any], status: IncidentStatus, now: dt.datetime, runbook: RunbookSpec | None
) -> IncidentStatus:
    story = lifecycle.start(_incident(spec, status), now, POLICY)
    level = lifecycle.advance(story, CHOICE)
    if runbook is not None:
        engine.next_step(story, runbook, {}, POLICY, level)
    return lifecycle.finish(story).status


def _settle(spec: dict[str, Any], runbook: RunbookSpec | None) -> IncidentStatus:
    return _decide(spec, IncidentStatus(), T0, runbook)


SCENARIOS = {
    "unacknowledged level 1": ({"severity": 1}, None),
    "acknowledged level 2": ({"severity": 2, "acknowledgedBy": "alice"}, None),
    "acknowledged, waiting for approval": ({"severity": 3, "acknowledgedBy": "bob"}, GATED),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_nothing_changes_before_the_due_time_and_something_does_at_it(name: str) -> None:
    spec, runbook = SCENARIOS[name]
    status = _settle(spec, runbook)
    for _ in range(6):  # follow the clock through several due times
        due = schedule.next_due(status, POLICY, runbook)
        assert due is not None and due > T0
        before = due - dt.timedelta(milliseconds=10)
        assert _decide(spec, status, before, runbook) == status, f"changed before {due}"
        changed = _decide(spec, status, due, runbook)
        assert changed != status, f"nothing happened at {due}"
        status = changed


def test_the_first_due_time_of_an_unacknowledged_critical_is_its_response_deadline() -> None:
    status = _settle({"severity": 1}, None)
    assert schedule.next_due(status, POLICY, None) == T0 + dt.timedelta(minutes=2) + schedule.MARGIN


def test_an_acknowledged_incident_is_due_for_its_next_update_only() -> None:
    status = _settle({"severity": 2, "acknowledgedBy": "alice"}, None)
    assert status.notifications is not None
    assert schedule.next_due(status, POLICY, None) == (
        status.notifications.next_update_at + schedule.MARGIN
    )


def test_a_resolved_incident_is_never_due() -> None:
    spec = {
        "severity": 1,
        "resolution": {"resolvedBy": "alice", "rootCause": "bad deploy"},
    }
    status = _settle(spec, None)
    assert status.resolved_at is not None
    assert schedule.next_due(status, POLICY, None) is None
