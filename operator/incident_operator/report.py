"""The post-incident report as Markdown, following the playbook's review agenda."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .domain.messages import human_duration, iso
from .models.objects import IncidentObject


def _row(*cells: str) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def render_report(body: Mapping[str, Any]) -> str:
    """The playbook's review agenda: timeline, root cause, impact, remediation and items."""
    incident = IncidentObject.parse(body)
    sections = (_header, _timeline, _root_cause, _impact, _action_items)
    return "\n".join(line for section in sections for line in section(incident)) + "\n"


def _header(incident: IncidentObject) -> list[str]:
    spec, status = incident.spec, incident.status
    return [
        f"# Post-incident review: {incident.metadata.name}",
        "",
        f"**Service:** {spec.service}  ",
        f"**Summary:** {spec.summary}  ",
        f"**Severity:** Level {status.severity} {status.severity_name or ''} "
        f"(classified by `{status.classified_by}`)  ",
        f"**Runbook:** {status.runbook or 'none'}  ",
        f"**Incident commander:** {status.commander or 'unassigned'}  ",
        f"**Phase:** {status.phase.value if status.phase else 'unknown'}",
        "",
    ]


def _timeline(incident: IncidentObject) -> list[str]:
    status = incident.status
    lines = [
        "## 1. Timeline review",
        "",
        _row("When", "What"),
        _row("---", "---"),
        _row("Detected", iso(status.detected_at)),
        _row("Acknowledged", f"{iso(status.acknowledged_at)} by {status.acknowledged_by or '-'}"),
        _row("Mitigated", iso(status.mitigated_at)),
        _row("Resolved", f"{iso(status.resolved_at)} by {status.resolved_by or '-'}"),
    ]
    if status.time_to_acknowledge_seconds is not None:
        lines.append(
            _row("Time to acknowledge", human_duration(status.time_to_acknowledge_seconds))
        )
    if status.time_to_recover_seconds is not None:
        lines.append(_row("Time to recover", human_duration(status.time_to_recover_seconds)))
    lines += ["", "### Full timeline", ""]
    if status.timeline_folded:
        lines += [f"_{status.timeline_folded} earlier entries folded._", ""]
    lines += [_row("Time", "Type", "Reason", "Message"), _row("---", "---", "---", "---")]
    lines += [_row(iso(e.time), e.type.value, e.reason, e.message) for e in status.timeline]
    return lines


def _root_cause(incident: IncidentObject) -> list[str]:
    status, resolution = incident.status, incident.spec.resolution
    lines = [
        "",
        "## 2. Root cause analysis",
        "",
        f"**Root cause:** {resolution.root_cause if resolution else 'not yet recorded'}",
    ]
    if status.diagnosis:
        lines.append(
            f"**Automated diagnosis:** {status.diagnosis.summary}. "
            f"Suspected: {status.diagnosis.suspected_cause}"
        )
    lines += [
        "",
        "### Runbook steps",
        "",
        _row("Step", "Stage", "Outcome", "Duration", "Result"),
        _row("---", "---", "---", "---", "---"),
    ]
    for step in status.steps:
        duration = human_duration(step.duration_seconds) if step.duration_seconds else "-"
        lines.append(_row(step.name, step.stage, step.phase.value, duration, step.message))
    return lines


def _impact(incident: IncidentObject) -> list[str]:
    spec, status = incident.spec, incident.status
    impact = (spec.resolution.impact if spec.resolution else None) or spec.summary
    breaches = [
        c
        for c in status.conditions
        if c.type in ("ResponseSLABreached", "RecoveryTimeObjectiveBreached")
        and c.status.value == "True"
    ]
    lines = [
        "",
        "## 3. Impact assessment",
        "",
        f"**Impact:** {impact}",
        "",
        "**SLA breaches:** "
        + ("; ".join(f"{c.type} ({c.reason}): {c.message}" for c in breaches) or "none"),
    ]
    escalation = status.escalation
    if escalation and escalation.level:
        lines.append(f"**Escalated to:** {', '.join(escalation.contacts)}")
    return lines


def _action_items(incident: IncidentObject) -> list[str]:
    review = incident.status.review
    lines = ["", "## 4-5. Remediation and action items", ""]
    if review is None:
        return [*lines, "_The incident is not resolved yet._"]
    due = iso(review.due_at) if review.due_at else "optional for this level"
    lines += [
        f"**Review due:** {due}",
        "",
        _row("Action item", "Owner", "Target date", "Priority", "Status"),
        _row("---", "---", "---", "---", "---"),
    ]
    for item in review.action_items:
        owner, date = item.owner or "-", str(item.target_date or "-")
        lines.append(_row(item.description, owner, date, item.priority.value, item.status.value))
    return lines
