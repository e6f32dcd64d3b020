"""Send a committed decision's notifications to the policy's channels and record each outcome.

Delivery runs in the background, so a slow receiver never holds up an Incident's response.
Every outcome, success or failure of any kind, becomes a timeline entry through the one
commit loop, and failures are counted in ``status.notifications.failures``.
"""

from __future__ import annotations

import logging
from typing import Any

from . import commit
from .adapters.notify import deliver, payload
from .context import OperatorContext
from .domain import timeline
from .domain.policy import Channel
from .domain.story import Decision, Notification
from .durations import parse_duration
from .models.objects import IncidentObject

log = logging.getLogger(__name__)


def dispatch(ctx: OperatorContext, body: dict[str, Any], notifications: list[Notification]) -> None:
    """Start one background delivery per notification and channel that wants it."""
    meta = body["metadata"]
    for notification in notifications:
        for channel in ctx.policy.channels:
            if notification.severity > channel.max_severity:
                continue
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
    ok, detail, attempts = await _deliver(ctx, namespace, name, channel, notification)
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
        await record(ctx, namespace, name, reason, message, failure=not ok)
    except Exception:
        log.exception("incident %s/%s: could not record %s", namespace, name, reason)


async def record(
    ctx: OperatorContext,
    namespace: str,
    name: str,
    reason: str,
    message: str,
    *,
    failure: bool = False,
) -> None:
    """Append one timeline entry (and its Event) outside a response decision."""

    async def decide(incident: IncidentObject) -> commit.Change:
        status = incident.status.model_copy(deep=True)
        entry = timeline.append(status, ctx.now(), reason, message, warning=failure)
        if failure and status.notifications is not None:
            status.notifications.failures += 1
        return commit.Change(Decision(status, [entry], []))

    await commit.update(ctx, namespace, name, decide)
