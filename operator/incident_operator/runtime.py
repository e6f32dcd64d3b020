"""The operator process as installed: an ops server, leader election, then Kopf.

Every replica serves ``/healthz`` and ``/metrics`` from start to end. Replicas then race for
the leader Lease (``adapters.leader``); only the winner runs Kopf, so only one replica ever
decides and acts. A leader that loses the Lease stops Kopf and exits, to come back as a
standby; one that is told to stop (SIGTERM) releases the Lease, so the next replica leads at
once. Tests that need no election run Kopf directly (``kopf.testing.KopfRunner``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal

import kopf
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import loopwatch
from .adapters import metrics
from .adapters.kube import KubeClient, load_api_client
from .adapters.leader import LeaderElector
from .context import Settings
from .domain.policy import PolicyError, load_policy

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Options:
    namespaces: list[str]
    clusterwide: bool
    ops_host: str
    ops_port: int
    leader_election: bool


async def _ops_server(options: Options, elector: LeaderElector | None) -> web.AppRunner:
    async def health(_: web.Request) -> web.Response:
        leading = elector.leading if elector is not None else True
        return web.json_response({"status": "ok", "leading": leading})

    async def ready(_: web.Request) -> web.Response:
        # Only the leader is ready, so a Service (the alert receiver's) sends it the traffic.
        leading = elector.leading if elector is not None else True
        return web.json_response({"leading": leading}, status=200 if leading else 503)

    async def scrape(_: web.Request) -> web.Response:
        # prometheus_client's content type carries parameters aiohttp wants separately.
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, options.ops_host, options.ops_port).start()
    for address in runner.addresses:
        log.info("serving /healthz and /metrics on %s", address)
    return runner


async def _kopf(options: Options, stop: asyncio.Event) -> None:
    await kopf.operator(
        clusterwide=options.clusterwide,
        namespaces=options.namespaces,
        standalone=True,  # one replica acts: the leader; Kopf's peering is not used
        stop_flag=stop,
    )


async def run(options: Options) -> int:
    """Serve until told to stop; 0 on a clean stop, 1 when the Lease was lost."""
    from . import handlers  # noqa: F401  (registers the handlers)

    loopwatch.watch(asyncio.get_running_loop())  # only with INCIDENT_OPERATOR_LOOP_STALL_MS
    settings = Settings.from_env()
    try:
        load_policy(settings.policy_file)  # a bad policy stops every replica, leader or not
    except PolicyError as exc:
        log.error("%s", exc)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    kube = KubeClient(load_api_client(settings.kubeconfig), pool_size=2)
    elector = LeaderElector(kube, settings.namespace) if options.leader_election else None
    runner = await _ops_server(options, elector)
    try:
        if elector is not None:
            waiting = asyncio.create_task(elector.acquire())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not waiting.done():
                waiting.cancel()
                return 0
            waiting.result()
        metrics.LEADER.set(1)
        return await _lead(options, elector, stop)
    finally:
        metrics.LEADER.set(0)
        if elector is not None:
            await elector.release()
        await runner.cleanup()
        kube.close()


async def _lead(options: Options, elector: LeaderElector | None, stop: asyncio.Event) -> int:
    operator = asyncio.create_task(_kopf(options, stop))
    if elector is None:
        await operator
        return 0
    holding = asyncio.create_task(elector.hold())
    await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
    if holding.done():  # lost the Lease: stop acting now, exit to come back as a standby
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(operator, timeout=30)
        return 1
    holding.cancel()
    await operator
    return 0
