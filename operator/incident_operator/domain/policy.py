"""The response policy: the playbook's severity levels, escalation chain and channels.

The playbook's values are the defaults. A cluster admin overrides any of them with a YAML
file (mounted from a ConfigMap) without code changes; an invalid file stops the operator
at start-up with a message naming the bad field, before it touches any Incident.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, StringConstraints, ValidationError, field_validator, model_validator

from ..durations import parse_duration
from ..models.actions import AbsolutePath
from ..models.base import Duration, Model, SecretKeyRef, StrEnum
from . import messages
from .alert_policy import AlertsPolicy, MaintenanceWindow
from .allowlists import ExecPolicy, TargetsPolicy

TemplateText = Annotated[str, StringConstraints(max_length=4096)]


class LevelPolicy(Model):
    level: int = Field(ge=1, le=4)
    name: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    impact: Annotated[str, StringConstraints(max_length=256)] = ""
    response_time: Duration = Field(description="Acknowledge within this; at least 1s.")
    update_cadence: Duration = Field(description="A status update this often; at least 1s.")
    stakeholders: list[str] = Field(default_factory=list)
    action: Annotated[str, StringConstraints(max_length=256)] = ""
    war_room: bool = False
    review_within: Duration | None = None

    @field_validator("response_time", "update_cadence")
    @classmethod
    def _at_least_a_second(cls, value: str) -> str:
        # Zero would divide by zero (escalation steps) or send an update on every decision.
        if parse_duration(value) < 1:
            raise ValueError("must be at least 1s")
        return value

    @property
    def response_seconds(self) -> float:
        return parse_duration(self.response_time)

    @property
    def cadence_seconds(self) -> float:
        return parse_duration(self.update_cadence)

    @property
    def review_seconds(self) -> float | None:
        return parse_duration(self.review_within) if self.review_within else None


class ChannelKind(StrEnum):
    SLACK = "slack"
    WEBHOOK = "webhook"


class Channel(Model):
    """A notification destination. Its URL is read from a Secret, never from this file."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    kind: ChannelKind
    url_secret_ref: SecretKeyRef
    namespace: Annotated[str, StringConstraints(min_length=1, max_length=63)] | None = Field(
        default=None, description="Namespace of the Secret; the operator's own by default."
    )
    max_severity: int = Field(
        default=4, ge=1, le=4, description="Only incidents at this level or more severe."
    )


class Templates(Model):
    """Optional overrides of the playbook's message templates (Python str.format fields of
    ``messages.MessageFields``); each is checked and test-rendered when the policy loads."""

    initial: TemplateText | None = None
    update: TemplateText | None = None
    resolved: TemplateText | None = None

    @field_validator("initial", "update", "resolved")
    @classmethod
    def _renders(cls, template: str | None) -> str | None:
        if template is not None:
            messages.check_template(template)
        return template


class JobsPolicy(Model):
    """Limits on the Jobs that runJob steps create."""

    host_path_allowlist: list[AbsolutePath] = Field(
        default_factory=list,
        max_length=32,
        description="Node directories a runJob volume may mount as hostPath: the path "
        "itself or anything below it, e.g. /var/backups. Empty (the default): no hostPath. "
        "The kubelet follows symbolic links on the node, so list only directories that "
        "untrusted Jobs cannot write into, or whose Jobs you trust.",
    )

    def allows_host_path(self, path: str) -> bool:
        """``path`` (absolute, normalized: the RunJob schema allows no ``.``/``..``
        segments) is an allowlisted directory or lies below one."""
        return any(
            path == entry or path.startswith(entry + "/") for entry in self.host_path_allowlist
        )


class Policy(Model):
    levels: list[LevelPolicy] = Field(min_length=4, max_length=4)
    escalation_chain: list[str] = Field(min_length=1, max_length=16)
    time_scale: float = Field(
        default=1.0,
        ge=0.01,
        le=100000,
        description="Policy durations are divided by this (0.01-100000); tests use a large "
        "value. At least 0.01, so that no scaled duration (at most 365d) overflows a date.",
    )
    status_page: str = "https://status.company.com"
    incident_channel: str = "#incident-response"
    channels: list[Channel] = Field(default_factory=list)
    templates: Templates = Field(default_factory=Templates)
    delivery_attempts: int = Field(default=3, ge=1, le=10)
    delivery_timeout: Duration = "5s"
    jobs: JobsPolicy = Field(default_factory=JobsPolicy)
    exec: ExecPolicy = Field(default_factory=ExecPolicy)
    targets: TargetsPolicy = Field(default_factory=TargetsPolicy)
    alerts: AlertsPolicy = Field(default_factory=AlertsPolicy)
    maintenance: list[MaintenanceWindow] = Field(
        default_factory=list,
        max_length=64,
        description="Maintenance windows: no new Incidents, no remediation for their services.",
    )

    @model_validator(mode="after")
    def _one_entry_per_level(self) -> Policy:
        if sorted(level.level for level in self.levels) != [1, 2, 3, 4]:
            raise ValueError("levels must list each severity 1, 2, 3 and 4 exactly once")
        return self

    def level(self, severity: int) -> LevelPolicy:
        return next(level for level in self.levels if level.level == severity)

    def scaled(self, seconds: float) -> dt.timedelta:
        """A policy duration as wall-clock time under the configured time scale."""
        return dt.timedelta(seconds=seconds / self.time_scale)


PLAYBOOK_DEFAULTS: dict[str, Any] = {
    "levels": [
        {
            "level": 1,
            "name": "CRITICAL",
            "impact": "Complete service outage or data loss",
            "responseTime": "2m",
            "updateCadence": "10m",
            "stakeholders": ["CEO", "CTO", "VP Engineering"],
            "action": "Activate full incident response team",
            "warRoom": True,
            "reviewWithin": "24h",
        },
        {
            "level": 2,
            "name": "HIGH",
            "impact": "Significant degradation or partial outage",
            "responseTime": "5m",
            "updateCadence": "15m",
            "stakeholders": ["VP Engineering", "Product Manager"],
            "action": "Technical lead + on-call engineer",
            "warRoom": True,
            "reviewWithin": "48h",
        },
        {
            "level": 3,
            "name": "MEDIUM",
            "impact": "Minor degradation or single service issue",
            "responseTime": "15m",
            "updateCadence": "1h",
            "stakeholders": ["Engineering Lead"],
            "action": "On-call engineer investigation",
        },
        {
            "level": 4,
            "name": "LOW",
            "impact": "No user impact, monitoring alert only",
            "responseTime": "1h",
            "updateCadence": "24h",
            "stakeholders": [],
            "action": "Log ticket for investigation",
        },
    ],
    "escalationChain": ["On-Call Engineer", "Engineering Lead", "VP Engineering", "CTO"],
}


class PolicyError(Exception):
    """The policy file is unusable; the message names the field."""


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if key == "levels" and isinstance(value, list):
            # Levels merge by their number so an admin can override one field of one level.
            by_level = {entry["level"]: dict(entry) for entry in base["levels"]}
            for entry in value:
                level = entry.get("level") if isinstance(entry, dict) else None
                if not isinstance(level, int) or isinstance(level, bool):
                    raise PolicyError("each entry of levels needs a level number (1-4)")
                by_level[entry["level"]] = {**by_level.get(entry["level"], {}), **entry}
            merged["levels"] = list(by_level.values())
        else:
            merged[key] = value
    return merged


def load_policy(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Policy:
    """The playbook defaults, overlaid with the YAML file at ``path`` and ``overrides``."""
    data = dict(PLAYBOOK_DEFAULTS)
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PolicyError(f"cannot read policy file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise PolicyError(f"policy file {path} must hold a mapping")
        data = _merge(data, loaded)
    if overrides:
        data = _merge(data, overrides)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"invalid policy: {problems}") from exc
