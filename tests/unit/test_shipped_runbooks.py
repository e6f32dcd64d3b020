"""The playbook's runbooks as shipped manifests: valid, complete, and matched as intended."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from incident_operator.domain import matching, runbook_check
from incident_operator.models.incident import IncidentSpec

RUNBOOKS = Path(__file__).resolve().parents[2] / "manifests" / "runbooks"
PLAYBOOK_TITLES = {
    "Dashboard Service Outage",
    "Database Service Outage",
    "Redis Cache Outage",
    "High Error Rate (>5%)",
    "High Latency (p99 > 2000ms)",
    "Database Restore from Backup",
    "Complete Service Restart",
}


def load() -> dict[str, dict]:  # type: ignore[type-arg]
    files = sorted(p for p in RUNBOOKS.glob("*.yaml") if p.name != "kustomization.yaml")
    return {p.stem: yaml.safe_load(p.read_text()) for p in files}


def test_the_kustomization_lists_every_runbook() -> None:
    listed = yaml.safe_load((RUNBOOKS / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(f"{name}.yaml" for name in load())


def test_each_runbook_names_its_service_account() -> None:
    for name, body in load().items():
        assert body["spec"].get("serviceAccountName") == "incident-runbook", name


def test_every_playbook_runbook_ships() -> None:
    assert {body["spec"]["title"] for body in load().values()} == PLAYBOOK_TITLES


@pytest.mark.parametrize("name", sorted(load()))
def test_runbook_is_valid(name: str) -> None:
    runbook, problem = runbook_check.parse(load()[name])
    assert runbook is not None and problem == "", problem


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"service": "dashboard", "summary": "/health returning 5xx errors"}, "dashboard-outage"),
        ({"service": "postgres", "summary": "Cannot connect to database"}, "database-outage"),
        ({"service": "redis", "summary": "Cache misses increasing"}, "redis-outage"),
        (
            {
                "service": "dashboard",
                "summary": "5xx",
                "source": {"kind": "Alertmanager", "alertName": "HighErrorRate"},
            },
            "high-error-rate",
        ),
        (
            {
                "service": "dashboard",
                "summary": "slow",
                "source": {"kind": "Alertmanager", "alertName": "HighLatency"},
            },
            "high-latency",
        ),
        (
            {
                "service": "postgres",
                "summary": "corruption detected",
                "source": {"kind": "Alertmanager", "alertName": "DatabaseCorruption"},
            },
            "database-restore",
        ),
        (
            {"service": "platform", "summary": "complete outage, all services down"},
            "complete-service-restart",
        ),
    ],
)
def test_matching_picks_the_playbook_runbook(spec: dict, expected: str) -> None:  # type: ignore[type-arg]
    candidates = []
    for body in load().values():
        body = {**body, "metadata": {**body["metadata"], "namespace": "demo"}}
        runbook, problem = runbook_check.parse(body)
        assert runbook is not None
        candidates.append(matching.Candidate(runbook, valid=not problem))
    choice = matching.choose(IncidentSpec.model_validate({"severity": 2, **spec}), candidates)
    assert choice.name == expected, choice.message
