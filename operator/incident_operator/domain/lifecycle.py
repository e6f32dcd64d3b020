"""What an Incident's response needs next, decided without touching the cluster.

``decide`` takes the Incident as stored, the policy, the selected runbook and the time, and
returns the new status plus the notifications to send. Everything it does is derived from
status, so a restarted operator reaches the same decisions and never repeats a notification
whose number status already holds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

from ..models.base import TimelineEntry
from ..models.incident import (
    ActionItem,
    Escalation,
    IncidentStatus,
    NotificationState,
    Priority,
    Review,
    StepPhase,
)
from ..models.objects import IncidentObject
from . import conditions as cond
from . import messages, timeline
from .alerts import RESOLVED_ANNOTATION
from .policy import LevelPolicy, Policy
from .severity import classify


@dataclasses.dataclass(frozen=True)
class RunbookChoice:
    """The outcome of runbook selection, made by the caller from the Runbooks it can see."""

    name: str | None
    reason: str
    message: str
    severity: int | None = None
    rto_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class Notification:
    kind: str
    key: str
    severity: int
    title: str
    text: str


@dataclasses.dataclass
class Decision:
    status: IncidentStatus
    entries: list[TimelineEntry]
    notifications: list[Notification]


ACTIVE_STEP_PHASES = (StepPhase.RUNNING, StepPhase.AWAITING_APPROVAL)

#: The playbook's "Documentation" list, made the default action items of a required review.
REVIEW_ACTION_ITEMS = (
    ("Add the post-incident document to the wiki", Priority.HIGH),
    ("Update the runbook with lessons learned", Priority.HIGH),
    ("Update monitoring alerts", Priority.MEDIUM),
    ("Train the team on new procedures", Priority.MEDIUM),
)


class Story:
    """Collects the timeline entries and notifications one decision produces."""

    def __init__(
        self, incident: IncidentObject, status: IncidentStatus, now: dt.datetime, policy: Policy
    ) -> None:
        self.incident = incident
        self.policy = policy
        self.status = status
        self.now = now
        self.entries: list[TimelineEntry] = []
        self.notifications: list[Notification] = []
        self.generation = incident.metadata.generation
        self.rto_wall_seconds: float | None = None

    def log(
        self, reason: str, message: str, *, warning: bool = False, actor: str | None = None
    ) -> None:
        self.entries.append(
            timeline.append(self.status, self.now, reason, message, warning=warning, actor=actor)
        )

    def condition(self, type_: str, value: bool, reason: str, message: str) -> None:
        self.status.conditions = cond.set_condition(
            self.status.conditions, type_, value, reason, message, self.now, self.generation
        )

    def notify(self, kind: str, number: int, title: str, text: str) -> None:
        uid = self.incident.metadata.uid
        self.notifications.append(
            Notification(kind, f"{uid}/{kind}/{number}", self.status.severity or 4, title, text)
        )


def _fields(
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


def _triage(story: Story, policy: Policy, choice: RunbookChoice) -> LevelPolicy:
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


def _select_runbook(story: Story, choice: RunbookChoice) -> None:
    status = story.status
    ready = choice.name is not None
    if status.runbook != choice.name or not cond.find(status.conditions, cond.RUNBOOK_READY):
        status.runbook = choice.name
        story.condition(cond.RUNBOOK_READY, ready, choice.reason, choice.message)
        story.log(choice.reason, choice.message, warning=not ready)
        status.rto_seconds = choice.rto_seconds
    elif ready and status.rto_seconds != choice.rto_seconds:
        status.rto_seconds = choice.rto_seconds


def _initial_notification(story: Story, policy: Policy, level: LevelPolicy) -> None:
    status, now = story.status, story.now
    if status.notifications is None:
        status.notifications = NotificationState()
    state = status.notifications
    if state.initial_sent_at is not None:
        return
    fields = _fields(story.incident, status, policy, level, now)
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


def _roles(story: Story) -> None:
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


def _acknowledge(story: Story, policy: Policy, level: LevelPolicy) -> None:
    spec, status, now = story.incident.spec, story.status, story.now
    assert status.detected_at is not None and status.response_deadline is not None
    if spec.acknowledged_by and status.acknowledged_at is None:
        status.acknowledged_at, status.acknowledged_by = now, spec.acknowledged_by
        waited = (now - status.detected_at).total_seconds()
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
        if now > status.response_deadline:
            _breach_response(story, level, late_ack=True)
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
        _breach_response(story, level, late_ack=False)
    missed = math.floor((now - status.detected_at) / policy.scaled(level.response_seconds))
    target = min(missed, len(policy.escalation_chain))
    _escalate_to(
        story,
        policy,
        level,
        target,
        "NotAcknowledged",
        f"Not acknowledged within {level.response_time}",
    )


def _alert_resolved(story: Story) -> None:
    """Alertmanager's "resolved" is evidence, not a resolution: a responder still decides."""
    stamp = story.incident.metadata.annotations.get(RESOLVED_ANNOTATION)
    if not stamp or story.status.alert_resolved_at is not None:
        return
    story.status.alert_resolved_at = story.now
    story.log(
        "AlertResolved",
        f"Alertmanager reports the alert resolved at {stamp}; confirm "
        "recovery and set spec.resolution",
    )


def _breach_response(story: Story, level: LevelPolicy, late_ack: bool) -> None:
    if cond.is_true(story.status.conditions, cond.RESPONSE_SLA_BREACHED):
        return
    reason = "AcknowledgedLate" if late_ack else "NotAcknowledgedInTime"
    message = f"Level {level.level} response time is {level.response_time}"
    story.condition(cond.RESPONSE_SLA_BREACHED, True, reason, message)
    story.log("ResponseSLABreached", f"{message}: {reason}", warning=True)


def _escalate_to(
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
        fields = _fields(story.incident, status, policy, level, story.now)
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
    _escalate_to(story, policy, level, max(current + 1, 1), reason, why)


def _updates(story: Story, policy: Policy, level: LevelPolicy) -> None:
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
    fields = _fields(story.incident, status, policy, level, now)
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


def _resolve(story: Story, policy: Policy, level: LevelPolicy) -> None:
    spec, status, now = story.incident.spec, story.status, story.now
    resolution = spec.resolution
    if status.review is not None:
        _sync_action_items(status, spec.action_items)
    if resolution is None or status.resolved_at is not None:
        return
    assert status.detected_at is not None
    status.resolved_at, status.resolved_by = now, resolution.resolved_by
    if status.time_to_recover_seconds is None:
        record_recovery(story, now)
    duration = (now - status.detected_at).total_seconds()
    story.condition(
        cond.RESOLVED,
        True,
        "ResolvedByResponder",
        f"Resolved by {resolution.resolved_by}: {resolution.root_cause}"[:1024],
    )
    story.log(
        "Resolved",
        f"Resolved by {resolution.resolved_by} after "
        f"{messages.human_duration(duration)}; root cause: "
        f"{resolution.root_cause}",
        actor=resolution.resolved_by,
    )
    review_seconds = level.review_seconds
    items = (
        [
            ActionItem(description=d, priority=p, owner=status.commander)
            for d, p in REVIEW_ACTION_ITEMS
        ]
        if review_seconds
        else []
    )
    items += spec.action_items
    status.review = Review(
        required=review_seconds is not None,
        due_at=now + policy.scaled(review_seconds) if review_seconds else None,
        action_items=items,
    )
    fields = _fields(story.incident, status, policy, level, now)
    fields.duration = messages.human_duration(duration)
    fields.root_cause = resolution.root_cause
    fields.impact = resolution.impact or fields.impact
    actions = list(resolution.actions) or [
        f"{s.name}: {s.message}" for s in status.steps if s.phase == StepPhase.SUCCEEDED
    ]
    fields.actions = messages.bullet_list(actions)
    fields.review = messages.iso(status.review.due_at) if status.review.due_at else "Optional"
    if status.notifications is None:
        status.notifications = NotificationState()
    status.notifications.resolution_sent_at = now
    story.notify(
        "Resolution",
        0,
        f"INCIDENT RESOLVED: {fields.service}",
        messages.render(policy.templates.resolved or messages.RESOLVED, fields),
    )
    if status.review.required:
        story.log("ReviewScheduled", f"Post-incident review due by {fields.review}")


def _sync_action_items(status: IncidentStatus, added: list[ActionItem]) -> None:
    """Items added to spec after resolution still reach the review (defaults come first)."""
    assert status.review is not None
    defaults = len(REVIEW_ACTION_ITEMS) if status.review.required else 0
    items = status.review.action_items[:defaults] + list(added)
    if items != status.review.action_items:
        status.review.action_items = items


def record_recovery(story: Story, when: dt.datetime) -> None:
    status = story.status
    assert status.detected_at is not None
    recovered = (when - status.detected_at).total_seconds()
    status.time_to_recover_seconds = round(recovered, 3)
    if status.rto_seconds is None:
        return
    # RTOs are policy durations too, so they follow the time scale like every deadline.
    limit = story.rto_wall_seconds if story.rto_wall_seconds is not None else status.rto_seconds
    if recovered > limit:
        took = messages.human_duration(recovered)
        scale = story.policy.time_scale
        if scale != 1:  # say it in the playbook's time, which the RTO is written in
            took += f" ({messages.human_duration(recovered * scale)} at time scale {scale:g})"
        rto = messages.human_duration(status.rto_seconds)
        story.condition(
            cond.RTO_BREACHED, True, "RecoveredLate", f"Recovered after {took}; RTO {rto}"
        )
        story.log(
            "RTOBreached", f"Time to recover {took} exceeds the runbook RTO {rto}", warning=True
        )


def start(incident: IncidentObject, now: dt.datetime, policy: Policy) -> Story:
    return Story(incident, incident.status.model_copy(deep=True), now, policy)


def advance(story: Story, choice: RunbookChoice) -> LevelPolicy:
    """Triage, acknowledgement, escalation, resolution and updates, as the playbook orders.

    Returns the severity level's policy for the runbook engine to use in the same story.
    """
    policy = story.policy
    story.rto_wall_seconds = (
        choice.rto_seconds / policy.time_scale if choice.rto_seconds is not None else None
    )
    level = _triage(story, policy, choice)
    _select_runbook(story, choice)
    _roles(story)
    _initial_notification(story, policy, level)
    _acknowledge(story, policy, level)
    _alert_resolved(story)
    if choice.name is None and story.status.resolved_at is None:
        current = story.status.escalation.level if story.status.escalation else 0
        if current == 0:
            escalate(story, policy, level, "NoRunbook", choice.message)
    _resolve(story, policy, level)
    _updates(story, policy, level)
    return level


def finish(story: Story) -> Decision:
    summarise(story.status, story.incident.metadata.generation)
    return Decision(story.status, story.entries, story.notifications)


def decide(
    incident: IncidentObject, policy: Policy, choice: RunbookChoice, now: dt.datetime
) -> Decision:
    """The whole decision for an Incident without a runbook step to plan."""
    story = start(incident, now, policy)
    advance(story, choice)
    return finish(story)


def request_approval(story: Story, step_name: str, action_type: str) -> None:
    level = story.policy.level(story.status.severity or 4)
    fields = _fields(story.incident, story.status, story.policy, level, story.now)
    fields.step, fields.action = step_name, action_type
    story.notify(
        "Approval",
        len(story.status.steps),
        f"APPROVAL NEEDED: {fields.service}",
        messages.render(messages.APPROVAL, fields),
    )


def summarise(status: IncidentStatus, generation: int | None) -> None:
    """Phase and current step, derived from the conditions and step records."""
    active = next((s for s in status.steps if s.phase in ACTIVE_STEP_PHASES), None)
    status.current_step = active.name if active else None
    status.phase = cond.derive_phase(status.conditions, active.stage if active else None)
    status.observed_generation = generation
