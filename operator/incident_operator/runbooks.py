"""Runbook admission by the operator: what the schema cannot check goes into status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from .adapters.kube import Conflict
from .context import OperatorContext
from .domain import conditions as cond
from .domain import runbook_check
from .domain.matching import Candidate
from .domain.policy import Policy
from .models.runbook import RunbookStatus

RUNBOOKS = "runbooks"


def evaluate(body: dict[str, Any], now: dt.datetime, policy: Policy) -> RunbookStatus:
    runbook, problem = runbook_check.parse(body, policy)
    old = RunbookStatus.model_validate(
        {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    )
    generation = body["metadata"].get("generation")
    status = old.model_copy(deep=True)
    status.valid = not problem
    status.observed_generation = generation
    status.message = problem or "Runbook is valid"
    status.step_count = (
        len(runbook.spec.diagnosis) + len(runbook.spec.recovery) if runbook else None
    )
    status.conditions = cond.set_condition(
        status.conditions,
        "Valid",
        not problem,
        "Invalid" if problem else "Validated",
        status.message,
        now,
        generation,
    )
    return status


async def validate(ctx: OperatorContext, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    for _ in range(8):
        status = evaluate(body, dt.datetime.now(dt.UTC), ctx.policy)
        before = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
        after = status.to_k8s()
        if before == after:
            return
        try:
            await ctx.kube.replace_status(RUNBOOKS, body, after)
        except Conflict:
            body = await ctx.kube.get(RUNBOOKS, meta["namespace"], meta["name"])
            continue
        if not status.valid:
            await ctx.kube.event(body, "Warning", "RunbookInvalid", status.message or "")
        return


def index_entry(
    body: Mapping[str, Any], namespace: str, policy: Policy
) -> dict[str, Candidate] | None:
    """The Runbook index: each namespace's Runbooks, parsed and checked once per change."""
    runbook, problem = runbook_check.parse(body, policy)
    if runbook is None:
        return None
    return {namespace: Candidate(runbook, valid=not problem, problem=problem)}


async def changed(
    ctx: OperatorContext, body: dict[str, Any], open_incidents: Mapping[str, Iterable[str]]
) -> None:
    """Check a new or changed Runbook, then let the namespace's open Incidents see it."""
    await validate(ctx, body)
    namespace = body["metadata"]["namespace"]
    now = ctx.now()
    for name in list(open_incidents[namespace]) if namespace in open_incidents else []:
        ctx.clock.wake(namespace, name, now)
