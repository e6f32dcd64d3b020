"""Notification texts, after the playbook's Communication Protocols templates.

Admins may override each template in the policy; they are ``str.format`` strings over the
fields of :class:`MessageFields`. :func:`check_template` runs when the policy loads: only
named fields of ``MessageFields``, no attribute or index access, format specs without nested
fields and at most :data:`MAX_WIDTH` wide; then a test render. So rendering at decision time
cannot fail or blow up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
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


FIELDS = frozenset(field.name for field in dataclasses.fields(MessageFields))
#: The widest field (or precision) a format spec may ask for, e.g. ``{service:>20}``.
MAX_WIDTH = 256
_SPEC = re.compile(
    r"(?:.?[<>=^])?[+\- ]?z?#?0?(?P<width>[0-9]+)?[_,]?(?:\.(?P<precision>[0-9]+))?"
    r"[bcdeEfFgGnosxX%]?",
    re.DOTALL,
)
#: Values to test-render templates with, one of each field's type.
SAMPLE = MessageFields(
    incident="dashboard-down",
    namespace="shop",
    service="dashboard",
    summary="Dashboard returns 503",
    severity=2,
    severity_name="HIGH",
    detected_at="2026-11-27 12:00:00 UTC",
    impact="All users affected",
    commander="alice",
    technical_lead="bob",
    status_page="https://status.company.com",
    cadence="15m",
    action_required="Technical lead + on-call engineer",
    number=1,
)


def _check_field(field: str, conversion: str | None, spec: str) -> None:
    shown = (
        "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
    )
    if field == "" or field.isdigit():
        raise ValueError(f"{shown}: positional fields are not supported, name one of the fields")
    if field not in FIELDS:
        raise ValueError(
            f"unknown field {shown} (no attribute or index access); the fields are "
            + ", ".join(sorted(FIELDS))
        )
    if "{" in spec:
        raise ValueError(f"{shown}: nested fields in a format spec are not supported")
    found = _SPEC.fullmatch(spec)
    if found is None:
        raise ValueError(f"{shown}: not a format spec")
    for part in ("width", "precision"):
        if found.group(part) and int(found.group(part)) > MAX_WIDTH:
            raise ValueError(f"{shown}: a {part} over {MAX_WIDTH} is not allowed (width limit)")
    try:
        shown.format_map(dataclasses.asdict(SAMPLE))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{shown} cannot be rendered: {exc}") from None


def check_template(template: str) -> None:
    """``ValueError`` naming the first placeholder that could fail or blow up when rendered."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"not a template: {exc}") from None
    for _, field, spec, conversion in parsed:
        if field is not None:
            _check_field(field, conversion, spec or "")
    try:
        render(template, SAMPLE)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot be rendered: {exc}") from None


def bullet_list(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items) if items else "- None yet"


def render(template: str, fields: MessageFields) -> str:
    """Fill a template that :func:`check_template` accepted (every policy template was)."""
    return template.format_map(dataclasses.asdict(fields))


def iso(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "unknown"


def human_duration(seconds: float) -> str:
    """Whole seconds from a minute up; humans do not read milliseconds of an outage."""
    seconds = max(seconds, 0)
    return format_duration(round(seconds) if seconds >= 60 else round(seconds, 1))
