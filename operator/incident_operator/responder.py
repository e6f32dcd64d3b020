"""Drive one Incident forward: read it, decide, commit status, then act.

Every decision is committed to status before its effects leave the operator (events,
notifications, runbook steps), so a restart resumes from status and never repeats them.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from . import execution
from .actions import catalog  # noqa: F401  (registers every action executor)
from .actions.base import StepResult
from .adapters.guard import TARGET_BUSY
from .adapters.kube import Conflict, NotFound
from .adapters.notify import deliver, payload
from .context import OperatorContext
from .domain import engine, lifecycle, matching, runbook_check, timeline
from .domain.escalation import escalate
from .domain.story import Decision, Notification, RunbookChoice, Story
from .domain.policy import LevelPolicy
from .durations import parse_duration
from .models.base import TimelineEntry
from .models.objects import IncidentObject, RunbookObject
from .models.runbook import OnFailure
from .safety import GUARD_UNAVAILABLE

log = logging.getLogger(__name__)
INCIDENTS = "incidents"
RUNBOOKS = "runbooks"
MAX_ROUNDS = 64


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def choose_runbook(
    ctx: OperatorContext, incident: IncidentObject
) -> tuple[RunbookChoice, RunbookObject | None]:
    bodies = await ctx.kube.list(RUNBOOKS, incident.metadata.namespace)
    candidates = []
    for body in bodies:
        runbook, problem = runbook_check.parse(body)
        if runbook is not None:
            candidates.append(matching.Candidate(runbook, valid=not problem, problem=problem))
    choice = matching.choose(incident.spec, candidates)
    chosen = next((c.runbook for c in candidates if c.runbook.metadata.name == choice.name), None)
    return choice, chosen


async def _commit(
    ctx: OperatorContext, body: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    if before == after:
        return body
    return await ctx.kube.replace_status(INCIDENTS, body, after)


async def _post_events(
    ctx: OperatorContext, body: dict[str, Any], entries: list[TimelineEntry]
) -> None:
    for entry in entries:
        await ctx.kube.event(body, entry.type.value, entry.reason, entry.message, entry.time)


def _dispatch(
    ctx: OperatorContext, body: dict[str, Any], notifications: list[Notification]
) -> None:
    """Send in the background: a slow receiver must not hold up the response."""
    meta = body["metadata"]
    for notification in notifications:
        for channel in ctx.policy.channels:
            if notification.severity > channel.max_severity:
                continue
            ctx.spawn(
                _deliver_and_record(ctx, meta["namespace"], meta["name"], channel, notification)
            )


async def _deliver_and_record(
    ctx: OperatorContext, namespace: str, name: str, channel: Any, notification: Notification
) -> None:
    try:
        url = await ctx.secrets.read(
            channel.namespace or ctx.settings.namespace,
            channel.url_secret_ref.name,
            channel.url_secret_ref.key,
        )
    except (LookupError, KeyError) as exc:
        outcome_ok, detail, attempts = False, f"webhook secret unavailable: {exc}", 0
    else:
        result = await deliver(
            ctx.http,
            url,
            channel,
            payload(channel, notification, name, namespace),
            notification.key,
            ctx.policy.delivery_attempts,
            parse_duration(ctx.policy.delivery_timeout),
        )
        outcome_ok, detail, attempts = result.ok, result.detail, result.attempts
    if outcome_ok:
        reason, message = (
            "NotificationDelivered",
            (
                f"{notification.kind} notification delivered to {channel.name} ({detail}, "
                f"attempt {attempts})"
            ),
        )
    else:
        reason, message = (
            "NotificationFailed",
            (
                f"{notification.kind} notification to {channel.name} failed after {attempts} "
                f"attempts: {detail}"
            ),
        )
    await record(
        ctx, namespace, name, reason, message, warning=not outcome_ok, failure=not outcome_ok
    )


async def record(
    ctx: OperatorContext,
    namespace: str,
    name: str,
    reason: str,
    message: str,
    *,
    warning: bool = False,
    failure: bool = False,
) -> None:
    """Append one timeline entry (and its Event) outside a decision, e.g. a delivery outcome."""
    for _ in range(MAX_ROUNDS):
        try:
            body = await ctx.kube.get(INCIDENTS, namespace, name)
        except NotFound:
            return
        async with ctx.lock(body["metadata"]["uid"]):
            incident = IncidentObject.parse(body)
            status = incident.status.model_copy(deep=True)
            entry = timeline.append(status, utcnow(), reason, message, warning=warning)
            if failure and status.notifications is not None:
                status.notifications.failures += 1
            try:
                body = await ctx.kube.replace_status(INCIDENTS, body, status.to_k8s())
            except Conflict:
                continue
            await _post_events(ctx, body, [entry])
            return


async def _guard(
    ctx: OperatorContext,
    story: Story,
    incident: IncidentObject,
    runbook: RunbookObject,
    plan: engine.StepToRun,
    level: LevelPolicy,
) -> engine.StepToRun | None:
    """Cooldown, attempt limit and one remediation per target, for destructive steps."""
    if not ctx.gate.needed(plan, incident):
        return plan
    verdict = await ctx.gate.acquire(incident, runbook, plan, story.now)
    if verdict.granted:
        if story.status.message and story.status.message.startswith(f"{plan.step.name} waits"):
            story.status.message = None  # the target is free now
        return plan
    if verdict.reason in (TARGET_BUSY, GUARD_UNAVAILABLE):
        waiting = f"{plan.step.name} waits: {verdict.message}"
        if story.status.message != waiting:
            story.status.message = waiting
            story.log("WaitingForTarget", waiting)
        return None
    # Cooling down or out of attempts: retrying would be the loop the limits exist to stop.
    engine.mark_running(story, plan, dry_run=False)
    refused = StepResult(False, verdict.message, {"guard": verdict.reason})
    engine.record_result(story, plan, refused, ctx.policy, level)
    if plan.step.on_failure != OnFailure.ESCALATE:
        escalate(
            story, ctx.policy, level, verdict.reason, f"{plan.step.name} refused: {verdict.message}"
        )
    return None


async def _plan(
    ctx: OperatorContext, incident: IncidentObject
) -> tuple[Decision, engine.StepToRun | None, RunbookObject | None]:
    choice, runbook = await choose_runbook(ctx, incident)
    story = lifecycle.start(incident, utcnow(), ctx.policy)
    level = lifecycle.advance(story, choice)
    plan = None
    if runbook is not None:
        approvals = {a.step: a for a in incident.spec.approvals}
        plan = engine.next_step(story, runbook.spec, approvals, ctx.policy, level)
        if plan is not None:
            plan = await _guard(ctx, story, incident, runbook, plan, level)
        if plan is not None:
            engine.mark_running(story, plan, incident.spec.dry_run)
    return lifecycle.finish(story), plan, runbook


async def _record_result(
    ctx: OperatorContext, namespace: str, name: str, plan: engine.StepToRun, result: StepResult
) -> None:
    for _ in range(MAX_ROUNDS):
        body = await ctx.kube.get(INCIDENTS, namespace, name)
        incident = IncidentObject.parse(body)
        story = lifecycle.start(incident, utcnow(), ctx.policy)
        level = ctx.policy.level(incident.status.severity or 4)
        engine.record_result(story, plan, result, ctx.policy, level)
        decision = lifecycle.finish(story)
        try:
            body = await _commit(ctx, body, incident.status.to_k8s(), decision.status.to_k8s())
        except Conflict:
            continue
        await _post_events(ctx, body, decision.entries)
        _dispatch(ctx, body, decision.notifications)
        return


async def respond(ctx: OperatorContext, namespace: str, name: str) -> None:
    """Bring the Incident up to date with the policy, the clock and its runbook."""
    for _ in range(MAX_ROUNDS):
        try:
            body = await ctx.kube.get(INCIDENTS, namespace, name)
        except NotFound:
            return
        async with ctx.lock(body["metadata"]["uid"]):
            incident = IncidentObject.parse(body)
            decision, plan, runbook = await _plan(ctx, incident)
            guarded = plan is not None and ctx.gate.needed(plan, incident)
            try:
                body = await _commit(ctx, body, incident.status.to_k8s(), decision.status.to_k8s())
            except Conflict:
                if guarded and plan is not None and runbook is not None:
                    await ctx.gate.release(incident, runbook, plan)
                continue
            await _post_events(ctx, body, decision.entries)
            _dispatch(ctx, body, decision.notifications)
            if plan is None or runbook is None:
                return
            try:
                if guarded:
                    await ctx.gate.record(incident, runbook, plan, utcnow())
                result = await execution.execute(ctx, incident, runbook, plan)
            finally:
                if guarded:
                    await ctx.gate.release(incident, runbook, plan)
            await _record_result(ctx, namespace, name, plan, result)
    log.warning("incident %s/%s kept changing; will retry on the next tick", namespace, name)
