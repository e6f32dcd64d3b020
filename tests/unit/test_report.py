from __future__ import annotations

import datetime as dt

from incident_operator.domain.lifecycle import decide
from incident_operator.domain.policy import load_policy
from incident_operator.domain.story import RunbookChoice
from incident_operator.models.objects import IncidentObject
from incident_operator.report import render_report

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def test_report_covers_the_review_agenda() -> None:
    body = {
        "metadata": {
            "name": "db-down",
            "namespace": "prod",
            "uid": "u",
            "creationTimestamp": T0.isoformat(),
        },
        "spec": {
            "service": "postgres",
            "summary": "Database connection errors",
            "severity": 1,
            "acknowledgedBy": "dana",
            "resolution": {
                "resolvedBy": "dana",
                "rootCause": "disk full",
                "impact": "all API users, 14 minutes",
            },
        },
    }
    choice = RunbookChoice("database-outage", "RunbookSelected", "matched", None, 120)
    decision = decide(
        IncidentObject.parse(body), load_policy(), choice, T0 + dt.timedelta(minutes=14)
    )
    body["status"] = decision.status.to_k8s()
    report = render_report(body)
    for heading in (
        "## 1. Timeline review",
        "## 2. Root cause analysis",
        "## 3. Impact assessment",
        "## 4-5. Remediation and action items",
    ):
        assert heading in report
    assert "**Root cause:** disk full" in report
    assert "RecoveryTimeObjectiveBreached" in report  # 14 minutes against a 2 minute RTO
    assert "| Update the runbook with lessons learned |" in report
    assert "2026-11-28 12:14:00 UTC" in report  # level 1: review within 24 hours
