"""Redis executors against the real Redis of hack/services-up.sh, no mocks.

Tests that count or empty a whole database use the databases reserved in ``REDIS_DB``; the
server-wide settings they change (``maxmemory``) are restored afterwards.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import Iterator

import pytest
import redis

from incident_operator.actions.base import ActionError, StepResult, run_action
from incident_operator.actions.redis import command_summary, human_bytes
from incident_operator.models.actions import RedisDbSize, RedisFlushDb, RedisInfo, RedisSlowlog
from incident_operator.models.runbook import RedisTarget, Targets
from tests.fixtures.services import (
    REDIS_DB,
    REDIS_SECRET,
    DictSecretReader,
    PrivateRedis,
    RedisFixture,
    closed_port,
    make_ctx,
    poll_until,
)

pytestmark = pytest.mark.services

# Busy-waits ~30 ms inside Redis, which the slow log (10 ms by default) records.
SLOW_SCRIPT = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
  local now = redis.call('TIME')
until (now[1] * 1000000 + now[2]) - start >= 30000
return 'incident-operator-slow-script'
"""


@pytest.fixture
def maxmemory(redis_target: RedisFixture) -> Iterator[redis.Redis]:
    """A client whose changes to maxmemory are undone after the test."""
    client = redis_target.client()
    original = str(client.config_get("maxmemory")["maxmemory"])
    try:
        yield client
    finally:
        client.config_set("maxmemory", original)
        client.close()


async def test_info_reports_memory_percent_and_hit_rate(
    redis_target: RedisFixture, maxmemory: redis.Redis
) -> None:
    rt = redis_target.with_db(REDIS_DB["info"])
    client = rt.client()
    key = f"io-test:{secrets.token_hex(4)}"
    client.set(key, "cached", ex=60)
    before = client.info("stats")
    for _ in range(8):
        assert client.get(key) == "cached"
    for _ in range(2):
        assert client.get(f"{key}:missing") is None
    used = int(client.info("memory")["used_memory"])
    limit = max(used * 10, 16 * 2**20)
    maxmemory.config_set("maxmemory", limit)

    tight = await run_action(RedisInfo(type="redisInfo", max_memory_percent=1), rt.ctx())
    loose = await run_action(RedisInfo(type="redisInfo", max_memory_percent=99), rt.ctx())

    expected = 100 * used / limit
    assert not tight.ok
    assert loose.ok
    assert tight.findings["maxMemory"] == limit
    assert tight.findings["usedMemoryPercent"] == pytest.approx(expected, abs=2)
    assert f"of {human_bytes(limit)}" in tight.message
    assert "above the threshold of 1%" in tight.message
    assert "within the threshold of 99%" in loose.message
    hits, misses = tight.findings["keyspaceHits"], tight.findings["keyspaceMisses"]
    assert isinstance(hits, int) and isinstance(misses, int)
    assert hits >= before["keyspace_hits"] + 8
    assert misses >= before["keyspace_misses"] + 2
    assert tight.findings["hitRate"] == round(hits / (hits + misses), 4)
    assert "hit rate" in tight.message
    assert tight.output is not None and "maxmemory_policy" in tight.output
    client.close()


async def test_info_without_maxmemory_has_no_percentage(
    redis_target: RedisFixture, maxmemory: redis.Redis
) -> None:
    maxmemory.config_set("maxmemory", 0)

    result = await run_action(
        RedisInfo(type="redisInfo", max_memory_percent=50), redis_target.ctx()
    )

    assert result.ok
    assert "usedMemoryPercent" not in result.findings
    assert result.findings["maxMemory"] == 0
    assert "no maxmemory limit (so the 50% threshold does not apply)" in result.message


async def test_db_size_counts_the_keys_of_its_database(redis_target: RedisFixture) -> None:
    rt = redis_target.with_db(REDIS_DB["dbsize"])
    client = rt.client()
    client.flushdb()
    client.mset({f"sku:{i}": i for i in range(7)})

    result = await run_action(RedisDbSize(type="redisDbSize"), rt.ctx())

    assert result.ok
    assert result.findings == {"keys": 7}
    assert result.message == f"Redis {rt.target.host}:{rt.target.port}/14 holds 7 keys."
    client.close()


async def test_slowlog_reports_a_slow_command(redis_target: RedisFixture) -> None:
    client = redis_target.client()
    slower_than = client.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    assert int(str(slower_than)) <= 10000  # the default 10 ms: a 30 ms script is logged
    marker = secrets.token_hex(4)
    client.eval(SLOW_SCRIPT + f"-- {marker}", 0)
    action = RedisSlowlog(type="redisSlowlog", limit=50)

    async def logged() -> StepResult | None:
        result = await run_action(action, redis_target.ctx())
        return result if result.output and "EVAL" in result.output else None

    result = await poll_until(logged, 10, what="the slow script in the slow log")

    assert result.ok
    assert 1 <= result.findings["slowlogEntries"] <= 50  # type: ignore[operator]
    assert result.findings["slowestMs"] >= 30  # type: ignore[operator]
    assert result.output is not None
    assert result.output.splitlines()[0].split() == ["ID", "STARTED", "MS", "COMMAND"]
    assert "slowest took" in result.message
    assert "EVAL \nlocal" not in result.output  # whitespace collapsed
    client.close()


async def test_flushdb_empties_only_its_database_and_can_run_again(
    redis_target: RedisFixture,
) -> None:
    rt = redis_target.with_db(REDIS_DB["flush"])
    client = rt.client()
    neighbour = redis_target.with_db(REDIS_DB["dbsize"]).client()
    canary = f"io-test:canary:{secrets.token_hex(4)}"
    neighbour.set(canary, "alive", ex=60)
    client.mset({f"session:{i}": "x" * 100 for i in range(50)})
    assert client.dbsize() >= 50

    result = await run_action(RedisFlushDb(type="redisFlushDb"), rt.ctx())

    assert result.ok
    assert result.findings["keysRemoved"] >= 50  # type: ignore[operator]
    assert result.findings["keys"] == 0
    assert client.dbsize() == 0
    assert client.get("session:1") is None
    assert neighbour.get(canary) == "alive"
    assert "keys removed" in result.message

    again = await run_action(RedisFlushDb(type="redisFlushDb"), rt.ctx())
    assert again.ok
    assert again.findings == {"keysRemoved": 0, "keys": 0}
    client.close()
    neighbour.close()


async def test_password_from_the_secret_is_used(redis_with_password: PrivateRedis) -> None:
    target = RedisTarget(
        host=redis_with_password.host,
        port=redis_with_password.port,
        password_secret_ref=REDIS_SECRET,
    )
    secrets_ = DictSecretReader().put(REDIS_SECRET, redis_with_password.password)

    ctx = make_ctx(Targets(redis=target), secrets_)
    result = await run_action(RedisDbSize(type="redisDbSize"), ctx)

    assert result.ok and result.findings == {"keys": 0}
    assert secrets_.reads == [("incidents", "redis-auth", "password")]
    assert redis_with_password.password not in result.message


async def test_wrong_password_never_leaks(
    redis_with_password: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = f"wrong-{secrets.token_hex(12)}"
    target = RedisTarget(
        host=redis_with_password.host,
        port=redis_with_password.port,
        password_secret_ref=REDIS_SECRET,
    )
    ctx = make_ctx(Targets(redis=target), DictSecretReader().put(REDIS_SECRET, wrong))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ActionError) as caught:
        await run_action(RedisInfo(type="redisInfo"), ctx)

    exc = caught.value
    text = "".join(traceback.format_exception(exc))
    assert "authentication failed" in str(exc)
    assert f"{redis_with_password.host}:{redis_with_password.port}/0" in str(exc)
    assert wrong not in text and wrong not in repr(exc)
    assert redis_with_password.password not in text
    assert exc.__cause__ is None and exc.__suppress_context__
    assert wrong not in caplog.text


async def test_missing_password_is_a_clear_error(redis_with_password: PrivateRedis) -> None:
    target = RedisTarget(host=redis_with_password.host, port=redis_with_password.port)
    with pytest.raises(ActionError, match="authentication failed"):
        await run_action(RedisDbSize(type="redisDbSize"), make_ctx(Targets(redis=target)))


async def test_unreachable_redis_is_a_short_safe_error() -> None:
    port = closed_port()
    target = RedisTarget(host="127.0.0.1", port=port, db=2)
    ctx = make_ctx(Targets(redis=target), timeout=3)
    with pytest.raises(ActionError) as caught:
        await run_action(RedisDbSize(type="redisDbSize"), ctx)
    assert str(caught.value) == (
        f"cannot connect to Redis 127.0.0.1:{port}/2: connection refused (ConnectionError)"
    )


async def test_missing_target_is_a_clear_action_error() -> None:
    with pytest.raises(ActionError, match=r"^runbook has no redis target$"):
        await run_action(RedisFlushDb(type="redisFlushDb"), make_ctx(Targets()))


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(16 * 2**20) == "16.0 MiB"
    assert human_bytes(3 * 2**40) == "3.0 TiB"


def test_slowlog_commands_are_shown_without_their_values() -> None:
    assert command_summary(["set", "session:42", "eyJhbGciOi-secret-token"]) == (
        "SET session:42 (+1 arg)"
    )
    assert command_summary(["HSET", "user:7", "email", "a@b.c", "name", "Al"]) == (
        "HSET user:7 (+4 args)"
    )
    assert command_summary(["CONFIG", "SET", "requirepass", "hunter2"]) == "CONFIG SET (+2 args)"
    assert command_summary(["EVAL", "return 1", "0"]) == "EVAL return 1 (+1 arg)"
    assert command_summary(["PING"]) == "PING"
    assert command_summary([]) == "?"
