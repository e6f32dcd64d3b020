"""Fuzzing the boundary: whatever a body, a policy or a duration holds, parsing it either
works or says why (ValidationError, PolicyError, ValueError), never anything else.

Bodies are built from the CRD schemas (so most fields have the right shape and many are
valid), with garbage mixed in at every level. Budgets: see ``fuzzing.fuzz``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from pydantic import ValidationError

from incident_operator.domain import runbook_check
from incident_operator.domain.policy import Policy, PolicyError, load_policy
from incident_operator.durations import MAX_DURATION_SECONDS, format_duration, parse_duration
from incident_operator.models.actions import Wait
from incident_operator.models.incident import IncidentSpec, IncidentStatus
from incident_operator.models.objects import IncidentObject
from incident_operator.models.runbook import RunbookSpec
from tests.unit.fuzzing import GARBAGE, crd_schema, from_schema, fuzz

INCIDENT = crd_schema("incidents")["properties"]
RUNBOOK = crd_schema("runbooks")["properties"]
POLICY = load_policy()
METADATA = {"name": "fuzz", "namespace": "n", "uid": "u", "generation": 1}


def _body(spec: Any, status: Any) -> dict[str, Any]:
    return {"metadata": METADATA, "spec": spec, "status": status}


@fuzz(150)
@given(
    spec=st.one_of(from_schema(INCIDENT["spec"], noise=False), from_schema(INCIDENT["spec"])),
    status=st.one_of(
        st.just({}), from_schema(INCIDENT["status"], noise=False), from_schema(INCIDENT["status"])
    ),
)
def test_an_incident_body_parses_or_is_refused(spec: Any, status: Any) -> None:
    try:
        incident = IncidentObject.parse(_body(spec, status))
    except ValidationError:
        event("refused")
        return
    event("valid")
    assert IncidentSpec.model_validate(incident.spec.to_k8s()) == incident.spec
    assert IncidentStatus.model_validate(incident.status.to_k8s()) == incident.status


@fuzz(100)
@given(
    spec=st.one_of(from_schema(RUNBOOK["spec"], noise=False), from_schema(RUNBOOK["spec"])),
    status=st.one_of(st.just({}), from_schema(RUNBOOK["status"])),
)
def test_a_runbook_body_is_valid_or_invalid_with_a_reason(spec: Any, status: Any) -> None:
    runbook, problem = runbook_check.parse(_body(spec, status), POLICY)
    assert isinstance(problem, str) and len(problem) <= 1024 + 512
    if runbook is None:
        assert problem
        event("refused")
        return
    event("valid" if not problem else "invalid with a reason")
    assert RunbookSpec.model_validate(runbook.spec.to_k8s()) == runbook.spec


POLICY_SCHEMA = Policy.model_json_schema(by_alias=True)


def _policy_schema() -> dict[str, Any]:
    """The policy's schema with $refs inlined (pydantic keeps them in $defs)."""
    defs = POLICY_SCHEMA.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            if "anyOf" in node:
                options = [o for o in node["anyOf"] if o.get("type") != "null"]
                return inline(options[0]) if options else {}
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    schema: dict[str, Any] = inline({k: v for k, v in POLICY_SCHEMA.items() if k != "$defs"})
    schema["required"] = []  # an override may leave anything out
    return schema


@fuzz(100)
@given(
    overrides=st.one_of(
        from_schema(_policy_schema(), noise=False),
        from_schema(_policy_schema()),
        st.dictionaries(st.text(), GARBAGE),
    )
)
def test_a_policy_loads_or_stops_start_up_with_a_policy_error(overrides: Any) -> None:
    try:
        policy = load_policy(overrides=overrides if isinstance(overrides, dict) else {"x": 1})
    except PolicyError:
        event("refused")
        return
    event("valid")
    for level in policy.levels:  # what decisions compute from it never overflows
        for seconds in (level.response_seconds, level.cadence_seconds, level.review_seconds):
            if seconds is not None:
                assert policy.scaled(seconds).days < 40_000


# --- durations --------------------------------------------------------------------------------


@fuzz(300)
@given(millis=st.integers(min_value=0, max_value=int(MAX_DURATION_SECONDS * 1000)))
def test_a_duration_formats_and_parses_back(millis: int) -> None:
    text = format_duration(millis / 1000)
    assert math.isclose(parse_duration(text), millis / 1000, abs_tol=5e-4)
    assert Wait(type="wait", duration=text).duration == text  # and the model takes it


@fuzz(100)
@given(millis=st.integers(min_value=int(MAX_DURATION_SECONDS * 1000) + 1, max_value=10**18))
def test_a_duration_over_a_year_is_refused_by_parse_and_model(millis: int) -> None:
    text = format_duration(millis / 1000)
    with pytest.raises(ValueError, match="at most 365d"):
        parse_duration(text)
    if len(text) <= 32:
        with pytest.raises(ValidationError, match="at most 365d"):
            Wait(type="wait", duration=text)


PARTS = st.lists(
    st.tuples(
        st.one_of(
            st.integers(min_value=0, max_value=10**12).map(str), st.text("0123456789.", max_size=6)
        ),
        st.sampled_from(["ms", "s", "m", "h", "d", "", "x", "M"]),
    ),
    max_size=6,
).map(lambda parts: "".join(n + u for n, u in parts))


@fuzz(300)
@given(text=st.one_of(PARTS, st.text(max_size=40)))
def test_any_text_is_a_duration_within_the_cap_or_a_value_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = None
    assert seconds is None or 0 <= seconds <= MAX_DURATION_SECONDS
    try:
        Wait(type="wait", duration=text)
    except ValidationError:
        accepted = False
    else:
        accepted = True
    # The model accepts exactly what parses, within the schema's 32 characters (no spaces).
    assert accepted == (seconds is not None and len(text) <= 32 and text == text.strip())
