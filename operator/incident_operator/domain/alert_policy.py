"""The policy's ``alerts`` and ``maintenance`` sections: receivers, correlation, resolution
from alerts, silences and maintenance windows (README section 8)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from ..durations import parse_duration
from ..models.base import DNS_LABEL, Duration, LabelName, Model, SecretKeyRef

DEFAULT_RECEIVER = "default"
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$", max_length=512)]


class Receiver(Model):
    """An alert source: its URL path, its token, and the namespaces its alerts may target."""

    name: LabelName = Field(
        description="POST /alertmanager/<name>; the receiver named default also answers "
        "POST /alertmanager."
    )
    namespaces: list[LabelName] = Field(
        min_length=1,
        max_length=64,
        description="Namespaces its alerts may open Incidents in (each must be watched). The "
        "first is where alerts without a namespace label go.",
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Bearer token of this receiver, from a Secret in the operator's "
        "namespace, read at start-up. Default: the operator-wide receiver token.",
    )


class Correlation(Model):
    """Merging Alertmanager groups into one Incident."""

    by_service: bool = Field(
        default=False,
        description="A new group joins an open Incident of the same namespace and service "
        "opened within the window, instead of opening its own.",
    )
    window: Duration = Field(default="10m", description="How recent that Incident must be.")


class ResolveFromAlerts(Model):
    """The operator resolves an Incident whose alerts all resolved (default: off)."""

    enabled: bool = False
    quiet_period: Duration = Field(
        default="5m",
        description="How long every alert must stay resolved, after the runbook finished, "
        "before the operator verifies and resolves (time-scaled).",
    )


class Silences(Model):
    """Alertmanager silences around destructive steps (Alertmanager API v2)."""

    alertmanager_url: Url | None = Field(
        default=None, description="Alertmanager's base URL; unset: no silences."
    )
    duration: Duration = Field(
        default="15m",
        description="Longest silence; it ends earlier when the step ends (not time-scaled).",
    )
    label: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = Field(
        default="service",
        description="The alert label that names the service the step acts on.",
    )

    @model_validator(mode="after")
    def _bounded(self) -> Silences:
        if not 0 < parse_duration(self.duration) <= 24 * 3600:
            raise ValueError("silences.duration must be more than 0 and at most 24h")
        return self


class ReceiverLimits(Model):
    """Bounds of the receiver: what one request may carry, and how many it serves at once."""

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_alerts_per_request: int = Field(default=1000, ge=1, le=10000)
    max_concurrent_requests: int = Field(default=16, ge=1, le=1024)
    queue_size: int = Field(
        default=64, ge=1, le=10000, description="Accepted batches waiting to be applied."
    )
    workers: int = Field(default=4, ge=1, le=64, description="Batches applied at once.")


class AlertsPolicy(Model):
    receivers: list[Receiver] = Field(
        default_factory=list,
        max_length=32,
        description="Empty: one receiver named default that may target only the operator's "
        "namespace (INCIDENT_OPERATOR_NAMESPACE).",
    )
    correlation: Correlation = Field(default_factory=Correlation)
    resolve_from_alerts: ResolveFromAlerts = Field(default_factory=ResolveFromAlerts)
    silences: Silences = Field(default_factory=Silences)
    limits: ReceiverLimits = Field(default_factory=ReceiverLimits)

    @model_validator(mode="after")
    def _unique_receivers(self) -> AlertsPolicy:
        names = [r.name for r in self.receivers]
        if len(names) != len(set(names)):
            raise ValueError("alerts.receivers: names must be unique")
        return self


class MaintenanceWindow(Model):
    """Declared maintenance: no new Incidents and no remediation for its services."""

    name: LabelName
    services: list[LabelName] = Field(min_length=1, max_length=64)
    namespaces: list[LabelName] = Field(
        default_factory=list, max_length=64, description="Empty: every namespace."
    )
    start: dt.datetime
    end: dt.datetime
    reason: Annotated[str, StringConstraints(max_length=256)] = ""

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a time zone, e.g. 2026-01-31T22:00:00Z")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def covers(self, namespace: str, service: str, now: dt.datetime) -> bool:
        return (
            self.start <= now < self.end
            and service in self.services
            and (not self.namespaces or namespace in self.namespaces)
        )


def active_window(
    windows: list[MaintenanceWindow], namespace: str, service: str, now: dt.datetime
) -> MaintenanceWindow | None:
    """The window covering the service now (the one ending last), if any."""
    covering = [w for w in windows if w.covers(namespace, service, now)]
    return max(covering, key=lambda w: w.end) if covering else None


def is_label(text: str) -> bool:
    return len(text) <= 63 and re.fullmatch(DNS_LABEL, text) is not None
