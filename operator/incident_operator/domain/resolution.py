"""Recovery and resolution: time to recover against the RTO, the review, alert evidence."""

from __future__ import annotations

import dataclasses
import datetime as dt

from ..models.incident import (
    ActionItem,
    IncidentStatus,
    NotificationState,
    Priority,
    Review,
    StepPhase,
)
from . import conditions as cond
from . import messages
from .alerts import RESOLVED_ANNOTATION
from .notices import message_fields
from .policy import LevelPolicy, Policy
from .story import Story

#: The playbook's "Documentation" list, made the default action items of a required review.
REVIEW_ACTION_ITEMS = (
    ("Add the post-incident document to the wiki", Priority.HIGH),
    ("Update the runbook with lessons learned", Priority.HIGH),
    ("Update monitoring alerts", Priority.MEDIUM),
    ("Train the team on new procedures", Priority.MEDIUM),
)


def alert_resolved(story: Story) -> None:
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


def resolve(story: Story, policy: Policy, level: LevelPolicy) -> None:
    spec, status = story.incident.spec, story.status
    resolution = spec.resolution
    if status.review is not None:
        sync_action_items(status, spec.action_items)
    if resolution is None or status.resolved_at is not None:
        return
    close(
        story,
        Closing(
            when=story.acted_at("spec.resolution"),
            by=resolution.resolved_by,
            root_cause=resolution.root_cause,
            reason="ResolvedByResponder",
            impact=resolution.impact,
            actions=list(resolution.actions),
            actor=resolution.resolved_by,
        ),
        policy,
        level,
    )


@dataclasses.dataclass(frozen=True)
class Closing:
    """Who resolves, when and why: a responder (spec.resolution) or the operator."""

    when: dt.datetime
    by: str
    root_cause: str
    reason: str
    impact: str | None = None
    actions: list[str] = dataclasses.field(default_factory=list)
    actor: str | None = None


def close(story: Story, closing: Closing, policy: Policy, level: LevelPolicy) -> None:
    """Resolve: times, the Resolved condition, the review and the resolution notice."""
    spec, status, now = story.incident.spec, story.status, story.now
    assert status.detected_at is not None
    resolved = closing.when
    status.resolved_at, status.resolved_by = resolved, closing.by
    if status.time_to_recover_seconds is None:
        record_recovery(story, resolved)
    duration = (resolved - status.detected_at).total_seconds()
    story.condition(
        cond.RESOLVED,
        True,
        closing.reason,
        f"Resolved by {closing.by}: {closing.root_cause}"[:1024],
    )
    story.log(
        "Resolved",
        f"Resolved by {closing.by} after "
        f"{messages.human_duration(duration)}; root cause: "
        f"{closing.root_cause}",
        actor=closing.actor,
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
        due_at=resolved + policy.scaled(review_seconds) if review_seconds else None,
        action_items=items,
    )
    fields = message_fields(story.incident, status, policy, level, now)
    fields.duration = messages.human_duration(duration)
    fields.root_cause = closing.root_cause
    fields.impact = closing.impact or fields.impact
    actions = closing.actions or [
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


def sync_action_items(status: IncidentStatus, added: list[ActionItem]) -> None:
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
