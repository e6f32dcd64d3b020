"""Alertmanager webhook payloads to Incidents (the playbook's automated detection)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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
RESOLVED_ANNOTATION = "incidents.dev/alert-resolved-at"


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


class WebhookPayload(BaseModel):
    """Alertmanager's webhook_config body, version 4."""

    model_config = ConfigDict(extra="ignore")

    version: str = "4"
    status: str
    alerts: list[Alert] = Field(min_length=1)
    externalURL: str | None = None


@dataclasses.dataclass(frozen=True)
class AlertIncident:
    name: str
    namespace: str
    firing: bool
    body: dict[str, Any]


def _label(text: str, limit: int = 40) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return cleaned[:limit].strip("-") or "alert"


def fingerprint(alert: Alert) -> str:
    if alert.fingerprint and re.fullmatch(r"[0-9a-f]{1,64}", alert.fingerprint):
        return alert.fingerprint
    canonical = ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def incident_name(alertname: str, print_: str, starts_at: str | None) -> str:
    """One Incident per firing episode: Alertmanager repeats an alert with the same fingerprint
    and startsAt until it resolves; a later firing starts at another time, a new Incident."""
    episode = hashlib.sha256((starts_at or "").encode()).hexdigest()[:6]
    return f"am-{_label(alertname)}-{print_[:10]}-{episode}"


def to_incident(alert: Alert, default_namespace: str) -> AlertIncident:
    """One Incident per alert fingerprint, so repeated notifications never duplicate it."""
    labels = alert.labels
    name_label = labels.get("alertname", "alert")
    print_ = fingerprint(alert)
    service = next((labels[k] for k in SERVICE_LABELS if labels.get(k)), name_label)
    severity = SEVERITY_LABELS.get(labels.get("severity", "").lower(), 3)
    summary = alert.annotations.get("summary") or f"{name_label} firing for {service}"
    symptoms = [s for s in (alert.annotations.get("description"),) if s]
    body = {
        "apiVersion": "incidents.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {
            "name": incident_name(name_label, print_, alert.startsAt),
            "labels": {
                "incidents.dev/source": "alertmanager",
                "incidents.dev/alertname": _label(name_label, 63),
            },
        },
        "spec": {
            "service": _label(service, 63),
            "summary": summary[:256],
            "severity": severity,
            "symptoms": [s[:256] for s in symptoms],
            "source": {
                "kind": "Alertmanager",
                "alertName": name_label[:253],
                "fingerprint": print_,
                "labels": {k: v[:1024] for k, v in list(labels.items())[:64]},
                **({"generatorUrl": alert.generatorURL[:2048]} if alert.generatorURL else {}),
            },
        },
    }
    namespace = labels.get("incident_namespace") or labels.get("namespace") or default_namespace
    name = incident_name(name_label, print_, alert.startsAt)
    return AlertIncident(name, namespace, alert.status == "firing", body)


def parse(payload: Mapping[str, Any], default_namespace: str) -> list[AlertIncident]:
    hook = WebhookPayload.model_validate(payload)
    return [to_incident(alert, default_namespace) for alert in hook.alerts]
