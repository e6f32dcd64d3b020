"""Exec commands match an admin's template whole; targets must be allowlisted hosts."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from incident_operator.domain import runbook_check
from incident_operator.domain.allowlists import ExecCommand, ExecPolicy, TargetsPolicy
from incident_operator.domain.policy import load_policy
from incident_operator.models.runbook import RunbookSpec

DEFAULTS = ExecPolicy()


@pytest.mark.parametrize(
    "argv",
    [
        ["redis-cli", "-p", "6379", "FLUSHDB"],
        ["redis-cli", "-p", "16379", "INFO", "memory"],
        ["df", "-h"],
        ["pg_isready", "-h", "127.0.0.1", "-p", "5432"],
    ],
)
def test_the_playbooks_commands_are_allowed(argv: list[str]) -> None:
    assert DEFAULTS.allowed(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["psql", "-c", "\\! sh -c 'id'"],  # a shell through psql
        ["psql", "-tAc", "SELECT 1", "-c", "DROP TABLE inventory"],  # extra arguments
        ["redis-cli", "-p", "6379", "CONFIG", "SET", "dir", "/tmp"],
        ["redis-cli", "-p", "6379", "FLUSHDB", "ASYNC", "junk"],
        ["redis-cli", "-p", "6379;rm", "FLUSHDB"],  # a placeholder matched in full only
        ["redis-cli", "-p", "6379", "INFO", "all"],
        ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"],
        ["df"],
    ],
)
def test_anything_off_template_is_refused(argv: list[str]) -> None:
    assert not DEFAULTS.allowed(argv)


def test_placeholders_inside_an_argument_and_undeclared_ones() -> None:
    template = ExecCommand(
        name="check",
        command=["curl", "--max-time={s}", "http://127.0.0.1:{port}/health"],
        params={"s": "[0-9]{1,2}", "port": "[0-9]{1,5}"},
    )
    assert template.matches(["curl", "--max-time=5", "http://127.0.0.1:9000/health"])
    assert not template.matches(["curl", "--max-time=5", "http://evil:9000/health"])
    with pytest.raises(ValidationError, match="placeholders without a pattern"):
        ExecCommand(name="bad", command=["echo", "{x}"])


def test_target_allowlist_entries() -> None:
    allowed = TargetsPolicy(
        postgres=["postgres.{namespace}.svc:5432", "127.0.0.1:*"], http=["dashboard:80"]
    )
    assert allowed.allows("postgres", "postgres.shop.svc", 5432, "shop")
    assert not allowed.allows("postgres", "postgres.shop.svc", 5432, "other")
    assert not allowed.allows("postgres", "postgres.shop.svc", 6432, "shop")
    assert allowed.allows("postgres", "127.0.0.1", 15432, "shop")
    assert not allowed.allows("redis", "127.0.0.1", 6379, "shop")
    with pytest.raises(ValidationError):
        TargetsPolicy(redis=["{service}.svc:6379"])


def _runbook(**spec: Any) -> RunbookSpec:
    return RunbookSpec.model_validate({"title": "t", "rto": {"mitigation": "5m"}, **spec})


def test_a_runbook_naming_an_unlisted_host_or_command_is_invalid() -> None:
    policy = load_policy(overrides={"targets": {"http": ["dashboard.shop.svc:80"]}})
    good = _runbook(
        targets={"http": {"baseUrl": "http://dashboard.shop.svc"}},
        diagnosis=[{"name": "h", "action": {"type": "httpCheck"}}],
    )
    assert runbook_check.problems(good, policy, "shop") == []
    evil = _runbook(
        targets={
            "http": {
                "baseUrl": "https://attacker.example:8443",
                "apiKeySecretRef": {"name": "dashboard-api-key", "key": "api-key"},
            }
        },
        diagnosis=[
            {"name": "h", "action": {"type": "httpCheck"}},
            {
                "name": "x",
                "action": {
                    "type": "execInPod",
                    "workload": {"name": "db"},
                    "command": ["psql", "-c", "\\! sh"],
                },
            },
        ],
    )
    found = runbook_check.problems(evil, policy, "shop")
    assert any("attacker.example:8443" in p for p in found)
    assert any("matches no exec.commands template" in p for p in found)
