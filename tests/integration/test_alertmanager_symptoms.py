"""Each playbook symptom, provoked for real and carried by the real chain: Debian's
Prometheus scrapes the demo dashboard (a local process with fault injection) and a small
exporter (real Redis INFO, real PostgreSQL connections), evaluates the shipped rules, the
real Alertmanager notifies the operator, and the Incident that results runs its runbook and is
resolved from the alerts once the fault is gone.

Scraped targets: the dashboard's /metrics (job dashboard) for DashboardDown (``up``), the 5xx
rate and p99 latency; the exporter (job exporter) for RedisMemoryHigh (a private redis-server
with maxmemory, filled for real) and PostgresDown (a private PostgreSQL, stopped for real)."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from incident_demo import _proc, dashboard
from tests.fixtures.alerting import (
    Alertmanager,
    MiniExporter,
    alertmanager_bin,
    private_postgres,
    private_redis,
    run_alertmanager,
    run_prometheus,
    serve_exporter,
)
from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import OperatorFactory

pytestmark = [pytest.mark.cluster, pytest.mark.services]
__all__ = ["alertmanager_bin"]
POLICY = {"timeScale": 60, "alerts": {"resolveFromAlerts": {"enabled": True, "quietPeriod": "3m"}}}


@dataclass
class Dashboard:
    url: str
    key: str
    proc: subprocess.Popen[bytes]
    restart: Callable[[], None]

    def fault(self, **body: Any) -> None:
        answer = httpx.post(
            f"{self.url}/admin/fault", json=body, headers={"X-API-Key": self.key}, timeout=5
        )
        answer.raise_for_status()


@dataclass
class Chain:
    alertmanager: Alertmanager
    dashboard: Dashboard
    redis_port: int
    postgres: Any


@pytest.fixture
def chain(
    services_env: dict[str, str],
    alertmanager_bin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    namespace: str,
) -> Iterator[Chain]:
    port, token = _proc.free_port(), secrets.token_hex(16)
    monkeypatch.setenv("INCIDENT_OPERATOR_WEBHOOK_HOST", "127.0.0.1")
    monkeypatch.setenv("INCIDENT_OPERATOR_WEBHOOK_PORT", str(port))
    monkeypatch.setenv("INCIDENT_OPERATOR_WEBHOOK_TOKEN", token)
    url = f"http://127.0.0.1:{port}/alertmanager"
    with contextlib.ExitStack() as stack:
        board = stack.enter_context(_dashboard(services_env, tmp_path))
        redis_port = stack.enter_context(private_redis("4mb"))
        postgres = stack.enter_context(private_postgres())
        exporter = stack.enter_context(serve_exporter(MiniExporter(redis_port, postgres.conninfo)))
        am = stack.enter_context(run_alertmanager(alertmanager_bin, tmp_path / "am", url, token))
        jobs = {
            "dashboard": {"target": board.url.split("//")[1], "bearer": board.key},
            "exporter": {"target": exporter.target},
        }
        stack.enter_context(run_prometheus(tmp_path / "prom", am.url, jobs))
        yield Chain(am, board, redis_port, postgres)


@contextlib.contextmanager
def _dashboard(env_: dict[str, str], tmp_path: Path) -> Iterator[Dashboard]:
    schema = f"am_t_{secrets.token_hex(4)}"
    conninfo = psycopg.conninfo.make_conninfo(
        host=env_["PGHOST"],
        port=env_["PGPORT"],
        user=env_["PGUSER"],
        password=env_["PGPASSWORD"],
        dbname=env_["PGDATABASE"],
    )
    dashboard.init_inventory(conninfo, f"{schema}.inventory")
    port, key = _proc.free_port(), secrets.token_hex(16)
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update({k: env_[k] for k in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")})
    env.update(
        {
            "REDIS_HOST": env_["REDIS_HOST"],
            "REDIS_PORT": env_["REDIS_PORT"],
            "API_KEY": key,
            "PORT": str(port),
            "INVENTORY_TABLE": f"{schema}.inventory",
        }
    )
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        with open(tmp_path / "dashboard.log", "ab") as out:
            procs.append(
                _proc.spawn(
                    [sys.executable, "-m", "incident_demo.dashboard"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        _proc.wait_http(f"http://127.0.0.1:{port}/health", 30, proc=procs[-1])

    start()
    try:
        yield Dashboard(f"http://127.0.0.1:{port}", key, procs[-1], start)
    finally:
        for proc in procs:
            _proc.stop(proc)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())


@contextlib.contextmanager
def traffic(board: Dashboard) -> Iterator[None]:
    """About 20 requests a second to /api/inventory/stats, as users would send."""
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(headers={"X-API-Key": board.key}, timeout=10) as client:
            while not stop.wait(0.05):
                with contextlib.suppress(httpx.HTTPError):
                    client.get(f"{board.url}/api/inventory/stats")

    threads = [threading.Thread(target=run, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)


def runbook(
    name: str,
    alert: str,
    diagnosis: dict[str, Any],
    targets: dict[str, Any],
    recovery: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "kind": "Runbook",
        "metadata": {"name": name},
        "spec": {
            "title": name,
            "rto": {"mitigation": "5m"},
            "match": {"alertNames": [alert]},
            "targets": targets,
            "diagnosis": [{"name": "check", "action": diagnosis, "onFailure": "Continue"}],
            "recovery": [
                recovery or {"name": "settle", "action": {"type": "wait", "duration": "100ms"}}
            ],
        },
    }


def the_incident(objects: Objects, alert: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        items = objects.custom.list_namespaced_custom_object(
            "incidents.dev", "v1alpha1", objects.namespace, "incidents"
        )["items"]
        found = [i for i in items if i["spec"].get("source", {}).get("alertName") == alert]
        return found[0] if found else None

    incident: dict[str, Any] = eventually(find, timeout=90, what=f"an Incident for {alert}")
    return incident


def resolved(objects: Objects, name: str) -> dict[str, Any]:
    status: dict[str, Any] = eventually(
        lambda: (s := objects.status("incidents", name)).get("phase") == "Resolved" and s,
        timeout=120,
        what=f"{name} resolved from its alerts",
    )
    assert status["resolvedBy"] == "incident-operator"
    return status


def monitoring(objects: Objects, name: str, runbook_name: str) -> dict[str, Any]:
    status: dict[str, Any] = eventually(
        lambda: (s := objects.status("incidents", name)).get("phase") == "Monitoring" and s,
        timeout=60,
        what=f"{name}'s runbook finished",
    )
    assert status["runbook"] == runbook_name
    return status


def test_dashboard_down(objects: Objects, operator: OperatorFactory, chain: Chain) -> None:
    board = chain.dashboard
    objects.create(
        "runbooks",
        runbook(
            "dashboard-outage",
            "DashboardDown",
            {"type": "httpCheck", "path": "/health"},
            {"http": {"baseUrl": board.url}},
        ),
    )
    with operator(policy=POLICY):
        _proc.stop(board.proc)  # the outage: the process is gone
        incident = the_incident(objects, "DashboardDown")
        name = incident["metadata"]["name"]
        assert incident["spec"]["service"] == "dashboard" and incident["spec"]["severity"] == 1
        status = monitoring(objects, name, "dashboard-outage")
        check = next(s for s in status["steps"] if s["name"] == "check")
        assert check["phase"] == "Failed"  # the diagnosis saw /health down
        board.restart()  # the playbook's step 1: restart the service
        done = resolved(objects, name)
    assert done["alerts"]["groups"][0]["labels"] == {
        "alertname": "DashboardDown",
        "service": "dashboard",
    }


def test_error_rate_above_5_percent(
    objects: Objects, operator: OperatorFactory, chain: Chain
) -> None:
    board = chain.dashboard
    objects.create(
        "runbooks",
        runbook(
            "high-error-rate",
            "DashboardHighErrorRate",
            {"type": "httpCheck", "path": "/api/inventory/stats"},
            {"http": {"baseUrl": board.url}},
        ),
    )
    with operator(policy=POLICY), traffic(board):
        board.fault(mode="errors", rate=0.5)
        name = the_incident(objects, "DashboardHighErrorRate")["metadata"]["name"]
        monitoring(objects, name, "high-error-rate")
        board.fault(mode="none")
        done = resolved(objects, name)
    assert done["severity"] == 2


def test_p99_latency_above_2000ms(
    objects: Objects, operator: OperatorFactory, chain: Chain
) -> None:
    board = chain.dashboard
    objects.create(
        "runbooks",
        runbook(
            "high-latency",
            "DashboardHighLatency",
            {"type": "httpCheck", "path": "/health", "maxLatency": "1s"},
            {"http": {"baseUrl": board.url}},
        ),
    )
    with operator(policy=POLICY), traffic(board):
        board.fault(mode="latency", rate=1.0, latencyMs=2600)
        name = the_incident(objects, "DashboardHighLatency")["metadata"]["name"]
        monitoring(objects, name, "high-latency")
        board.fault(mode="none")
        resolved(objects, name)


def test_redis_memory_flushed_by_the_runbook(
    objects: Objects, operator: OperatorFactory, chain: Chain
) -> None:
    target = {"redis": {"host": "127.0.0.1", "port": chain.redis_port}}
    objects.create(
        "runbooks",
        runbook(
            "redis-outage",
            "RedisMemoryHigh",
            {"type": "redisInfo", "maxMemoryPercent": 90},
            target,
            {"name": "flush", "action": {"type": "redisFlushDb"}},
        ),
    )
    client = redis.Redis(host="127.0.0.1", port=chain.redis_port)
    with contextlib.suppress(redis.ResponseError):  # OOM: maxmemory reached, as intended
        for i in range(4000):
            client.set(f"fill:{i}", b"x" * 1024)
    info = client.info("memory")
    assert info["used_memory"] / info["maxmemory"] > 0.9
    with operator(policy=POLICY):
        name = the_incident(objects, "RedisMemoryHigh")["metadata"]["name"]
        status = monitoring(objects, name, "redis-outage")
        flush = next(s for s in status["steps"] if s["name"] == "flush")
        assert flush["phase"] == "Succeeded" and int(flush["findings"]["keysRemoved"]) > 1000
        resolved(objects, name)  # the flush fixed it: memory fell, the alert resolved
    assert client.dbsize() == 0


def test_postgres_down(objects: Objects, operator: OperatorFactory, chain: Chain) -> None:
    pg = chain.postgres
    objects.create(
        "runbooks",
        runbook(
            "database-outage",
            "PostgresDown",
            {"type": "postgresPing"},
            {
                "postgres": {
                    "host": "127.0.0.1",
                    "port": pg.port,
                    "database": "postgres",
                    "user": "postgres",
                    "sslmode": "disable",
                }
            },
        ),
    )
    with operator(policy=POLICY):
        pg.stop()
        name = the_incident(objects, "PostgresDown")["metadata"]["name"]
        status = monitoring(objects, name, "database-outage")
        assert next(s for s in status["steps"] if s["name"] == "check")["phase"] == "Failed"
        pg.start()
        resolved(objects, name)
