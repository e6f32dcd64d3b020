"""Alertmanager notifications to Incidents: validation per alert, namespaces from the
receiver's allowlist, one Incident per group, and what a notification records in status."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from incident_operator.domain import alert_status, alerts
from incident_operator.domain.alerts import PayloadError, incident_body, plan
from incident_operator.models.alerting import MAX_ALERTS
from incident_operator.models.incident import IncidentSpec, IncidentStatus

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
ALLOWED = ("demo", "team-b")


def alert(name: str, fp: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "fingerprint": fp,
        "labels": {"alertname": name, "severity": "critical", "service": "dashboard", **labels},
        "annotations": {"summary": f"{name} summary", "description": f"{name} description"},
        "startsAt": "2026-11-27T12:00:00Z",
        "generatorURL": "http://prom/graph",
    }


def payload(*items: dict[str, Any], key: str = '{}:{alertname="DashboardDown"}') -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing" if any(a["status"] == "firing" for a in items) else "resolved",
        "receiver": "incident-operator",
        "groupKey": key,
        "groupLabels": {"alertname": "DashboardDown"},
        "alerts": list(items),
    }


def test_one_group_is_one_slice_named_by_its_group_key() -> None:
    batch = plan(
        payload(alert("DashboardDown", "a1"), alert("DashboardDown", "a2")), "r", ALLOWED, 10
    )
    (piece,) = batch.slices
    assert len(piece.alerts) == 2 and piece.namespace == "demo" and not batch.rejected
    assert piece.base_name.startswith("am-dashboarddown-") and len(piece.base_name) == 29
    again = plan(payload(alert("DashboardDown", "a3")), "r", ALLOWED, 10)
    assert again.slices[0].base_name == piece.base_name  # same group, same Incident
    other = plan(payload(alert("DashboardDown", "a1"), key="other"), "r", ALLOWED, 10)
    assert other.slices[0].base_name != piece.base_name
    assert plan(payload(alert("DashboardDown", "a1")), "r2", ALLOWED, 10).slices[0].group != (
        piece.group
    ), "another receiver's group is another problem"


def test_the_incident_of_a_slice_is_a_valid_incident() -> None:
    batch = plan(
        payload(alert("DashboardDown", "a1", severity="warning"), alert("DashboardDown", "a2")),
        "r",
        ALLOWED,
        10,
    )
    body = incident_body(batch.slices[0], "am-x")
    spec = IncidentSpec.model_validate(body["spec"])
    assert (spec.service, spec.severity) == ("dashboard", 1)  # the most severe alert
    assert spec.source is not None and spec.source.alert_name == "DashboardDown"
    assert spec.symptoms == ["DashboardDown description"]
    assert body["metadata"]["labels"][alerts.GROUP_LABEL] == batch.slices[0].group


def test_each_alert_fails_on_its_own() -> None:
    bad_namespace = alert("A", "b1", namespace="kube-system")
    not_a_state = {**alert("A", "b2"), "status": "pending"}
    wrong_type = {"status": "firing", "labels": {"alertname": ["nested"]}}
    batch = plan(
        payload(bad_namespace, alert("A", "c1"), not_a_state, wrong_type, alert("A", "c2")),
        "r",
        ALLOWED,
        10,
    )
    assert [a.fingerprint for a in batch.slices[0].alerts] == ["c1", "c2"]
    reasons = {r.index: r.reason for r in batch.rejected}
    assert set(reasons) == {0, 2, 3}
    assert "not allowed" in reasons[0] and "status" in reasons[2]


def test_the_namespace_comes_from_the_receivers_allowlist() -> None:
    batch = plan(
        payload(
            alert("A", "a1"),
            alert("A", "a2", namespace="team-b"),
            alert("A", "a3", incident_namespace="demo"),
        ),
        "r",
        ALLOWED,
        10,
    )
    assert sorted((s.namespace, len(s.alerts)) for s in batch.slices) == [
        ("demo", 2),
        ("team-b", 1),
    ]


@pytest.mark.parametrize(
    "body",
    [[], "x", {"alerts": []}, {"status": "firing"}, {"status": "weird", "alerts": [{}]}, None],
)
def test_not_a_payload(body: Any) -> None:
    with pytest.raises(PayloadError):
        plan(body, "r", ALLOWED, 10)


def test_too_many_alerts_is_refused_whole() -> None:
    with pytest.raises(PayloadError, match="at most 2"):
        plan(payload(*[alert("A", f"f{i}") for i in range(3)]), "r", ALLOWED, 2)


def test_missing_fingerprint_is_derived_from_labels() -> None:
    raw = {"status": "firing", "labels": {"alertname": "X", "app": "api"}}
    batch = plan({"status": "firing", "alerts": [raw, copy.deepcopy(raw)]}, "r", ALLOWED, 10)
    (first, second) = [a for s in batch.slices for a in s.alerts]
    assert first.fingerprint == second.fingerprint and first.service == "api"


def _record(status: IncidentStatus, body: dict[str, Any], at: dt.datetime = T0) -> list[str]:
    (piece,) = plan(body, "r", ALLOWED, 1000).slices
    return [line.reason for line in alert_status.record(status, piece, at)]


def test_repeats_are_counted_and_changes_are_told() -> None:
    status = IncidentStatus()
    assert _record(status, payload(alert("A", "a1"), alert("A", "a2"))) == ["AlertFiring"]
    assert _record(status, payload(alert("A", "a1"), alert("A", "a2"))) == []
    assert status.alerts is not None
    assert (status.alerts.notifications, status.alerts.repeats) == (2, 1)
    assert (status.alerts.total, status.alerts.firing) == (2, 2)
    half = _record(status, payload(alert("A", "a1", "resolved"), alert("A", "a2")))
    assert half == ["AlertResolved"] and status.alerts.all_resolved_at is None
    done = _record(status, payload(alert("A", "a1", "resolved"), alert("A", "a2", "resolved")))
    assert done == ["AlertResolved", "AlertsResolved"]
    assert status.alerts.all_resolved_at == T0 and status.alert_resolved_at == T0
    again = _record(status, payload(alert("A", "a1")), T0 + dt.timedelta(minutes=1))
    assert again == ["AlertFiringAgain"] and status.alerts.all_resolved_at is None


def test_the_alert_list_is_bounded_and_the_count_is_not() -> None:
    status = IncidentStatus()
    many = payload(*[alert("A", f"{i:04x}") for i in range(150)])
    _record(status, many)
    assert status.alerts is not None
    assert len(status.alerts.items) == MAX_ALERTS and status.alerts.total == 150
    IncidentStatus.model_validate(status.to_k8s())  # still fits the schema


def test_a_second_group_joins_and_is_told() -> None:
    status = IncidentStatus()
    _record(status, payload(alert("A", "a1")))
    (piece,) = plan(payload(alert("B", "b1"), key="other"), "r", ALLOWED, 10).slices
    lines = alert_status.record(status, piece, T0, merged=True)
    assert [line.reason for line in lines] == ["AlertGroupJoined", "AlertFiring"]
    assert status.alerts is not None and len(status.alerts.groups) == 2
    assert status.alerts.groups_merged == 1 and status.alerts.firing == 2


def test_correlation_window() -> None:
    status = IncidentStatus()
    window = dt.timedelta(minutes=10)
    assert alert_status.correlates(status, T0, T0 + window, window)
    assert not alert_status.correlates(status, T0, T0 + window * 2, window)
    status.resolved_at = T0
    assert not alert_status.correlates(status, T0, T0, window)


def test_episode_names() -> None:
    assert alerts.episode_name("am-a-1", 1) == "am-a-1"
    assert alerts.episode_name("am-a-1", 3) == "am-a-1-3"
