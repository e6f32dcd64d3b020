"""Acknowledgement and escalation: one step along the chain per missed response window."""

from __future__ import annotations

import math

from ..models.incident import Escalation
from . import conditions as cond
from . import messages
from .notices import message_fields
from .policy import LevelPolicy, Policy
from .story import Story


def acknowledge(story: Story, policy: Policy, level: LevelPolicy) -> None:
    spec, status, now = story.incident.spec, story.status, story.now
    assert status.detected_at is not None and status.response_deadline is not None
    if spec.acknowledged_by and status.acknowledged_at is None:
        acked = story.acted_at("spec.acknowledgedBy")
        status.acknowledged_at, status.acknowledged_by = acked, spec.acknowledged_by
        waited = (acked - status.detected_at).total_seconds()
        status.time_to_acknowledge_seconds = round(waited, 3)
        story.condition(
            cond.ACKNOWLEDGED,
            True,
            "AcknowledgedByResponder",
            f"{spec.acknowledged_by} took the incident",
        )
        story.log(
            "Acknowledged",
            f"Acknowledged by {spec.acknowledged_by} after {messages.human_duration(waited)}",
            actor=spec.acknowledged_by,
        )
        if acked > status.response_deadline:
            breach_response(story, level, late_ack=True)
        if cond.find(status.conditions, cond.ESCALATED) and (
            cond.find(status.conditions, cond.ESCALATED).reason == "NotAcknowledged"  # type: ignore[union-attr]
        ):
            story.condition(
                cond.ESCALATED,
                False,
                "Acknowledged",
                f"Acknowledged by {spec.acknowledged_by}; escalation stopped",
            )
        return
    if status.acknowledged_at is not None or status.resolved_at is not None:
        return
    if now > status.response_deadline:
        breach_response(story, level, late_ack=False)
    missed = math.floor((now - status.detected_at) / policy.scaled(level.response_seconds))
    target = min(missed, len(policy.escalation_chain))
    escalate_to(
        story,
        policy,
        level,
        target,
        "NotAcknowledged",
        f"Not acknowledged within {level.response_time}",
    )


def breach_response(story: Story, level: LevelPolicy, late_ack: bool) -> None:
    if cond.is_true(story.status.conditions, cond.RESPONSE_SLA_BREACHED):
        return
    reason = "AcknowledgedLate" if late_ack else "NotAcknowledgedInTime"
    message = f"Level {level.level} response time is {level.response_time}"
    story.condition(cond.RESPONSE_SLA_BREACHED, True, reason, message)
    story.log("ResponseSLABreached", f"{message}: {reason}", warning=True)


def escalate_to(
    story: Story, policy: Policy, level: LevelPolicy, target: int, reason: str, why: str
) -> None:
    """Walk the escalation chain up to step ``target``, one recorded step at a time."""
    status = story.status
    if status.escalation is None:
        status.escalation = Escalation()
    escalation = status.escalation
    target = min(target, len(policy.escalation_chain))
    while escalation.level < target:
        escalation.level += 1
        contact = policy.escalation_chain[escalation.level - 1]
        escalation.contacts = [*escalation.contacts, contact]
        escalation.last_escalated_at = story.now
        escalation.reason = why
        story.condition(cond.ESCALATED, True, reason, f"{why}: escalated to {contact}")
        story.log(
            "Escalated",
            f"{why}: escalated to {contact} (step {escalation.level} of "
            f"{len(policy.escalation_chain)})",
            warning=True,
        )
        fields = message_fields(story.incident, status, policy, level, story.now)
        fields.contact = contact
        story.notify(
            "Escalation",
            escalation.level,
            f"ESCALATION: {fields.service}",
            messages.render(messages.ESCALATION, fields),
        )


def escalate(story: Story, policy: Policy, level: LevelPolicy, reason: str, why: str) -> None:
    """One more step up the chain for a reason other than a missed acknowledgement."""
    current = story.status.escalation.level if story.status.escalation else 0
    escalate_to(story, policy, level, max(current + 1, 1), reason, why)
