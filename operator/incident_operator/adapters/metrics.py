"""The operator's own metrics, served at ``/metrics`` (``prometheus_client``).

One module defines every series, so the alert rules (``manifests/alerts/operator.rules.yaml``)
and the Grafana dashboard (``manifests/grafana/``) can be checked against it. Decisions feed
the Incident series through :func:`observe` after each commit; steps, deliveries, the safety
gate and the alert receiver count their own outcomes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..models.incident import IncidentStatus

PREFIX = "incident_operator"
ACK_BUCKETS = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
RECOVER_BUCKETS = (60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 14400, 28800, 86400)
STEP_BUCKETS = (0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)

TIME_TO_ACKNOWLEDGE = Histogram(
    f"{PREFIX}_time_to_acknowledge_seconds",
    "From detection to acknowledgement, per severity level.",
    ["severity"],
    buckets=ACK_BUCKETS,
)
TIME_TO_RECOVER = Histogram(
    f"{PREFIX}_time_to_recover_seconds",
    "From detection to mitigation (or resolution), per severity level.",
    ["severity"],
    buckets=RECOVER_BUCKETS,
)
BREACHES = Counter(
    f"{PREFIX}_breaches_total",
    "Response SLA (kind=response) and recovery time objective (kind=rto) breaches.",
    ["severity", "kind"],
)
STEP_RUNS = Counter(
    f"{PREFIX}_step_runs_total", "Runbook steps run, by action and outcome.", ["action", "outcome"]
)
STEP_DURATION = Histogram(
    f"{PREFIX}_step_duration_seconds",
    "How long runbook steps ran, by action.",
    ["action"],
    buckets=STEP_BUCKETS,
)
NOTIFICATIONS = Counter(
    f"{PREFIX}_notifications_total",
    "Notification deliveries by channel and outcome (delivered or failed).",
    ["channel", "outcome"],
)
GUARD_REFUSALS = Counter(
    f"{PREFIX}_guard_refusals_total",
    "Destructive steps the safety gate held back or refused, by reason.",
    ["reason"],
)
ALERTS = Counter(
    f"{PREFIX}_alerts_total",
    "Alertmanager alerts received, deduplicated (joined an open Incident) and rejected.",
    ["outcome"],
)
DECISION_FAILURES = Counter(
    f"{PREFIX}_decision_failures_total", "Decisions that raised and will be tried again."
)
LEADER = Gauge(f"{PREFIX}_leader", "1 while this replica is the one that acts, else 0.")
UP = Gauge(f"{PREFIX}_up", "1 while the operator process runs.")


class OpenIncidents(Collector):
    """``incident_operator_open_incidents{severity, phase}`` from each Incident's last
    committed status; resolved and deleted Incidents are dropped."""

    def __init__(self) -> None:
        self._by_incident: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()  # scrapes run in the metrics server's thread

    def update(self, key: str, status: IncidentStatus | None) -> None:
        with self._lock:
            if status is None or status.resolved_at is not None or status.severity is None:
                self._by_incident.pop(key, None)
            else:
                phase = status.phase.value if status.phase else "Detected"
                self._by_incident[key] = (str(status.severity), phase)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{PREFIX}_open_incidents",
            "Open (unresolved) Incidents by severity and phase.",
            labels=["severity", "phase"],
        )
        with self._lock:
            counts: dict[tuple[str, str], int] = {}
            for labels in self._by_incident.values():
                counts[labels] = counts.get(labels, 0) + 1
        for (severity, phase), count in sorted(counts.items()):
            family.add_metric([severity, phase], count)
        yield family


OPEN_INCIDENTS = OpenIncidents()
REGISTRY.register(OPEN_INCIDENTS)
UP.set(1)


def _true(status: IncidentStatus, condition: str) -> bool:
    return any(c.type == condition and c.status.value == "True" for c in status.conditions)


def observe(key: str, before: IncidentStatus, after: IncidentStatus) -> None:
    """What a committed decision changed: first acknowledgement and recovery times, new
    breaches, and the Incident's severity and phase."""
    OPEN_INCIDENTS.update(key, after)
    severity = str(after.severity or 4)
    if before.time_to_acknowledge_seconds is None and after.time_to_acknowledge_seconds is not None:
        TIME_TO_ACKNOWLEDGE.labels(severity).observe(after.time_to_acknowledge_seconds)
    if before.time_to_recover_seconds is None and after.time_to_recover_seconds is not None:
        TIME_TO_RECOVER.labels(severity).observe(after.time_to_recover_seconds)
    for condition, kind in (
        ("ResponseSLABreached", "response"),
        ("RecoveryTimeObjectiveBreached", "rto"),
    ):
        if _true(after, condition) and not _true(before, condition):
            BREACHES.labels(severity, kind).inc()


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def names() -> set[str]:
    """Every series name this module exposes (for checks of rules and dashboards)."""
    found = {f"{PREFIX}_open_incidents"}
    collectors = (
        TIME_TO_ACKNOWLEDGE, TIME_TO_RECOVER, BREACHES, STEP_RUNS, STEP_DURATION,
        NOTIFICATIONS, GUARD_REFUSALS, ALERTS, DECISION_FAILURES, LEADER, UP,
    )  # fmt: skip
    for collector in collectors:
        for family in collector.describe():
            found |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return found
