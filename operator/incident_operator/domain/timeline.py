"""The bounded incident timeline kept in status."""

from __future__ import annotations

import datetime as dt

from ..models.base import EventType, TimelineEntry
from ..models.incident import MAX_TIMELINE, IncidentStatus


def append(
    status: IncidentStatus,
    now: dt.datetime,
    reason: str,
    message: str,
    *,
    warning: bool = False,
    actor: str | None = None,
    limit: int = MAX_TIMELINE,
) -> TimelineEntry:
    """Append an entry; past ``limit`` the oldest entries fold into ``timelineFolded``."""
    entry = TimelineEntry(
        time=now,
        type=EventType.WARNING if warning else EventType.NORMAL,
        reason=reason,
        message=message,  # the model cuts it to its limit
        actor=actor,
    )
    timeline = [*status.timeline, entry]
    overflow = len(timeline) - limit
    if overflow > 0:
        timeline = timeline[overflow:]
        status.timeline_folded += overflow
    status.timeline = timeline
    return entry
