"""A runbook step as a task of its own: run it, commit its result, ask for the next decision.

The response decision marked the step Running and committed that before this task started
(see ``responder``). While it runs, the Incident's clock goes on: acknowledgements,
escalations and updates are decided without waiting for it. If the operator stops before the
result is committed, the Running record is found on restart: an idempotent step runs again,
any other is marked Interrupted (``domain.engine.next_step``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import commit, crashpoints, execution, notifications, silences
from .adapters import metrics
from .adapters.guard import GuardError
from .context import OperatorContext
from .domain import engine, lifecycle
from .domain.results import StepResult
from .models.incident import StepPhase
from .models.objects import IncidentObject, RunbookObject

log = logging.getLogger(__name__)
Respond = Callable[[OperatorContext, str, str], Awaitable[None]]
#: Retry delays for committing a result while the API server is unreachable; the last one
#: repeats for as long as it takes, since a lost result would make a step look interrupted.
COMMIT_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0)


async def run(
    ctx: OperatorContext,
    incident: IncidentObject,
    runbook: RunbookObject,
    plan: engine.StepToRun,
    claimed: bool,
    respond: Respond,
) -> None:
    meta = incident.metadata
    started = time.monotonic()
    try:
        try:
            crashpoints.reach("running", plan.step.name)
            async with silences.around_step(ctx, incident, plan):
                result = await execution.execute(ctx, incident, runbook, plan)
            crashpoints.reach("acted", plan.step.name)
            action = plan.step.action.type
            metrics.STEP_RUNS.labels(action, "succeeded" if result.ok else "failed").inc()
            metrics.STEP_DURATION.labels(action).observe(time.monotonic() - started)
        finally:
            if claimed:
                with contextlib.suppress(GuardError):  # a Lease left behind expires
                    await ctx.gate.release(incident, runbook, plan)
        log.info(
            "incident %s/%s: step %s %s: %s",
            meta.namespace,
            meta.name,
            plan.step.name,
            "succeeded" if result.ok else "failed",
            result.message,
        )
        await _commit_result(ctx, incident, plan, result)
    finally:
        ctx.steps.finish(meta.uid)
    crashpoints.reach("recorded", plan.step.name)
    await respond(ctx, meta.namespace, meta.name)


async def _commit_result(
    ctx: OperatorContext, incident: IncidentObject, plan: engine.StepToRun, result: StepResult
) -> None:
    """Commit the result, retrying while the API server is unavailable; a result is lost only
    when the operator stops first, and then the restart rules apply."""
    meta = incident.metadata

    async def decide(current: IncidentObject) -> commit.Change | None:
        record = next((s for s in current.status.steps if s.name == plan.step.name), None)
        if current.metadata.uid != meta.uid or record is None:
            return None  # deleted and created again under the same name
        if record.phase != StepPhase.RUNNING:
            return None
        try:
            story = lifecycle.start(current, ctx.now(), ctx.policy)
            level = ctx.policy.level(current.status.severity or 4)
            engine.record_result(story, plan, result, ctx.policy, level)
            decision = lifecycle.finish(story)
        except Exception as exc:  # a bug must not keep the result (and the slot) forever
            log.exception(
                "incident %s/%s: cannot record %s", meta.namespace, meta.name, plan.step.name
            )
            failed = lifecycle.failed(current, ctx.now(), ctx.policy, exc, plan.step.name)
            return commit.Change(failed)

        async def committed(body: dict[str, Any]) -> None:
            notifications.dispatch(ctx, body)

        return commit.Change(decision, committed)

    for attempt in itertools.count():
        try:
            await commit.update(ctx, meta.namespace, meta.name, decide)
            return
        except Exception:
            delay = COMMIT_BACKOFF[min(attempt, len(COMMIT_BACKOFF) - 1)]
            log.warning(
                "incident %s/%s: could not commit the result of %s; retrying in %gs",
                meta.namespace,
                meta.name,
                plan.step.name,
                delay,
                exc_info=True,
            )
            await asyncio.sleep(delay)
