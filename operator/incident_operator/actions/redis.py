"""Redis runbook actions (playbook: Redis Cache Outage, High Error Rate, High Latency).

The step logic only; every Redis call goes through :mod:`incident_operator.adapters.redis`,
whose errors become :class:`ActionError` here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence

from ..adapters.redis import RedisClient, RedisConnInfo, RedisError
from ..durations import inner_timeout
from ..models.actions import RedisDbSize, RedisFlushDb, RedisInfo, RedisSlowlog
from .base import ActionContext, ActionError, Finding, StepResult, executor, read_secret, table

COMMAND_WIDTH = 60


@contextlib.asynccontextmanager
async def _session(ctx: ActionContext) -> AsyncIterator[RedisClient]:
    target = ctx.targets.redis
    if target is None:
        raise ActionError("runbook has no redis target")
    password = None
    if target.password_secret_ref is not None:
        password = await read_secret(ctx, target.password_secret_ref)
    ca = await read_secret(ctx, target.ca_secret_ref) if target.ca_secret_ref else None
    info = RedisConnInfo(
        host=target.host,
        port=target.port,
        db=target.db,
        password=password,
        tls=target.uses_tls(),
        ca_pem=ca,
    )
    try:
        async with RedisClient.connect(info, timeout=inner_timeout(ctx.timeout)) as client:
            yield client
    except RedisError as exc:
        raise ActionError(str(exc)) from None


def human_bytes(count: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} B" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _short(text: str, width: int = COMMAND_WIDTH) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def command_summary(args: Sequence[str], width: int = COMMAND_WIDTH) -> str:
    """A slow-log command without its values: the name, the first argument (a key, a script
    or a sub-command) and how many more arguments there were.

    Values written to a cache can be tokens or personal data and must not end up in an
    Incident's status.
    """
    if not args:
        return "?"
    shown = [args[0].upper(), *args[1:2]]
    if len(args) > 2:
        more = len(args) - 2
        shown.append(f"(+{more} {'arg' if more == 1 else 'args'})")
    return _short(" ".join(shown), width)


@executor(RedisInfo)
async def redis_info(action: RedisInfo, ctx: ActionContext) -> StepResult:
    """Memory use against ``maxmemory`` and the keyspace hit rate.

    Fails only when ``maxMemoryPercent`` is given and exceeded; without a ``maxmemory`` limit
    there is no percentage, which the message says.
    """
    async with _session(ctx) as rd:
        stats = await rd.memory_stats()
    findings: dict[str, Finding] = {
        "usedMemory": stats.used_memory,
        "maxMemory": stats.maxmemory,
        "keyspaceHits": stats.keyspace_hits,
        "keyspaceMisses": stats.keyspace_misses,
        "evictedKeys": stats.evicted_keys,
    }
    failed = False
    used = human_bytes(stats.used_memory)
    if stats.maxmemory > 0:
        percent = 100.0 * stats.used_memory / stats.maxmemory
        findings["usedMemoryPercent"] = round(percent, 1)
        memory = f"uses {used} of {human_bytes(stats.maxmemory)} ({percent:.1f}%)"
        threshold = action.max_memory_percent
        if threshold is not None:
            failed = percent > threshold
            memory += f", {'above' if failed else 'within'} the threshold of {threshold:g}%"
    else:
        memory = f"uses {used} with no maxmemory limit"
        if action.max_memory_percent is not None:
            memory += f" (so the {action.max_memory_percent:g}% threshold does not apply)"
    lookups = stats.keyspace_hits + stats.keyspace_misses
    if lookups:
        hit_rate = stats.keyspace_hits / lookups
        findings["hitRate"] = round(hit_rate, 4)
        hits = f"hit rate {100 * hit_rate:.1f}% ({stats.keyspace_hits} hits, "
        hits += f"{stats.keyspace_misses} misses)"
    else:
        hits = "no keyspace lookups yet"
    rows: list[list[object]] = [
        ["used_memory", f"{stats.used_memory} ({used})"],
        ["used_memory_peak", f"{stats.used_memory_peak} ({human_bytes(stats.used_memory_peak)})"],
        ["maxmemory", f"{stats.maxmemory} ({human_bytes(stats.maxmemory)})"],
        ["maxmemory_policy", stats.maxmemory_policy],
        ["keyspace_hits", stats.keyspace_hits],
        ["keyspace_misses", stats.keyspace_misses],
        ["evicted_keys", stats.evicted_keys],
    ]
    return StepResult(
        ok=not failed,
        message=f"Redis {rd.address} {memory}; {hits}.",
        findings=findings,
        output=table(["FIELD", "VALUE"], rows),
    )


@executor(RedisDbSize)
async def redis_db_size(action: RedisDbSize, ctx: ActionContext) -> StepResult:
    async with _session(ctx) as rd:
        keys = await rd.dbsize()
    return StepResult(
        ok=True,
        message=f"Redis {rd.address} holds {keys} {'key' if keys == 1 else 'keys'}.",
        findings={"keys": keys},
    )


@executor(RedisSlowlog)
async def redis_slowlog(action: RedisSlowlog, ctx: ActionContext) -> StepResult:
    async with _session(ctx) as rd:
        entries = await rd.slowlog(action.limit)
    if not entries:
        return StepResult(
            ok=True,
            message=f"The slow log of Redis {rd.address} is empty.",
            findings={"slowlogEntries": 0, "slowestMs": 0.0},
        )
    slowest = max(entries, key=lambda e: e.duration_us)
    slowest_ms = slowest.duration_us / 1000
    rows = [
        [
            e.id,
            dt.datetime.fromtimestamp(e.start_time, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            f"{e.duration_us / 1000:.1f}",
            command_summary(e.args),
        ]
        for e in entries
    ]
    return StepResult(
        ok=True,
        message=(
            f"The slow log of Redis {rd.address} has {len(entries)} recent"
            f" {'entry' if len(entries) == 1 else 'entries'}; the slowest took"
            f" {slowest_ms:.1f} ms ({command_summary(slowest.args, 40)})."
        ),
        findings={"slowlogEntries": len(entries), "slowestMs": round(slowest_ms, 1)},
        output=table(["ID", "STARTED", "MS", "COMMAND"], rows),
    )


@executor(RedisFlushDb)
async def redis_flush_db(action: RedisFlushDb, ctx: ActionContext) -> StepResult:
    """``FLUSHDB`` of the target's database only (never ``FLUSHALL``); safe to repeat."""
    async with _session(ctx) as rd:
        before = await rd.dbsize()
        await rd.flushdb()
        after = await rd.dbsize()
    return StepResult(
        ok=True,
        message=(
            f"Flushed Redis {rd.address}: {before} {'key' if before == 1 else 'keys'} removed"
            f"{f', {after} written since' if after else ''}."
        ),
        findings={"keysRemoved": before, "keys": after},
    )
