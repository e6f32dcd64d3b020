"""The one way an Incident's status is written: read, decide, write if changed, retry on conflict.

Every writer of Incident status (the response decision, a step's result, a delivery outcome)
goes through :func:`update`. It reads the Incident, asks a ``decide`` callback for the new
status, writes ``/status`` only when it changed, guarded by the resourceVersion the decision
was based on, and on a conflict reads again and decides again. Only after the write succeeds
are the decision's effects let out: its timeline entries become Events, and ``on_committed``
runs (send notifications, start a step). A restarted operator therefore never repeats an
effect whose decision it cannot find in status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from . import logs
from .adapters import metrics
from .adapters.kube import Conflict, NotFound
from .context import OperatorContext
from .domain.story import Decision
from .models.objects import IncidentObject

log = logging.getLogger(__name__)
INCIDENTS = "incidents"
#: Decisions redone on conflicts before giving up until the next trigger.
MAX_ROUNDS = 16

Hook = Callable[[dict[str, Any]], Awaitable[None]]


@dataclasses.dataclass
class Change:
    """A decision and what to do once it is (or is not) committed."""

    decision: Decision
    #: Runs after the write with the stored body: effects that must follow the commit.
    on_committed: Hook | None = None
    #: Runs when the decision is not committed (a lost race, an error): undo what was claimed
    #: for it, e.g. a Lease or the Incident's step slot.
    on_abandon: Callable[[], Awaitable[None]] | None = None


Decide = Callable[[IncidentObject], Awaitable[Change | None]]


class StillChanging(Exception):
    """The Incident changed under every one of ``MAX_ROUNDS`` decisions; try again later."""


async def update(
    ctx: OperatorContext,
    namespace: str,
    name: str,
    decide: Decide,
    known: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Commit ``decide``'s change to the Incident; the stored body, or None if it is gone.

    ``known`` is a body seen without a read (Kopf's on create or resume, or the one held
    for a wake-up): the first decision is made on it. A write proves it current (or
    conflicts, and the next round reads); a decision on it that writes nothing is made
    again on a read body, so nothing is ever let out on a stale one.
    """
    key, held = f"{namespace}/{name}", ctx.held
    for _ in range(MAX_ROUNDS):
        # Read under the lock: this process's own last write is then always seen, and only
        # another writer (a person, a second replica) can make the write conflict.
        async with ctx.lock(key):
            unread, known = known, None
            try:
                body = unread or await ctx.kube.get(INCIDENTS, namespace, name)
            except NotFound:
                held.pop(key, None)
                metrics.OPEN_INCIDENTS.update(key, None)
                return None
            if unread is None and key in held:
                held[key] = body  # what was held may be older than this read
            incident = IncidentObject.parse(body)
            change = await decide(incident)
            if change is None:
                if unread is not None:
                    continue  # nothing proves the body current: decide on a read one
                return body
            before, after = incident.status.to_k8s(), change.decision.status.to_k8s()
            if unread is not None and before == after:
                if change.on_abandon is not None:
                    await change.on_abandon()
                continue  # nothing written proves the body current: decide on a read one
            if before != after:
                try:
                    body = await ctx.kube.replace_status(INCIDENTS, body, after)
                except BaseException as exc:
                    if change.on_abandon is not None:
                        await change.on_abandon()
                    if isinstance(exc, Conflict):
                        continue
                    if isinstance(exc, NotFound):  # deleted since it was read
                        held.pop(key, None)
                        metrics.OPEN_INCIDENTS.update(key, None)
                        return None
                    raise
                if key in held:
                    held[key] = body
                metrics.observe(key, incident.status, change.decision.status)
        await post_events(ctx, body, change.decision)
        if change.on_committed is not None:
            await change.on_committed(body)
        return body
    raise StillChanging(f"incident {namespace}/{name} kept changing during {MAX_ROUNDS} decisions")


def hold(ctx: OperatorContext, namespace: str, name: str, body: dict[str, Any] | None) -> None:
    """Keep ``body`` (as just committed) for the Incident's next wake-up; None forgets it."""
    if body is None:
        ctx.held.pop(f"{namespace}/{name}", None)
    else:
        ctx.held[f"{namespace}/{name}"] = body


def take(ctx: OperatorContext, namespace: str, name: str) -> dict[str, Any] | None:
    """The body held for the Incident's wake-up, if any (then forgotten)."""
    return ctx.held.pop(f"{namespace}/{name}", None)


async def post_events(ctx: OperatorContext, body: dict[str, Any], decision: Decision) -> None:
    """Mirror the decision's timeline entries as Events, so ``kubectl describe`` tells it,
    and as log lines, so ``kubectl logs`` of the operator does too."""
    meta = body["metadata"]
    where = logs.about(meta["namespace"], meta["name"])
    for entry in decision.entries:
        level = logging.WARNING if entry.type.value == "Warning" else logging.INFO
        log.log(
            level,
            "incident %s: %s: %s",
            where["incident"],
            entry.reason,
            entry.message,
            extra=where,
        )
    # At once: their order is their eventTime, not the order they arrive in.
    await asyncio.gather(
        *(
            ctx.kube.event(body, entry.type.value, entry.reason, entry.message, entry.time)
            for entry in decision.entries
        )
    )
