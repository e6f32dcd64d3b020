"""What a notification changes in an Incident's ``status.alerts``, and which open Incident a
new group may join (correlation). Pure: the receiver commits the result."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from ..models.alerting import MAX_ALERTS, MAX_GROUPS, AlertGroup, AlertRecord, AlertsStatus
from ..models.incident import IncidentStatus
from .alerts import AlertItem, Slice


@dataclasses.dataclass(frozen=True)
class Line:
    """A timeline entry to add: reason, message, warning."""

    reason: str
    message: str
    warning: bool = False


def _names(alerts: Iterable[AlertItem], limit: int = 5) -> str:
    names = list(dict.fromkeys(a.name for a in alerts))
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _group(alerts: AlertsStatus, piece: Slice, merged: bool) -> tuple[AlertGroup | None, bool]:
    """The slice's group record (None when the list is full) and whether it is new."""
    found = next((g for g in alerts.groups if g.key == piece.group), None)
    if found is not None:
        return found, False
    if merged or alerts.groups:
        alerts.groups_merged += 1
    if len(alerts.groups) >= MAX_GROUPS:
        return None, True
    group = AlertGroup(key=piece.group, labels=piece.group_labels)
    alerts.groups.append(group)
    return group, True


def _items(alerts: AlertsStatus, piece: Slice) -> tuple[list[AlertItem], list[AlertItem], bool]:
    """Update the listed alerts; (new firing, newly resolved, any change)."""
    by_print = {r.fingerprint: r for r in alerts.items}
    new_firing: list[AlertItem] = []
    resolved: list[AlertItem] = []
    changed = False
    for item in piece.alerts:
        state = "firing" if item.firing else "resolved"
        record = by_print.get(item.fingerprint)
        if record is None:
            changed = True
            if item.firing:
                new_firing.append(item)
            if len(alerts.items) < MAX_ALERTS:
                record = AlertRecord(
                    fingerprint=item.fingerprint,
                    alert_name=item.name,
                    state=state,
                    starts_at=item.starts_at,
                    ends_at=item.ends_at,
                )
                alerts.items.append(record)
                by_print[item.fingerprint] = record
            continue
        record.seen += 1
        if record.state != state:
            changed = True
            (new_firing if item.firing else resolved).append(item)
            record.state, record.ends_at = state, item.ends_at
            if item.firing:
                record.starts_at = item.starts_at
    return new_firing, resolved, changed


def record(
    status: IncidentStatus, piece: Slice, now: dt.datetime, *, merged: bool = False
) -> list[Line]:
    """Fold one notification's slice into ``status.alerts``; the timeline lines it tells.

    ``merged``: the slice's group joins an Incident opened for another group (correlation).
    """
    alerts = status.alerts or AlertsStatus()
    status.alerts = alerts
    lines: list[Line] = []
    group, new_group = _group(alerts, piece, merged)
    if new_group and alerts.notifications > 0:
        lines.append(
            Line(
                "AlertGroupJoined",
                f"Alert group {_labels(piece)} joined this Incident "
                f"(same service {piece.service}): {_names(piece.alerts)}",
            )
        )
    new_firing, resolved, changed = _items(alerts, piece)
    firing_now = sum(1 for a in piece.alerts if a.firing)
    alerts.notifications += 1
    if not changed and not new_group:
        alerts.repeats += 1
    if group is not None:
        if group.firing != firing_now or group.resolved != len(piece.alerts) - firing_now:
            changed = True
        group.notifications += 1
        group.last_notified_at = now
        group.firing, group.resolved = firing_now, len(piece.alerts) - firing_now
        group.resolved_at = (group.resolved_at or now) if firing_now == 0 else None
    alerts.firing = sum(g.firing for g in alerts.groups)
    alerts.total = sum(g.firing + g.resolved for g in alerts.groups)
    if new_firing:
        again = alerts.all_resolved_at is not None
        lines.append(
            Line(
                "AlertFiringAgain" if again else "AlertFiring",
                f"{len(new_firing)} alert(s) firing: {_names(new_firing)}",
                warning=again,
            )
        )
    if resolved:
        lines.append(
            Line("AlertResolved", f"{len(resolved)} alert(s) resolved: {_names(resolved)}")
        )
    _all_resolved(status, alerts, now, lines)
    return lines


def _labels(piece: Slice) -> str:
    shown = ",".join(f"{k}={v}" for k, v in sorted(piece.group_labels.items())[:4])
    return "{" + shown + "}"


def _all_resolved(
    status: IncidentStatus, alerts: AlertsStatus, now: dt.datetime, lines: list[Line]
) -> None:
    every = bool(alerts.groups) and all(g.firing == 0 for g in alerts.groups)
    if every and alerts.all_resolved_at is None:
        alerts.all_resolved_at = now
        status.alert_resolved_at = status.alert_resolved_at or now
        lines.append(
            Line(
                "AlertsResolved",
                f"Alertmanager reports every alert resolved ({alerts.total} alert(s) in "
                f"{len(alerts.groups)} group(s))",
            )
        )
    elif not every:
        alerts.all_resolved_at = None


def correlates(
    status: IncidentStatus,
    created: dt.datetime | None,
    now: dt.datetime,
    window: dt.timedelta,
) -> bool:
    """An open Incident a new group of the same service may join: unresolved and opened
    within the window."""
    if status.resolved_at is not None or created is None:
        return False
    return now - created <= window
