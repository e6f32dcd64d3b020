"""Fuzzing the decisions: random valid Incidents, Runbooks and policies, for several rounds.

Each round people may change the spec (acknowledge, approve or reject, hand over, resolve,
add action items), time moves on (up to a year), the operator decides as the responder does
(lifecycle, next step, the safety gate's verdict, the step marked Running), the step ends
with a random result (long messages, many findings, or never: an operator restart), and the
clock's next due time is asked for. Nothing may raise, and the status must stay within the
CRD's limits and under 1 MiB. A second property: deciding at any moment before
``schedule.next_due`` changes nothing (the clock never needs to wake an Incident earlier).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from incident_operator.domain import engine, guarding, lifecycle, schedule
from incident_operator.domain.guarding import Verdict
from incident_operator.domain.policy import Policy, load_policy
from incident_operator.domain.results import StepResult
from incident_operator.domain.story import RunbookChoice
from incident_operator.durations import parse_duration
from incident_operator.models.incident import IncidentStatus, Phase
from incident_operator.models.objects import IncidentObject
from incident_operator.models.runbook import RunbookSpec
from tests.unit.fuzzing import (
    NAMES,
    T0,
    changes,
    fuzz,
    incident_specs,
    policies,
    runbook_specs,
)
from tests.unit.status_schema import string_limits

MIB = 1024 * 1024
VERDICTS = [
    None,
    Verdict(True, guarding.GRANTED, "granted"),
    Verdict(False, guarding.TARGET_BUSY, "held by another incident " + "x" * 1100),
    Verdict(False, guarding.COOLDOWN_ACTIVE, "cooling down"),
    Verdict(False, guarding.MAX_ATTEMPTS_REACHED, "too many"),
]
RESULTS = st.builds(
    StepResult,
    ok=st.sampled_from([True, True, False]),
    message=st.one_of(st.text(max_size=30), st.text(min_size=1000, max_size=3000)),
    findings=st.dictionaries(
        st.sampled_from(["matches", "latencyMs", "dryRun", "warnings", "pod"]),
        st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.text(max_size=600)),
        max_size=5,
    ),
    output=st.one_of(st.none(), st.text(max_size=5000)),
)


def _incident(spec: dict[str, Any], status: IncidentStatus, now: dt.datetime) -> IncidentObject:
    times = {"time": now.isoformat(), "fieldsV1": {"f:spec": {f"f:{k}": {} for k in spec}}}
    return IncidentObject.parse(
        {
            "metadata": {
                "name": "fuzz",
                "namespace": "n",
                "uid": "u",
                "generation": 1,
                "creationTimestamp": T0.isoformat(),
                "managedFields": [{"manager": "kubectl", **times}],
            },
            "spec": spec,
            "status": status.to_k8s(),
        }
    )


def _choice(runbook: RunbookSpec | None, problem: str) -> RunbookChoice:
    if runbook is None:
        return RunbookChoice(None, "RunbookInvalid", f"Runbook rb is invalid: {problem}")
    rto = parse_duration(runbook.rto.mitigation)
    return RunbookChoice("rb", "RunbookSelected", "Runbook rb (named)", runbook.severity, rto)


def _check(status: IncidentStatus) -> None:
    """What the API server would check, and the 1 MiB an object may have."""
    dumped = status.to_k8s()
    assert IncidentStatus.model_validate(dumped) == status
    for path, text, limit in string_limits(dumped, IncidentStatus):
        assert len(text) <= limit, f"{path}: {len(text)} > {limit}"
    assert len(dumped.get("timeline", [])) <= 100
    assert len(json.dumps(dumped)) < MIB


class Response:
    """One Incident driven the way the responder and the step tasks drive it."""

    def __init__(self, spec: dict[str, Any], runbook: RunbookSpec | None, policy: Policy) -> None:
        self.spec, self.runbook, self.policy = spec, runbook, policy
        self.status = IncidentStatus()
        self.now = T0
        self.choice = _choice(runbook, "p" * 1100)

    def decide(self, verdict: Verdict | None = None) -> engine.StepToRun | None:
        incident = _incident(self.spec, self.status, self.now)
        story = lifecycle.start(incident, self.now, self.policy)
        level = lifecycle.advance(story, self.choice)
        plan = None
        if self.runbook is not None:
            approvals = {a.step: a for a in incident.spec.approvals}
            plan = engine.next_step(story, self.runbook, approvals, self.policy, level)
            if plan is not None and plan.destructive and verdict is not None:
                plan = guarding.apply_verdict(story, plan, verdict, self.policy, level)
            if plan is not None:
                engine.mark_running(story, plan, incident.spec.dry_run)
        self.status = lifecycle.finish(story).status
        _check(self.status)
        return plan

    def finish(self, plan: engine.StepToRun, result: StepResult) -> None:
        incident = _incident(self.spec, self.status, self.now)
        story = lifecycle.start(incident, self.now, self.policy)
        level = self.policy.level(self.status.severity or 4)
        engine.record_result(story, plan, result, self.policy, level)
        self.status = lifecycle.finish(story).status
        _check(self.status)

    def answer(self, data: st.DataObject) -> None:
        """Mostly, someone answers the step that waits for approval (as people do)."""
        waiting = self.status.current_step
        if waiting is None or self.status.phase != Phase.AWAITING_APPROVAL:
            return
        decision = data.draw(st.sampled_from(["Approved", "Approved", "Rejected", None]))
        if decision is not None:
            others = [a for a in self.spec.get("approvals", []) if a["step"] != waiting]
            entry = {"step": waiting, "decision": decision, "by": data.draw(NAMES)}
            self.spec = {**self.spec, "approvals": [*others, entry]}

    def due(self) -> dt.datetime | None:
        return schedule.next_due(self.status, self.policy, self.runbook)


@st.composite
def responses(draw: st.DrawFn) -> Response:
    policy = load_policy(overrides=draw(policies()))
    with_runbook = draw(st.sampled_from([True, True, True, False]))
    runbook = RunbookSpec.model_validate(draw(runbook_specs())) if with_runbook else None
    names = [s.name for s in [*runbook.diagnosis, *runbook.recovery]] if runbook else []
    return Response(draw(incident_specs(names)), runbook, policy)


@fuzz(100)
@given(response=responses(), data=st.data())
def test_decisions_over_random_incidents_never_raise_and_status_stays_bounded(
    response: Response, data: st.DataObject
) -> None:
    names = (
        [s.name for s in response.runbook.diagnosis + response.runbook.recovery]
        if (response.runbook)
        else []
    )
    for _ in range(data.draw(st.integers(min_value=4, max_value=20), label="rounds")):
        response.spec = {**response.spec, **data.draw(changes(names), label="change")}
        response.answer(data)
        step = data.draw(st.sampled_from([0, 1, 60, 3600, 86400 * 30, 86400 * 365]), label="dt")
        response.now += dt.timedelta(seconds=step)
        plan = response.decide(data.draw(st.sampled_from(VERDICTS), label="verdict"))
        due = response.due()
        assert due is None or due > T0
        if plan is not None and data.draw(st.integers(0, 5), label="restart") > 0:
            response.now += dt.timedelta(seconds=data.draw(st.integers(0, 600), label="ran"))
            response.finish(plan, data.draw(RESULTS, label="result"))
        elif plan is not None:
            event("the operator restarted mid-step")
    event(f"phase {response.status.phase}")
    ended = sum(1 for s in response.status.steps if s.finished_at)
    event("steps ended: " + ("0-2" if ended < 3 else "3-5" if ended < 6 else "6+"))


@fuzz(100)
@given(response=responses(), data=st.data())
def test_nothing_changes_before_the_next_due_time(response: Response, data: st.DataObject) -> None:
    names = (
        [s.name for s in response.runbook.diagnosis + response.runbook.recovery]
        if (response.runbook)
        else []
    )
    response.spec = {**response.spec, **data.draw(changes(names), label="change")}
    for _ in range(12):  # settle: run every step that starts, until the decision is still
        plan = response.decide()
        if plan is None:
            break
        response.finish(plan, data.draw(RESULTS, label="result"))
    settled = response.decide()
    if settled is not None:  # a step would start again at once: not a clock matter
        event("still running steps")
        return
    status, due = response.status, response.due()
    if due is None:
        event("nothing due")
        later = response.now + dt.timedelta(days=data.draw(st.integers(1, 365), label="later"))
    else:
        event("due")
        assert due > response.now - dt.timedelta(seconds=1)
        span = max((due - response.now).total_seconds() - 0.01, 0)
        later = response.now + dt.timedelta(seconds=data.draw(st.floats(0, span), label="at"))
    response.now = later
    assert response.decide() is None
    assert response.status == status, f"changed before {due} at {later}"
    if due is not None:  # and at the due time, something does change: no idle wake-ups
        response.now = due
        response.decide()
        assert response.status != status, f"nothing happened at {due}"
