"""The response lifecycle as pure decisions over time: SLAs, escalation, updates, review."""

from __future__ import annotations

import datetime as dt
from typing import Any

from incident_operator.domain import conditions as cond
from incident_operator.domain.lifecycle import decide
from incident_operator.domain.policy import load_policy
from incident_operator.domain.story import Decision, RunbookChoice
from incident_operator.models.incident import IncidentStatus, Phase
from incident_operator.models.objects import IncidentObject

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
RUNBOOK = RunbookChoice("dashboard-outage", "RunbookSelected", "matched", None, 300.0)
POLICY = load_policy()


def incident(spec: dict[str, Any], status: IncidentStatus | None = None) -> IncidentObject:
    body = {
        "metadata": {
            "name": "inc",
            "namespace": "ns",
            "uid": "u1",
            "generation": 1,
            "creationTimestamp": T0.isoformat(),
        },
        "spec": {"service": "dashboard", "summary": "Dashboard down", **spec},
        "status": status.to_k8s() if status else {},
    }
    return IncidentObject.parse(body)


def run(
    spec: dict[str, Any], minutes: list[float], choice: RunbookChoice = RUNBOOK
) -> list[Decision]:
    """Decide at each minute offset, feeding each new status into the next decision."""
    status: IncidentStatus | None = None
    decisions = []
    for minute in minutes:
        decision = decide(incident(spec, status), POLICY, choice, T0 + dt.timedelta(minutes=minute))
        status = decision.status
        decisions.append(decision)
    return decisions


def kinds(decision: Decision) -> list[str]:
    return [n.kind for n in decision.notifications]


def test_first_decision_triages_and_sends_initial_notification() -> None:
    (first,) = run({"severity": 1}, [0])
    status = first.status
    assert (status.severity, status.severity_name, status.phase) == (1, "CRITICAL", Phase.TRIAGED)
    assert status.response_deadline == T0 + dt.timedelta(minutes=2)
    assert status.runbook == "dashboard-outage"
    assert kinds(first) == ["Initial"]
    assert "Subject: INCIDENT: dashboard Outage" in first.notifications[0].text
    assert "Severity: Level 1 (CRITICAL)" in first.notifications[0].text
    reasons = [e.reason for e in first.entries]
    assert reasons[:2] == ["Detected", "Classified"]
    assert "WarRoomActivated" in reasons


def test_same_inputs_decide_nothing_new() -> None:
    first, second = run({"severity": 2}, [0, 0.5])
    assert second.entries == [] and second.notifications == []
    assert second.status == first.status


def test_level1_escalates_one_step_per_missed_response_window() -> None:
    decisions = run({"severity": 1}, [0, 1.9, 2.1, 4.1, 6.1, 8.1, 10.1, 20])
    levels = [d.status.escalation.level if d.status.escalation else 0 for d in decisions]
    assert levels == [0, 0, 1, 2, 3, 4, 4, 4]
    assert decisions[-1].status.escalation is not None
    assert decisions[-1].status.escalation.contacts == POLICY.escalation_chain
    assert cond.is_true(decisions[2].status.conditions, cond.RESPONSE_SLA_BREACHED)
    assert decisions[2].status.phase == Phase.ESCALATED
    assert "Escalation" in kinds(decisions[2])


def test_level3_response_window_is_fifteen_minutes() -> None:
    decisions = run({"severity": 3}, [0, 14.9, 15.1])
    assert decisions[1].status.escalation is None or decisions[1].status.escalation.level == 0
    assert decisions[2].status.escalation is not None
    assert decisions[2].status.escalation.level == 1


def test_acknowledgement_in_time_stops_escalation() -> None:
    first = run({"severity": 2}, [0])[0]
    acked = decide(
        incident({"severity": 2, "acknowledgedBy": "alice"}, first.status),
        POLICY,
        RUNBOOK,
        T0 + dt.timedelta(minutes=3),
    )
    assert acked.status.acknowledged_by == "alice"
    assert acked.status.time_to_acknowledge_seconds == 180
    assert not cond.is_true(acked.status.conditions, cond.RESPONSE_SLA_BREACHED)
    later = decide(
        incident({"severity": 2, "acknowledgedBy": "alice"}, acked.status),
        POLICY,
        RUNBOOK,
        T0 + dt.timedelta(minutes=30),
    )
    assert later.status.escalation is None or later.status.escalation.level == 0
    assert later.status.phase == Phase.INVESTIGATING


def test_late_acknowledgement_records_breach() -> None:
    first = run({"severity": 1}, [0])[0]
    late = decide(
        incident({"severity": 1, "acknowledgedBy": "bob"}, first.status),
        POLICY,
        RUNBOOK,
        T0 + dt.timedelta(minutes=3),
    )
    breach = cond.find(late.status.conditions, cond.RESPONSE_SLA_BREACHED)
    assert breach is not None and breach.reason == "AcknowledgedLate"


def test_updates_follow_each_level_cadence_and_are_numbered() -> None:
    for severity, cadence in ((1, 10), (2, 15), (3, 60), (4, 1440)):
        decisions = run(
            {"severity": severity, "acknowledgedBy": "alice"},
            [0, cadence - 0.1, cadence + 0.1, 2 * cadence + 0.2],
        )
        numbers = [
            n.key.rsplit("/", 1)[1]
            for d in decisions
            for n in d.notifications
            if n.kind == "Update"
        ]
        assert numbers == ["1", "2"], severity
        assert decisions[-1].status.notifications is not None
        assert decisions[-1].status.notifications.updates_sent == 2


def test_missed_windows_collapse_into_one_update() -> None:
    decisions = run({"severity": 1, "acknowledgedBy": "a"}, [0, 95])
    assert [n.kind for n in decisions[1].notifications if n.kind == "Update"] == ["Update"]


def test_commander_handover_is_recorded() -> None:
    first = run({"severity": 2, "roles": {"incidentCommander": "alice"}}, [0])[0]
    assert first.status.commander == "alice"
    handed = decide(
        incident({"severity": 2, "roles": {"incidentCommander": "carol"}}, first.status),
        POLICY,
        RUNBOOK,
        T0 + dt.timedelta(minutes=1),
    )
    assert handed.status.commander == "carol"
    assert [e.reason for e in handed.entries] == ["CommandHandedOver"]
    assert "from alice to carol" in handed.entries[0].message


def test_resolution_sets_review_and_sends_resolved_message() -> None:
    first = run({"severity": 1}, [0])[0]
    spec = {
        "severity": 1,
        "acknowledgedBy": "alice",
        "resolution": {
            "resolvedBy": "alice",
            "rootCause": "bad deploy v2",
            "impact": "all dashboard users for 20m",
        },
    }
    resolved = decide(incident(spec, first.status), POLICY, RUNBOOK, T0 + dt.timedelta(minutes=1))
    status = resolved.status
    assert status.phase == Phase.RESOLVED
    assert status.review is not None and status.review.required
    assert status.review.due_at == T0 + dt.timedelta(minutes=1, hours=24)
    assert len(status.review.action_items) >= 4
    assert kinds(resolved) == ["Resolution"]
    text = resolved.notifications[0].text
    assert "INCIDENT RESOLVED" in text and "Root Cause: bad deploy v2" in text
    assert status.time_to_recover_seconds == 60
    after = decide(incident(spec, status), POLICY, RUNBOOK, T0 + dt.timedelta(hours=5))
    assert after.notifications == []


def test_review_deadlines_per_level() -> None:
    for severity, hours in ((1, 24), (2, 48), (3, None), (4, None)):
        spec = {"severity": severity, "resolution": {"resolvedBy": "a", "rootCause": "x"}}
        status = run(spec, [0])[0].status
        assert status.review is not None
        assert status.review.required == (hours is not None)
        if hours:
            assert status.review.due_at == T0 + dt.timedelta(hours=hours)


def test_rto_breach_recorded_when_recovery_takes_too_long() -> None:
    spec = {"severity": 2, "resolution": {"resolvedBy": "a", "rootCause": "x"}}
    first = run({"severity": 2}, [0])[0]
    late = decide(incident(spec, first.status), POLICY, RUNBOOK, T0 + dt.timedelta(minutes=6))
    assert cond.is_true(late.status.conditions, cond.RTO_BREACHED)


def test_no_runbook_escalates_and_says_why() -> None:
    choice = RunbookChoice(None, "NoMatchingRunbook", "No valid Runbook matches service x")
    (first,) = run({"severity": 3}, [0], choice)
    ready = cond.find(first.status.conditions, cond.RUNBOOK_READY)
    assert ready is not None and ready.reason == "NoMatchingRunbook"
    assert first.status.escalation is not None and first.status.escalation.level == 1
    assert first.status.phase == Phase.ESCALATED


def test_time_scale_shrinks_every_deadline() -> None:
    fast = load_policy(overrides={"timeScale": 60})
    decision = decide(incident({"severity": 1}), fast, RUNBOOK, T0)
    assert decision.status.response_deadline == T0 + dt.timedelta(seconds=2)
    assert decision.status.notifications is not None
    assert decision.status.notifications.next_update_at == T0 + dt.timedelta(seconds=10)


def test_timeline_is_bounded() -> None:
    from incident_operator.domain import timeline

    status = IncidentStatus()
    for i in range(130):
        timeline.append(status, T0, "StatusUpdate", f"update {i}")
    assert len(status.timeline) == 100
    assert status.timeline_folded == 30
    assert status.timeline[0].message == "update 30"


def test_action_items_added_after_resolution_reach_the_review() -> None:
    spec = {"severity": 2, "resolution": {"resolvedBy": "a", "rootCause": "x"}}
    resolved = run(spec, [0])[0].status
    item = {"description": "Alert on pool saturation", "owner": "dana", "priority": "High"}
    later = decide(
        incident({**spec, "actionItems": [item]}, resolved),
        POLICY,
        RUNBOOK,
        T0 + dt.timedelta(hours=1),
    )
    assert later.status.review is not None
    descriptions = [i.description for i in later.status.review.action_items]
    assert descriptions[-1] == "Alert on pool saturation" and len(descriptions) == 5


def test_admins_can_replace_the_message_templates() -> None:
    custom = load_policy(
        overrides={
            "templates": {
                "initial": "[{severity_name}] {service}: {summary} -- IC {commander}",
                "update": "#{number} {service} {status}",
            }
        }
    )
    first = decide(
        incident({"severity": 2, "acknowledgedBy": "a", "roles": {"incidentCommander": "dana"}}),
        custom,
        RUNBOOK,
        T0,
    )
    assert first.notifications[0].text == "[HIGH] dashboard: Dashboard down -- IC dana"
    later = decide(
        incident({"severity": 2, "acknowledgedBy": "a"}, first.status),
        custom,
        RUNBOOK,
        T0 + dt.timedelta(minutes=16),
    )
    update = next(n for n in later.notifications if n.kind == "Update")
    assert (
        update.text == "#1 dashboard INVESTIGATING"
    )  # unknown fields: tests/unit/test_templates.py
