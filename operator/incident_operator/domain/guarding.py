"""What the safety gate's verdict on a destructive step means for the Incident.

The gate (``safety.SafetyGate``) claims the step's target in Leases and answers with a
verdict; this module decides, without I/O, whether the step runs, waits or is refused.
Waiting is recorded in the step's ``blockedBy``, so nothing depends on a message's text.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from ..models.incident import StepStatus
from ..models.runbook import OnFailure
from .engine import StepToRun, find_record, mark_running, record_result, upsert
from .escalation import escalate
from .policy import LevelPolicy, Policy
from .results import StepResult
from .story import Story

GRANTED = "Granted"
#: Another Incident's remediation holds the target: wait for it.
TARGET_BUSY = "TargetBusy"
#: The gate's Leases could not be read or written: wait, never act unguarded.
GUARD_UNAVAILABLE = "GuardUnavailable"
#: The target's cooldown after another Incident's destructive action has not ended.
COOLDOWN_ACTIVE = "CooldownActive"
#: Too many destructive actions on the target within the window.
MAX_ATTEMPTS_REACHED = "MaxAttemptsReached"
#: Verdicts that mean "not now": the step waits. Every other refusal fails it.
WAITING = frozenset({TARGET_BUSY, GUARD_UNAVAILABLE})


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The gate's answer for one destructive step."""

    granted: bool
    #: GRANTED or one of the refusals above.
    reason: str
    #: Safe to show in status: which target, held by whom, until when.
    message: str
    #: When asking again may succeed (expiry, end of cooldown or of the window).
    retry_at: dt.datetime | None = None


def apply_verdict(
    story: Story, plan: StepToRun, verdict: Verdict, policy: Policy, level: LevelPolicy
) -> StepToRun | None:
    """The step to start, or None when it waits for its target or was refused."""
    record = find_record(story, plan.step.name)
    if verdict.granted:
        if record is not None and record.blocked_by is not None:
            record.blocked_by = None
            story.status.message = None  # the target is free now
        return plan
    if verdict.reason in WAITING:
        if record is None or record.blocked_by != verdict.reason:
            record = record or StepStatus(
                name=plan.step.name, stage=plan.stage, action=plan.step.action.type
            )
            record.blocked_by = verdict.reason
            record.message = f"Waiting: {verdict.message}"
            upsert(story, record)
            story.status.message = f"{plan.step.name} waits: {verdict.message}"
            story.log("WaitingForTarget", story.status.message)
        return None
    # Cooling down or out of attempts: retrying would be the loop the limits exist to stop.
    mark_running(story, plan, dry_run=False)
    refused = StepResult(False, verdict.message, {"guard": verdict.reason})
    record_result(story, plan, refused, policy, level)
    if plan.step.on_failure != OnFailure.ESCALATE:
        escalate(
            story, policy, level, verdict.reason, f"{plan.step.name} refused: {verdict.message}"
        )
    return None
