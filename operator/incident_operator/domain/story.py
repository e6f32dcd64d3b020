"""The story of one decision: the status being changed, its timeline entries and messages.

Every decision about an Incident starts a :class:`Story` from the stored status, lets the
domain functions change it, and ends as a :class:`Decision`: the new status, the timeline
entries to mirror as Events, and the notifications to send. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from ..models.base import TimelineEntry
from ..models.incident import MAX_OUTBOX, IncidentStatus, NotificationState, PendingMessage
from ..models.objects import IncidentObject
from . import conditions as cond
from . import timeline
from .policy import Policy


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
        # Entries of one decision are a microsecond apart, in the order they happened, so
        # their Events sort as the timeline does (kubectl describe orders by time).
        when = self.now + dt.timedelta(microseconds=len(self.entries))
        self.entries.append(
            timeline.append(self.status, when, reason, message, warning=warning, actor=actor)
        )

    def condition(self, type_: str, value: bool, reason: str, message: str) -> None:
        self.status.conditions = cond.set_condition(
            self.status.conditions, type_, value, reason, message, self.now, self.generation
        )

    def acted_at(self, field: str) -> dt.datetime:
        """When a person set ``spec.<field>``, as the API server recorded it, not when the
        operator noticed; ``now`` when the API cannot tell. Never before detection."""
        when = self.incident.metadata.field_times.get(field)
        if when is None or when > self.now:
            return self.now
        floor = self.status.detected_at or self.incident.metadata.created
        return max(when, floor) if floor is not None else when

    def notify(self, kind: str, number: int, title: str, text: str) -> None:
        """Send a message: into the outbox in status, for every channel that wants it, so it
        goes out after the commit and again after a restart until delivered (at least once)."""
        uid = self.incident.metadata.uid
        severity = self.status.severity or 4
        notification = Notification(kind, f"{uid}/{kind}/{number}", severity, title, text)
        self.notifications.append(notification)
        channels = [c.name for c in self.policy.channels if severity <= c.max_severity]
        if not channels:
            return
        if self.status.notifications is None:
            self.status.notifications = NotificationState()
        outbox = self.status.notifications.outbox
        if any(m.key == notification.key for m in outbox):
            return
        message = PendingMessage(
            key=notification.key,
            kind=kind,
            severity=severity,
            title=title,
            text=text,
            channels=channels,
            created_at=self.now,
        )
        kept = [*outbox, message][-MAX_OUTBOX:]
        for dropped in outbox[: len(outbox) + 1 - len(kept)]:
            self.log(
                "NotificationDropped",
                f"{dropped.kind} notification {dropped.key} was never delivered to "
                f"{', '.join(dropped.channels)}; dropped to keep the outbox at {MAX_OUTBOX}",
                warning=True,
            )
        self.status.notifications.outbox = kept
