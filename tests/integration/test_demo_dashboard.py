"""The demo dashboard as a real process, no mocks: ``python -m incident_demo.dashboard``
against the real PostgreSQL and Redis of hack/services-up.sh. Stats, caching, health, fault
injection, ERROR log lines, dependency outages, the circuit breaker, and two replicas sharing
one port. (The dashboard in its image, on the real node, is the e2e suite's.)"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import redis

from incident_demo import _proc, dashboard
from tests.fixtures.cluster import eventually

T = TypeVar("T")

PG_KEYS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")


def poll(probe: Callable[[], T | None], timeout: float = 30, what: str = "condition") -> T:
    """``eventually``, with the dashboard not answering yet counted as 'not yet'."""
    return eventually(probe, timeout, 0.1, what, ignoring=(httpx.HTTPError, OSError))


def get(url: str, key: str | None = None, timeout: float = 5) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return httpx.get(url, headers=headers, timeout=timeout)


def metric(text: str, line_prefix: str) -> float:
    """Value of the first sample line starting with ``line_prefix`` (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- the dashboard against real PostgreSQL and Redis --------------------------------------------


@dataclass
class Dashboard:
    url: str
    key: str
    log: Path
    proc: subprocess.Popen[bytes]
    table: str

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def fault(self, **body: Any) -> httpx.Response:
        return httpx.post(
            f"{self.url}/admin/fault", json=body, headers={"X-API-Key": self.key}, timeout=5
        )


def _conninfo(env: dict[str, str]) -> str:
    return psycopg.conninfo.make_conninfo(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        password=env["PGPASSWORD"],
        dbname=env["PGDATABASE"],
    )


@pytest.fixture
def inventory_table(services_env: dict[str, str]) -> Iterator[str]:
    """A seeded ``<schema>.inventory`` of its own in ``retail`` (other tests share the db)."""
    schema = f"demo_t_{secrets.token_hex(4)}"
    table = f"{schema}.inventory"
    assert dashboard.init_inventory(_conninfo(services_env), table) == len(dashboard.SEED_ROWS)
    yield table
    with psycopg.connect(_conninfo(services_env), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())
    r = redis.Redis(host=services_env["REDIS_HOST"], port=int(services_env["REDIS_PORT"]))
    r.delete(dashboard.CACHE_KEY_PREFIX + table)
    r.close()


@pytest.fixture
def start_dashboard(
    services_env: dict[str, str], inventory_table: str, tmp_path: Path
) -> Iterator[Callable[..., Dashboard]]:
    started: list[Dashboard] = []

    def start(*args: str, port: int | None = None, **env_overrides: str) -> Dashboard:
        port = port or _proc.free_port()
        key = env_overrides.pop("API_KEY", "") or secrets.token_hex(16)
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        env.update({k: services_env[k] for k in (*PG_KEYS, "REDIS_HOST", "REDIS_PORT")})
        env.update(
            {
                "API_KEY": key,
                "PORT": str(port),
                "INVENTORY_TABLE": inventory_table,
                "CACHE_TTL_SECONDS": "30",
                "DEPENDENCY_TIMEOUT_SECONDS": "1",
                **env_overrides,
            }
        )
        log = tmp_path / f"dashboard-{port}.log"
        with open(log, "wb") as out:
            proc = _proc.spawn(
                [sys.executable, "-m", "incident_demo.dashboard", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        d = Dashboard(f"http://127.0.0.1:{port}", key, log, proc, inventory_table)
        started.append(d)
        try:
            # Any answer means it serves; the tests decide which one is right.
            _proc.wait_http(f"{d.url}/health", 30, ok=range(200, 600), proc=proc)
        except (TimeoutError, RuntimeError) as e:
            raise AssertionError(f"dashboard did not start: {e}\n{d.log_text()}") from e
        return d

    yield start
    for d in started:
        _proc.stop(d.proc)


@pytest.mark.services
def test_dashboard_serves_and_caches_inventory_stats(
    start_dashboard: Callable[..., Dashboard], services_env: dict[str, str]
) -> None:
    d = start_dashboard()
    health = get(f"{d.url}/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "healthy"
    assert health.json()["checks"] == {"postgres": "ok", "redis": "ok"}

    assert get(f"{d.url}/api/inventory/stats").status_code == 401
    assert get(f"{d.url}/metrics", key="wrong").status_code == 401

    first = get(f"{d.url}/api/inventory/stats", d.key)
    assert first.status_code == 200, first.text
    stats = first.json()
    assert stats["cache"] == "miss"
    assert stats["items"] == len(dashboard.SEED_ROWS)
    assert stats["totalQuantity"] == sum(r[2] for r in dashboard.SEED_ROWS)
    assert stats["outOfStock"] == 1
    second = get(f"{d.url}/api/inventory/stats", d.key)
    assert second.json()["cache"] == "hit"
    assert second.json()["items"] == stats["items"]

    r = redis.Redis(host=services_env["REDIS_HOST"], port=int(services_env["REDIS_PORT"]))
    ttl = r.ttl(dashboard.CACHE_KEY_PREFIX + d.table)
    r.close()
    assert 0 < int(str(ttl)) <= 30

    text = get(f"{d.url}/metrics", d.key).text
    assert metric(text, "cache_hits_total ") >= 1
    assert metric(text, "cache_misses_total ") >= 1
    assert 'dashboard_build_info{version="v1"} 1' in text
    assert (
        metric(text, 'http_requests_total{code="200",method="GET",path="/api/inventory/stats"') == 2
    )
    assert metric(text, 'http_requests_total{code="401",method="GET",path="/metrics"') == 1
    assert "http_request_duration_seconds_bucket{" in text
    breakers = get(f"{d.url}/api/circuit-breaker/status", d.key).json()["breakers"]
    assert breakers["postgres"]["state"] == breakers["redis"]["state"] == "closed"


@pytest.mark.services
def test_dashboard_survives_terminated_backends(
    start_dashboard: Callable[..., Dashboard], services_env: dict[str, str]
) -> None:
    """The Database runbook's pg_terminate_backend: the next request reconnects."""
    appname = f"dashboard-test-{secrets.token_hex(4)}"
    d = start_dashboard(PGAPPNAME=appname)
    assert get(f"{d.url}/api/inventory/stats", d.key).status_code == 200
    superuser = psycopg.conninfo.make_conninfo(
        _conninfo(services_env),
        user=services_env["PG_SUPERUSER"],
        password=services_env["PG_SUPERPASSWORD"],
    )
    with psycopg.connect(superuser, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (appname,),
        ).fetchone()
    assert killed is not None and killed[0] == 1
    health = get(f"{d.url}/health")
    assert health.status_code == 200, health.text


@pytest.mark.services
def test_fault_modes_fail_requests_and_log_errors(
    start_dashboard: Callable[..., Dashboard],
) -> None:
    d = start_dashboard()
    assert get(f"{d.url}/health").status_code == 200
    assert d.fault(mode="errors", rate=1).status_code == 200
    assert get(f"{d.url}/api/inventory/stats", d.key).status_code == 500
    # The API errs; the health check (the pod's readiness) still tells the truth.
    assert get(f"{d.url}/health").status_code == 200
    # Each failed request is one "<time> ERROR ..." line on stdout.
    errors = poll(
        lambda: [
            line
            for line in d.log_text().splitlines()
            if " ERROR GET /api/inventory/stats 500" in line
        ],
        10,
        "an ERROR line for /api/inventory/stats",
    )
    assert errors[0][:20].endswith("Z") and errors[0][4] == "-"

    assert d.fault(mode="latency", latencyMs=400, rate=1).status_code == 200
    t0 = time.perf_counter()
    assert get(f"{d.url}/api/inventory/stats", d.key).status_code == 200
    assert time.perf_counter() - t0 >= 0.4

    assert d.fault(mode="none").status_code == 200
    assert get(f"{d.url}/health").status_code == 200

    # A crash ends the process; a restart comes back without the runtime fault.
    assert d.fault(mode="crash").status_code == 202
    assert d.proc.wait(10) == 1
    assert "ERROR injected crash" in d.log_text()


@pytest.mark.services
def test_broken_build_fails_until_replaced(start_dashboard: Callable[..., Dashboard]) -> None:
    broken = start_dashboard("--version", "v2-broken")
    r = get(f"{broken.url}/health")
    assert r.status_code == 500
    assert r.json()["version"] == "v2-broken"
    assert get(f"{broken.url}/api/inventory/stats", broken.key).status_code == 500
    text = get(f"{broken.url}/metrics", broken.key).text
    assert 'dashboard_build_info{version="v2-broken"} 1' in text
    assert "failed its startup self-check" in broken.log_text()
    good = start_dashboard(VERSION="v1")
    assert get(f"{good.url}/health").status_code == 200


@pytest.mark.services
def test_redis_outage_degrades_to_postgres_and_opens_the_breaker(
    start_dashboard: Callable[..., Dashboard],
) -> None:
    d = start_dashboard(REDIS_PORT=str(_proc.free_port()))
    health = get(f"{d.url}/health")
    assert health.status_code == 503
    assert health.json()["checks"] == {"postgres": "ok", "redis": "error"}
    assert health.json()["reason"].startswith("redis:")
    for _ in range(3):  # each lookup fails a read and a write: 6 failures > threshold 5
        r = get(f"{d.url}/api/inventory/stats", d.key)
        assert r.status_code == 200 and r.json()["cache"] == "miss"
    status = get(f"{d.url}/api/circuit-breaker/status", d.key).json()["breakers"]
    assert status["redis"]["state"] == "open"
    assert status["postgres"]["state"] == "closed"
    text = get(f"{d.url}/metrics", d.key).text
    assert metric(text, "cache_misses_total ") == 3
    assert 'circuit_breaker_open{dependency="redis"} 1' in text


@pytest.mark.services
def test_postgres_outage_fails_health_and_api(start_dashboard: Callable[..., Dashboard]) -> None:
    d = start_dashboard(PGPORT=str(_proc.free_port()))
    health = get(f"{d.url}/health")
    assert health.status_code == 503
    assert health.json()["checks"]["postgres"] == "error"
    assert get(f"{d.url}/api/inventory/stats", d.key).status_code == 503
    assert poll(lambda: "ERROR GET /api/inventory/stats 503" in d.log_text(), 10, "ERROR line")


@pytest.mark.services
def test_two_replicas_share_one_port(start_dashboard: Callable[..., Dashboard]) -> None:
    """Replicas on one node's host network listen on the same port (SO_REUSEPORT), so the
    high-error-rate runbook's scale-out runs there; the kernel spreads the connections."""
    first = start_dashboard()
    port = int(first.url.rsplit(":", 1)[1])
    second = start_dashboard(port=port, API_KEY=first.key)
    seen: set[float] = set()

    def both_answered() -> bool:
        text = get(f"{first.url}/metrics", first.key).text
        seen.add(metric(text, "process_start_time_seconds "))
        return len(seen) == 2

    poll(both_answered, 30, "answers from both processes")
    assert first.proc.poll() is None and second.proc.poll() is None
