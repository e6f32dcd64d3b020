"""Notification texts, after the playbook's Communication Protocols templates.

Admins may override each template in the policy; they are ``str.format`` strings over the
fields of :class:`MessageFields`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import string

from ..durations import format_duration

INITIAL = """\
Subject: INCIDENT: {service} Outage

Team,

An incident has been detected at {detected_at}.

Service: {service}
Severity: Level {severity} ({severity_name})
Status: INVESTIGATING
Initial Impact: {impact}

Incident Commander: {commander}
Technical Lead: {technical_lead}

Status: {status_page}
Updates: Every {cadence}

Action Required: {action_required}"""

UPDATE = """\
INCIDENT UPDATE #{number}

Status: {status}
Duration: {duration}
Affected: {service}

Actions Taken:
{actions}

ETA: {eta}

Next Update: {next_update}"""

RESOLVED = """\
INCIDENT RESOLVED

Service: {service}
Duration: {duration}
Root Cause: {root_cause}
Impact: {impact}

Resolution:
{actions}

Post-Incident Review scheduled for: {review}"""

ESCALATION = """\
INCIDENT ESCALATION: {service} (Level {severity} {severity_name})

Not acknowledged within {response_time}. Escalated to: {contact}.
Summary: {summary}
Status: {status_page}"""

APPROVAL = """\
APPROVAL NEEDED: {service} incident {incident}

Step "{step}" ({action}) waits for approval.
Approve:  kubectl -n {namespace} patch inc {incident} --type merge \
-p '{{"spec":{{"approvals":[{{"step":"{step}","decision":"Approved","by":"<you>"}}]}}}}'"""


@dataclasses.dataclass
class MessageFields:
    incident: str
    namespace: str
    service: str
    summary: str
    severity: int
    severity_name: str
    detected_at: str
    impact: str
    commander: str
    technical_lead: str
    status_page: str
    cadence: str
    action_required: str
    number: int = 0
    status: str = "INVESTIGATING"
    duration: str = ""
    actions: str = "- None yet"
    eta: str = "TBD"
    next_update: str = ""
    root_cause: str = ""
    review: str = "Optional"
    response_time: str = ""
    contact: str = ""
    step: str = ""
    action: str = ""


def bullet_list(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items) if items else "- None yet"


def render(template: str, fields: MessageFields) -> str:
    """Fill a template; unknown placeholders are left visible rather than failing delivery."""
    values = dataclasses.asdict(fields)

    class _Lenient(dict[str, object]):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    return string.Formatter().vformat(template, (), _Lenient(values))


def iso(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "unknown"


def human_duration(seconds: float) -> str:
    """Whole seconds from a minute up; humans do not read milliseconds of an outage."""
    seconds = max(seconds, 0)
    return format_duration(round(seconds) if seconds >= 60 else round(seconds, 1))
