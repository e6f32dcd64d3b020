"""The Alertmanager receiver reports the port it is bound to (public aiohttp API only)."""

from __future__ import annotations

import aiohttp

from incident_operator.domain import alerts
from incident_operator.webhook import AlertReceiver, ReceiverConfig, Route


class NoSink:
    async def apply(self, batch: alerts.Batch) -> list[alerts.SliceResult]:
        raise AssertionError("no alerts expected")


async def test_port_zero_reports_the_port_the_system_picked() -> None:
    config = ReceiverConfig({"default": Route("default", "t" * 32, ("incidents",))})
    receiver = AlertReceiver(NoSink(), config)
    port = await receiver.start("127.0.0.1", 0)
    try:
        assert port > 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            assert response.status == 200
            assert (await response.json())["ok"] is True
    finally:
        await receiver.stop()
