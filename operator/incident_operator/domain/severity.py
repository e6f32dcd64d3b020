"""Severity classification from impact signals, following the playbook's four lists."""

from __future__ import annotations

import dataclasses

from ..models.incident import Impact, IncidentSpec

#: The playbook's bullet lists, most severe first. Each impact field maps to one level.
RULES: tuple[tuple[int, str, str], ...] = (
    (1, "allUsersAffected", "All users affected"),
    (1, "coreFunctionalityUnavailable", "Core functionality unavailable"),
    (1, "dataIntegrityCompromised", "Data integrity compromised"),
    (1, "revenueImpacting", "Revenue-impacting"),
    (2, "multipleServicesAffected", "Multiple services affected"),
    (2, "nonCoreFunctionalityDown", "Non-core functionality down"),
    (2, "performanceSeverelyDegraded", "Performance severely degraded"),
    (2, "slaImpactImminent", "SLA impact imminent"),
    (3, "singleServiceAffected", "Single service affected"),
    (3, "workaroundAvailable", "Workarounds available"),
    (3, "limitedUserImpact", "Limited user impact"),
    (3, "performanceSlightlyDegraded", "Performance slightly degraded"),
    (4, "monitoringThresholdExceeded", "Monitoring threshold exceeded"),
    (4, "noActualImpact", "No actual impact observed"),
    (4, "informational", "Informational alert"),
)


@dataclasses.dataclass(frozen=True)
class Classification:
    severity: int
    rule: str
    reason: str


def classify_impact(impact: Impact) -> Classification:
    """The most severe level any signal points at; no signal at all means level 4."""
    signals = impact.model_dump(by_alias=True)
    for level, field, text in RULES:
        if signals.get(field):
            return Classification(level, f"impact.{field}", f"{text} (level {level} rule)")
    return Classification(4, "impact.none", "No impact signal set: monitoring alert only")


def classify(spec: IncidentSpec, runbook_severity: int | None = None) -> Classification:
    """``spec.severity`` wins; else a set impact signal; else the runbook's default severity.

    An impact block with no signal set says nothing, so the runbook's default beats it.
    """
    if spec.severity is not None:
        return Classification(spec.severity, "spec.severity", "Severity given by the reporter")
    if spec.impact is not None and any(spec.impact.model_dump().values()):
        return classify_impact(spec.impact)
    if runbook_severity is not None:
        return Classification(runbook_severity, "runbook.severity", "Runbook default severity")
    if spec.impact is not None:
        return classify_impact(spec.impact)
    return Classification(4, "default", "Nothing to classify from: treated as LOW")
