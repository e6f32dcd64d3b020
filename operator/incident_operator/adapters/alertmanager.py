"""Alertmanager's API v2: create and expire silences (the operator's only calls to it)."""

from __future__ import annotations

import datetime as dt

import httpx

TIMEOUT = 5.0


class AlertmanagerError(Exception):
    """Alertmanager did not do what was asked; the message is safe to show."""


class AlertmanagerClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self.http = http
        self.base = base_url.rstrip("/")

    async def silence(
        self, matchers: dict[str, str], ends_at: dt.datetime, comment: str, created_by: str
    ) -> str:
        """A silence from now until ``ends_at`` of alerts whose labels equal ``matchers``."""
        body = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True}
                for k, v in matchers.items()
            ],
            "startsAt": dt.datetime.now(dt.UTC).isoformat(),
            "endsAt": ends_at.isoformat(),
            "createdBy": created_by,
            "comment": comment[:512],
        }
        try:
            answer = await self.http.post(
                f"{self.base}/api/v2/silences", json=body, timeout=TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise AlertmanagerError(f"cannot reach Alertmanager: {type(exc).__name__}") from exc
        if answer.status_code != 200:
            raise AlertmanagerError(f"Alertmanager answered {answer.status_code}")
        silence_id = answer.json().get("silenceID")
        if not isinstance(silence_id, str):
            raise AlertmanagerError("Alertmanager answered without a silenceID")
        return silence_id

    async def expire(self, silence_id: str) -> None:
        try:
            answer = await self.http.delete(
                f"{self.base}/api/v2/silence/{silence_id}", timeout=TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise AlertmanagerError(f"cannot reach Alertmanager: {type(exc).__name__}") from exc
        if answer.status_code not in (200, 404):
            raise AlertmanagerError(f"Alertmanager answered {answer.status_code}")
