"""Runbook progress as pure decisions: which step is next, and what each result means.

Step records in ``status.steps`` are the durable progress. A step is marked Running and
committed before it starts; if the operator dies mid-step, the next decision sees Running
and either runs it again (idempotent actions) or marks it Interrupted and escalates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..durations import parse_duration
from ..models.incident import Approval, ApprovalDecision, Diagnosis, StepPhase, StepStatus
from ..models.runbook import OnFailure, RunbookSpec, Step, When
from . import conditions as cond
from .escalation import escalate
from .notices import request_approval
from .policy import LevelPolicy, Policy
from .resolution import record_recovery
from .results import StepResult
from .story import Story

TERMINAL = frozenset(
    {
        StepPhase.SUCCEEDED,
        StepPhase.FAILED,
        StepPhase.SKIPPED,
        StepPhase.REJECTED,
        StepPhase.INTERRUPTED,
    }
)


@dataclasses.dataclass(frozen=True)
class StepToRun:
    step: Step
    stage: str
    resumed: bool = False

    @property
    def destructive(self) -> bool:
        return self.step.action.destructive

    @property
    def timeout(self) -> float:
        if self.step.timeout:
            return parse_duration(self.step.timeout)
        return self.step.action.default_timeout()


def find_record(story: Story, name: str) -> StepStatus | None:
    return next((s for s in story.status.steps if s.name == name), None)


def upsert(story: Story, record: StepStatus) -> None:
    others = [s for s in story.status.steps if s.name != record.name]
    story.status.steps = [*others, record]


def _finding_value(record: StepStatus, key: str) -> float | None:
    raw = record.findings.get(key)
    if raw is None:
        return None
    if raw in ("True", "False"):
        return 1.0 if raw == "True" else 0.0
    try:
        return float(raw)
    except ValueError:
        return None


def when_holds(story: Story, conditions: list[When]) -> tuple[bool, str]:
    for condition in conditions:
        record = find_record(story, condition.step)
        if record is None or record.phase not in TERMINAL:
            return False, f"{condition.step} has not run"
        if condition.phases is not None:
            if record.phase not in condition.phases:
                wanted = "/".join(p.value for p in condition.phases)
                return False, f"{condition.step} is {record.phase.value}, not {wanted}"
            continue
        assert condition.finding is not None and condition.value is not None
        value = _finding_value(record, condition.finding)
        if value is None or not condition.comparison.holds(value, condition.value):
            return False, (
                f"{condition.step}.{condition.finding}={value} is not "
                f"{condition.comparison.value} {condition.value:g}"
            )
    return True, ""


def _halted(story: Story, runbook: RunbookSpec) -> bool:
    steps = {s.name: s for s in [*runbook.diagnosis, *runbook.recovery]}
    for record in story.status.steps:
        if record.phase in (StepPhase.REJECTED, StepPhase.INTERRUPTED):
            return True
        step = steps.get(record.name)
        if record.phase == StepPhase.FAILED and step and step.on_failure != OnFailure.CONTINUE:
            return True
    return False


def _diagnosed(story: Story, runbook: RunbookSpec) -> None:
    if cond.find(story.status.conditions, cond.DIAGNOSED) or not runbook.diagnosis:
        return
    failed = [
        r for r in story.status.steps if r.stage == "diagnosis" and r.phase == StepPhase.FAILED
    ]
    if failed:
        cause = "; ".join(f"{r.name}: {r.message}" for r in failed)
        summary = f"{len(failed)} of {len(runbook.diagnosis)} checks found a problem"
    else:
        cause = "No diagnosis check failed"
        summary = f"All {len(runbook.diagnosis)} checks passed"
    story.status.diagnosis = Diagnosis(suspected_cause=cause, summary=summary)
    story.condition(cond.DIAGNOSED, True, "DiagnosisComplete", f"{summary}. Suspected: {cause}")
    story.log("Diagnosed", f"{summary}. Suspected cause: {cause}")


def approval_key(approval: Approval) -> str:
    """Who answered what: the identity of one entry of spec.approvals."""
    return f"{approval.by}/{approval.decision.value}"


def _reject(story: Story, step: Step, record: StepStatus, approval: Approval) -> None:
    record.decided_by = approval.by
    record.phase, record.finished_at = StepPhase.REJECTED, story.now
    record.message = f"Rejected by {approval.by}" + (
        f": {approval.comment}" if approval.comment else ""
    )
    upsert(story, record)
    story.condition(cond.AWAITING_APPROVAL, False, "Rejected", record.message)
    story.log(
        "StepRejected",
        f"{step.name}: {record.message}; runbook stopped",
        warning=True,
        actor=approval.by,
    )


def _request_approval(
    story: Story, step: Step, record: StepStatus, approval: Approval | None
) -> None:
    record.phase, record.approval_requested_at = StepPhase.AWAITING_APPROVAL, story.now
    record.message = "Waiting for approval"
    upsert(story, record)
    story.condition(
        cond.AWAITING_APPROVAL,
        True,
        "ApprovalRequested",
        f"{step.name} ({step.action.type}) needs approval",
    )
    story.log(
        "ApprovalRequested",
        f"{step.name} ({step.action.type}) waits for approval in spec.approvals",
    )
    if approval is not None:
        # Given before anyone asked, e.g. by the Incident's author at creation: no answer.
        record.approval_before_request = approval_key(approval)
        story.log(
            "ApprovalIgnored",
            f"{step.name}: the approval by {approval.by} was given before the step asked for "
            "one; it does not count, approve again",
            warning=True,
        )
    request_approval(story, step.name, step.action.type)


def _fresh(story: Story, record: StepStatus, approval: Approval) -> bool:
    """Given after the step asked: not the entry that was there before the request (once it
    was replaced, an equal entry is a new answer), or the same one written again since."""
    if approval_key(approval) != record.approval_before_request:
        return True
    written = story.incident.metadata.field_times.get("spec.approvals")
    asked = record.approval_requested_at
    return written is not None and asked is not None and written > asked


def _await_approval(
    story: Story,
    step: Step,
    stage: str,
    approval: Approval | None,
    refusal: str | None,
    runbook: RunbookSpec,
) -> bool:
    """True when the step may run now; otherwise status says what it waits for.

    An approval counts when it answers the step's request (given after the step asked) and
    its author may approve (``refusal`` is None: the operator's SubjectAccessReview agreed).
    A rejection by someone who may approve stops the runbook at any time.
    """
    record = find_record(story, step.name) or StepStatus(
        name=step.name, stage=stage, action=step.action.type
    )
    if approval is not None and refusal is None and approval.decision == ApprovalDecision.REJECTED:
        _reject(story, step, record, approval)
        return False
    if record.phase != StepPhase.AWAITING_APPROVAL:
        _request_approval(story, step, record, approval)
        return False
    stale = record.approval_before_request
    if stale is not None and (approval is None or approval_key(approval) != stale):
        record.approval_before_request = None  # that early entry is gone: answers count
        upsert(story, record)
    if approval is not None and _fresh(story, record, approval):
        if refusal is None:
            record.decided_by, record.phase = approval.by, StepPhase.PENDING
            upsert(story, record)
            story.condition(
                cond.AWAITING_APPROVAL, False, "Approved", f"{step.name} approved by {approval.by}"
            )
            story.log("StepApproved", f"{step.name} approved by {approval.by}", actor=approval.by)
            return True
        if record.approval_refused != approval_key(approval):
            record.approval_refused = approval_key(approval)
            upsert(story, record)
            story.log(
                "ApprovalRefused",
                f"{step.name}: the approval by {approval.by} does not count: {refusal}",
                warning=True,
            )
    _approval_timeout(story, step, record, runbook)
    return False


def _approval_timeout(story: Story, step: Step, record: StepStatus, runbook: RunbookSpec) -> None:
    policy = story.policy
    waited = story.now - (record.approval_requested_at or story.now)
    limit = policy.scaled(parse_duration(runbook.safety.approval_timeout))
    if waited > limit and not record.approval_escalated:
        record.approval_escalated = True
        upsert(story, record)
        level = policy.level(story.status.severity or 4)
        escalate(
            story,
            policy,
            level,
            "ApprovalTimeout",
            f"{step.name} waited {runbook.safety.approval_timeout} for approval",
        )


def next_step(
    story: Story,
    runbook: RunbookSpec,
    approvals: dict[str, Approval],
    policy: Policy,
    level: LevelPolicy,
    in_flight: str | None = None,
    refusals: Mapping[str, str] | None = None,
) -> StepToRun | None:
    """The step to run now, or None (waiting, halted or finished: status says which).

    ``in_flight`` names the step this operator is running right now for the Incident: its
    Running record is work in progress. Any other Running record was left by an operator
    that stopped mid-step, and is resumed or marked Interrupted. ``refusals`` maps the
    approval entries (``approval_key``) whose authors may not approve to why.
    """
    status = story.status
    if status.resolved_at is not None or _halted(story, runbook):
        return None
    for stage, steps in (("diagnosis", runbook.diagnosis), ("recovery", runbook.recovery)):
        if stage == "recovery":
            _diagnosed(story, runbook)
        for step in steps:
            record = find_record(story, step.name)
            if record is not None and record.phase in TERMINAL:
                continue
            if record is not None and record.phase == StepPhase.RUNNING:
                if step.name == in_flight:
                    return None
                return _resume(story, step, stage, record, policy, level)
            if not _applies(story, step, stage):
                continue
            approval = approvals.get(step.name)
            refusal = (refusals or {}).get(approval_key(approval)) if approval else None
            if step.requires_approval and not _await_approval(
                story, step, stage, approval, refusal, runbook
            ):
                return None
            return StepToRun(step, stage)
    _finish(story, runbook)
    return None


def _resume(
    story: Story, step: Step, stage: str, record: StepStatus, policy: Policy, level: LevelPolicy
) -> StepToRun | None:
    """A Running step no operator runs (one stopped mid-step): an idempotent one runs again,
    any other is marked Interrupted and the Incident escalates; it is never repeated."""
    if step.action.idempotent:
        story.log(
            "StepResumed",
            f"{step.name} was interrupted by an operator restart; it is idempotent and runs again",
        )
        return StepToRun(step, stage, resumed=True)
    record.phase, record.finished_at = StepPhase.INTERRUPTED, story.now
    record.message = "Interrupted by an operator restart; not safe to repeat"
    upsert(story, record)
    story.log(
        "StepInterrupted",
        f"{step.name} ({step.action.type}) was interrupted and is not idempotent; check it by hand",
        warning=True,
    )
    escalate(story, policy, level, "StepInterrupted", f"{step.name} was interrupted mid-action")
    return None


def _applies(story: Story, step: Step, stage: str) -> bool:
    """Whether the step's when-conditions hold; if not, it is recorded as Skipped."""
    holds, why = when_holds(story, step.when)
    if not holds:
        skipped = StepStatus(
            name=step.name,
            stage=stage,
            action=step.action.type,
            phase=StepPhase.SKIPPED,
            finished_at=story.now,
            message=f"Skipped: {why}",
        )
        upsert(story, skipped)
        story.log("StepSkipped", f"{step.name} skipped: {why}")
    return holds


def _finish(story: Story, runbook: RunbookSpec) -> None:
    status = story.status
    if cond.find(status.conditions, cond.MITIGATED) or not runbook.recovery:
        if not runbook.recovery and not cond.find(status.conditions, cond.MITIGATED):
            story.condition(
                cond.MITIGATED,
                False,
                "NoRecoverySteps",
                "Runbook has diagnosis only; a human must mitigate",
            )
        return
    status.mitigated_at = story.now
    story.condition(cond.MITIGATED, True, "RunbookCompleted", "All recovery steps completed")
    story.log("Mitigated", "Runbook recovery completed; monitoring before resolution")
    if status.time_to_recover_seconds is None:
        record_recovery(story, story.now)


def mark_running(story: Story, plan: StepToRun, dry_run: bool) -> None:
    record = find_record(story, plan.step.name) or StepStatus(
        name=plan.step.name, stage=plan.stage, action=plan.step.action.type
    )
    record.phase, record.started_at = StepPhase.RUNNING, story.now
    record.blocked_by = None
    record.attempts += 1
    record.finished_at = record.duration_seconds = None
    record.dry_run = (dry_run and plan.destructive) or None  # read-only steps run for real
    record.message = "Running"
    upsert(story, record)
    story.log(
        "StepStarted",
        f"{plan.stage} step {plan.step.name} ({plan.step.action.type}) "
        f"started{' (dry run)' if dry_run else ''}",
    )


def record_result(
    story: Story, plan: StepToRun, result: StepResult, policy: Policy, level: LevelPolicy
) -> None:
    record = find_record(story, plan.step.name)
    assert record is not None, "a result for a step that was never marked running"
    record.phase = StepPhase.SUCCEEDED if result.ok else StepPhase.FAILED
    record.finished_at = story.now
    if record.started_at is not None:
        record.duration_seconds = round((story.now - record.started_at).total_seconds(), 3)
    record.message = result.message  # status strings are cut by the model (StatusText)
    record.findings = {k: str(v) for k, v in result.findings.items()}
    record.output = result.output
    upsert(story, record)
    if result.ok:
        story.log("StepSucceeded", f"{plan.step.name}: {result.message}")
        return
    story.log("StepFailed", f"{plan.step.name}: {result.message}", warning=True)
    if plan.step.on_failure == OnFailure.ESCALATE:
        escalate(
            story, policy, level, "RecoveryFailed", f"{plan.step.name} failed: {result.message}"
        )
    elif plan.step.on_failure == OnFailure.STOP:
        story.condition(
            cond.MITIGATED,
            False,
            "RunbookStopped",
            f"{plan.step.name} failed: {result.message}",
        )
        story.log("RunbookStopped", f"Runbook stopped at {plan.step.name}", warning=True)


def dry_run_result(plan: StepToRun) -> StepResult:
    params = plan.step.action.to_k8s()
    params.pop("type")
    return StepResult(
        True, f"Dry run: would run {plan.step.action.type} with {params}", {"dryRun": True}
    )
