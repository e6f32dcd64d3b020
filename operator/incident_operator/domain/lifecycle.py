"""What an Incident's response needs next, decided without touching the cluster.

``decide`` takes the Incident as stored, the policy, the selected runbook and the time, and
returns the new status plus the notifications to send. Everything it does is derived from
status, so a restarted operator reaches the same decisions and never repeats a notification
whose number status already holds.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from ..models.base import clamp
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
    if cond.is_true(story.status.conditions, cond.DECISION_FAILED):
        story.condition(cond.DECISION_FAILED, False, "Decided", "The operator decides again")
        story.log("DecisionRecovered", "The operator decides for the incident again")
    summarise(story.status, story.incident.metadata.generation)
    return Decision(story.status, story.entries, story.notifications)


def failed(
    incident: IncidentObject,
    now: dt.datetime,
    policy: Policy,
    error: Exception,
    step: str | None = None,
) -> Decision:
    """The decision that could not be made, as a condition: status says why, and the
    operator tries again later (a change to the Incident wakes it at once).

    Only what changed is recorded, so the same failure again writes nothing. ``step``
    names a Running step whose result could not be recorded: it is marked Failed, since
    it ran, rather than left to look interrupted.
    """
    story = start(incident, now, policy)
    why = f"{type(error).__name__}: {error}"
    record = next((s for s in story.status.steps if s.name == step), None)
    if record is not None and record.phase == StepPhase.RUNNING:
        record.phase, record.finished_at = StepPhase.FAILED, now
        record.message = f"Its result could not be recorded: {why}"
    current = cond.find(story.status.conditions, cond.DECISION_FAILED)
    message = clamp(f"{why}; the operator tries again", 1024)
    if current is None or current.status.value != "True" or current.message != message:
        story.condition(cond.DECISION_FAILED, True, "DecisionFailed", message)
        story.log("DecisionFailed", f"The operator could not decide: {why}", warning=True)
    with contextlib.suppress(Exception):  # the failure may be in the summary: keep the rest
        summarise(story.status, incident.metadata.generation)
    return Decision(story.status, story.entries, [])


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
