from __future__ import annotations

from typing import Any

from incident_operator.domain.matching import Candidate, choose
from incident_operator.models.incident import IncidentSpec
from incident_operator.models.objects import RunbookObject


def runbook(name: str, match: dict[str, Any], valid: bool = True) -> Candidate:
    body = {
        "metadata": {"name": name, "namespace": "n"},
        "spec": {
            "title": name,
            "rto": {"mitigation": "5m"},
            "match": match,
            "recovery": [{"name": "w", "action": {"type": "wait", "duration": "1s"}}],
        },
    }
    return Candidate(RunbookObject.parse(body), valid, "" if valid else "broken step")


def spec(**fields: Any) -> IncidentSpec:
    return IncidentSpec.model_validate(
        {"service": "dashboard", "summary": "down", "severity": 3, **fields}
    )


def test_named_runbook_wins_even_without_match() -> None:
    choice = choose(
        spec(runbook="b"), [runbook("a", {"services": ["dashboard"]}), runbook("b", {})]
    )
    assert (choice.name, choice.reason, choice.rto_seconds) == ("b", "RunbookSelected", 300)


def test_named_runbook_missing_or_invalid_says_why() -> None:
    assert choose(spec(runbook="zz"), []).reason == "RunbookNotFound"
    invalid = choose(spec(runbook="a"), [runbook("a", {}, valid=False)])
    assert invalid.name is None and "broken step" in invalid.message


def test_alert_name_beats_service_and_invalid_ones_are_ignored() -> None:
    candidates = [
        runbook("by-service", {"services": ["dashboard"]}),
        runbook("by-alert", {"alertNames": ["HighLatency"]}),
        runbook("broken", {"alertNames": ["HighLatency"], "services": ["dashboard"]}, valid=False),
    ]
    source = {"kind": "Alertmanager", "alertName": "HighLatency"}
    assert choose(spec(source=source), candidates).name == "by-alert"
    assert choose(spec(), candidates).name == "by-service"


def test_labels_filter_and_ties_break_by_name() -> None:
    candidates = [
        runbook("z-prod", {"services": ["dashboard"], "labels": {"env": "prod"}}),
        runbook("b", {"services": ["dashboard"]}),
        runbook("a", {"services": ["dashboard"]}),
    ]
    staging = {"kind": "Alertmanager", "alertName": "X", "labels": {"env": "staging"}}
    assert choose(spec(source=staging), candidates).name == "a"
    assert choose(spec(), [runbook("x", {"services": ["redis"]})]).reason == "NoMatchingRunbook"
