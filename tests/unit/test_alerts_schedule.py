"""Resolution from alerts and maintenance holds are due times of the clock: nothing changes
before ``next_due``, and the decision changes at it (like tests/unit/test_schedule.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from incident_operator.domain import (
    alert_resolution,
    alert_status,
    alerts,
    engine,
    lifecycle,
    schedule,
)
from incident_operator.domain import conditions as cond
from incident_operator.domain.policy import Policy, load_policy
from incident_operator.domain.story import RunbookChoice
from incident_operator.models.incident import IncidentStatus, StepPhase
from incident_operator.models.objects import IncidentObject
from incident_operator.models.runbook import RunbookSpec

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
CHOICE = RunbookChoice("restart", "RunbookSelected", "named", None, 300)
RESTART = RunbookSpec.model_validate(
    {
        "title": "Restart",
        "rto": {"mitigation": "5m"},
        "recovery": [{"name": "flush", "action": {"type": "redisFlushDb"}}],
        "targets": {"redis": {"host": "127.0.0.1"}},
    }
)
SPEC = {"service": "cache", "summary": "cache full", "severity": 3, "acknowledgedBy": "bob"}


def _incident(status: IncidentStatus) -> IncidentObject:
    meta = {
        "name": "i",
        "namespace": "n",
        "uid": "u",
        "generation": 1,
        "creationTimestamp": T0.isoformat(),
    }
    return IncidentObject.parse({"metadata": meta, "spec": SPEC, "status": status.to_k8s()})


def _decide(status: IncidentStatus, now: dt.datetime, policy: Policy) -> IncidentStatus:
    story = lifecycle.start(_incident(status), now, policy)
    level = lifecycle.advance(story, CHOICE)
    plan = engine.next_step(story, RESTART, {}, policy, level)
    held = plan.step.name if plan is not None and plan.destructive else None
    if alert_resolution.hold_for_maintenance(story, policy.maintenance, held):
        plan = None
    if plan is not None:
        engine.mark_running(story, plan, False)
    return lifecycle.finish(story).status


def _notify(status: IncidentStatus, state: str, at: dt.datetime) -> None:
    raw = {"status": state, "fingerprint": "a1", "labels": {"alertname": "RedisMemoryHigh"}}
    (piece,) = alerts.plan({"status": state, "alerts": [raw]}, "r", ("n",), 10).slices
    alert_status.record(status, piece, at)


def test_the_quiet_period_is_due_and_resolves_at_its_end_only() -> None:
    policy = load_policy(
        overrides={"alerts": {"resolveFromAlerts": {"enabled": True, "quietPeriod": "5m"}}}
    )
    status = IncidentStatus()
    _notify(status, "firing", T0)
    status = _decide(status, T0, policy)
    assert status.steps[0].phase.value == "Running"
    status.steps[0].phase = StepPhase.SUCCEEDED  # the step's result, as steps.py commits it
    status = _decide(status, T0 + dt.timedelta(seconds=1), policy)
    assert status.phase is not None and status.phase.value == "Monitoring"
    resolved_at = T0 + dt.timedelta(seconds=2)
    _notify(status, "resolved", resolved_at)
    status = _decide(status, resolved_at, policy)
    due = schedule.next_due(status, policy, RESTART)
    quiet_end = resolved_at + dt.timedelta(minutes=5)
    assert due is not None and due <= quiet_end + schedule.MARGIN
    assert alert_resolution.quiet_until(status, policy) == quiet_end
    before = _decide(status, quiet_end - dt.timedelta(milliseconds=10), policy)
    assert before == status, "nothing changes before the due time"
    after = _decide(status, quiet_end + schedule.MARGIN, policy)
    assert after.resolved_at is not None and after.resolved_by == "incident-operator"
    assert cond.find(after.conditions, cond.RESOLVED) is not None
    told = [e.reason for e in after.timeline]
    assert told.index("MonitoringAlerts") < told.index("AlertsVerified") < told.index("Resolved")
    assert schedule.next_due(after, policy, RESTART) is None


def test_a_new_firing_in_the_quiet_period_cancels_the_resolution() -> None:
    policy = load_policy(
        overrides={"alerts": {"resolveFromAlerts": {"enabled": True, "quietPeriod": "5m"}}}
    )
    status = IncidentStatus()
    _notify(status, "firing", T0)
    status = _decide(status, T0, policy)
    status.steps[0].phase = StepPhase.SUCCEEDED
    _notify(status, "resolved", T0)
    status = _decide(status, T0, policy)
    _notify(status, "firing", T0 + dt.timedelta(minutes=1))
    assert alert_resolution.quiet_until(status, policy) is None
    later = _decide(status, T0 + dt.timedelta(minutes=10), policy)
    assert later.resolved_at is None


def test_without_the_option_nothing_is_due_for_alerts() -> None:
    policy = load_policy()
    status = IncidentStatus()
    _notify(status, "firing", T0)
    _notify(status, "resolved", T0)
    assert alert_resolution.quiet_until(status, policy) is None


def _window(start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    return {
        "name": "upgrade",
        "services": ["cache"],
        "start": start.isoformat(),
        "end": end.isoformat(),
        "reason": "planned",
    }


def test_a_maintenance_window_holds_the_destructive_step_until_its_end() -> None:
    end = T0 + dt.timedelta(minutes=30)
    policy = load_policy(overrides={"maintenance": [_window(T0 - dt.timedelta(minutes=1), end)]})
    status = _decide(IncidentStatus(), T0, policy)
    assert status.maintenance is not None and status.maintenance.until == end
    assert not status.steps and "RemediationSuppressed" in [e.reason for e in status.timeline]
    due = schedule.next_due(status, policy, RESTART)
    assert due is not None and due <= end + schedule.MARGIN
    assert _decide(status, end - dt.timedelta(milliseconds=10), policy).steps == []
    after = _decide(status, end + schedule.MARGIN, policy)
    assert after.maintenance is None and after.steps[0].phase.value == "Running"
    assert "MaintenanceEnded" in [e.reason for e in after.timeline]
