"""Triage: detection, the severity level, the runbook and the incident commander."""

from __future__ import annotations

from . import conditions as cond
from .policy import LevelPolicy, Policy
from .severity import classify
from .story import RunbookChoice, Story


def triage(story: Story, policy: Policy, choice: RunbookChoice) -> LevelPolicy:
    incident, status, now = story.incident, story.status, story.now
    if status.detected_at is None:
        status.detected_at = incident.metadata.created or now
        source = incident.spec.source.kind.value if incident.spec.source else "Manual"
        story.log("Detected", f"{incident.spec.service}: {incident.spec.summary} (via {source})")
    verdict = classify(incident.spec, choice.severity)
    level = policy.level(verdict.severity)
    if status.severity != verdict.severity or status.classified_by != verdict.rule:
        previous = status.severity
        status.severity, status.severity_name = verdict.severity, level.name
        status.classified_by = verdict.rule
        status.response_deadline = status.detected_at + policy.scaled(level.response_seconds)
        reason = "Classified" if previous is None else "SeverityChanged"
        story.log(
            reason,
            f"Level {level.level} {level.name}: {verdict.reason} "
            f"[{verdict.rule}]; respond within {level.response_time}, "
            f"updates every {level.update_cadence}",
        )
        story.condition(cond.TRIAGED, True, reason, f"Level {level.level} by {verdict.rule}")
        if status.notifications is not None and status.notifications.next_update_at:
            status.notifications.next_update_at = min(
                status.notifications.next_update_at, now + policy.scaled(level.cadence_seconds)
            )
    return level


def select_runbook(story: Story, choice: RunbookChoice) -> None:
    status = story.status
    ready = choice.name is not None
    if status.runbook != choice.name or not cond.find(status.conditions, cond.RUNBOOK_READY):
        status.runbook = choice.name
        story.condition(cond.RUNBOOK_READY, ready, choice.reason, choice.message)
        story.log(choice.reason, choice.message, warning=not ready)
        status.rto_seconds = choice.rto_seconds
    elif ready and status.rto_seconds != choice.rto_seconds:
        status.rto_seconds = choice.rto_seconds


def assign_roles(story: Story) -> None:
    spec, status = story.incident.spec, story.status
    commander = spec.roles.incident_commander if spec.roles else None
    if commander == status.commander:
        return
    if status.commander and commander:
        story.log(
            "CommandHandedOver",
            f"Incident command handed over from {status.commander} to {commander}",
            actor=commander,
        )
    elif commander:
        story.log("CommanderAssigned", f"{commander} is incident commander", actor=commander)
    status.commander = commander
