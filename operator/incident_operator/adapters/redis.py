"""Redis at the edge: a short-lived ``redis.asyncio.Redis`` per runbook step.

Every redis-py call of the operator lives here. Driver exceptions never leave this module:
they become :class:`RedisError`, whose message names the server (host:port/db) and the error
class, never the password. There are no client-side retries: a step has its own retry policy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


class RedisError(Exception):
    """A Redis operation failed; the message is safe to show (no secrets)."""


@dataclasses.dataclass(frozen=True)
class RedisConnInfo:
    host: str
    port: int
    db: int = 0
    password: str | None = dataclasses.field(default=None, repr=False)
    #: TLS, verifying the server's certificate and host name.
    tls: bool = False
    #: PEM CA certificate(s) to verify against (besides the system's); None: the system's.
    ca_pem: str | None = dataclasses.field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}/{self.db}"


@dataclasses.dataclass(frozen=True)
class MemoryStats:
    """The fields of ``INFO memory`` and ``INFO stats`` the runbooks look at."""

    used_memory: int
    used_memory_peak: int
    maxmemory: int
    maxmemory_policy: str
    keyspace_hits: int
    keyspace_misses: int
    evicted_keys: int


@dataclasses.dataclass(frozen=True)
class SlowlogEntry:
    id: int
    start_time: int
    duration_us: int
    args: tuple[str, ...]
    """The command and its arguments, as Redis logged them (long ones already cut)."""


def _reason(exc: redis_errors.RedisError) -> str:
    if isinstance(exc, redis_errors.AuthenticationError):
        return "authentication failed"
    if isinstance(exc, redis_errors.TimeoutError):
        return "timed out"
    if isinstance(exc, redis_errors.ConnectionError):
        text = str(exc).lower()
        if "certificate" in text or "ssl" in text or "tls" in text:
            return "TLS handshake failed"
        if "refused" in text or "connect call failed" in text:
            return "connection refused"
        if "name or service not known" in text or "nodename nor servname" in text:
            return "host not found"
        return "connection failed"
    if isinstance(exc, redis_errors.ResponseError):
        text = str(exc)
        # Server replies start with an error code (WRONGPASS, NOAUTH, NOPERM, OOM, ...).
        code = text.split(" ", 1)[0]
        if code in {"WRONGPASS", "NOAUTH"} or "invalid password" in text.lower():
            return "authentication failed"
        return f"server replied {code}" if code.isupper() else "server error"
    return "failed"


async def _result(value: object) -> Any:
    """redis-py types its async commands as ``T | Awaitable[T]``; callers annotate the result."""
    if inspect.isawaitable(value):
        return await value
    return value


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class RedisClient:
    """The Redis commands the runbook actions need."""

    def __init__(self, client: aioredis.Redis, info: RedisConnInfo) -> None:
        self._client = client
        self._info = info

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, info: RedisConnInfo, timeout: float) -> AsyncIterator[RedisClient]:
        """A client with socket timeouts of ``timeout`` seconds; checked with ``PING``."""
        tls: dict[str, Any] = {}
        if info.tls:
            tls = {
                "ssl": True,
                "ssl_cert_reqs": "required",
                "ssl_check_hostname": True,
                "ssl_ca_data": info.ca_pem,
            }
        client = aioredis.Redis(
            host=info.host,
            port=info.port,
            db=info.db,
            password=info.password or None,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            **tls,
        )
        adapter = cls(client, info)
        try:
            with adapter._errors(None):
                await _result(client.ping())
            yield adapter
        finally:
            with contextlib.suppress(redis_errors.RedisError, OSError):
                await client.aclose()

    @property
    def address(self) -> str:
        return self._info.address

    @property
    def db(self) -> int:
        return self._info.db

    @contextlib.contextmanager
    def _errors(self, what: str | None) -> Iterator[None]:
        """Driver exceptions to RedisError; ``what`` is the command, None when connecting."""
        prefix = (
            f"cannot connect to Redis {self.address}"
            if what is None
            else f"Redis {self.address}: {what} failed"
        )
        try:
            yield
        except redis_errors.RedisError as exc:
            raise RedisError(f"{prefix}: {_reason(exc)} ({type(exc).__name__})") from None
        except OSError as exc:
            raise RedisError(f"{prefix}: connection error ({type(exc).__name__})") from None

    async def memory_stats(self) -> MemoryStats:
        with self._errors("INFO memory"):
            memory: dict[str, Any] = await _result(self._client.info("memory"))
        with self._errors("INFO stats"):
            stats: dict[str, Any] = await _result(self._client.info("stats"))
        return MemoryStats(
            used_memory=_as_int(memory.get("used_memory")),
            used_memory_peak=_as_int(memory.get("used_memory_peak")),
            maxmemory=_as_int(memory.get("maxmemory")),
            maxmemory_policy=str(memory.get("maxmemory_policy", "")),
            keyspace_hits=_as_int(stats.get("keyspace_hits")),
            keyspace_misses=_as_int(stats.get("keyspace_misses")),
            evicted_keys=_as_int(stats.get("evicted_keys")),
        )

    async def dbsize(self) -> int:
        with self._errors("DBSIZE"):
            return int(await _result(self._client.dbsize()))

    async def slowlog(self, limit: int) -> list[SlowlogEntry]:
        """``SLOWLOG GET``, sent raw so that the arguments stay a list (redis-py joins them)."""
        with self._errors("SLOWLOG GET"):
            entries: list[Any] = await _result(
                self._client.execute_command("SLOWLOG", "GET", limit)
            )
        result = []
        for entry in entries:
            if not isinstance(entry, list | tuple) or len(entry) < 4:
                continue
            args = entry[3] if isinstance(entry[3], list | tuple) else [entry[3]]
            result.append(
                SlowlogEntry(
                    id=_as_int(entry[0]),
                    start_time=_as_int(entry[1]),
                    duration_us=_as_int(entry[2]),
                    args=tuple(_text(arg) for arg in args),
                )
            )
        return result

    async def flushdb(self) -> None:
        """``FLUSHDB ASYNC``: the keys are gone at once, memory is freed in the background."""
        with self._errors("FLUSHDB"):
            await _result(self._client.flushdb(asynchronous=True))
