"""The safety gate's verdicts as decisions: run, wait (recorded in blockedBy), or refuse."""

from __future__ import annotations

import datetime as dt

from incident_operator.domain import conditions as cond
from incident_operator.domain import engine, guarding, lifecycle
from incident_operator.domain.policy import load_policy
from incident_operator.domain.story import RunbookChoice, Story
from incident_operator.models.incident import StepPhase
from incident_operator.models.objects import IncidentObject
from incident_operator.models.runbook import RunbookSpec

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
POLICY = load_policy()
CHOICE = RunbookChoice("r", "RunbookSelected", "named", None, 300)
RUNBOOK = RunbookSpec.model_validate(
    {
        "title": "Restart",
        "rto": {"mitigation": "5m"},
        "recovery": [
            {
                "name": "restart",
                "action": {"type": "restartWorkload", "workload": {"name": "dashboard"}},
            }
        ],
    }
)


def _story(status: object = None) -> tuple[Story, engine.StepToRun]:
    body = {
        "metadata": {"name": "i", "namespace": "n", "uid": "u", "generation": 1},
        "spec": {"service": "dashboard", "summary": "down", "severity": 2},
        "status": status or {},
    }
    story = lifecycle.start(IncidentObject.parse(body), T0, POLICY)
    level = lifecycle.advance(story, CHOICE)
    plan = engine.next_step(story, RUNBOOK, {}, POLICY, level)
    assert plan is not None
    return story, plan


def test_a_busy_target_makes_the_step_wait_and_says_why_once() -> None:
    story, plan = _story()
    busy = guarding.Verdict(False, guarding.TARGET_BUSY, "held by incident x")
    assert guarding.apply_verdict(story, plan, busy, POLICY, POLICY.level(2)) is None
    record = engine.find_record(story, "restart")
    assert record is not None and record.blocked_by == guarding.TARGET_BUSY
    assert [e.reason for e in story.entries].count("WaitingForTarget") == 1
    status = lifecycle.finish(story).status.to_k8s()

    again, plan = _story(status)
    assert guarding.apply_verdict(again, plan, busy, POLICY, POLICY.level(2)) is None
    assert "WaitingForTarget" not in [e.reason for e in again.entries], "logged twice"


def test_a_granted_verdict_clears_the_wait() -> None:
    story, plan = _story()
    guarding.apply_verdict(
        story, plan, guarding.Verdict(False, guarding.TARGET_BUSY, "busy"), POLICY, POLICY.level(2)
    )
    status = lifecycle.finish(story).status.to_k8s()
    again, plan = _story(status)
    granted = guarding.Verdict(True, guarding.GRANTED, "granted")
    assert guarding.apply_verdict(again, plan, granted, POLICY, POLICY.level(2)) is plan
    record = engine.find_record(again, "restart")
    assert record is not None and record.blocked_by is None and again.status.message is None


def test_a_cooldown_fails_the_step_and_escalates() -> None:
    story, plan = _story()
    cooling = guarding.Verdict(False, guarding.COOLDOWN_ACTIVE, "cooling down until 12:10")
    assert guarding.apply_verdict(story, plan, cooling, POLICY, POLICY.level(2)) is None
    record = engine.find_record(story, "restart")
    assert record is not None and record.phase == StepPhase.FAILED
    assert record.findings["guard"] == guarding.COOLDOWN_ACTIVE
    assert cond.is_true(story.status.conditions, cond.ESCALATED)


def test_a_step_in_flight_is_not_interrupted() -> None:
    story, plan = _story()
    engine.mark_running(story, plan, dry_run=False)
    status = lifecycle.finish(story).status.to_k8s()
    body = {
        "metadata": {"name": "i", "namespace": "n", "uid": "u", "generation": 1},
        "spec": {"service": "dashboard", "summary": "down", "severity": 2},
        "status": status,
    }
    later = lifecycle.start(IncidentObject.parse(body), T0, POLICY)
    level = lifecycle.advance(later, CHOICE)
    assert engine.next_step(later, RUNBOOK, {}, POLICY, level, in_flight="restart") is None
    record = engine.find_record(later, "restart")
    assert record is not None and record.phase == StepPhase.RUNNING
    # Not in flight here: an operator stopped mid-step; restartWorkload is not idempotent.
    assert engine.next_step(later, RUNBOOK, {}, POLICY, level, in_flight=None) is None
    record = engine.find_record(later, "restart")
    assert record is not None and record.phase == StepPhase.INTERRUPTED
