"""The Alertmanager webhook receiver: firing alerts become Incidents.

It runs inside the operator process (started by a Kopf startup handler) and uses the same
Kubernetes adapter. Creating an Incident that exists already is the dedupe: an alert keeps
one Incident for its fingerprint however often Alertmanager repeats it.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from collections.abc import Callable

from aiohttp import web
from pydantic import ValidationError

from .adapters.kube import Conflict, KubeAdapter, NotFound
from .domain import alerts

log = logging.getLogger(__name__)
RESOLVED_ANNOTATION = alerts.RESOLVED_ANNOTATION


class AlertReceiver:
    def __init__(
        self,
        kube: KubeAdapter,
        namespace: str,
        token: str | None,
        noticed: Callable[[str, str], None] = lambda namespace, name: None,
    ) -> None:
        self.kube = kube
        # A resolved alert changes only an annotation, which no handler watches: tell the
        # operator, so the Incident's next decision records it now.
        self.noticed = noticed
        self.namespace = namespace
        self.token = token
        self.runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/alertmanager", self.handle)
        app.router.add_get("/healthz", self.health)
        return app

    async def start(self, host: str, port: int) -> int:
        self.runner = web.AppRunner(self.app())
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        # The runner lists the addresses its sites are bound to: (host, port[, ...]) for TCP.
        # With port 0 the system picked the port, and this is the way to learn which.
        ports = [a[1] for a in self.runner.addresses if isinstance(a, tuple) and len(a) >= 2]
        return int(ports[0]) if ports else port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def handle(self, request: web.Request) -> web.Response:
        if self.token is not None:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given, self.token):
                return web.json_response({"error": "unauthorized"}, status=401)
        try:
            payload = await request.json()
            items = alerts.parse(payload, self.namespace)
        except (ValueError, ValidationError) as exc:
            return web.json_response(
                {"error": f"not an Alertmanager payload: {exc}"[:500]}, status=400
            )
        outcome: dict[str, list[str]] = {"created": [], "existing": [], "resolved": []}
        for item in items:
            await self._apply(item, outcome)
        return web.json_response(outcome)

    async def _apply(self, item: alerts.AlertIncident, outcome: dict[str, list[str]]) -> None:
        ref = f"{item.namespace}/{item.name}"
        if item.firing:
            try:
                await self.kube.create("incidents", item.namespace, item.body)
                outcome["created"].append(ref)
            except Conflict:
                outcome["existing"].append(ref)
            return
        try:
            await self.kube.annotate(
                "incidents", item.namespace, item.name, {RESOLVED_ANNOTATION: _now()}
            )
            outcome["resolved"].append(ref)
            self.noticed(item.namespace, item.name)
        except NotFound:
            pass


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
