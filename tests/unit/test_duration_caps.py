"""Durations are at most 365 days, in the CRD schema and in the models alike.

``cooldown: 1000000000d`` passed the schema and the Runbook showed Valid; every decision then
raised OverflowError (a timedelta of a billion days). A policy could do the same with a
response time, and a tiny time scale stretched any policy duration past the year 9999. Now the
schema (a CEL rule on every duration) and the model refuse durations over 365d, the policy's
time scale is bounded below, and its response time and update cadence must be positive.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from incident_operator.domain import runbook_check
from incident_operator.domain.policy import PolicyError, load_policy
from incident_operator.durations import MAX_DURATION_SECONDS, parse_duration
from incident_operator.models.base import DURATION_CAP_RULE
from incident_operator.models.runbook import Safety

ROOT = Path(__file__).resolve().parents[2]
YEAR = 365 * 86400
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"


def test_the_cap_is_365_days() -> None:
    assert MAX_DURATION_SECONDS == YEAR
    assert parse_duration("365d") == YEAR
    assert parse_duration("364d23h59m59.999s") < YEAR


@pytest.mark.parametrize("text", ["366d", "365d1ms", "8761h", "1000000000d", "9" * 30 + "d"])
def test_parse_refuses_more_than_a_year(text: str) -> None:
    with pytest.raises(ValueError, match="at most 365d"):
        parse_duration(text)


def test_the_model_refuses_a_cooldown_of_a_billion_days() -> None:
    with pytest.raises(ValidationError, match="at most 365d"):
        Safety(cooldown="1000000000d")
    assert Safety(cooldown="365d").cooldown == "365d"


def test_a_runbook_with_such_a_cooldown_is_invalid() -> None:
    body = {
        "metadata": {"name": "rb", "namespace": "n"},
        "spec": {
            "title": "t",
            "rto": {"mitigation": "5m"},
            "safety": {"cooldown": "1000000000d"},
            "recovery": [{"name": "a", "action": {"type": "wait", "duration": "1s"}}],
        },
    }
    runbook, problem = runbook_check.parse(body)
    assert runbook is None
    assert problem.startswith("spec.safety.cooldown:") and "at most 365d" in problem


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"levels": [{"level": 1, "responseTime": "400d"}]}, "responseTime"),
        ({"levels": [{"level": 2, "updateCadence": "0s"}]}, "updateCadence"),
        ({"levels": [{"level": 3, "responseTime": "0ms"}]}, "responseTime"),
        ({"timeScale": 1e-9}, "timeScale"),
        ({"deliveryTimeout": "9999d"}, "deliveryTimeout"),
    ],
)
def test_a_policy_duration_out_of_range_stops_start_up(
    override: dict[str, Any], field: str
) -> None:
    with pytest.raises(PolicyError, match=field):
        load_policy(overrides=override)


def test_no_policy_duration_can_overflow_a_date() -> None:
    slowest = load_policy(overrides={"timeScale": 0.01})
    far = dt.datetime(2100, 1, 1, tzinfo=dt.UTC) + slowest.scaled(MAX_DURATION_SECONDS) * 20
    assert far.year < 9999


def _durations(schema: Any, path: str = "") -> list[tuple[str, Any]]:
    """(path, schema) of every property with the duration grammar in a CRD schema."""
    found: list[tuple[str, Any]] = []
    if isinstance(schema, dict):
        if schema.get("pattern") == DURATION_PATTERN:
            found.append((path, schema))
        for key, sub in schema.items():
            found += _durations(sub, f"{path}.{key}")
    elif isinstance(schema, list):
        for index, sub in enumerate(schema):
            found += _durations(sub, f"{path}[{index}]")
    return found


def test_every_duration_of_the_crds_carries_the_cap_rule() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "runbooks.yaml").read_text())
    durations = _durations(crd)
    assert len(durations) >= 8  # rto, safety, step timeout and backoff, action windows...
    for path, schema in durations:
        rules = [v["rule"] for v in schema.get("x-kubernetes-validations", [])]
        assert DURATION_CAP_RULE in rules, path


def test_the_safety_gate_windows_stay_within_dates_at_the_extremes() -> None:
    from incident_operator.domain.engine import StepToRun
    from incident_operator.models.objects import RunbookObject
    from incident_operator.safety import SafetyGate

    policy = load_policy(overrides={"timeScale": 0.01})
    runbook = RunbookObject.parse(
        {
            "metadata": {"name": "rb", "namespace": "n"},
            "spec": {
                "title": "t",
                "rto": {"mitigation": "365d"},
                "safety": {"cooldown": "365d", "maxAttemptsPerTarget": 20},
                "recovery": [
                    {
                        "name": "flush",
                        "timeout": "365d",
                        "retries": 10,
                        "action": {"type": "redisFlushDb"},
                    }
                ],
                "targets": {"redis": {"host": "127.0.0.1"}},
            },
        }
    )
    gate = SafetyGate(None, policy, "ops")  # type: ignore[arg-type]
    plan = StepToRun(runbook.spec.recovery[0], "recovery")
    now = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    window = dt.timedelta(seconds=gate.window(runbook))
    assert (now - window).year >= 1 and (now + window).year < 9999
    for claim in gate.claims(plan, runbook):
        assert (now + dt.timedelta(seconds=claim.cooldown_s)).year < 9999
    assert plan.timeout * (plan.step.retries + 1) + 60 < 2**31  # a Lease's int32 duration
