"""A clean stop lets deliveries in flight finish and be recorded (OperatorContext.drain).

A message that went out but is not yet recorded in status is sent again by the next leader
(at least once, same key). A rolling update stops the operator cleanly; it should leave no
such message behind, within a bound, and a hung delivery must not hold the stop forever.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import kubernetes
import pytest
import yaml

from incident_operator.adapters.kube import KubeAdapter
from incident_operator.context import OperatorContext, Settings
from incident_operator.domain.policy import load_policy


@pytest.fixture
def ctx(tmp_path: Path) -> OperatorContext:
    # A client that is never used: nothing here talks to an API server.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "unused"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(str(kubeconfig), client_configuration=configuration)
    kube = KubeAdapter(kubernetes.client.ApiClient(configuration))
    return OperatorContext(Settings(), load_policy(), kube, httpx.AsyncClient())


async def test_work_in_flight_finishes_before_the_stop(ctx: OperatorContext) -> None:
    recorded: list[str] = []
    release = asyncio.Event()

    async def deliver_then_record() -> None:
        await release.wait()  # the receiver answers while the operator is stopping
        recorded.append("NotificationDelivered")

    ctx.spawn(deliver_then_record())
    stopping = asyncio.create_task(ctx.drain(grace=30))
    await asyncio.sleep(0)  # the drain is under way ...
    assert not stopping.done()
    release.set()  # ... and the delivery ends within the grace
    await stopping
    assert recorded == ["NotificationDelivered"]


async def test_hung_work_is_cancelled_after_the_grace(ctx: OperatorContext) -> None:
    cancelled = asyncio.Event()

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    ctx.spawn(hang())
    await ctx.drain(grace=0.05)
    assert cancelled.is_set()
    assert not ctx._background


async def test_close_drains_with_the_configured_grace(ctx: OperatorContext) -> None:
    ctx.settings.shutdown_grace_seconds = 30
    recorded: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        recorded.append("done")

    ctx.spawn(quick())
    await ctx.close()
    assert recorded == ["done"]
