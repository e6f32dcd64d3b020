"""Messages to people: the initial notification, numbered updates and approval requests.

Message numbers live in status, so a restarted operator never sends the same number twice."""

from __future__ import annotations

import datetime as dt

from ..models.incident import IncidentStatus, NotificationState, StepPhase
from ..models.objects import IncidentObject
from . import messages
from .policy import LevelPolicy, Policy
from .story import Story


def message_fields(
    incident: IncidentObject,
    status: IncidentStatus,
    policy: Policy,
    level: LevelPolicy,
    now: dt.datetime,
) -> messages.MessageFields:
    spec = incident.spec
    roles = spec.roles
    impact = spec.description or spec.summary
    if status.classified_by and status.classified_by.startswith("impact."):
        impact = f"{spec.summary} ({level.impact})"
    detected = status.detected_at or now
    if level.war_room:
        action_required = (
            f"{level.action}. War room open in {policy.incident_channel}: incident commander, "
            "technical lead, DBA, DevOps, communications."
        )
    else:
        action_required = (
            f"{level.action}: create a ticket, assign it to the on-call engineer, "
            f"update within {level.update_cadence}."
        )
    steps_done = [
        f"{s.name}: {s.phase.value}{' - ' + s.message if s.message else ''}"
        for s in status.steps
        if s.phase not in (StepPhase.PENDING,)
    ]
    return messages.MessageFields(
        incident=incident.metadata.name,
        namespace=incident.metadata.namespace,
        service=spec.service,
        summary=spec.summary,
        severity=level.level,
        severity_name=level.name,
        detected_at=messages.iso(detected),
        impact=impact,
        commander=status.commander or "unassigned",
        technical_lead=(roles.technical_lead if roles and roles.technical_lead else "unassigned"),
        status_page=policy.status_page,
        cadence=level.update_cadence,
        action_required=action_required,
        duration=messages.human_duration((now - detected).total_seconds()),
        actions=messages.bullet_list(steps_done[-10:]),
        response_time=level.response_time,
    )


def initial_notification(story: Story, policy: Policy, level: LevelPolicy) -> None:
    status, now = story.status, story.now
    if status.notifications is None:
        status.notifications = NotificationState()
    state = status.notifications
    if state.initial_sent_at is not None:
        return
    fields = message_fields(story.incident, status, policy, level, now)
    text = messages.render(policy.templates.initial or messages.INITIAL, fields)
    state.initial_sent_at = now
    state.next_update_at = now + policy.scaled(level.cadence_seconds)
    story.notify("Initial", 0, f"INCIDENT: {fields.service} Outage", text)
    stakeholders = ", ".join(level.stakeholders) or "none"
    story.log("InitialNotification", f"Initial notification sent; stakeholders: {stakeholders}")
    if level.war_room:
        story.log(
            "WarRoomActivated",
            f"War room in {policy.incident_channel} for the incident commander, technical "
            f"lead, DBA, DevOps and communications; stakeholder updates every "
            f"{level.update_cadence}",
        )


def send_updates(story: Story, policy: Policy, level: LevelPolicy) -> None:
    status, now = story.status, story.now
    state = status.notifications
    if status.resolved_at is not None or state is None or state.next_update_at is None:
        return
    if now < state.next_update_at:
        return
    number = state.updates_sent + 1
    # Missed windows (operator down) collapse into one update; numbering stays contiguous.
    state.updates_sent, state.last_update_at = number, now
    state.next_update_at = now + policy.scaled(level.cadence_seconds)
    fields = message_fields(story.incident, status, policy, level, now)
    fields.number = number
    fields.status = "IN PROGRESS" if status.steps else "INVESTIGATING"
    fields.next_update = messages.iso(state.next_update_at)
    story.notify(
        "Update",
        number,
        f"INCIDENT UPDATE #{number}",
        messages.render(policy.templates.update or messages.UPDATE, fields),
    )
    story.log(
        "StatusUpdate",
        f"Incident update #{number} sent; next at {messages.iso(state.next_update_at)}",
    )


def request_approval(story: Story, step_name: str, action_type: str) -> None:
    level = story.policy.level(story.status.severity or 4)
    fields = message_fields(story.incident, story.status, story.policy, level, story.now)
    fields.step, fields.action = step_name, action_type
    story.notify(
        "Approval",
        len(story.status.steps),
        f"APPROVAL NEEDED: {fields.service}",
        messages.render(messages.APPROVAL, fields),
    )
