"""Deliver the outbox of an Incident's status to the policy's channels; record each outcome.

A decision puts its messages into ``status.notifications.outbox`` (``Story.notify``), and
they are committed with it. After every commit, and after a restart (the resume decision
commits too), :func:`dispatch` sends what the outbox still holds: a message is delivered at
least once, even if the operator dies between the commit and the send. Each carries its key
as ``Idempotency-Key``. Delivery runs in the background, so a slow receiver never holds up
the response. Each outcome, success or any failure, removes the channel from the entry and
becomes a timeline entry through the one commit loop; failures are counted.
"""

from __future__ import annotations

import logging
from typing import Any

from . import commit, crashpoints
from .adapters import metrics
from .adapters.notify import deliver, payload
from .context import OperatorContext
from .domain import timeline
from .domain.policy import Channel
from .domain.story import Decision, Notification
from .durations import parse_duration
from .models.objects import IncidentObject

log = logging.getLogger(__name__)


def dispatch(ctx: OperatorContext, body: dict[str, Any]) -> None:
    """Start a background delivery for each message and channel the committed outbox still
    holds, unless this process is delivering it already."""
    meta = body["metadata"]
    state = IncidentObject.parse(body).status.notifications
    channels = {c.name: c for c in ctx.policy.channels}
    for message in state.outbox if state is not None else []:
        notification = Notification(
            message.kind, message.key, message.severity, message.title, message.text
        )
        for name in message.channels:
            channel = channels.get(name)
            if (message.key, name) in ctx.delivering:
                continue
            if channel is None:  # the policy changed since: nobody to deliver to
                gone = f"{message.kind} notification to {name} dropped: no such channel now"
                ctx.spawn(
                    settle(
                        ctx,
                        meta["namespace"],
                        meta["name"],
                        message.key,
                        name,
                        "NotificationFailed",
                        gone,
                        False,
                    )
                )
                continue
            ctx.delivering.add((message.key, name))
            ctx.spawn(
                _deliver_and_record(ctx, meta["namespace"], meta["name"], channel, notification)
            )


async def _deliver(
    ctx: OperatorContext, namespace: str, name: str, channel: Channel, notification: Notification
) -> tuple[bool, str, int]:
    """(delivered, detail, attempts); never raises, and never tells the URL (a secret)."""
    try:
        url = await ctx.secrets.read(
            channel.namespace or ctx.settings.namespace,
            channel.url_secret_ref.name,
            channel.url_secret_ref.key,
        )
    except Exception as exc:  # any failure to read is this delivery's failure, not a crash
        return False, f"webhook secret unavailable: {type(exc).__name__}: {exc}", 0
    try:
        result = await deliver(
            ctx.http,
            url,
            channel,
            payload(channel, notification, name, namespace),
            notification.key,
            ctx.policy.delivery_attempts,
            parse_duration(ctx.policy.delivery_timeout),
        )
    except Exception as exc:  # e.g. an invalid URL in the Secret
        return False, f"cannot send: {type(exc).__name__}", 0
    return result.ok, result.detail, result.attempts


async def _deliver_and_record(
    ctx: OperatorContext, namespace: str, name: str, channel: Channel, notification: Notification
) -> None:
    try:
        await _deliver_and_record_once(ctx, namespace, name, channel, notification)
    finally:
        ctx.delivering.discard((notification.key, channel.name))


async def _deliver_and_record_once(
    ctx: OperatorContext, namespace: str, name: str, channel: Channel, notification: Notification
) -> None:
    ok, detail, attempts = await _deliver(ctx, namespace, name, channel, notification)
    if ok:
        crashpoints.reach("delivered", notification.kind)
    metrics.NOTIFICATIONS.labels(channel.name, "delivered" if ok else "failed").inc()
    if ok:
        reason = "NotificationDelivered"
        message = (
            f"{notification.kind} notification delivered to {channel.name} ({detail}, "
            f"attempt {attempts})"
        )
    else:
        reason = "NotificationFailed"
        message = (
            f"{notification.kind} notification to {channel.name} failed after {attempts} "
            f"attempts: {detail}"
        )
        log.warning("incident %s/%s: %s", namespace, name, message)
    try:
        await settle(ctx, namespace, name, notification.key, channel.name, reason, message, ok)
    except Exception:
        log.exception("incident %s/%s: could not record %s", namespace, name, reason)


async def settle(
    ctx: OperatorContext,
    namespace: str,
    name: str,
    key: str,
    channel: str,
    reason: str,
    message: str,
    ok: bool,
) -> None:
    """Take the channel off the message's entry and record the outcome, once: if another
    delivery (another replica, an earlier process) settled it already, nothing is written."""

    async def decide(incident: IncidentObject) -> commit.Change | None:
        status = incident.status.model_copy(deep=True)
        state = status.notifications
        entry = next((m for m in state.outbox if m.key == key), None) if state else None
        if state is None or entry is None or channel not in entry.channels:
            return None
        entry.channels = [c for c in entry.channels if c != channel]
        state.outbox = [m for m in state.outbox if m.channels]
        if not ok:
            state.failures += 1
        logged = timeline.append(status, ctx.now(), reason, message, warning=not ok)
        return commit.Change(Decision(status, [logged], []))

    await commit.update(ctx, namespace, name, decide)
