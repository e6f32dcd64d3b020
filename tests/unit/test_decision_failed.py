"""A decision that raises becomes a condition in status, never a stuck Incident.

Before, an exception in a decision (a bug, a value no one foresaw) went up to the handler or
the clock, was logged, and came back on every retry: the Incident stayed as it was, with
nothing in its status to say why. Now the commit loop writes ``DecisionFailed`` (reason
``DecisionFailed``, the exception's type and message) and a Warning timeline entry, and the
operator tries again later; the next decision that succeeds sets the condition False. A step
result that cannot be recorded marks the step Failed instead of retrying forever.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from incident_operator import responder, steps
from incident_operator.domain import conditions as cond
from incident_operator.domain import engine, lifecycle
from incident_operator.domain.results import StepResult
from incident_operator.models.incident import IncidentStatus, StepPhase
from incident_operator.models.objects import IncidentObject
from incident_operator.models.runbook import RunbookSpec
from tests.unit.fake_operator import T0, FakeContext, incident_body


def _status(ctx: FakeContext) -> IncidentStatus:
    return IncidentStatus.model_validate(ctx.kube.body.get("status") or {})


def _boom(*_: Any, **__: Any) -> None:
    raise OverflowError("date value out of range")


async def test_a_decision_that_raises_is_committed_as_a_condition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = FakeContext(incident_body())
    monkeypatch.setattr(lifecycle, "advance", _boom)
    await responder.respond(ctx, "n", "i")  # type: ignore[arg-type]

    failed = cond.find(_status(ctx).conditions, cond.DECISION_FAILED)
    assert failed is not None and failed.status.value == "True"
    assert failed.reason == "DecisionFailed"
    assert failed.message.startswith("OverflowError: date value out of range")
    assert ("Warning", "DecisionFailed") in ctx.kube.events
    assert ctx.clock.wakes and ctx.clock.wakes[-1] is not None and ctx.clock.wakes[-1] > T0

    # The same failure again writes nothing new: no event storm, no write loop.
    writes = ctx.kube.writes
    await responder.respond(ctx, "n", "i")  # type: ignore[arg-type]
    assert ctx.kube.writes == writes

    # Once deciding works again, the condition says so and the response goes on.
    monkeypatch.undo()
    ctx.time = T0 + dt.timedelta(seconds=30)
    await responder.respond(ctx, "n", "i")  # type: ignore[arg-type]
    status = _status(ctx)
    failed = cond.find(status.conditions, cond.DECISION_FAILED)
    assert failed is not None and failed.status.value == "False"
    assert status.severity == 2 and status.notifications is not None


def _runbook() -> RunbookSpec:
    return RunbookSpec.model_validate(
        {
            "title": "t",
            "rto": {"mitigation": "5m"},
            "diagnosis": [{"name": "settle", "action": {"type": "wait", "duration": "1s"}}],
        }
    )


async def test_a_step_result_that_cannot_be_recorded_fails_the_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = FakeContext(incident_body())
    runbook = _runbook()
    story = lifecycle.start(IncidentObject.parse(ctx.kube.body), T0, ctx.policy)
    lifecycle.advance(story, responder.RunbookChoice("rb", "RunbookSelected", "named"))
    plan = engine.StepToRun(runbook.diagnosis[0], "diagnosis")
    engine.mark_running(story, plan, dry_run=False)
    ctx.kube.body["status"] = lifecycle.finish(story).status.to_k8s()

    monkeypatch.setattr(engine, "record_result", _boom)
    incident = IncidentObject.parse(ctx.kube.body)
    result = StepResult(True, "waited")
    await asyncio.wait_for(steps._commit_result(ctx, incident, plan, result), 5)  # type: ignore[arg-type]

    status = _status(ctx)
    (record,) = status.steps
    assert record.phase == StepPhase.FAILED
    assert "OverflowError" in record.message
    assert cond.is_true(status.conditions, cond.DECISION_FAILED)
