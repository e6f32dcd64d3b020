"""Hypothesis strategies and settings for the fuzz tests (tests/unit/test_fuzz_*.py).

Budgets are fixed and runs derandomized, so the suite is deterministic and fast;
``INCIDENT_OPERATOR_FUZZ_SCALE`` multiplies every budget for a deeper run by hand.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from incident_operator.durations import MAX_DURATION_SECONDS, format_duration

ROOT = Path(__file__).resolve().parents[2]
SCALE = float(os.environ.get("INCIDENT_OPERATOR_FUZZ_SCALE", "1"))
T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)

settings.register_profile(
    "incident-operator-fuzz",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz(examples: int) -> settings:
    """The suite's fuzz settings with a budget of ``examples`` (times the scale)."""
    return settings(
        settings.get_profile("incident-operator-fuzz"),
        max_examples=max(1, int(examples * SCALE)),
    )


# --- garbage and the CRD schema ---------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["", "0", "-1", "1e999", "2026-13-45T99:00:00Z", "x" * 5000, "{0}", "\x00"]),
)
GARBAGE = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def crd_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of ``crds/<kind>.yaml``."""
    crd = yaml.safe_load((ROOT / "crds" / f"{kind}.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _string(schema: dict[str, Any], noise: bool) -> st.SearchStrategy[Any]:
    if schema.get("format") == "date-time":
        return st.datetimes(
            min_value=dt.datetime(1990, 1, 1),
            max_value=dt.datetime(2100, 1, 1),
            timezones=st.just(dt.UTC),
        ).map(lambda d: d.isoformat().replace("+00:00", "Z"))
    if schema.get("format") == "date":
        return st.dates().map(str)
    shortest, longest = schema.get("minLength", 0), schema.get("maxLength", 64)
    if "pattern" in schema:
        shaped = st.from_regex(schema["pattern"], fullmatch=True).filter(
            lambda text: shortest <= len(text) <= longest
        )
    else:
        shaped = st.text(min_size=shortest, max_size=min(longest, 80))
    if not noise:
        return shaped
    return st.one_of(shaped, st.text(max_size=80), st.just("y" * (longest + 1)))


def _number(schema: dict[str, Any], integer: bool, noise: bool) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    if integer:
        shaped: st.SearchStrategy[Any] = st.integers(
            min_value=int(low) if low is not None else -5,
            max_value=int(high) if high is not None else 1000,
        )
        near = [int(v) + d for v in (low, high) if v is not None for d in (-1, 1)]
        return st.one_of(shaped, st.sampled_from(near)) if noise and near else shaped
    shaped = st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    return st.one_of(shaped, st.sampled_from([-1.0, 1e300])) if noise else shaped


def from_schema(
    schema: dict[str, Any], noise: bool = True, depth: int = 0
) -> st.SearchStrategy[Any]:
    """Values shaped by a CRD schema. With ``noise``, out-of-range values and garbage are
    mixed in at every level (about 1 in 8); without, every value fits its own schema (the
    object may still break a rule across fields, as the API server's CEL rules would say)."""
    node = _node(schema, noise, depth)
    return st.one_of(node, node, node, node, node, node, node, GARBAGE) if noise else node


def _node(schema: dict[str, Any], noise: bool, depth: int) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties")
        if properties and depth < 8:
            required = set(schema.get("required", []))
            return st.fixed_dictionaries(
                {
                    k: from_schema(v, noise, depth + 1)
                    for k, v in properties.items()
                    if k in required
                },
                optional={
                    k: from_schema(v, noise, depth + 1)
                    for k, v in properties.items()
                    if k not in required
                },
            )
        extra = schema.get("additionalProperties")
        values = from_schema(extra, noise, depth + 1) if isinstance(extra, dict) else GARBAGE
        return st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=3)
    if kind == "array":
        items = from_schema(schema.get("items", {}), noise, depth + 1)
        return st.lists(items, max_size=min(schema.get("maxItems", 4), 4))
    if kind == "string":
        return _string(schema, noise)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer", noise)
    if kind == "boolean":
        return st.booleans()
    return GARBAGE


# --- durations --------------------------------------------------------------------------------


def durations(
    min_seconds: float = 0, max_seconds: float = MAX_DURATION_SECONDS
) -> st.SearchStrategy[str]:
    """Duration strings within bounds, in the operator's own notation (``1h30m``)."""
    millis = st.one_of(
        st.integers(min_value=int(min_seconds * 1000), max_value=int(max_seconds * 1000)),
        st.sampled_from([int(min_seconds * 1000), int(max_seconds * 1000)]),
    )
    return millis.map(lambda ms: format_duration(ms / 1000))


# --- valid objects for the decision fuzzing ----------------------------------------------------

NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=128
)
LONG = st.one_of(st.text(max_size=40), st.text(min_size=900, max_size=1024))
WORKLOAD = {"name": "web"}
ACTIONS: list[dict[str, Any]] = [
    {"type": "wait", "duration": "1s"},
    {"type": "httpCheck", "pattern": "ok"},
    {"type": "redisFlushDb"},
    {"type": "restartWorkload", "workload": WORKLOAD},
    {"type": "scaleWorkload", "workload": WORKLOAD, "replicas": 2},
    {"type": "podLogs", "workload": WORKLOAD, "pattern": "ERROR", "threshold": 0},
    {"type": "postgresPing"},
    {"type": "postgresTerminateBackends", "olderThan": "10m"},
    {"type": "prometheusQuery", "query": "up", "threshold": 1},
    {"type": "execInPod", "workload": WORKLOAD, "command": ["redis-cli", "-p", "6379", "PING"]},
]
PHASES = ["Succeeded", "Failed", "Skipped", "Rejected", "Interrupted"]
TARGETS = {
    "postgres": {"host": "127.0.0.1", "database": "app", "user": "ops", "sslmode": "disable"},
    "redis": {"host": "127.0.0.1"},
    "http": {"baseUrl": "http://127.0.0.1:9"},
    "prometheus": {"url": "http://127.0.0.1:9"},
}


@st.composite
def _when(draw: st.DrawFn, earlier: list[str]) -> dict[str, Any]:
    step = draw(st.sampled_from(earlier))
    if draw(st.booleans()):
        return {
            "step": step,
            "phases": draw(st.lists(st.sampled_from(PHASES), min_size=1, max_size=3)),
        }
    return {
        "step": step,
        "finding": draw(st.sampled_from(["matches", "latencyMs", "dryRun", "missing"])),
        "comparison": draw(st.sampled_from([">", ">=", "<", "<=", "==", "!="])),
        "value": draw(st.floats(min_value=-10, max_value=1e6, allow_nan=False)),
    }


@st.composite
def runbook_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid Runbook spec: a few steps of several kinds, with approvals, conditions and
    limits anywhere within their ranges."""
    count = draw(st.integers(min_value=1, max_value=8))
    split = draw(st.integers(min_value=0, max_value=count))
    steps: list[dict[str, Any]] = []
    for index in range(count):
        names = [s["name"] for s in steps]
        step: dict[str, Any] = {
            "name": f"s{index}",
            "action": draw(st.sampled_from(ACTIONS)),
            "onFailure": draw(st.sampled_from(["Continue", "Continue", "Stop", "Escalate"])),
            "requiresApproval": draw(st.sampled_from([False, False, False, True])),
            "retries": draw(st.integers(min_value=0, max_value=10)),
        }
        if draw(st.booleans()):
            step["timeout"] = draw(durations(0.001))
        if names and draw(st.integers(0, 3)) == 0:
            step["when"] = draw(st.lists(_when(names), min_size=1, max_size=2))
        steps.append(step)
    spec: dict[str, Any] = {
        "title": "Fuzzed",
        "rto": {"mitigation": draw(durations())},
        "diagnosis": steps[:split],
        "recovery": steps[split:],
        "targets": TARGETS,
        "safety": {
            "cooldown": draw(durations()),
            "approvalTimeout": draw(durations()),
            "maxAttemptsPerTarget": draw(st.integers(min_value=1, max_value=20)),
        },
    }
    if draw(st.booleans()):
        spec["severity"] = draw(st.integers(min_value=1, max_value=4))
    return spec


IMPACTS = ["allUsersAffected", "multipleServicesAffected", "limitedUserImpact", "informational"]


@st.composite
def incident_specs(draw: st.DrawFn, steps: list[str]) -> dict[str, Any]:
    """A valid Incident spec for a runbook with ``steps``; long names and texts included."""
    spec: dict[str, Any] = {
        "service": "web",
        "summary": draw(st.text(min_size=1, max_size=256)),
        "dryRun": draw(st.booleans()),
    }
    if draw(st.booleans()):
        spec["severity"] = draw(st.integers(min_value=1, max_value=4))
    else:
        spec["impact"] = {k: True for k in draw(st.lists(st.sampled_from(IMPACTS), max_size=2))}
    if draw(st.booleans()):
        spec["description"] = draw(st.text(max_size=4096))
    if draw(st.booleans()):
        spec["roles"] = {"incidentCommander": draw(NAMES), "technicalLead": draw(NAMES)}
    return spec


@st.composite
def changes(draw: st.DrawFn, steps: list[str]) -> dict[str, Any]:
    """What people do to the spec between two decisions (or nothing)."""
    kind = draw(
        st.sampled_from(
            ["none"] * 8
            + ["ack", "ack", "approve", "approve", "approve", "commander", "resolve", "items"]
        )
    )
    if kind == "ack":
        return {"acknowledgedBy": draw(NAMES)}
    if kind == "approve" and steps:
        entries = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "step": st.sampled_from(steps),
                        "decision": st.sampled_from(["Approved", "Rejected"]),
                        "by": NAMES,
                    },
                    optional={"comment": st.text(max_size=1024)},
                ),
                max_size=3,
                unique_by=lambda a: a["step"],
            )
        )
        return {"approvals": entries}
    if kind == "commander":
        return {"roles": {"incidentCommander": draw(NAMES)}}
    if kind == "resolve":
        return {
            "resolution": {
                "resolvedBy": draw(NAMES),
                "rootCause": draw(st.text(min_size=1, max_size=4096)),
                "actions": draw(st.lists(st.text(min_size=1, max_size=256), max_size=3)),
            }
        }
    if kind == "items":
        item = {"description": draw(st.text(min_size=1, max_size=256)), "owner": draw(NAMES)}
        return {"actionItems": [item] * draw(st.integers(min_value=1, max_value=64))}
    return {}


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    """Policy overrides anywhere within the policy's limits."""
    level = draw(st.integers(min_value=1, max_value=4))
    overrides: dict[str, Any] = {
        "timeScale": draw(st.sampled_from([0.01, 1.0, 60.0, 100000.0])),
        "levels": [
            {
                "level": level,
                "responseTime": draw(durations(1)),
                "updateCadence": draw(durations(1)),
                "reviewWithin": draw(durations()),
            }
        ],
    }
    if draw(st.booleans()):
        overrides["escalationChain"] = draw(st.lists(NAMES, min_size=1, max_size=16))
    return overrides
