"""The demo "dashboard" service of the playbook's staging stack.

Routes:

- ``GET /health``: 200 ``{"status": "healthy", ...}`` when PostgreSQL and Redis answer, else
  503 ``{"status": "unhealthy", "reason": ...}`` (500 on a broken build). No authentication,
  like a probe endpoint.
- ``GET /metrics``: Prometheus text format. Authenticated. ``http_requests_total`` (labels
  code, method, path and, as an alias of path, handler), ``http_request_errors_total``,
  ``http_request_duration_seconds`` (histogram), ``cache_hits_total``, ``cache_misses_total``,
  ``cache_requests_total``, ``dashboard_build_info{version}``, ``circuit_breaker_open``,
  ``dashboard_fault_injected``, ``process_start_time_seconds``.
- ``GET /api/inventory/stats``: aggregates of the ``inventory`` table, cached in Redis with a TTL.
- ``GET /api/circuit-breaker/status``: the circuit breakers around PostgreSQL and Redis.
- ``GET|POST /admin/fault``: runtime fault injection, ``{"mode": "none|errors|latency|crash",
  "rate": 0..1, "latencyMs": n}``. Faults live in memory, so a restart clears them. ``errors``
  and ``latency`` degrade ``/api/*`` only: the service stays up (its health check, and so its
  readiness, tells the truth) while it errs or crawls. ``crash`` ends the process.

Authentication: header ``X-API-Key: <key>`` (or ``Authorization: Bearer <key>``, which is what
Prometheus can send) on /metrics, /api/* and /admin/*.

A build whose version contains ``broken`` (``VERSION=v2-broken``, ``--version v2-broken``)
answers 500 on /health and /api/*: the "bad deploy" that a rollback fixes.

Every request answered with 5xx logs one ``<time> ERROR ...`` line to stdout.

Run: ``python -m incident_demo.dashboard --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
import random
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
import redis.asyncio as aioredis
from aiohttp import web
from psycopg import sql
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger("dashboard")

DEFAULT_PORT = 9000
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
FAULT_MODES = ("none", "errors", "latency", "crash")
CACHE_KEY_PREFIX = "dashboard:inventory-stats:"
_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


def is_broken_version(version: str) -> bool:
    """True for builds that simulate a bad deploy (``v2-broken``, ``broken``, ``v3-BROKEN``)."""
    return "broken" in version.lower()


# --- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    version: str = "v1"
    api_key: str = ""
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "inventory"
    pg_password: str = ""
    pg_database: str = "retail"
    inventory_table: str = "inventory"
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    cache_ttl: float = 30.0
    dependency_timeout: float = 2.0
    breaker_threshold: int = 5
    breaker_reset: float = 10.0
    pg_appname: str = ""

    def __post_init__(self) -> None:
        if not _TABLE_RE.match(self.inventory_table):
            raise ValueError(f"invalid inventory table name {self.inventory_table!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"invalid port {self.port}")


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    return int(raw) if raw else default


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    return float(raw) if raw else default


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Settings from environment variables (libpq names for PostgreSQL)."""
    return Settings(
        host=env.get("HOST") or "127.0.0.1",
        port=_env_int(env, "PORT", DEFAULT_PORT),
        version=env.get("VERSION") or "v1",
        api_key=env.get("API_KEY", ""),
        pg_host=env.get("PGHOST") or "127.0.0.1",
        pg_port=_env_int(env, "PGPORT", 5432),
        pg_user=env.get("PGUSER") or "inventory",
        pg_password=env.get("PGPASSWORD", ""),
        pg_database=env.get("PGDATABASE") or "retail",
        inventory_table=env.get("INVENTORY_TABLE") or "inventory",
        redis_host=env.get("REDIS_HOST") or "127.0.0.1",
        redis_port=_env_int(env, "REDIS_PORT", 6379),
        redis_db=_env_int(env, "REDIS_DB", 0),
        cache_ttl=_env_float(env, "CACHE_TTL_SECONDS", 30.0),
        dependency_timeout=_env_float(env, "DEPENDENCY_TIMEOUT_SECONDS", 2.0),
        pg_appname=env.get("PGAPPNAME", ""),
    )


@dataclass(frozen=True)
class Options:
    allow_no_api_key: bool = False
    init_db: bool = False


def parse_args(argv: Sequence[str] | None, env: Mapping[str, str]) -> tuple[Settings, Options]:
    """CLI flags over environment variables."""
    base = settings_from_env(env)
    p = argparse.ArgumentParser(
        prog="python -m incident_demo.dashboard",
        description="Demo dashboard service (see module docstring). Flags override env vars.",
    )
    p.add_argument("--host", default=base.host, help="listen address (env HOST)")
    p.add_argument("--port", type=int, default=base.port, help="listen port (env PORT)")
    p.add_argument(
        "--version",
        default=base.version,
        help="build version; one containing 'broken' fails (env VERSION)",
    )
    p.add_argument("--api-key-file", help="read the API key from this file (else env API_KEY)")
    p.add_argument("--pg-host", default=base.pg_host, help="env PGHOST")
    p.add_argument("--pg-port", type=int, default=base.pg_port, help="env PGPORT")
    p.add_argument("--pg-user", default=base.pg_user, help="env PGUSER")
    p.add_argument("--pg-database", default=base.pg_database, help="env PGDATABASE")
    p.add_argument(
        "--inventory-table",
        default=base.inventory_table,
        help="table (optionally schema.table) to aggregate (env INVENTORY_TABLE)",
    )
    p.add_argument("--redis-host", default=base.redis_host, help="env REDIS_HOST")
    p.add_argument("--redis-port", type=int, default=base.redis_port, help="env REDIS_PORT")
    p.add_argument("--redis-db", type=int, default=base.redis_db, help="env REDIS_DB")
    p.add_argument(
        "--cache-ttl",
        type=float,
        default=base.cache_ttl,
        help="seconds a cached stats result lives (env CACHE_TTL_SECONDS)",
    )
    p.add_argument(
        "--init-db",
        action="store_true",
        help="create and seed the inventory table when missing, then serve",
    )
    p.add_argument(
        "--insecure-no-api-key",
        action="store_true",
        help="start without an API key (protected routes then always answer 401)",
    )
    a = p.parse_args(argv)
    api_key = base.api_key
    if a.api_key_file:
        with open(a.api_key_file, encoding="utf-8") as f:
            api_key = f.read().strip()
    settings = replace(
        base,
        host=a.host,
        port=a.port,
        version=a.version,
        api_key=api_key,
        pg_host=a.pg_host,
        pg_port=a.pg_port,
        pg_user=a.pg_user,
        pg_database=a.pg_database,
        inventory_table=a.inventory_table,
        redis_host=a.redis_host,
        redis_port=a.redis_port,
        redis_db=a.redis_db,
        cache_ttl=a.cache_ttl,
    )
    return settings, Options(allow_no_api_key=a.insecure_no_api_key, init_db=a.init_db)


# --- metrics -----------------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


@dataclass
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1


class Metrics:
    """The few metrics the runbooks read, rendered in the Prometheus text format 0.0.4."""

    def __init__(self, version: str, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.version = version
        self.buckets = buckets
        self.started = time.time()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.errors: dict[str, int] = {}
        self.latency: dict[str, _Histogram] = {}
        self.cache_hits = 0
        self.cache_misses = 0
        self._lock = threading.Lock()

    def observe_request(self, method: str, path: str, code: int, seconds: float) -> None:
        with self._lock:
            key = (str(code), method, path)
            self.requests[key] = self.requests.get(key, 0) + 1
            if code >= 500:
                self.errors[path] = self.errors.get(path, 0) + 1
            hist = self.latency.get(path)
            if hist is None:
                hist = self.latency[path] = _Histogram(self.buckets)
            hist.observe(seconds)

    def render(self, extra: Iterable[str] = ()) -> str:
        out: list[str] = []
        with self._lock:
            out += [
                "# HELP http_requests_total HTTP requests by status code, method and path.",
                "# TYPE http_requests_total counter",
            ]
            for (code, method, path), n in sorted(self.requests.items()):
                lbl = _labels(
                    [("code", code), ("method", method), ("path", path), ("handler", path)]
                )
                out.append(f"http_requests_total{lbl} {n}")
            out += [
                "# HELP http_request_errors_total HTTP requests answered with a 5xx status.",
                "# TYPE http_request_errors_total counter",
            ]
            for path, n in sorted(self.errors.items()):
                out.append(f"http_request_errors_total{_labels([('path', path)])} {n}")
            out += [
                "# HELP http_request_duration_seconds HTTP request latency in seconds.",
                "# TYPE http_request_duration_seconds histogram",
            ]
            for path, h in sorted(self.latency.items()):
                pl = [("path", path), ("handler", path)]
                for bound, n in zip(h.buckets, h.counts, strict=True):
                    lbl = _labels([*pl, ("le", _num(bound))])
                    out.append(f"http_request_duration_seconds_bucket{lbl} {n}")
                lbl = _labels([*pl, ("le", "+Inf")])
                out.append(f"http_request_duration_seconds_bucket{lbl} {h.count}")
                out.append(f"http_request_duration_seconds_sum{_labels(pl)} {_num(h.total)}")
                out.append(f"http_request_duration_seconds_count{_labels(pl)} {h.count}")
            out += [
                "# HELP cache_hits_total Inventory stats served from the Redis cache.",
                "# TYPE cache_hits_total counter",
                f"cache_hits_total {self.cache_hits}",
                "# HELP cache_misses_total Inventory stats computed from PostgreSQL.",
                "# TYPE cache_misses_total counter",
                f"cache_misses_total {self.cache_misses}",
                "# HELP cache_requests_total Inventory stats lookups (hits + misses).",
                "# TYPE cache_requests_total counter",
                f"cache_requests_total {self.cache_hits + self.cache_misses}",
                "# HELP dashboard_build_info Build of the running dashboard.",
                "# TYPE dashboard_build_info gauge",
                f"dashboard_build_info{_labels([('version', self.version)])} 1",
                "# HELP process_start_time_seconds Start time of the process (unix seconds).",
                "# TYPE process_start_time_seconds gauge",
                f"process_start_time_seconds {_num(round(self.started, 3))}",
            ]
        out += list(extra)
        return "\n".join(out) + "\n"


# --- circuit breaker ---------------------------------------------------------------------------


class CircuitBreaker:
    """Closed -> open after ``threshold`` consecutive failures; half-open after ``reset`` s."""

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(
        self,
        name: str,
        threshold: int = 5,
        reset: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = max(1, threshold)
        self.reset = reset
        self._clock = clock
        self._state = self.CLOSED
        self.consecutive_failures = 0
        self.total_failures = 0
        self.total_successes = 0
        self.opened_at: float | None = None
        self.opened_wall: float | None = None
        self.last_error: str | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if (
            self._state == self.OPEN
            and self.opened_at is not None
            and self._clock() - self.opened_at >= self.reset
        ):
            return self.HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """Whether a call may go through now (one trial call while half-open)."""
        state = self.state
        if state == self.CLOSED:
            return True
        if state == self.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def success(self) -> None:
        self.total_successes += 1
        self.consecutive_failures = 0
        self._trial_in_flight = False
        self._state = self.CLOSED
        self.opened_at = self.opened_wall = None

    def failure(self, error: str) -> None:
        self.total_failures += 1
        self.consecutive_failures += 1
        self.last_error = error
        reopen = self._trial_in_flight or self._state == self.OPEN
        self._trial_in_flight = False
        if reopen or self.consecutive_failures >= self.threshold:
            if self._state != self.OPEN or reopen:
                self.opened_at = self._clock()
                self.opened_wall = time.time()
            self._state = self.OPEN

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "consecutiveFailures": self.consecutive_failures,
            "totalFailures": self.total_failures,
            "totalSuccesses": self.total_successes,
            "failureThreshold": self.threshold,
            "resetTimeoutSeconds": self.reset,
            "openedAt": _iso(self.opened_wall) if self.opened_wall else None,
            "lastError": self.last_error,
        }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# --- dependencies ------------------------------------------------------------------------------


class DependencyError(Exception):
    """A dependency (PostgreSQL or Redis) failed; the message is safe to show."""


class Database:
    """One persistent autocommit connection, reconnected when it breaks (serialized use)."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        timeout_ms = int(self.s.dependency_timeout * 1000)
        return await psycopg.AsyncConnection.connect(
            host=self.s.pg_host,
            port=self.s.pg_port,
            user=self.s.pg_user,
            password=self.s.pg_password,
            dbname=self.s.pg_database,
            connect_timeout=max(1, math.ceil(self.s.dependency_timeout)),
            application_name=(self.s.pg_appname or f"dashboard-{self.s.version}")[:63],
            options=f"-c statement_timeout={timeout_ms}",
            autocommit=True,
        )

    async def fetch(
        self, query: sql.Composed | sql.SQL | str, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        async with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = await asyncio.wait_for(
                            self._connect(), self.s.dependency_timeout + 1
                        )
                    async with self._conn.cursor() as cur:
                        await asyncio.wait_for(
                            cur.execute(query, params), self.s.dependency_timeout + 1
                        )
                        return list(await cur.fetchall())
                except (
                    psycopg.OperationalError,
                    psycopg.InterfaceError,
                    OSError,
                    TimeoutError,
                ) as e:
                    broken = self._conn is None or self._conn.closed or self._conn.broken
                    if isinstance(e, TimeoutError) or broken:
                        await self.close()
                    # A connection that died idle (server restart, pg_terminate_backend) gets
                    # one fresh try; anything else is reported.
                    if attempt == 2 or not broken or isinstance(e, TimeoutError):
                        raise DependencyError(f"postgres: {_short(e)}") from e
                except psycopg.Error as e:
                    raise DependencyError(f"postgres: {_short(e)}") from e
        raise AssertionError("unreachable")

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:300]


def make_redis(s: Settings) -> aioredis.Redis:
    # One immediate retry (a pooled connection that died with a Redis restart), no back-off:
    # an outage must show up as fast errors, which the circuit breaker then short-cuts.
    return aioredis.Redis(
        host=s.redis_host,
        port=s.redis_port,
        db=s.redis_db,
        socket_timeout=s.dependency_timeout,
        socket_connect_timeout=s.dependency_timeout,
        retry=Retry(NoBackoff(), 1),
        decode_responses=True,
    )


SEED_ROWS: tuple[tuple[str, str, int, float], ...] = (
    ("SKU-0001", "Espresso beans 1kg", 120, 18.5),
    ("SKU-0002", "Oat milk 1l", 340, 2.2),
    ("SKU-0003", "Paper cups (50)", 0, 4.9),
    ("SKU-0004", "Cane sugar 500g", 75, 1.8),
    ("SKU-0005", "Cocoa powder 250g", 12, 6.4),
)


def init_inventory(
    conninfo: str, table: str = "inventory", rows: Sequence[tuple[str, str, int, float]] = SEED_ROWS
) -> int:
    """Creates the inventory table (and its schema) when missing and seeds it when empty.

    Returns the number of rows in the table afterwards. ``sku`` deliberately has no index, so
    the playbook's ``CREATE INDEX idx_inventory_sku`` step still has something to do.
    """
    if not _TABLE_RE.match(table):
        raise ValueError(f"invalid table name {table!r}")
    parts = table.split(".")
    ident = sql.Identifier(*parts)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        if len(parts) == 2:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(parts[0])))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, sku text NOT NULL, "
                "name text NOT NULL, quantity integer NOT NULL DEFAULT 0, "
                "price numeric(12, 2) NOT NULL DEFAULT 0, "
                "updated_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident)
        )
        count_q = sql.SQL("SELECT count(*) FROM {}").format(ident)
        row = conn.execute(count_q).fetchone()
        if row is not None and row[0] == 0 and rows:
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {} (sku, name, quantity, price) VALUES (%s, %s, %s, %s)"
                    ).format(ident),
                    list(rows),
                )
            row = conn.execute(count_q).fetchone()
        return int(row[0]) if row is not None else 0


# --- faults ------------------------------------------------------------------------------------


@dataclass
class Fault:
    mode: str = "none"
    rate: float = 1.0
    latency_ms: int = 0
    since: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "rate": self.rate,
            "latencyMs": self.latency_ms,
            "since": _iso(self.since) if self.since else None,
        }

    @classmethod
    def parse(cls, body: Any) -> Fault:
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        unknown = set(body) - {"mode", "rate", "latencyMs"}
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")
        mode = body.get("mode")
        if mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {list(FAULT_MODES)}")
        rate = body.get("rate", 1.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError("rate must be a number in [0, 1]")
        latency = body.get("latencyMs", 1000 if mode == "latency" else 0)
        if (
            isinstance(latency, bool)
            or not isinstance(latency, int | float)
            or not 0 <= latency <= 120_000
        ):
            raise ValueError("latencyMs must be a number in [0, 120000]")
        return cls(
            mode=mode,
            rate=float(rate),
            latency_ms=int(latency),
            since=time.time() if mode != "none" else None,
        )


# --- the application ---------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class State:
    settings: Settings
    metrics: Metrics
    db: Database
    redis: aioredis.Redis
    pg_breaker: CircuitBreaker
    redis_breaker: CircuitBreaker
    fault: Fault = field(default_factory=Fault)
    rng: random.Random = field(default_factory=random.Random)
    on_crash: Callable[[], None] = field(default=lambda: os._exit(1))


APP_STATE = web.AppKey("state", State)
# Why a request failed, for its ERROR log line (a typed key where aiohttp has them).
ERROR_REASON: Any = (
    web.RequestKey("error_reason", str)  # type: ignore[attr-defined,unused-ignore]
    if hasattr(web, "RequestKey")
    else "error_reason"
)


def _json(status: int, body: Mapping[str, Any]) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, sort_keys=True))


def _route_label(request: web.Request) -> str:
    info = request.match_info
    route = info.route if info is not None else None
    resource = getattr(route, "resource", None)
    canonical = getattr(resource, "canonical", None)
    return canonical if isinstance(canonical, str) and canonical else "other"


def _protected(path: str) -> bool:
    return path == "/metrics" or path.startswith("/api/") or path.startswith("/admin/")


def _broken_build_fails(path: str) -> bool:
    return path == "/health" or path.startswith("/api/")


def _faultable(path: str) -> bool:
    return path.startswith("/api/")


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: times every request, counts it, logs 5xx as ERROR lines."""
    st = request.app[APP_STATE]
    t0 = time.perf_counter()
    reason = ""
    try:
        resp = await handler(request)
        status = resp.status
        reason = str(request.get(ERROR_REASON, ""))
    except web.HTTPException as e:
        status = e.status
        reason = e.text or e.reason
        resp = e
    except asyncio.CancelledError:
        raise
    except Exception as e:  # an unexpected bug still yields a logged 500
        log.exception("unhandled error on %s %s", request.method, request.path)
        status, reason = 500, f"internal error: {_short(e)}"
        resp = _json(500, {"error": "internal error"})
    elapsed = time.perf_counter() - t0
    st.metrics.observe_request(request.method, _route_label(request), status, elapsed)
    if status >= 500:
        log.error(
            "%s %s %d %.1fms %s",
            request.method,
            request.path,
            status,
            elapsed * 1000,
            reason or "server error",
        )
    elif request.path.startswith(("/api/", "/admin/")):
        log.info("%s %s %d %.1fms", request.method, request.path, status, elapsed * 1000)
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    st = request.app[APP_STATE]
    if _protected(request.path):
        given = request.headers.get("X-API-Key", "")
        if not given:
            auth = request.headers.get("Authorization", "")
            if auth[:7].lower() == "bearer ":
                given = auth[7:].strip()
        key = st.settings.api_key
        if not key or not given or not hmac.compare_digest(given.encode(), key.encode()):
            return _json(401, {"error": "missing or invalid API key (header X-API-Key)"})
    return await handler(request)


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    st = request.app[APP_STATE]
    path = request.path
    if _broken_build_fails(path) and is_broken_version(st.settings.version):
        reason = f"build {st.settings.version} is broken: startup self-check failed"
        request[ERROR_REASON] = reason
        return _json(500, {"status": "error", "error": reason, "version": st.settings.version})
    if _faultable(path):
        f = st.fault
        if f.mode == "errors" and st.rng.random() < f.rate:
            reason = "injected fault: errors"
            request[ERROR_REASON] = reason
            return _json(500, {"status": "error", "error": reason})
        if f.mode == "latency" and f.latency_ms > 0 and st.rng.random() < f.rate:
            await asyncio.sleep(f.latency_ms / 1000)
    return await handler(request)


async def health(request: web.Request) -> web.Response:
    st = request.app[APP_STATE]
    checks: dict[str, str] = {}
    reasons: list[str] = []

    async def pg() -> None:
        try:
            await st.db.fetch("SELECT 1")
            checks["postgres"] = "ok"
        except DependencyError as e:
            checks["postgres"] = "error"
            reasons.append(str(e))

    async def rd() -> None:
        try:
            await asyncio.wait_for(st.redis.ping(), st.settings.dependency_timeout + 1)
            checks["redis"] = "ok"
        except (aioredis.RedisError, OSError, TimeoutError) as e:
            checks["redis"] = "error"
            reasons.append(f"redis: {_short(e)}")

    await asyncio.gather(pg(), rd())
    body: dict[str, Any] = {
        "version": st.settings.version,
        "checks": checks,
        "database": checks.get("postgres"),
        "cache": checks.get("redis"),
    }
    if reasons:
        reason = "; ".join(sorted(reasons))
        request[ERROR_REASON] = reason
        return _json(503, {**body, "status": "unhealthy", "reason": reason})
    return _json(200, {**body, "status": "healthy"})


async def metrics(request: web.Request) -> web.Response:
    st = request.app[APP_STATE]
    extra = [
        "# HELP circuit_breaker_open Whether the circuit breaker of a dependency is open.",
        "# TYPE circuit_breaker_open gauge",
    ]
    for b in (st.pg_breaker, st.redis_breaker):
        extra.append(
            f"circuit_breaker_open{_labels([('dependency', b.name)])} "
            f"{0 if b.state == CircuitBreaker.CLOSED else 1}"
        )
    extra += [
        "# HELP dashboard_fault_injected Runtime fault currently injected (1 = active).",
        "# TYPE dashboard_fault_injected gauge",
        f"dashboard_fault_injected{_labels([('mode', st.fault.mode)])} "
        f"{0 if st.fault.mode == 'none' else 1}",
    ]
    return web.Response(
        text=st.metrics.render(extra),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def _stats_query(table: str) -> sql.Composed:
    ident = sql.Identifier(*table.split("."))
    return sql.SQL(
        "SELECT count(*), COALESCE(sum(quantity), 0), count(*) FILTER (WHERE quantity <= 0), "
        "COALESCE(sum(quantity * price), 0) FROM {}"
    ).format(ident)


async def inventory_stats(request: web.Request) -> web.Response:
    st = request.app[APP_STATE]
    key = CACHE_KEY_PREFIX + st.settings.inventory_table
    if st.redis_breaker.allow():
        try:
            cached = await st.redis.get(key)
            st.redis_breaker.success()
            if cached is not None:
                st.metrics.cache_hits += 1
                return _json(200, {**json.loads(cached), "cache": "hit"})
        except (aioredis.RedisError, OSError, TimeoutError, ValueError) as e:
            st.redis_breaker.failure(_short(e))
            log.warning("redis read failed, serving from postgres: %s", _short(e))
    st.metrics.cache_misses += 1
    if not st.pg_breaker.allow():
        reason = f"postgres circuit open: {st.pg_breaker.last_error}"
        request[ERROR_REASON] = reason
        return _json(503, {"error": reason})
    try:
        rows = await st.db.fetch(_stats_query(st.settings.inventory_table))
        st.pg_breaker.success()
    except DependencyError as e:
        st.pg_breaker.failure(str(e))
        request[ERROR_REASON] = str(e)
        return _json(503, {"error": str(e)})
    items, quantity, out_of_stock, value = rows[0]
    stats = {
        "items": int(items),
        "totalQuantity": int(quantity),
        "outOfStock": int(out_of_stock),
        "totalValue": float(value),
        "table": st.settings.inventory_table,
        "computedAt": _iso(time.time()),
        "version": st.settings.version,
    }
    if st.redis_breaker.allow():
        try:
            await st.redis.set(key, json.dumps(stats), ex=max(1, math.ceil(st.settings.cache_ttl)))
            st.redis_breaker.success()
        except (aioredis.RedisError, OSError, TimeoutError) as e:
            st.redis_breaker.failure(_short(e))
            log.warning("redis write failed: %s", _short(e))
    return _json(200, {**stats, "cache": "miss"})


async def breaker_status(request: web.Request) -> web.Response:
    st = request.app[APP_STATE]
    return _json(
        200,
        {
            "version": st.settings.version,
            "breakers": {b.name: b.snapshot() for b in (st.pg_breaker, st.redis_breaker)},
        },
    )


async def get_fault(request: web.Request) -> web.Response:
    return _json(200, request.app[APP_STATE].fault.as_json())


async def set_fault(request: web.Request) -> web.Response:
    st = request.app[APP_STATE]
    try:
        fault = Fault.parse(await request.json())
    except (ValueError, json.JSONDecodeError) as e:
        return _json(400, {"error": str(e)})
    st.fault = fault
    log.warning(
        "fault injection set: mode=%s rate=%s latencyMs=%s",
        fault.mode,
        fault.rate,
        fault.latency_ms,
    )
    if fault.mode == "crash":
        log.error("injected crash: the process exits now")
        for h in logging.getLogger().handlers:
            h.flush()
        asyncio.get_running_loop().call_later(0.2, st.on_crash)
        return _json(202, fault.as_json())
    return _json(200, fault.as_json())


def create_app(settings: Settings, **state_overrides: Any) -> web.Application:
    app = web.Application(middlewares=[observe, authenticate, inject_faults])
    st = State(
        settings=settings,
        metrics=Metrics(settings.version),
        db=Database(settings),
        redis=make_redis(settings),
        pg_breaker=CircuitBreaker("postgres", settings.breaker_threshold, settings.breaker_reset),
        redis_breaker=CircuitBreaker("redis", settings.breaker_threshold, settings.breaker_reset),
        **state_overrides,
    )
    app[APP_STATE] = st

    async def close(_: web.Application) -> None:
        await st.db.close()
        with contextlib.suppress(Exception):
            await st.redis.aclose()

    app.on_cleanup.append(close)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/inventory/stats", inventory_stats)
    app.router.add_get("/api/circuit-breaker/status", breaker_status)
    app.router.add_get("/admin/fault", get_fault)
    app.router.add_post("/admin/fault", set_fault)
    return app


# --- process entry point -----------------------------------------------------------------------


class _UTCFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        self.converter = time.gmtime


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_UTCFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def serve(settings: Settings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    # SO_REUSEPORT: replicas on one node's host network share the port (the kernel spreads
    # the connections), like the workers of a pre-forking server.
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True, reuse_port=True)
    await site.start()
    log.info(
        "dashboard %s listening on http://%s:%d (postgres %s:%d/%s, redis %s:%d/%d)",
        settings.version,
        settings.host,
        settings.port,
        settings.pg_host,
        settings.pg_port,
        settings.pg_database,
        settings.redis_host,
        settings.redis_port,
        settings.redis_db,
    )
    if is_broken_version(settings.version):
        log.error("build %s failed its startup self-check; serving errors", settings.version)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    try:
        settings, opts = parse_args(argv, os.environ)
    except ValueError as e:
        log.error("invalid configuration: %s", e)
        return 2
    if not settings.api_key and not opts.allow_no_api_key:
        log.error("no API key: set API_KEY or --api-key-file (or --insecure-no-api-key)")
        return 2
    if opts.init_db:
        try:
            n = init_inventory(
                psycopg.conninfo.make_conninfo(
                    host=settings.pg_host,
                    port=settings.pg_port,
                    user=settings.pg_user,
                    password=settings.pg_password,
                    dbname=settings.pg_database,
                ),
                settings.inventory_table,
            )
            log.info("inventory table %s ready with %d rows", settings.inventory_table, n)
        except psycopg.Error as e:
            log.error("could not initialize %s: %s", settings.inventory_table, _short(e))
            return 1
    try:
        asyncio.run(serve(settings))
    except OSError as e:
        log.error("cannot serve on %s:%d: %s", settings.host, settings.port, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
