from __future__ import annotations

import pytest
from pydantic import ValidationError

from incident_operator.domain.alerts import parse
from incident_operator.models.incident import IncidentSpec

PAYLOAD = {
    "version": "4",
    "status": "firing",
    "receiver": "incident-operator",
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "fingerprint": "3f2a9c1d5e6b7a80",
            "labels": {
                "alertname": "DashboardHighErrorRate",
                "severity": "critical",
                "service": "dashboard",
                "namespace": "demo",
            },
            "annotations": {
                "summary": "Error rate above 5%",
                "description": "5xx ratio 0.07 over 5m",
            },
            "startsAt": "2026-11-27T12:00:00Z",
            "generatorURL": "http://prom/graph",
        },
        {
            "status": "resolved",
            "fingerprint": "aaaa",
            "labels": {"alertname": "RedisMemoryHigh", "severity": "warning", "job": "redis"},
            "annotations": {},
        },
    ],
}


def test_firing_alert_becomes_a_valid_incident() -> None:
    first, second = parse(PAYLOAD, "incidents")
    assert first.firing and first.namespace == "demo"
    assert first.name.startswith("am-dashboardhigherrorrate-3f2a9c1d5e-")
    spec = IncidentSpec.model_validate(first.body["spec"])
    assert (spec.service, spec.severity, spec.summary) == ("dashboard", 1, "Error rate above 5%")
    assert spec.source is not None and spec.source.alert_name == "DashboardHighErrorRate"
    assert spec.symptoms == ["5xx ratio 0.07 over 5m"]
    assert not second.firing and second.namespace == "incidents"
    assert IncidentSpec.model_validate(second.body["spec"]).severity == 3


def test_same_alert_maps_to_the_same_name() -> None:
    assert parse(PAYLOAD, "x")[0].name == parse(PAYLOAD, "x")[0].name


def test_missing_fingerprint_is_derived_from_labels() -> None:
    payload = {
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "X", "app": "api"}}],
    }
    (item,) = parse(payload, "n")
    assert item.name.startswith("am-x-") and item.body["spec"]["service"] == "api"


def test_not_a_payload() -> None:
    with pytest.raises(ValidationError):
        parse({"alerts": []}, "n")


def test_a_new_firing_episode_opens_a_new_incident() -> None:
    later = {**PAYLOAD, "alerts": [{**PAYLOAD["alerts"][0], "startsAt": "2026-11-28T09:00:00Z"}]}
    assert parse(later, "x")[0].name != parse(PAYLOAD, "x")[0].name
