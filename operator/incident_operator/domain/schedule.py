"""When an Incident next needs a decision with nothing else happening to it.

The operator does not poll. After each decision it wakes the Incident at the earliest time
something is due by the clock: the response deadline, the next step of the escalation chain,
the next stakeholder update, an approval's timeout, the end of a quiet period before
resolution from alerts, or the end of a maintenance window that holds a step. Changes to the
Incident or its Runbook, and a step's end, wake it as well. A resolved Incident is never
woken by the clock.
"""

from __future__ import annotations

import datetime as dt

from ..durations import parse_duration
from ..models.incident import IncidentStatus, StepPhase
from ..models.runbook import RunbookSpec
from . import conditions as cond
from .alert_resolution import quiet_until
from .policy import Policy

#: Wake a moment after a deadline, so the decision sees it as passed.
MARGIN = dt.timedelta(milliseconds=5)


def next_due(
    status: IncidentStatus, policy: Policy, runbook: RunbookSpec | None
) -> dt.datetime | None:
    """The earliest time the clock alone changes the decision; None when nothing is due."""
    if status.resolved_at is not None or status.severity is None:
        return None
    level = policy.level(status.severity)
    due: list[dt.datetime] = []
    notifications = status.notifications
    if notifications is not None and notifications.next_update_at is not None:
        due.append(notifications.next_update_at)
    if status.acknowledged_at is None and status.detected_at is not None:
        window = policy.scaled(level.response_seconds)
        if status.response_deadline is not None and not cond.find(
            status.conditions, cond.RESPONSE_SLA_BREACHED
        ):
            due.append(status.response_deadline)
        climbed = status.escalation.level if status.escalation else 0
        if climbed < len(policy.escalation_chain):
            due.append(status.detected_at + window * (climbed + 1))
    if runbook is not None:
        limit = policy.scaled(parse_duration(runbook.safety.approval_timeout))
        for record in status.steps:
            if (
                record.phase == StepPhase.AWAITING_APPROVAL
                and record.approval_requested_at is not None
                and not record.approval_escalated
            ):
                due.append(record.approval_requested_at + limit)
    due += [t for t in (quiet_until(status, policy), _maintenance_end(status)) if t]
    return min(due) + MARGIN if due else None


def _maintenance_end(status: IncidentStatus) -> dt.datetime | None:
    return status.maintenance.until if status.maintenance is not None else None
