"""Every rule of the playbook's four severity lists, and the precedence between them."""

from __future__ import annotations

import pytest

from incident_operator.domain.severity import RULES, classify, classify_impact
from incident_operator.models.incident import Impact, IncidentSpec

PLAYBOOK_TABLE = [
    ("allUsersAffected", 1),
    ("coreFunctionalityUnavailable", 1),
    ("dataIntegrityCompromised", 1),
    ("revenueImpacting", 1),
    ("multipleServicesAffected", 2),
    ("nonCoreFunctionalityDown", 2),
    ("performanceSeverelyDegraded", 2),
    ("slaImpactImminent", 2),
    ("singleServiceAffected", 3),
    ("workaroundAvailable", 3),
    ("limitedUserImpact", 3),
    ("performanceSlightlyDegraded", 3),
    ("monitoringThresholdExceeded", 4),
    ("noActualImpact", 4),
    ("informational", 4),
]


@pytest.mark.parametrize(("signal", "level"), PLAYBOOK_TABLE)
def test_each_playbook_signal_classifies_to_its_level(signal: str, level: int) -> None:
    verdict = classify_impact(Impact.model_validate({signal: True}))
    assert verdict.severity == level
    assert verdict.rule == f"impact.{signal}"


def test_table_covers_every_impact_field() -> None:
    fields = {f.alias for f in Impact.model_fields.values()}
    assert {signal for signal, _ in PLAYBOOK_TABLE} == fields == {rule for _, rule, _ in RULES}


def test_most_severe_signal_wins() -> None:
    verdict = classify_impact(
        Impact(workaround_available=True, revenue_impacting=True, sla_impact_imminent=True)
    )
    assert (verdict.severity, verdict.rule) == (1, "impact.revenueImpacting")


def test_no_signal_means_low() -> None:
    assert classify_impact(Impact()).severity == 4


def test_explicit_severity_beats_impact() -> None:
    spec = IncidentSpec(
        service="dashboard", summary="x", severity=3, impact=Impact(all_users_affected=True)
    )
    assert (classify(spec).severity, classify(spec).rule) == (3, "spec.severity")


def test_runbook_default_applies_only_without_spec_signals() -> None:
    spec = IncidentSpec.model_validate({"service": "dashboard", "summary": "x"})
    assert classify(spec, runbook_severity=2).rule == "runbook.severity"


def test_empty_impact_falls_back_to_the_runbook_default() -> None:
    spec = IncidentSpec(service="dashboard", summary="x", impact=Impact())
    assert (classify(spec, runbook_severity=2).severity, classify(spec, 2).rule) == (
        2,
        "runbook.severity",
    )
    assert classify(spec).rule == "impact.none"
