"""Drive one Incident forward: decide, commit, then start what the decision asks for.

A response decision never waits for a runbook step. It brings the lifecycle up to date
(triage, acknowledgement, escalation, updates, resolution), picks the next step, claims the
step's target when it is destructive, and commits all of it to status. Only then does it let
the effects out: Events, notifications, the wake-up for the next due time, and the step,
which runs as a task of its own (``steps.run``). The step's end triggers the next decision,
so acknowledgements, escalations and updates are never held up by a running step.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from . import commit, notifications, steps
from .adapters import metrics
from .adapters.guard import GuardError
from .adapters.kube import KubeError
from .context import OperatorContext
from .domain import alert_resolution, engine, guarding, lifecycle, matching, schedule
from .domain.guarding import Verdict
from .domain.story import RunbookChoice
from .models.incident import Approval
from .models.objects import IncidentObject, RunbookObject

log = logging.getLogger(__name__)
#: When a decision that failed is tried again (a change to the Incident wakes it sooner).
FAILED_RETRY = dt.timedelta(minutes=1)


def choose_runbook(
    ctx: OperatorContext, incident: IncidentObject
) -> tuple[RunbookChoice, RunbookObject | None]:
    """The Runbook for the Incident, from the operator's index of its namespace's Runbooks."""
    candidates = ctx.runbooks(incident.metadata.namespace)
    choice = matching.choose(incident.spec, candidates)
    chosen = next((c.runbook for c in candidates if c.runbook.metadata.name == choice.name), None)
    return choice, chosen


async def respond(
    ctx: OperatorContext, namespace: str, name: str, known: dict[str, Any] | None = None
) -> None:
    """Bring the Incident up to date with the policy, the clock and its runbook.

    A decision that raises (anything but the API server failing) is committed as the
    ``DecisionFailed`` condition and tried again later: never a stuck, silent Incident.
    ``known``: the body as just seen (see ``commit.update``), which saves a read. A
    decision on it never claims a step's target (an action before the commit): one that
    would is made again on a read body.
    """
    unread = known is not None

    async def decide(incident: IncidentObject) -> commit.Change | None:
        nonlocal unread
        may_claim, unread = not unread, False
        try:
            return await _decide(ctx, incident, may_claim)
        except KubeError:
            raise  # the API server: the handler or the clock tries again
        except Exception as exc:
            log.exception("incident %s/%s: decision failed", namespace, name)
            metrics.DECISION_FAILURES.inc()
            return _failed(ctx, incident, exc)

    body = await commit.update(ctx, namespace, name, decide, known)
    if body is None:
        ctx.clock.wake(namespace, name, None)  # deleted: nothing is due any more
        commit.hold(ctx, namespace, name, None)


async def _refusals(
    ctx: OperatorContext, incident: IncidentObject, approvals: Mapping[str, Approval]
) -> dict[str, str]:
    """Approvals (and rejections) whose authors may not approve, with why; for steps that
    have not ended (answers are cached, so this costs a review per person now and then)."""
    ended = {s.name for s in incident.status.steps if s.phase in engine.TERMINAL}
    refusals: dict[str, str] = {}
    for step, approval in approvals.items():
        if step not in ended:
            why = await ctx.approvers.refusal(incident.metadata.namespace, approval.by)
            if why is not None:
                refusals[engine.approval_key(approval)] = why
    return refusals


def _count_refusal(
    incident: IncidentObject, plan: engine.StepToRun, verdict: guarding.Verdict
) -> None:
    """A refusal counts once; a wait for a busy target once per wait, not per retry."""
    if verdict.granted:
        return
    prior = next((s for s in incident.status.steps if s.name == plan.step.name), None)
    if (
        verdict.reason not in guarding.WAITING
        or prior is None
        or prior.blocked_by != verdict.reason
    ):
        metrics.GUARD_REFUSALS.labels(verdict.reason).inc()


async def _claim(
    ctx: OperatorContext,
    incident: IncidentObject,
    runbook: RunbookObject,
    plan: engine.StepToRun,
    now: dt.datetime,
) -> Verdict:
    """Take the step's target and record the attempt, before the step is marked Running."""
    verdict = await ctx.gate.acquire(incident, runbook, plan, now)
    if not verdict.granted:
        return verdict
    try:
        await ctx.gate.record(incident, runbook, plan, now)
    except GuardError as exc:
        await ctx.gate.release(incident, runbook, plan)
        return Verdict(False, guarding.GUARD_UNAVAILABLE, str(exc), None)
    return verdict


async def _decide(
    ctx: OperatorContext, incident: IncidentObject, may_claim: bool = True
) -> commit.Change | None:
    """The decision and its effects; None when it would claim a target but ``may_claim``
    is False (the body was not read, so it might be stale)."""
    now = ctx.now()
    meta = incident.metadata
    choice, runbook = choose_runbook(ctx, incident)
    story = lifecycle.start(incident, now, ctx.policy)
    level = lifecycle.advance(story, choice)
    plan: engine.StepToRun | None = None
    claimed = False
    retry_at: dt.datetime | None = None
    if runbook is not None:
        approvals = {a.step: a for a in incident.spec.approvals}
        refusals = await _refusals(ctx, incident, approvals)
        in_flight = ctx.steps.running(meta.uid)
        plan = engine.next_step(
            story, runbook.spec, approvals, ctx.policy, level, in_flight, refusals
        )
        held = plan.step.name if plan and plan.destructive and not incident.spec.dry_run else None
        if alert_resolution.hold_for_maintenance(story, ctx.policy.maintenance, held):
            plan = None  # a maintenance window holds remediation; due again at its end
        if plan is not None and ctx.gate.needed(plan, incident):
            if not may_claim:
                return None
            verdict = await _claim(ctx, incident, runbook, plan, now)
            claimed = verdict.granted
            _count_refusal(incident, plan, verdict)
            if verdict.reason in guarding.WAITING:
                retry_at = now + dt.timedelta(seconds=ctx.settings.retry_seconds)
            plan = guarding.apply_verdict(story, plan, verdict, ctx.policy, level)
        if plan is not None:
            engine.mark_running(story, plan, incident.spec.dry_run)
    decision = lifecycle.finish(story)
    due = schedule.next_due(decision.status, ctx.policy, runbook.spec if runbook else None)
    wake = min((t for t in (due, retry_at) if t is not None), default=None)
    started = plan
    if started is not None:
        ctx.steps.reserve(meta.uid, started.step.name)  # under the Incident's lock

    async def committed(body: dict[str, Any]) -> None:
        notifications.dispatch(ctx, body)
        ctx.clock.wake(meta.namespace, meta.name, _not_before(ctx, wake, now))
        commit.hold(ctx, meta.namespace, meta.name, body if wake is not None else None)
        if started is not None and runbook is not None:
            ctx.steps.start(meta.uid, steps.run(ctx, incident, runbook, started, claimed, on_due))

    async def abandoned() -> None:
        if started is not None:
            ctx.steps.finish(meta.uid)
        if claimed and plan is not None and runbook is not None:
            await ctx.gate.release(incident, runbook, plan)

    return commit.Change(decision, committed, abandoned)


def _failed(ctx: OperatorContext, incident: IncidentObject, error: Exception) -> commit.Change:
    """The failure as the decision to commit, and a wake-up to try again."""
    meta, now = incident.metadata, ctx.now()
    decision = lifecycle.failed(incident, now, ctx.policy, error)

    async def committed(_: dict[str, Any]) -> None:
        ctx.clock.wake(meta.namespace, meta.name, now + FAILED_RETRY)

    return commit.Change(decision, committed)


def _not_before(
    ctx: OperatorContext, wake: dt.datetime | None, now: dt.datetime
) -> dt.datetime | None:
    """A wake-up already due (e.g. a deadline that a decision could not act on) is delayed
    by the retry interval, so a stuck deadline can never spin the operator."""
    if wake is None or wake > now:
        return wake
    return now + dt.timedelta(seconds=ctx.settings.retry_seconds)


def index_entry(body: Mapping[str, Any], namespace: str) -> dict[str, str] | None:
    """The open-Incidents index: unresolved Incidents by namespace (names only)."""
    status = body.get("status") or {}
    if status.get("resolvedAt"):
        return None
    return {namespace: body["metadata"]["name"]}


async def on_due(ctx: OperatorContext, namespace: str, name: str) -> None:
    """A wake-up or a step's end: decide now; if that fails, try again after a while.

    A wake-up decides on the body this process last wrote (no read), if it holds one."""
    try:
        await respond(ctx, namespace, name, commit.take(ctx, namespace, name))
    except Exception:
        log.exception("incident %s/%s: decision failed; retrying", namespace, name)
        later = ctx.now() + dt.timedelta(seconds=ctx.settings.retry_seconds)
        ctx.clock.wake(namespace, name, later)
