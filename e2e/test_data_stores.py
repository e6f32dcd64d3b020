"""Playbook: Database Service Outage and Redis Cache Outage, on the real local servers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import OperatorFactory

from e2e.conftest import apply_runbook, approve, explain, phase_of, steps
from incident_demo.stack import LocalStack

pytestmark = pytest.mark.cluster
POLICY = {"timeScale": 60}


def incident(name: str, service: str, summary: str) -> dict[str, Any]:
    return {
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"service": service, "summary": summary, "severity": 2, "acknowledgedBy": "dba"},
    }


@pytest.fixture
def runaway_query(stack: LocalStack) -> Iterator[dict[str, Any]]:
    """A real long-running query holding a lock, and a second session waiting on it."""
    env = stack.services
    conninfo = (
        f"host={env['PGHOST']} port={env['PGPORT']} dbname={env['PGDATABASE']} "
        f"user={env['PGUSER']} password={env['PGPASSWORD']}"
    )
    outcome: dict[str, Any] = {}
    holder = psycopg.connect(conninfo, autocommit=True)
    holder.execute("CREATE TABLE IF NOT EXISTS e2e_orders (id int)")

    def run_forever() -> None:
        try:
            with holder.transaction():
                holder.execute("LOCK TABLE e2e_orders IN ACCESS EXCLUSIVE MODE")
                holder.execute("SELECT pg_sleep(600)")
        except psycopg.Error as exc:
            outcome["holder"] = type(exc).__name__

    def wait_for_lock() -> None:
        with psycopg.connect(conninfo, autocommit=True) as waiter:
            try:
                waiter.execute("SELECT count(*) FROM e2e_orders")
                outcome["waiter"] = "got the lock"
            except psycopg.Error as exc:
                outcome["waiter"] = type(exc).__name__

    threads = [threading.Thread(target=run_forever), threading.Thread(target=wait_for_lock)]
    threads[0].start()
    threads[1].start()
    with psycopg.connect(conninfo, autocommit=True) as probe:
        # The runbook looks for queries older than 2s: let this one get there first.
        eventually(
            lambda: probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' "
                "AND now() - query_start > interval '3 seconds'"
            ).fetchone()[0],
            timeout=20,
            what="the runaway query to age",
        )
    yield outcome
    for thread in threads:
        thread.join(timeout=30)
    holder.close()


def test_long_queries_and_locks_are_cleared(
    stack: LocalStack, objects: Objects, operator: OperatorFactory, runaway_query: dict[str, Any]
) -> None:
    apply_runbook(
        stack,
        objects,
        "database-outage",
        {
            "running-queries": {"action": {"olderThan": "2s"}},
            "kill-long-queries": {"action": {"olderThan": "2s"}},
        },
    )
    with operator(POLICY):
        objects.create("incidents", incident("db", "postgres", "inventory queries failing"))
        eventually(
            lambda: phase_of(objects, "db") == "AwaitingApproval",
            timeout=60,
            what="terminate waits for approval",
            describe=lambda: explain(objects, "db"),
        )
        found = steps(objects, "db")
        assert int(found["running-queries"]["findings"]["longQueries"]) >= 1
        assert int(found["check-locks"]["findings"]["blockedLocks"]) >= 1
        approve(objects, "db", "kill-long-queries", by="dba")
        eventually(
            lambda: phase_of(objects, "db") == "Monitoring",
            timeout=60,
            what="queries terminated and verified",
            describe=lambda: explain(objects, "db"),
        )
    done = steps(objects, "db")
    assert int(done["kill-long-queries"]["findings"]["terminated"]) >= 1
    assert done["restart"]["phase"] == "Skipped"  # the server answered: no restart needed
    assert done["verify-locks"]["phase"] == "Succeeded"
    eventually(
        lambda: runaway_query.get("holder") and runaway_query.get("waiter"),
        what="both sessions released",
    )
    assert runaway_query["holder"] in ("AdminShutdown", "OperationalError")
    assert runaway_query["waiter"] == "got the lock"


@pytest.fixture
def full_redis(stack: LocalStack) -> Iterator[redis.Redis]:
    client = redis.Redis(host=stack.services["REDIS_HOST"], port=int(stack.services["REDIS_PORT"]))
    client.flushdb()
    pipe = client.pipeline()
    for i in range(3000):
        pipe.set(f"e2e:cache:{i}", "x" * 1024)
    pipe.execute()
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(int(used * 1.03)))
    client.config_set("maxmemory-policy", "noeviction")
    yield client
    client.config_set("maxmemory", "0")
    client.flushdb()
    client.close()


def test_full_redis_is_flushed_via_exec_after_approval(
    stack: LocalStack, objects: Objects, operator: OperatorFactory, full_redis: redis.Redis
) -> None:
    apply_runbook(stack, objects, "redis-outage")
    with operator(POLICY):
        objects.create(
            "incidents", incident("cache", "redis", "Cache misses increasing, memory errors")
        )
        eventually(
            lambda: phase_of(objects, "cache") == "AwaitingApproval",
            timeout=60,
            what="flush waits for approval",
            describe=lambda: explain(objects, "cache"),
        )
        memory = steps(objects, "cache")["memory"]
        assert memory["phase"] == "Failed"
        assert float(memory["findings"]["usedMemoryPercent"]) > 90
        assert full_redis.dbsize() >= 3000
        approve(objects, "cache", "flush-cache")
        eventually(
            lambda: phase_of(objects, "cache") == "Monitoring",
            timeout=60,
            what="flushed, restarted, verified",
            describe=lambda: explain(objects, "cache"),
        )
    assert full_redis.dbsize() == 0
    done = steps(objects, "cache")
    assert done["flush-cache"]["phase"] == "Succeeded"
    assert done["restart"]["phase"] == "Succeeded"
    assert float(done["verify"]["findings"]["usedMemoryPercent"]) < 90
