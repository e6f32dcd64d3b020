"""What an Incident's response needs next, decided without touching the cluster.

``decide`` takes the Incident as stored, the policy, the selected runbook and the time, and
returns the new status plus the notifications to send. Everything it does is derived from
status, so a restarted operator reaches the same decisions and never repeats a notification
whose number status already holds.
"""

from __future__ import annotations

import datetime as dt

from ..models.incident import IncidentStatus, StepPhase
from ..models.objects import IncidentObject
from . import conditions as cond
from .alert_resolution import resolve_from_alerts
from .escalation import acknowledge, escalate
from .notices import initial_notification, send_updates
from .policy import LevelPolicy, Policy
from .resolution import alert_resolved, resolve
from .story import Decision, RunbookChoice, Story
from .triage import assign_roles, select_runbook, triage

ACTIVE_STEP_PHASES = (StepPhase.RUNNING, StepPhase.AWAITING_APPROVAL)


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
    level = triage(story, policy, choice)
    select_runbook(story, choice)
    assign_roles(story)
    initial_notification(story, policy, level)
    acknowledge(story, policy, level)
    alert_resolved(story)
    if choice.name is None and story.status.resolved_at is None:
        current = story.status.escalation.level if story.status.escalation else 0
        if current == 0:
            escalate(story, policy, level, "NoRunbook", choice.message)
    resolve(story, policy, level)
    resolve_from_alerts(story, policy, level)
    send_updates(story, policy, level)
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


def summarise(status: IncidentStatus, generation: int | None) -> None:
    """Phase and current step, derived from the conditions and step records."""
    active = next((s for s in status.steps if s.phase in ACTIVE_STEP_PHASES), None)
    status.current_step = active.name if active else None
    status.phase = cond.derive_phase(status.conditions, active.stage if active else None)
    status.observed_generation = generation
