"""Resolution from alerts (policy ``alerts.resolveFromAlerts``) and maintenance holds.

When every alert of an Incident has resolved and its runbook completed (Mitigated: the phase
is Monitoring), the operator waits a quiet period. If no alert fired again meanwhile (a new
firing clears ``status.alerts.allResolvedAt``), it verifies that and resolves the Incident
itself, as ``incident-operator``. Without the policy option resolved alerts are evidence only.
"""

from __future__ import annotations

import datetime as dt

from ..durations import parse_duration
from ..models.alerting import MaintenanceHold
from ..models.incident import IncidentStatus
from . import conditions as cond
from . import messages
from .alert_policy import MaintenanceWindow, active_window
from .policy import LevelPolicy, Policy
from .resolution import Closing, close
from .story import Story

OPERATOR = "incident-operator"
MONITORING_REASON = "AlertsResolved"


def quiet_until(status: IncidentStatus, policy: Policy) -> dt.datetime | None:
    """When the quiet period ends, or None when the Incident is not waiting for one."""
    option = policy.alerts.resolve_from_alerts
    alerts = status.alerts
    if not option.enabled or status.resolved_at is not None or alerts is None:
        return None
    resolved = alerts.all_resolved_at
    mitigated = cond.find(status.conditions, cond.MITIGATED)
    if resolved is None or mitigated is None or mitigated.status.value != "True":
        return None
    start = max(resolved, status.mitigated_at or resolved)
    return start + policy.scaled(parse_duration(option.quiet_period))


def resolve_from_alerts(story: Story, policy: Policy, level: LevelPolicy) -> None:
    status = story.status
    until = quiet_until(status, policy)
    if until is None:
        return
    alerts = status.alerts
    assert alerts is not None and alerts.all_resolved_at is not None
    quiet = policy.alerts.resolve_from_alerts.quiet_period
    if story.now < until:
        if not _told_monitoring(story):
            story.log(
                "MonitoringAlerts",
                f"Every alert resolved and the runbook finished: monitoring for {quiet}; "
                f"resolving at {messages.iso(until)} unless an alert fires again",
            )
        return
    # Verification: a firing notification in the quiet period would have cleared
    # allResolvedAt (and so the due time); check the record says so before closing.
    last = max((g.last_notified_at for g in alerts.groups if g.last_notified_at), default=None)
    if alerts.firing or (last is not None and last > story.now):
        return
    story.log(
        "AlertsVerified",
        f"Verified: all {alerts.total} alert(s) of {len(alerts.groups)} group(s) stayed "
        f"resolved for {quiet} (since {messages.iso(alerts.all_resolved_at)}), after "
        f"{alerts.notifications} notification(s)",
    )
    close(
        story,
        Closing(
            when=story.now,
            by=OPERATOR,
            root_cause=(
                "Alerts resolved after the runbook "
                f"{status.runbook or ''} completed; verified quiet for {quiet}"
            ),
            reason="ResolvedFromAlerts",
        ),
        policy,
        level,
    )


def _told_monitoring(story: Story) -> bool:
    """Told since the alerts last resolved (a re-firing starts the story again)."""
    alerts = story.status.alerts
    assert alerts is not None and alerts.all_resolved_at is not None
    return any(
        e.reason == "MonitoringAlerts" and e.time >= alerts.all_resolved_at
        for e in story.status.timeline
    )


def hold_for_maintenance(
    story: Story, windows: list[MaintenanceWindow], step: str | None
) -> MaintenanceHold | None:
    """Hold a destructive ``step`` (None: no destructive step is next) while a maintenance
    window covers the Incident's service; the hold (and its end, a due time) is kept in
    ``status.maintenance``."""
    incident = story.incident
    window = active_window(windows, incident.metadata.namespace, incident.spec.service, story.now)
    status = story.status
    if window is None or step is None:
        if status.maintenance is not None:
            story.log(
                "MaintenanceEnded",
                f"Maintenance window {status.maintenance.window} ended; remediation goes on",
            )
            status.maintenance = None
        return None
    hold = MaintenanceHold(window=window.name, until=window.end, step=step)
    if status.maintenance != hold:
        status.maintenance = hold
        reason = f" ({window.reason})" if window.reason else ""
        story.log(
            "RemediationSuppressed",
            f"Maintenance window {window.name}{reason} holds step {step} until "
            f"{messages.iso(window.end)}",
        )
    return hold
