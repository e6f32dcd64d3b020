"""Alertmanager webhook payloads to Incidents: one Incident per problem (README section 8).

A notification carries the alerts of one Alertmanager aggregation group. Its alerts are
validated one by one (a bad alert fails alone), routed to a namespace the receiver may target,
and sliced by namespace. Each slice names one Incident: a hash of the receiver, the group key
and the namespace, so every notification of the group (repeats included) finds the same one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .alert_policy import is_label

SEVERITY_LABELS = {
    "critical": 1,
    "page": 1,
    "p1": 1,
    "high": 2,
    "error": 2,
    "major": 2,
    "p2": 2,
    "warning": 3,
    "medium": 3,
    "minor": 3,
    "p3": 3,
    "info": 4,
    "low": 4,
    "none": 4,
    "p4": 4,
}
SERVICE_LABELS = ("service", "app", "job", "container")
NAMESPACE_LABELS = ("incident_namespace", "namespace")
#: Set by receivers before this one; still read so older Incidents keep their evidence.
RESOLVED_ANNOTATION = "incidents.dev/alert-resolved-at"
GROUP_LABEL = "incidents.dev/alert-group"
SOURCE_LABEL = "incidents.dev/source"
#: Label and annotation strings are cut to these lengths before anything else reads them.
MAX_LABELS = 64
Text = Annotated[str, StringConstraints(max_length=16384)]


class PayloadError(ValueError):
    """The request is not an Alertmanager notification (the whole request fails: 400)."""


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Annotated[str, StringConstraints(pattern=r"^(firing|resolved)$")]
    labels: dict[Text, Text] = Field(default_factory=dict, max_length=MAX_LABELS)
    annotations: dict[Text, Text] = Field(default_factory=dict, max_length=MAX_LABELS)
    startsAt: dt.datetime | None = None
    endsAt: dt.datetime | None = None
    generatorURL: Text | None = None
    fingerprint: Text | None = None


class Envelope(BaseModel):
    """Alertmanager's webhook_config body, version 4, without its alerts."""

    model_config = ConfigDict(extra="ignore")

    version: Text = "4"
    status: Annotated[str, StringConstraints(pattern=r"^(firing|resolved)$")]
    receiver: Text = ""
    groupKey: Text | None = None
    groupLabels: dict[Text, Text] = Field(default_factory=dict, max_length=MAX_LABELS)
    commonLabels: dict[Text, Text] = Field(default_factory=dict, max_length=MAX_LABELS)
    externalURL: Text | None = None
    truncatedAlerts: int = Field(default=0, ge=0)


@dataclasses.dataclass(frozen=True)
class AlertItem:
    """One valid alert, routed to its namespace."""

    index: int
    fingerprint: str
    name: str
    firing: bool
    service: str
    severity: int
    namespace: str
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    labels: Mapping[str, str]
    summary: str | None
    description: str | None
    generator_url: str | None


@dataclasses.dataclass(frozen=True)
class Rejected:
    index: int
    fingerprint: str | None
    reason: str


@dataclasses.dataclass
class Slice:
    """The alerts of one group that go to one namespace: one Incident's share of a batch."""

    namespace: str
    group: str  #: hash of receiver, group key and namespace
    group_labels: dict[str, str]
    base_name: str
    alerts: list[AlertItem]

    @property
    def service(self) -> str:
        return self.alerts[0].service

    @property
    def firing(self) -> bool:
        return any(a.firing for a in self.alerts)


@dataclasses.dataclass(frozen=True)
class SliceResult:
    """What happened to one slice: its Incident and outcome, or why it failed."""

    incident: str | None
    #: created, updated, joined, repeat, resolved, ignored, suppressed, rejected, failed
    outcome: str
    error: str | None = None


@dataclasses.dataclass
class Batch:
    receiver: str
    slices: list[Slice]
    rejected: list[Rejected]
    truncated: int = 0

    @property
    def size(self) -> int:
        return sum(len(s.alerts) for s in self.slices) + len(self.rejected)


def _slug(text: str, limit: int = 30) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return cleaned[:limit].strip("-") or "alert"


def _hash(*parts: str, length: int = 16) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


def fingerprint(alert: Alert) -> str:
    if alert.fingerprint and re.fullmatch(r"[0-9a-f]{1,64}", alert.fingerprint):
        return alert.fingerprint
    return _hash(json.dumps(sorted(alert.labels.items())))


def episode_name(base: str, episode: int) -> str:
    """The Incident of the group's ``episode``-th problem (1: the first). A group whose
    Incident was resolved opens the next episode when it fires again."""
    return base if episode <= 1 else f"{base}-{episode}"


def _namespace(labels: Mapping[str, str], allowed: Sequence[str]) -> str:
    wanted = next((labels[k] for k in NAMESPACE_LABELS if labels.get(k)), None)
    if wanted is None:
        return allowed[0]
    if wanted not in allowed:
        shown = wanted[:63]
        raise ValueError(f"namespace {shown!r} is not allowed for this receiver")
    return wanted


def _item(index: int, raw: Any, allowed: Sequence[str]) -> AlertItem:
    alert = Alert.model_validate(raw)
    labels = {k[:253]: v[:1024] for k, v in alert.labels.items()}
    name = labels.get("alertname", "alert")
    service_raw = next((labels[k] for k in SERVICE_LABELS if labels.get(k)), name)
    service = _slug(service_raw, 63)
    if not is_label(service):
        raise ValueError(f"service {service_raw[:63]!r} does not make a DNS label")
    return AlertItem(
        index=index,
        fingerprint=fingerprint(alert),
        name=name[:253],
        firing=alert.status == "firing",
        service=service,
        severity=SEVERITY_LABELS.get(labels.get("severity", "").lower(), 3),
        namespace=_namespace(labels, allowed),
        starts_at=alert.startsAt,
        ends_at=alert.endsAt if alert.status == "resolved" else None,
        labels=labels,
        summary=(alert.annotations.get("summary") or "")[:256] or None,
        description=(alert.annotations.get("description") or "")[:256] or None,
        generator_url=(alert.generatorURL or "")[:2048] or None,
    )


def _error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])[:80]
        return f"invalid alert: {where}: {first['msg']}"[:200]
    return str(exc)[:200]


def plan(payload: Any, receiver: str, allowed: Sequence[str], max_alerts: int) -> Batch:
    """Validate a notification and slice its alerts; raises PayloadError for a non-payload."""
    if not isinstance(payload, dict):
        raise PayloadError("the body must be a JSON object")
    try:
        envelope = Envelope.model_validate(payload)
    except ValidationError as exc:
        raise PayloadError(_error(exc).replace("invalid alert", "invalid payload")) from exc
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise PayloadError("alerts must be a non-empty list")
    if len(raw_alerts) > max_alerts:
        raise PayloadError(f"{len(raw_alerts)} alerts in one request; at most {max_alerts}")
    batch = Batch(receiver, [], [], envelope.truncatedAlerts)
    slices: dict[str, Slice] = {}
    for index, raw in enumerate(raw_alerts):
        try:
            item = _item(index, raw, allowed)
        except (ValidationError, ValueError) as exc:
            given = raw.get("fingerprint") if isinstance(raw, dict) else None
            shown = given[:64] if isinstance(given, str) else None
            batch.rejected.append(Rejected(index, shown, _error(exc)))
            continue
        key = _group_key(envelope, item)
        group = _hash(receiver, key, item.namespace)
        if group not in slices:
            title = envelope.groupLabels.get("alertname") or item.name
            slices[group] = Slice(
                namespace=item.namespace,
                group=group,
                group_labels={k[:63]: v[:256] for k, v in list(envelope.groupLabels.items())[:16]},
                base_name=f"am-{_slug(title)}-{group[:12]}",
                alerts=[],
            )
        slices[group].alerts.append(item)
    batch.slices = list(slices.values())
    return batch


def _group_key(envelope: Envelope, item: AlertItem) -> str:
    """Alertmanager's groupKey; for a hand-made payload without one, its groupLabels; with
    neither, the alert alone is its group."""
    if envelope.groupKey:
        return envelope.groupKey
    if envelope.groupLabels:
        return json.dumps(sorted(envelope.groupLabels.items()))
    return f"alert:{item.fingerprint}"


def incident_body(piece: Slice, name: str) -> dict[str, Any]:
    """The Incident a slice opens: its first firing alert tells the story, the most severe
    alert sets the severity."""
    firing = [a for a in piece.alerts if a.firing] or piece.alerts
    lead = firing[0]
    severity = min(a.severity for a in firing)
    symptoms = list(dict.fromkeys(a.description for a in firing if a.description))[:8]
    labels = dict(list(lead.labels.items())[:MAX_LABELS])
    return {
        "apiVersion": "incidents.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {
            "name": name,
            "labels": {
                SOURCE_LABEL: "alertmanager",
                "incidents.dev/alertname": _slug(lead.name, 63),
                GROUP_LABEL: piece.group,
            },
        },
        "spec": {
            "service": lead.service,
            "summary": lead.summary or f"{lead.name} firing for {lead.service}"[:256],
            "severity": severity,
            "symptoms": symptoms,
            "source": {
                "kind": "Alertmanager",
                "alertName": lead.name,
                "fingerprint": lead.fingerprint,
                "labels": labels,
                **({"generatorUrl": lead.generator_url} if lead.generator_url else {}),
            },
        },
    }
