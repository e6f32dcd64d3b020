"""The Alertmanager webhook receiver: authenticated, bounded, and every alert answered.

It runs inside the operator process (started by a Kopf startup handler). The HTTP side is
here: authentication (a bearer token per receiver), TLS, the limits on body size, alerts per
request and concurrent requests, and a bounded queue of accepted batches that answers 503 with
Retry-After when full. What an accepted batch does to Incidents is the sink's business
(``intake.IncidentSink``); the answer waits for it, so a 2xx means the alerts are recorded in
the cluster and a restart right after loses none of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import os
import ssl
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiohttp import web

from .adapters import metrics
from .domain import alerts
from .domain.alert_policy import DEFAULT_RECEIVER, ReceiverLimits

log = logging.getLogger(__name__)
RETRY_AFTER = "5"


class ReceiverError(Exception):
    """The receiver's configuration is unusable: the operator does not start with it."""


@dataclasses.dataclass(frozen=True)
class Route:
    """One receiver: its token (None only when insecure) and the namespaces it may target."""

    name: str
    token: str | None = dataclasses.field(repr=False)
    namespaces: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ReceiverConfig:
    routes: Mapping[str, Route]
    limits: ReceiverLimits = dataclasses.field(default_factory=ReceiverLimits)
    tls_cert: str | None = None
    tls_key: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls_cert and not self.tls_key:
            return None
        if not (self.tls_cert and self.tls_key):
            raise ReceiverError("TLS needs both a certificate and a key file")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ReceiverError(f"cannot load the receiver's TLS certificate: {exc}") from exc
        return context


def env_token() -> str | None:
    """The operator-wide token: INCIDENT_OPERATOR_WEBHOOK_TOKEN_FILE (a mounted Secret key),
    else INCIDENT_OPERATOR_WEBHOOK_TOKEN (an env var from a secretKeyRef)."""
    path = os.environ.get("INCIDENT_OPERATOR_WEBHOOK_TOKEN_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            raise ReceiverError(f"cannot read the receiver token file: {exc}") from exc
    return os.environ.get("INCIDENT_OPERATOR_WEBHOOK_TOKEN") or None


def insecure_allowed() -> bool:
    flag = os.environ.get("INCIDENT_OPERATOR_WEBHOOK_INSECURE", "")
    return flag.strip().lower() in ("1", "true", "yes")


def check_route(route: Route, watched: Sequence[str] | None, insecure: bool) -> None:
    if route.token is None and not insecure:
        raise ReceiverError(
            f"receiver {route.name} has no token: set INCIDENT_OPERATOR_WEBHOOK_TOKEN(_FILE) "
            "or the receiver's tokenSecretRef, or INCIDENT_OPERATOR_WEBHOOK_INSECURE=true "
            "to accept unauthenticated alerts"
        )
    if route.token is not None and (len(route.token) < 16 or not route.token.isascii()):
        raise ReceiverError(f"receiver {route.name}: the token must be 16+ ASCII characters")
    if watched is not None:
        unwatched = [ns for ns in route.namespaces if ns not in watched]
        if unwatched:
            raise ReceiverError(
                f"receiver {route.name} may target {', '.join(unwatched)}, which the operator "
                "does not watch"
            )


class Sink(Protocol):
    async def apply(self, batch: alerts.Batch) -> list[alerts.SliceResult]: ...


class TooLarge(Exception):
    pass


def _decode(body: bytes, receiver: Route, limits: ReceiverLimits) -> alerts.Batch:
    """Bytes to a batch, in a worker thread (a big body never stalls the event loop)."""
    try:
        text = body.decode("utf-8")
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise alerts.PayloadError(f"not JSON in UTF-8: {type(exc).__name__}") from exc
    alert_list = payload.get("alerts") if isinstance(payload, dict) else None
    if isinstance(alert_list, list) and len(alert_list) > limits.max_alerts_per_request:
        raise TooLarge(
            f"{len(alert_list)} alerts in one request; at most "
            f"{limits.max_alerts_per_request} (set max_alerts in Alertmanager)"
        )
    try:
        return alerts.plan(
            payload, receiver.name, receiver.namespaces, limits.max_alerts_per_request
        )
    except RecursionError as exc:
        raise alerts.PayloadError("nested too deeply") from exc


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class AlertReceiver:
    def __init__(self, sink: Sink, config: ReceiverConfig) -> None:
        self.sink = sink
        self.config = config
        self.limits = config.limits
        self.active = 0
        self.queue: asyncio.Queue[tuple[alerts.Batch, asyncio.Future[list[alerts.SliceResult]]]] = (
            asyncio.Queue(maxsize=self.limits.queue_size)
        )
        self.workers: list[asyncio.Task[None]] = []
        self.runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        # The body is read (and bounded) by the handler itself, never by aiohttp's json().
        app = web.Application(client_max_size=self.limits.max_body_bytes)
        app.router.add_post("/alertmanager", self.handle)
        app.router.add_post("/alertmanager/{receiver}", self.handle)
        app.router.add_get("/healthz", self.health)
        app.on_startup.append(self._start_workers)
        app.on_cleanup.append(self._stop_workers)
        return app

    async def start(self, host: str, port: int) -> int:
        context = self.config.ssl_context()
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, ssl_context=context)
        await site.start()
        # The runner lists the addresses its sites are bound to: (host, port[, ...]) for TCP.
        # With port 0 the system picked the port, and this is the way to learn which.
        ports = [a[1] for a in self.runner.addresses if isinstance(a, tuple) and len(a) >= 2]
        return int(ports[0]) if ports else port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _start_workers(self, app: web.Application) -> None:
        self.workers = [asyncio.create_task(self._work()) for _ in range(self.limits.workers)]

    async def _stop_workers(self, app: web.Application) -> None:
        for task in self.workers:
            task.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            batch, done = await self.queue.get()
            try:
                result = await self.sink.apply(batch)
            except Exception as exc:  # a bug in the sink must not kill the worker
                log.exception("alert batch of receiver %s failed", batch.receiver)
                if not done.done():
                    done.set_exception(exc)
            else:
                if not done.done():
                    done.set_result(result)
            finally:
                self.queue.task_done()

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "queued": self.queue.qsize()})

    def _authorized(self, request: web.Request, route: Route) -> bool:
        if route.token is None:
            return True
        given = request.headers.get("Authorization", "")
        # Headers arrive decoded; non-ASCII text must compare as bytes, never raise.
        given_bytes = given.encode("utf-8", "surrogateescape")
        if not given_bytes.startswith(b"Bearer "):
            return False
        return hmac.compare_digest(given_bytes[7:], route.token.encode())

    async def _read(self, request: web.Request) -> bytes:
        limit = self.limits.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise TooLarge(f"body over {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(65536):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"body over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def handle(self, request: web.Request) -> web.Response:
        route = self.config.routes.get(request.match_info.get("receiver", DEFAULT_RECEIVER))
        if route is None:
            return _error(404, "no such receiver")
        if not self._authorized(request, route):
            return _error(401, "unauthorized", **{"WWW-Authenticate": "Bearer"})
        if self.active >= self.limits.max_concurrent_requests:
            return _error(503, "too many concurrent requests", **{"Retry-After": RETRY_AFTER})
        self.active += 1
        try:
            return await self._handle(request, route)
        finally:
            self.active -= 1

    async def _handle(self, request: web.Request, route: Route) -> web.Response:
        try:
            body = await self._read(request)
            batch = await asyncio.to_thread(_decode, body, route, self.limits)
        except TooLarge as exc:
            return _error(413, str(exc))
        except alerts.PayloadError as exc:
            return _error(400, f"not an Alertmanager payload: {exc}"[:500])
        if self.queue.full():
            return _error(503, "receiver queue full", **{"Retry-After": RETRY_AFTER})
        done: asyncio.Future[list[alerts.SliceResult]] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((batch, done))
        try:
            results = await asyncio.shield(done)
        except Exception as exc:
            return _error(503, f"could not apply: {type(exc).__name__}", **{"Retry-After": "10"})
        return answer(batch, results)


def answer(batch: alerts.Batch, results: Sequence[alerts.SliceResult]) -> web.Response:
    """One entry per alert. 200: all accepted; 207: some rejected for good (a retry would not
    help); 422: all rejected; 503 with Retry-After: some failed for now, so Alertmanager sends
    the group again (accepted alerts then count as repeats)."""
    entries: list[dict[str, Any]] = []
    for piece, result in zip(batch.slices, results, strict=True):
        for item in piece.alerts:
            entry: dict[str, Any] = {
                "index": item.index,
                "fingerprint": item.fingerprint,
                "status": _status(result),
                "outcome": result.outcome,
            }
            if result.incident:
                entry["incident"] = result.incident
            if result.error:
                entry["error"] = result.error
            entries.append(entry)
    for rejected in batch.rejected:
        entries.append(
            {
                "index": rejected.index,
                "fingerprint": rejected.fingerprint,
                "status": "rejected",
                "outcome": "rejected",
                "error": rejected.reason,
            }
        )
    entries.sort(key=lambda e: int(e["index"]))
    _count(entries)
    counts = {k: sum(1 for e in entries if e["status"] == k) for k in _STATUSES}
    code = 200
    headers: dict[str, str] = {}
    if counts["failed"]:
        code, headers = 503, {"Retry-After": RETRY_AFTER}
    elif counts["rejected"]:
        code = 422 if not counts["accepted"] else 207
    incidents = sorted({str(e["incident"]) for e in entries if e.get("incident")})
    return web.json_response(
        {**counts, "truncatedAlerts": batch.truncated, "incidents": incidents, "alerts": entries},
        status=code,
        headers=headers or None,
    )


_STATUSES = ("accepted", "rejected", "failed")
#: Outcomes of an alert that joined an Incident already open for its problem.
_DEDUPLICATED = frozenset({"joined", "repeat", "updated", "resolved"})


def _count(entries: list[dict[str, Any]]) -> None:
    metrics.ALERTS.labels("received").inc(len(entries))
    for entry in entries:
        if entry["status"] == "rejected":
            metrics.ALERTS.labels("rejected").inc()
        elif entry["outcome"] in _DEDUPLICATED:
            metrics.ALERTS.labels("deduplicated").inc()


def _status(result: alerts.SliceResult) -> str:
    if result.outcome == "failed":
        return "failed"
    if result.outcome == "rejected":
        return "rejected"
    return "accepted"
