"""Runbook step planning without a cluster: order, when-conditions, approvals, restarts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from incident_operator.actions.base import StepResult
from incident_operator.domain import conditions as cond
from incident_operator.domain import engine, lifecycle
from incident_operator.domain.policy import load_policy
from incident_operator.domain.story import RunbookChoice, Story
from incident_operator.models.incident import Approval, IncidentStatus, Phase, StepPhase
from incident_operator.models.objects import IncidentObject
from incident_operator.models.runbook import RunbookSpec

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
POLICY = load_policy()
CHOICE = RunbookChoice("dashboard", "RunbookSelected", "named", None, 300)
WORKLOAD = {"name": "dashboard"}
RUNBOOK = RunbookSpec.model_validate(
    {
        "title": "Dashboard Service Outage",
        "rto": {"mitigation": "5m"},
        "diagnosis": [{"name": "health", "action": {"type": "httpCheck"}, "onFailure": "Continue"}],
        "recovery": [
            {"name": "restart", "action": {"type": "restartWorkload", "workload": WORKLOAD}},
            {"name": "verify", "action": {"type": "httpCheck"}, "onFailure": "Continue"},
            {
                "name": "rollback",
                "requiresApproval": True,
                "when": [{"step": "verify", "phases": ["Failed"]}],
                "action": {"type": "rollbackDeployment", "workload": WORKLOAD},
            },
            {
                "name": "verify-rollback",
                "onFailure": "Escalate",
                "when": [{"step": "rollback", "phases": ["Succeeded"]}],
                "action": {"type": "httpCheck"},
            },
        ],
    }
)


class Run:
    """Drives the engine the way the responder does, one step per round."""

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        self.status = IncidentStatus()
        self.spec = {
            "service": "dashboard",
            "summary": "down",
            "severity": 2,
            "acknowledgedBy": "alice",
            **(spec or {}),
        }
        self.now = T0

    def story(self) -> Story:
        body = {
            "metadata": {
                "name": "i",
                "namespace": "n",
                "uid": "u",
                "generation": 1,
                "creationTimestamp": T0.isoformat(),
            },
            "spec": self.spec,
            "status": self.status.to_k8s(),
        }
        return lifecycle.start(IncidentObject.parse(body), self.now, POLICY)

    def next(
        self,
        approvals: dict[str, Approval] | None = None,
        refusals: dict[str, str] | None = None,
    ) -> engine.StepToRun | None:
        story = self.story()
        level = lifecycle.advance(story, CHOICE)
        plan = engine.next_step(story, RUNBOOK, approvals or {}, POLICY, level, None, refusals)
        if plan:
            engine.mark_running(story, plan, dry_run=False)
        self.status = lifecycle.finish(story).status
        return plan

    def result(self, plan: engine.StepToRun, ok: bool, **findings: Any) -> None:
        self.now += dt.timedelta(seconds=10)
        story = self.story()
        engine.record_result(
            story, plan, StepResult(ok, "ok" if ok else "bad", findings), POLICY, POLICY.level(2)
        )
        self.status = lifecycle.finish(story).status

    def phases(self) -> dict[str, StepPhase]:
        return {s.name: s.phase for s in self.status.steps}


def failed_verification() -> Run:
    """Diagnosis, restart and settle done; the verification after the restart failed."""
    run = Run()
    for _ in range(3):
        plan = run.next()
        assert plan is not None
        run.result(plan, plan.step.name != "verify")
    return run


def test_happy_path_skips_rollback_and_mitigates() -> None:
    run = Run()
    for name, ok in (("health", False), ("restart", True), ("verify", True)):
        plan = run.next()
        assert plan is not None and plan.step.name == name
        run.result(plan, ok)
    assert run.next() is None
    assert run.phases() == {
        "health": StepPhase.FAILED,
        "restart": StepPhase.SUCCEEDED,
        "verify": StepPhase.SUCCEEDED,
        "rollback": StepPhase.SKIPPED,
        "verify-rollback": StepPhase.SKIPPED,
    }
    assert cond.is_true(run.status.conditions, cond.MITIGATED)
    assert cond.is_true(run.status.conditions, cond.DIAGNOSED)
    assert run.status.diagnosis is not None
    assert "health: bad" in (run.status.diagnosis.suspected_cause or "")
    assert run.status.phase == Phase.MONITORING
    assert run.status.time_to_recover_seconds == 30


def test_rollback_waits_for_approval_then_runs() -> None:
    run = failed_verification()
    assert run.next() is None
    assert run.phases()["rollback"] == StepPhase.AWAITING_APPROVAL
    assert run.status.phase == Phase.AWAITING_APPROVAL
    assert run.status.current_step == "rollback"
    approved = {"rollback": Approval(step="rollback", decision="Approved", by="vp")}
    plan = run.next(approved)
    assert plan is not None and plan.step.name == "rollback"
    run.result(plan, True)
    plan = run.next(approved)
    assert plan is not None and plan.step.name == "verify-rollback"
    run.result(plan, False)
    assert run.status.escalation is not None and run.status.escalation.level >= 1
    assert run.next(approved) is None
    assert run.status.phase == Phase.ESCALATED


def _entries(run: Run, reason: str) -> list[str]:
    return [e.message for e in run.status.timeline if e.reason == reason]


def test_an_approval_given_before_the_step_asked_does_not_count() -> None:
    run = failed_verification()
    early = {"rollback": Approval(step="rollback", decision="Approved", by="author")}
    assert run.next(early) is None  # the step asks now; the approval was already there
    assert run.phases()["rollback"] == StepPhase.AWAITING_APPROVAL
    assert _entries(run, "ApprovalIgnored"), "the timeline says why it waits"
    assert run.next(early) is None, "the same early approval never starts the step"
    fresh = {"rollback": Approval(step="rollback", decision="Approved", by="commander")}
    plan = run.next(fresh)
    assert plan is not None and plan.step.name == "rollback"


def test_the_early_entry_counts_once_it_was_replaced_and_given_again() -> None:
    run = failed_verification()
    early = {"rollback": Approval(step="rollback", decision="Approved", by="bob")}
    assert run.next(early) is None
    other = {"rollback": Approval(step="rollback", decision="Approved", by="mallory")}
    assert run.next(other, {"mallory/Approved": "may not approve"}) is None
    plan = run.next(early)  # bob answers again, after the step asked
    assert plan is not None and plan.step.name == "rollback"


def test_an_approval_by_someone_who_may_not_approve_is_refused_once() -> None:
    run = failed_verification()
    assert run.next() is None
    forged = {"rollback": Approval(step="rollback", decision="Approved", by="mallory")}
    why = {"mallory/Approved": "mallory may not approve incidents.incidents.dev in n"}
    assert run.next(forged, why) is None
    assert run.next(forged, why) is None
    assert len(_entries(run, "ApprovalRefused")) == 1
    assert "may not approve" in _entries(run, "ApprovalRefused")[0]
    assert run.phases()["rollback"] == StepPhase.AWAITING_APPROVAL
    plan = run.next(forged, {})  # granted the verb since: the same entry now counts
    assert plan is not None and plan.step.name == "rollback"


def test_a_rejection_by_someone_who_may_not_approve_is_ignored() -> None:
    run = failed_verification()
    assert run.next() is None
    rejected = {"rollback": Approval(step="rollback", decision="Rejected", by="mallory")}
    assert run.next(rejected, {"mallory/Rejected": "no"}) is None
    assert run.phases()["rollback"] == StepPhase.AWAITING_APPROVAL


def test_rejection_stops_the_runbook() -> None:
    run = failed_verification()
    run.next()
    assert run.next({"rollback": Approval(step="rollback", decision="Rejected", by="ic")}) is None
    assert run.phases()["rollback"] == StepPhase.REJECTED
    assert run.next() is None


def test_unanswered_approval_escalates_once_after_timeout() -> None:
    run = failed_verification()
    run.next()
    level_before = run.status.escalation.level if run.status.escalation else 0
    run.now += dt.timedelta(minutes=16)
    run.next()
    run.now += dt.timedelta(minutes=1)
    run.next()
    assert run.status.escalation is not None
    reasons = [e.reason for e in run.status.timeline]
    assert reasons.count("Escalated") >= 1
    assert any(
        "waited 15m for approval" in (c.message or "")
        for c in run.status.conditions
        if c.type == cond.ESCALATED
    )
    assert run.status.escalation.level == level_before + 1


def test_interrupted_step_reruns_only_when_idempotent() -> None:
    run = Run()
    plan = run.next()
    assert plan is not None and plan.step.name == "health"
    resumed = run.next()  # "restart" of the operator: health (httpCheck) is still Running
    assert resumed is not None and resumed.step.name == "health" and resumed.resumed
    run.result(resumed, True)
    plan = run.next()
    assert plan is not None and plan.step.name == "restart"
    assert run.next() is None  # restartWorkload is not idempotent
    assert run.phases()["restart"] == StepPhase.INTERRUPTED
    assert run.status.escalation is not None and run.status.escalation.level >= 1


def test_completed_steps_never_run_again() -> None:
    run = Run()
    seen = []
    while (plan := run.next()) is not None:
        seen.append(plan.step.name)
        run.result(plan, True)
    assert seen == ["health", "restart", "verify"]
    assert run.next() is None


def test_finding_conditions() -> None:
    spec = RunbookSpec.model_validate(
        {
            "title": "db",
            "rto": {"mitigation": "2m"},
            "targets": {"postgres": {"host": "db", "database": "retail", "user": "inventory"}},
            "diagnosis": [{"name": "locks", "action": {"type": "postgresBlockedLocks"}}],
            "recovery": [
                {
                    "name": "terminate",
                    "action": {"type": "postgresTerminateBackends"},
                    "when": [{"step": "locks", "finding": "blockedLocks", "value": 0}],
                }
            ],
        }
    )
    run = Run()
    story = run.story()
    level = lifecycle.advance(story, CHOICE)
    plan = engine.next_step(story, spec, {}, POLICY, level)
    assert plan is not None
    engine.mark_running(story, plan, dry_run=False)
    engine.record_result(story, plan, StepResult(True, "none", {"blockedLocks": 0}), POLICY, level)
    assert engine.next_step(story, spec, {}, POLICY, level) is None
    skipped = next(s for s in story.status.steps if s.name == "terminate")
    assert skipped.phase == StepPhase.SKIPPED and "blockedLocks=0.0 is not > 0" in skipped.message
