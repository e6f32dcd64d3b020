"""The generated CRDs on a real API server: printer columns, categories, strict validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from tests.fixtures.cluster import Objects, kubectl

pytestmark = pytest.mark.cluster

INCIDENT: dict[str, Any] = {
    "kind": "Incident",
    "metadata": {"name": "probe"},
    "spec": {"service": "dashboard", "summary": "Dashboard /health returns 503", "severity": 2},
}
STEP = {
    "name": "restart",
    "action": {"type": "restartWorkload", "workload": {"kind": "Deployment", "name": "dashboard"}},
}
RUNBOOK: dict[str, Any] = {
    "kind": "Runbook",
    "metadata": {"name": "probe"},
    "spec": {"title": "Dashboard Service Outage", "rto": {"mitigation": "5m"}, "recovery": [STEP]},
}


def test_printer_columns_and_category(objects: Objects, namespace: str) -> None:
    objects.create("incidents", copy.deepcopy(INCIDENT))
    plain = kubectl("get", "inc", "-n", namespace).stdout
    header = plain.splitlines()[0].split()
    assert header == ["NAME", "SEVERITY", "PHASE", "SERVICE", "RUNBOOK", "AGE"]
    wide = kubectl("get", "inc", "-n", namespace, "-o", "wide").stdout.splitlines()[0]
    for column in ("STEP", "COMMANDER", "ACKED-BY", "ESCALATION", "UPDATES", "SUMMARY"):
        assert column in wide
    grouped = kubectl("get", "incident-response", "-n", namespace).stdout
    assert "incident.incidents.dev/probe" in grouped
    objects.create("runbooks", copy.deepcopy(RUNBOOK))
    assert kubectl("get", "rb", "-n", namespace).stdout.splitlines()[0].split() == [
        "NAME",
        "TITLE",
        "VALID",
        "STEPS",
        "RTO",
        "AGE",
    ]


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``base`` with ``spec.<path>`` set (``None`` deletes the key)."""
    body = copy.deepcopy(base)
    node = body["spec"]
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[keys[-1]]
    elif isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value
    return body


MALFORMED = [
    ("incidents", _with(INCIDENT, "severity", 5), "spec.severity"),
    ("incidents", _with(INCIDENT, "severity", 0), "spec.severity"),
    ("incidents", _with(INCIDENT, "service", None), "spec.service"),
    ("incidents", _with(INCIDENT, "summary", None), "spec.summary"),
    ("incidents", _with(INCIDENT, "service", "Dashboard_Service"), "spec.service"),
    ("incidents", _with(INCIDENT, "summary", "x" * 300), "spec.summary"),
    (
        "incidents",
        _with(_with(INCIDENT, "severity", None), "symptoms", ["slow"]),
        "spec.severity (1-4) or spec.impact",
    ),
    ("incidents", _with(INCIDENT, "source", {"kind": "Pager"}), "spec.source.kind"),
    (
        "incidents",
        _with(INCIDENT, "impact", {"allUsersAffected": "yes"}),
        "spec.impact.allUsersAffected",
    ),
    (
        "incidents",
        _with(INCIDENT, "approvals", [{"step": "restart", "decision": "Maybe", "by": "alice"}]),
        "spec.approvals[0].decision",
    ),
    (
        "incidents",
        _with(INCIDENT, "resolution", {"resolvedBy": "alice"}),
        "spec.resolution.rootCause",
    ),
    (
        "incidents",
        _with(INCIDENT, "actionItems", [{"description": "x", "priority": "Urgent"}]),
        "spec.actionItems[0].priority",
    ),
    ("incidents", _with(INCIDENT, "sevrity", 1), "sevrity"),
    ("runbooks", _with(RUNBOOK, "rto", None), "spec.rto"),
    ("runbooks", _with(RUNBOOK, "rto", {"mitigation": "five minutes"}), "spec.rto.mitigation"),
    ("runbooks", _with(RUNBOOK, "recovery", []), "at least one diagnosis or recovery step"),
    (
        "runbooks",
        _with(
            RUNBOOK,
            "recovery.0.action",
            {"type": "restartWorkloads", "workload": {"name": "dashboard"}},
        ),
        "spec.recovery[0].action.type",
    ),
    (
        "runbooks",
        _with(
            RUNBOOK,
            "recovery.0.action",
            {"type": "scaleWorkload", "workload": {"name": "dashboard"}},
        ),
        "scaleWorkload requires workload, replicas",
    ),
    (
        "runbooks",
        _with(
            RUNBOOK,
            "recovery.0.action",
            {"type": "scaleWorkload", "replicas": -1, "workload": {"name": "dashboard"}},
        ),
        "spec.recovery[0].action.replicas",
    ),
    (
        "runbooks",
        _with(RUNBOOK, "recovery.0.action.workload.kind", "DaemonSet"),
        "spec.recovery[0].action.workload.kind",
    ),
    ("runbooks", _with(RUNBOOK, "recovery.0.action.workload.replcas", 2), "replcas"),
    ("runbooks", _with(RUNBOOK, "recovery.0.retries", 50), "spec.recovery[0].retries"),
    ("runbooks", _with(RUNBOOK, "recovery.0.onFailure", "Panic"), "spec.recovery[0].onFailure"),
    ("runbooks", _with(RUNBOOK, "recovery", [STEP, STEP]), "spec.recovery[1]"),
    ("runbooks", _with(RUNBOOK, "diagnosis", [STEP]), "unique across diagnosis and recovery"),
    (
        "runbooks",
        _with(RUNBOOK, "recovery.0.when", [{"step": "check", "finding": "x"}]),
        "needs a value",
    ),
    (
        "runbooks",
        _with(
            RUNBOOK,
            "recovery.0.when",
            [{"step": "check", "phases": ["Failed"], "finding": "x", "value": 1}],
        ),
        "either phases or a finding",
    ),
    ("runbooks", _with(RUNBOOK, "severity", 7), "spec.severity"),
    (
        "runbooks",
        _with(
            RUNBOOK,
            "targets",
            {"postgres": {"host": "db", "database": "retail", "user": "inventory", "port": 70000}},
        ),
        "spec.targets.postgres.port",
    ),
    (
        "runbooks",
        _with(RUNBOOK, "targets", {"http": {"baseUrl": "ftp://x"}}),
        "spec.targets.http.baseUrl",
    ),
    # Durations are at most 365d (a billion days overflowed every decision).
    ("runbooks", _with(RUNBOOK, "safety", {"cooldown": "1000000000d"}), "at most 365d"),
    ("runbooks", _with(RUNBOOK, "safety", {"approvalTimeout": "8761h"}), "at most 365d"),
    ("runbooks", _with(RUNBOOK, "recovery.0.timeout", "365d1ms"), "at most 365d"),
    ("runbooks", _with(RUNBOOK, "rto", {"mitigation": "366d"}), "at most 365d"),
]


@pytest.mark.parametrize(
    ("plural", "body", "field"), MALFORMED, ids=[f"{p}-{f}" for p, _, f in MALFORMED]
)
def test_api_server_rejects_malformed(
    objects: Objects, plural: str, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as caught:
        objects.create(plural, body)
    assert caught.value.status in (400, 422)
    assert field in caught.value.body, caught.value.body


def test_service_is_immutable(objects: Objects) -> None:
    objects.create("incidents", copy.deepcopy(INCIDENT))
    with pytest.raises(ApiException) as caught:
        objects.patch_spec("incidents", "probe", {"service": "redis"})
    assert "spec.service is immutable" in caught.value.body


def test_a_duration_of_exactly_a_year_is_accepted(objects: Objects) -> None:
    body = _with(_with(RUNBOOK, "safety", {"cooldown": "365d"}), "recovery.0.timeout", "8760h")
    objects.create("runbooks", body)
