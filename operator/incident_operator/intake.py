"""Accepted alert batches into Incidents: find or open the group's Incident, record its alerts.

For each slice of a batch (the alerts of one group for one namespace): the group's Incident
is its base name, or a later episode of it once an earlier one was resolved; with correlation,
an open Incident of the same service that a group joined before, or opened within the window.
A new problem opens an Incident unless a maintenance window covers its service. The alerts
are then written to ``status.alerts`` through the commit loop, and the Incident is woken so its
next decision sees them (resolution from alerts). All of it before the HTTP answer.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from typing import Any

from . import commit
from .adapters.kube import Conflict, Forbidden, Invalid, KubeError, NotFound
from .context import OperatorContext
from .domain import alert_status, alerts, timeline
from .domain.alert_policy import DEFAULT_RECEIVER, active_window
from .domain.alerts import SliceResult
from .domain.story import Decision
from .durations import parse_duration
from .models.objects import IncidentObject
from .webhook import (
    ReceiverConfig,
    ReceiverError,
    Route,
    check_route,
    env_token,
    insecure_allowed,
)

log = logging.getLogger(__name__)
WATCH_ENV = "INCIDENT_OPERATOR_WATCH_NAMESPACES"
INCIDENTS = "incidents"
#: Resolved episodes of one group looked through before giving up (then the alert fails).
MAX_EPISODES = 64


class Resolved(Exception):
    """The Incident was resolved between finding it and recording into it."""


class IncidentSink:
    def __init__(self, ctx: OperatorContext, noticed: Callable[[str, str], None]) -> None:
        self.ctx = ctx
        self.noticed = noticed

    async def apply(self, batch: alerts.Batch) -> list[SliceResult]:
        return [await self._apply(piece) for piece in batch.slices]

    async def _apply(self, piece: alerts.Slice) -> SliceResult:
        try:
            for _ in range(3):  # lost races: created meanwhile, or resolved meanwhile
                try:
                    return await self._slice(piece)
                except (Conflict, Resolved):
                    continue
            return SliceResult(None, "failed", "the Incident kept changing; try again")
        except (Invalid, NotFound, Forbidden) as exc:
            return SliceResult(None, "rejected", f"{type(exc).__name__}: {exc}"[:300])
        except (KubeError, commit.StillChanging) as exc:
            log.warning("alerts for %s/%s not applied: %s", piece.namespace, piece.base_name, exc)
            return SliceResult(None, "failed", f"{type(exc).__name__}: try again"[:300])

    async def _slice(self, piece: alerts.Slice) -> SliceResult:
        ns = piece.namespace
        name, merged = await self._find(piece)
        now = self.ctx.now()
        if name is None:
            if not piece.firing:
                return SliceResult(None, "ignored")  # resolved alerts of no open problem
            episode = await self._free_episode(piece)
            window = active_window(self.ctx.policy.maintenance, ns, piece.service, now)
            if window is not None:
                await self._suppressed(piece, episode, window.name, window.end)
                return SliceResult(f"{ns}/{episode}", "suppressed", None)
            await self.ctx.kube.create(INCIDENTS, ns, alerts.incident_body(piece, episode))
            await self._record(ns, episode, piece, merged=False)
            return SliceResult(f"{ns}/{episode}", "created")
        lines = await self._record(ns, name, piece, merged=merged)
        if merged and any(line.reason == "AlertGroupJoined" for line in lines):
            return SliceResult(f"{ns}/{name}", "joined")
        outcome = "repeat" if not lines else "updated"
        if any(line.reason == "AlertsResolved" for line in lines):
            outcome = "resolved"
        return SliceResult(f"{ns}/{name}", outcome)

    async def _find(self, piece: alerts.Slice) -> tuple[str | None, bool]:
        """The open Incident of the group (and whether it was opened for another group)."""
        for episode in range(1, MAX_EPISODES + 1):
            name = alerts.episode_name(piece.base_name, episode)
            try:
                body = await self.ctx.kube.get(INCIDENTS, piece.namespace, name)
            except NotFound:
                break
            if not (body.get("status") or {}).get("resolvedAt"):
                return name, False
        return await self._correlated(piece), True

    async def _free_episode(self, piece: alerts.Slice) -> str:
        for episode in range(1, MAX_EPISODES + 1):
            name = alerts.episode_name(piece.base_name, episode)
            try:
                await self.ctx.kube.get(INCIDENTS, piece.namespace, name)
            except NotFound:
                return name
        raise Invalid(
            422, "TooManyEpisodes", f"group {piece.base_name} had {MAX_EPISODES} Incidents already"
        )

    async def _correlated(self, piece: alerts.Slice) -> str | None:
        """An open Incident this group joined before, or (correlation by service) one of the
        same service opened within the window."""
        policy = self.ctx.policy
        merge = policy.alerts.correlation
        items = await self.ctx.kube.list(INCIDENTS, piece.namespace)
        now = self.ctx.now()
        window = policy.scaled(parse_duration(merge.window))
        candidates: list[tuple[dt.datetime, str]] = []
        for body in items:
            incident = IncidentObject.parse(body)
            status = incident.status
            if status.resolved_at is not None:
                continue
            groups = status.alerts.groups if status.alerts else []
            if any(g.key == piece.group for g in groups):
                return incident.metadata.name
            if not merge.by_service or incident.spec.service != piece.service:
                continue
            created = incident.metadata.created
            if alert_status.correlates(status, created, now, window) and created is not None:
                candidates.append((created, incident.metadata.name))
        return min(candidates)[1] if candidates else None

    async def _record(
        self, namespace: str, name: str, piece: alerts.Slice, *, merged: bool
    ) -> list[alert_status.Line]:
        told: list[alert_status.Line] = []

        async def decide(incident: IncidentObject) -> commit.Change | None:
            if incident.status.resolved_at is not None:
                raise Resolved(name)
            status = incident.status.model_copy(deep=True)
            now = self.ctx.now()
            lines = alert_status.record(status, piece, now, merged=merged)
            told[:] = lines
            entries = [
                timeline.append(status, now, line.reason, line.message, warning=line.warning)
                for line in lines
            ]
            return commit.Change(Decision(status, entries, []))

        body = await commit.update(self.ctx, namespace, name, decide)
        if body is None:
            raise Resolved(name)  # deleted meanwhile: find or open again
        self.noticed(namespace, name)
        return told

    async def _suppressed(
        self, piece: alerts.Slice, name: str, window: str, until: dt.datetime
    ) -> None:
        """No Incident: an Event on the name it would have had tells what was suppressed."""
        message = (
            f"Maintenance window {window} (until {until.isoformat()}) suppressed a new "
            f"Incident for service {piece.service}: "
            f"{', '.join(sorted({a.name for a in piece.alerts}))[:300]}"
        )
        log.info("%s/%s: %s", piece.namespace, name, message)
        body: dict[str, Any] = {
            "apiVersion": "incidents.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": name, "namespace": piece.namespace},
        }
        await self.ctx.kube.event(body, "Normal", "IncidentSuppressed", message)


async def receiver_config(ctx: OperatorContext) -> ReceiverConfig:
    """The receivers of the policy (the default one when it lists none), with their tokens;
    raises ReceiverError for a configuration the receiver must not start with."""
    settings = ctx.settings
    insecure = insecure_allowed()
    token = env_token()
    listed = os.environ.get(WATCH_ENV, "")
    watched = [ns.strip() for ns in listed.split(",") if ns.strip()] or None
    policy = ctx.policy.alerts
    routes: dict[str, Route] = {}
    for receiver in policy.receivers:
        own = token
        if receiver.token_secret_ref is not None:
            ref = receiver.token_secret_ref
            try:
                own = (await ctx.kube.read_secret(settings.namespace, ref.name, ref.key)).strip()
            except (KubeError, KeyError, UnicodeDecodeError) as exc:
                raise ReceiverError(
                    f"receiver {receiver.name}: cannot read its token: {exc}"
                ) from exc
        routes[receiver.name] = Route(receiver.name, own, tuple(receiver.namespaces))
    if not routes:
        home = settings.namespace
        if watched is not None and home not in watched:
            home = watched[0]
        routes[DEFAULT_RECEIVER] = Route(DEFAULT_RECEIVER, token, (home,))
    for route in routes.values():
        check_route(route, watched, insecure)
    if insecure and any(r.token is None for r in routes.values()):
        log.warning("the alert receiver accepts unauthenticated requests (insecure flag set)")
    return ReceiverConfig(
        routes=routes,
        limits=policy.limits,
        tls_cert=os.environ.get("INCIDENT_OPERATOR_WEBHOOK_TLS_CERT") or None,
        tls_key=os.environ.get("INCIDENT_OPERATOR_WEBHOOK_TLS_KEY") or None,
    )
