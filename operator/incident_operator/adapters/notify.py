"""Deliver notifications to Slack-compatible and generic JSON webhooks over httpx."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx

from ..domain.policy import Channel, ChannelKind
from ..domain.story import Notification


@dataclasses.dataclass(frozen=True)
class Delivery:
    channel: str
    ok: bool
    attempts: int
    detail: str


def slack_escape(text: str) -> str:
    """Text as Slack shows it literally: ``<!channel>`` or ``<https://evil|text>`` in an
    incident's summary must not ping a channel or disguise a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(
    channel: Channel, notification: Notification, incident: str, namespace: str
) -> dict[str, Any]:
    if channel.kind == ChannelKind.SLACK:
        return {"text": slack_escape(notification.text)}
    return {
        "kind": notification.kind,
        "key": notification.key,
        "incident": incident,
        "namespace": namespace,
        "severity": notification.severity,
        "title": notification.title,
        "text": notification.text,
    }


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    channel: Channel,
    body: dict[str, Any],
    key: str,
    attempts: int,
    timeout: float,
    backoff: float = 0.5,
) -> Delivery:
    """POST with retries and exponential backoff; never raises, the outcome says what happened.

    The URL is a secret (webhook URLs embed tokens), so it is never part of the outcome.
    """
    detail = ""
    for attempt in range(1, attempts + 1):
        try:
            response = await client.post(
                url,
                json=body,
                timeout=timeout,
                headers={"Idempotency-Key": key, "X-Incident-Notification": key},
            )
            if response.status_code < 300:
                return Delivery(channel.name, True, attempt, f"HTTP {response.status_code}")
            detail = f"HTTP {response.status_code}"
        except httpx.TimeoutException:
            detail = f"timed out after {timeout:g}s"
        except Exception as exc:  # HTTPError, InvalidURL (not an HTTPError) or anything else
            detail = type(exc).__name__
        if attempt < attempts:
            await asyncio.sleep(backoff * 2 ** (attempt - 1))
    return Delivery(channel.name, False, attempts, detail)
