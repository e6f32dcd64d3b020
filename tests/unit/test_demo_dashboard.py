"""Unit tests of the demo dashboard: metrics text, circuit breaker, faults, settings, routes.

The route tests run the real aiohttp app in-process with PostgreSQL and Redis pointed at closed
loopback ports, so they need no servers (the integration tests use real ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from incident_demo import dashboard as d

KEY = "unit-test-key"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- metrics -----------------------------------------------------------------------------------


def test_metrics_render_counters_histogram_and_build_info() -> None:
    m = d.Metrics("v1", buckets=(0.1, 1.0))
    m.observe_request("GET", "/health", 200, 0.05)
    m.observe_request("GET", "/health", 200, 0.5)
    m.observe_request("GET", "/api/inventory/stats", 500, 2.0)
    m.cache_hits, m.cache_misses = 3, 2
    text = m.render()
    lines = set(text.splitlines())
    assert (
        'http_requests_total{code="200",method="GET",path="/health",handler="/health"} 2' in lines
    )
    assert 'http_request_errors_total{path="/api/inventory/stats"} 1' in lines
    assert (
        'http_request_duration_seconds_bucket{path="/health",handler="/health",le="0.1"} 1' in lines
    )
    assert (
        'http_request_duration_seconds_bucket{path="/health",handler="/health",le="1"} 2' in lines
    )
    assert (
        'http_request_duration_seconds_bucket{path="/api/inventory/stats",'
        'handler="/api/inventory/stats",le="1"} 0'
    ) in lines
    assert (
        'http_request_duration_seconds_bucket{path="/health",handler="/health",le="+Inf"} 2'
        in lines
    )
    assert 'http_request_duration_seconds_count{path="/health",handler="/health"} 2' in lines
    assert "cache_hits_total 3" in lines
    assert "cache_misses_total 2" in lines
    assert "cache_requests_total 5" in lines
    assert 'dashboard_build_info{version="v1"} 1' in lines
    assert "# TYPE http_request_duration_seconds histogram" in lines
    assert text.endswith("\n")


def test_metric_label_values_are_escaped() -> None:
    m = d.Metrics('v"1\\x\n')
    assert 'dashboard_build_info{version="v\\"1\\\\x\\n"} 1' in m.render()


# --- circuit breaker ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_half_opens_after_reset() -> None:
    clock = Clock()
    b = d.CircuitBreaker("postgres", threshold=3, reset=10, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.failure("boom")
    assert b.state == "closed"
    b.failure("boom")
    assert b.state == "open"
    assert not b.allow()
    clock.now += 10
    assert b.state == "half_open"
    assert b.allow()  # one trial call
    assert not b.allow()  # and only one
    b.failure("still down")
    assert b.state == "open"
    clock.now += 10
    assert b.allow()
    b.success()
    assert b.state == "closed"
    snap = b.snapshot()
    assert snap["state"] == "closed"
    assert snap["totalFailures"] == 4
    assert snap["lastError"] == "still down"


# --- faults and settings -----------------------------------------------------------------------


def test_fault_parse_validates() -> None:
    f = d.Fault.parse({"mode": "latency", "rate": 0.5})
    assert (f.mode, f.rate, f.latency_ms) == ("latency", 0.5, 1000)
    assert d.Fault.parse({"mode": "none"}).since is None
    bad: object
    for bad in (
        {"mode": "explode"},
        {"mode": "errors", "rate": 2},
        {"mode": "errors", "rate": True},
        {"mode": "latency", "latencyMs": -1},
        {"mode": "errors", "x": 1},
        [],
    ):
        with pytest.raises(ValueError):
            d.Fault.parse(bad)


def test_broken_versions() -> None:
    assert d.is_broken_version("v2-broken")
    assert d.is_broken_version("BROKEN")
    assert not d.is_broken_version("v1")


def test_settings_from_env_and_flags() -> None:
    env = {
        "PORT": "9100",
        "VERSION": "v3",
        "API_KEY": "k",
        "PGHOST": "db",
        "PGPORT": "6543",
        "PGPASSWORD": "pw",
        "REDIS_PORT": "7000",
        "INVENTORY_TABLE": "s.inventory",
        "CACHE_TTL_SECONDS": "5",
    }
    s, opts = d.parse_args(["--version", "v2-broken", "--redis-host", "cache"], env)
    assert (s.port, s.version, s.api_key, s.pg_host, s.pg_port, s.pg_password) == (
        9100,
        "v2-broken",
        "k",
        "db",
        6543,
        "pw",
    )
    assert (s.redis_host, s.redis_port, s.inventory_table, s.cache_ttl) == (
        "cache",
        7000,
        "s.inventory",
        5.0,
    )
    assert s.host == "127.0.0.1"
    assert not opts.allow_no_api_key
    with pytest.raises(ValueError):
        d.settings_from_env({"INVENTORY_TABLE": "inventory; DROP TABLE x"})


def test_main_refuses_to_start_without_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_KEY", raising=False)
    assert d.main(["--port", str(closed_port())]) == 2


# --- routes, in-process with unreachable dependencies ------------------------------------------


@contextlib.asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """The app in-process, PostgreSQL and Redis on closed ports; crashes only get recorded."""
    settings = d.Settings(
        **{
            "api_key": KEY,
            "pg_port": closed_port(),
            "redis_port": closed_port(),
            "dependency_timeout": 1,
            "breaker_threshold": 2,
            **overrides,
        }
    )
    crashes: list[int] = []
    app = d.create_app(settings, on_crash=lambda: crashes.append(1))
    app[CRASHES] = crashes
    async with TestClient(TestServer(app)) as c:
        yield c


CRASHES = web.AppKey("crashes", list)


async def test_health_is_503_with_reasons_when_dependencies_are_down() -> None:
    async with running() as client:
        r = await client.get("/health")
        assert r.status == 503
        body = await r.json()
    assert body["status"] == "unhealthy"
    assert body["checks"] == {"postgres": "error", "redis": "error"}
    assert "postgres:" in body["reason"] and "redis:" in body["reason"]


async def test_api_key_is_required_on_metrics_api_and_admin() -> None:
    async with running() as client:
        for path in (
            "/metrics",
            "/api/inventory/stats",
            "/api/circuit-breaker/status",
            "/admin/fault",
        ):
            assert (await client.get(path)).status == 401, path
            assert (await client.get(path, headers={"X-API-Key": "wrong"})).status == 401, path
        assert (await client.get("/metrics", headers={"X-API-Key": KEY})).status == 200
        bearer = {"Authorization": f"Bearer {KEY}"}
        assert (await client.get("/metrics", headers=bearer)).status == 200


async def test_stats_failures_open_the_postgres_breaker() -> None:
    h = {"X-API-Key": KEY}
    async with running() as client:
        for _ in range(2):
            assert (await client.get("/api/inventory/stats", headers=h)).status == 503
        status = await (await client.get("/api/circuit-breaker/status", headers=h)).json()
        assert status["breakers"]["postgres"]["state"] == "open"
        r = await client.get("/api/inventory/stats", headers=h)
        assert r.status == 503
        assert "circuit open" in (await r.json())["error"]
        metrics = await (await client.get("/metrics", headers=h)).text()
    assert 'circuit_breaker_open{dependency="postgres"} 1' in metrics
    assert (
        'http_requests_total{code="503",method="GET",path="/api/inventory/stats",'
        'handler="/api/inventory/stats"} 3'
    ) in metrics


async def test_fault_errors_then_none() -> None:
    h = {"X-API-Key": KEY}
    async with running() as client:
        r = await client.post("/admin/fault", json={"mode": "errors", "rate": 1}, headers=h)
        assert r.status == 200
        # Runtime faults degrade the API only: /health keeps telling the real (down) state.
        assert (await client.get("/health")).status == 503
        assert (await client.get("/api/circuit-breaker/status", headers=h)).status == 500
        assert (await client.get("/metrics", headers=h)).status == 200  # still observable
        assert (await client.get("/admin/fault", headers=h)).status == 200
        bad = await client.post("/admin/fault", json={"mode": "nope"}, headers=h)
        assert bad.status == 400
        await client.post("/admin/fault", json={"mode": "none"}, headers=h)
        assert (await client.get("/api/circuit-breaker/status", headers=h)).status == 200
        metrics = await (await client.get("/metrics", headers=h)).text()
    assert 'http_request_errors_total{path="/api/circuit-breaker/status"} 1' in metrics


async def test_fault_latency_delays_requests() -> None:
    h = {"X-API-Key": KEY}
    async with running() as client:
        await client.post("/admin/fault", json={"mode": "latency", "latencyMs": 300}, headers=h)
        t0 = time.perf_counter()
        await client.get("/api/circuit-breaker/status", headers=h)
        assert time.perf_counter() - t0 >= 0.3


async def test_fault_crash_calls_the_crash_hook() -> None:
    async with running() as client:
        r = await client.post("/admin/fault", json={"mode": "crash"}, headers={"X-API-Key": KEY})
        assert r.status == 202
        await asyncio.sleep(0.4)
        assert client.app is not None and client.app[CRASHES] == [1]


async def test_broken_build_fails_health_and_api() -> None:
    async with running(version="v2-broken") as c:
        r = await c.get("/health")
        assert r.status == 500
        assert "v2-broken" in (await r.json())["error"]
        assert (await c.get("/api/inventory/stats", headers={"X-API-Key": KEY})).status == 500
        metrics = await (await c.get("/metrics", headers={"X-API-Key": KEY})).text()
    assert 'dashboard_build_info{version="v2-broken"} 1' in metrics
