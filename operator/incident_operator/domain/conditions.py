"""Conditions are the source of truth of an Incident; the phase only summarises them."""

from __future__ import annotations

import datetime as dt

from ..models.base import Condition, ConditionStatus
from ..models.incident import Phase

ACKNOWLEDGED = "Acknowledged"
TRIAGED = "Triaged"
DIAGNOSED = "Diagnosed"
AWAITING_APPROVAL = "AwaitingApproval"
MITIGATED = "Mitigated"
RESOLVED = "Resolved"
ESCALATED = "Escalated"
RESPONSE_SLA_BREACHED = "ResponseSLABreached"
RTO_BREACHED = "RecoveryTimeObjectiveBreached"
RUNBOOK_READY = "RunbookReady"
#: True while the operator cannot decide for the Incident (the message says why).
DECISION_FAILED = "DecisionFailed"


def find(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == ConditionStatus.TRUE


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str,
    now: dt.datetime,
    generation: int | None,
) -> list[Condition]:
    """A new list with the condition set; lastTransitionTime moves only when status flips."""
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    existing = find(conditions, type_)
    changed_status = existing is None or existing.status != status
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,  # the model cuts it to its limit
        last_transition_time=now
        if changed_status or existing is None
        else existing.last_transition_time,
        observed_generation=generation,
    )
    others = [c for c in conditions if c.type != type_]
    return sorted([*others, updated], key=lambda c: c.type)


def derive_phase(conditions: list[Condition], active_stage: str | None) -> Phase:
    """Resolved beats everything; an escalation shows until mitigation or resolution.

    ``active_stage`` is the runbook stage with a step under way, if any.
    """
    if is_true(conditions, RESOLVED):
        return Phase.RESOLVED
    if is_true(conditions, MITIGATED):
        return Phase.MONITORING
    if is_true(conditions, AWAITING_APPROVAL):
        return Phase.AWAITING_APPROVAL
    if is_true(conditions, ESCALATED):
        return Phase.ESCALATED
    if active_stage == "recovery":
        return Phase.MITIGATING
    if active_stage == "diagnosis" or is_true(conditions, ACKNOWLEDGED):
        return Phase.INVESTIGATING
    if is_true(conditions, TRIAGED):
        return Phase.TRIAGED
    return Phase.DETECTED
