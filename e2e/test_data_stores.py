"""Playbook: Database Service Outage (a session holding a lock; the server killed) and Redis
Cache Outage (maxmemory reached), on the real servers in their pods."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from tests.fixtures.cluster import eventually

from e2e.conftest import E2E_LABEL, apply_runbooks, phases, psql_session, record_recovery, unique
from incident_demo.incidents import Incidents
from incident_demo.kube import Kubectl
from incident_demo.stack import COMMANDER, DBA, ONCALL, PORTS, Stack

pytestmark = pytest.mark.cluster
PG_DOWN = ("pg_isready", "-h", "127.0.0.1", "-p", str(PORTS["postgres"]))


def incident(service: str, summary: str, alert: str | None = None) -> dict[str, object]:
    spec: dict[str, object] = {
        "service": service,
        "summary": summary,
        "severity": 2,
        "acknowledgedBy": ONCALL,
        "roles": {"incidentCommander": COMMANDER, "databaseAdministrator": DBA},
    }
    if alert:
        spec["source"] = {"kind": "Alertmanager", "alertName": alert}
    return spec


@pytest.fixture
def lock_holder(stack: Stack, kube: Kubectl) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """A real session holding an exclusive lock in a long query, and one waiting for it."""
    stack.psql("CREATE TABLE IF NOT EXISTS e2e_orders (id int)")
    sessions = {
        "holder": psql_session(
            kube,
            "e2e-holder",
            "BEGIN; LOCK TABLE e2e_orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);",
        ),
    }
    eventually(
        lambda: (
            stack.psql(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE a.application_name = 'e2e-holder' AND l.mode = 'AccessExclusiveLock' "
                "AND l.granted"
            )
            == "1"
        ),
        timeout=60,
        what="the lock taken",
    )
    sessions["waiter"] = psql_session(kube, "e2e-waiter", "SELECT count(*) FROM e2e_orders")
    eventually(
        lambda: (
            stack.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'e2e-waiter' "
                "AND wait_event_type = 'Lock'"
            )
            == "1"
        ),
        timeout=60,
        what="a second session blocked on the lock",
    )
    yield sessions
    stack.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name IN ('e2e-holder', 'e2e-waiter')"
    )
    for session in sessions.values():
        session.kill()
        session.communicate(timeout=30)


def test_lock_holding_query_is_terminated_after_approval(
    stack: Stack,
    incidents: Incidents,
    lock_holder: dict[str, subprocess.Popen[str]],
    request: pytest.FixtureRequest,
) -> None:
    # The playbook kills queries older than 10 minutes; here the lock is a few seconds old.
    apply_runbooks(
        stack,
        {
            "database-outage": {
                "running-queries": {"action": {"olderThan": "3s"}},
                "kill-long-queries": {"action": {"olderThan": "3s"}},
            }
        },
    )
    eventually(
        lambda: (
            stack.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'e2e-holder' "
                "AND now() - query_start > interval '4 seconds'"
            )
            == "1"
        ),
        timeout=30,
        what="the locking query older than the runbook's limit",
    )
    name = unique("db-locks")
    incidents.open(
        name,
        incident("postgres", "Inventory queries failing: database connection timeouts"),
        ONCALL,
        E2E_LABEL,
    )

    status = incidents.wait(name, {"AwaitingApproval", "Escalated"}, timeout=120)
    assert status["phase"] == "AwaitingApproval", incidents.explain(name)
    assert status["runbook"] == "database-outage"
    assert status["currentStep"] == "kill-long-queries"
    found = incidents.steps(name)
    assert int(found["running-queries"]["findings"]["longQueries"]) >= 1
    assert found["check-locks"]["phase"] == "Failed"  # Step 1: SELECT * FROM pg_locks
    assert int(found["check-locks"]["findings"]["blockedLocks"]) >= 1
    assert found["connectivity"]["phase"] == "Succeeded"

    incidents.approve(name, "kill-long-queries", DBA)
    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=120)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    done = incidents.steps(name)
    assert done["kill-long-queries"]["decidedBy"] == DBA
    assert int(done["kill-long-queries"]["findings"]["terminated"]) >= 1
    assert done["restart"]["phase"] == "Skipped"  # the server answered: no restart
    assert phases(done)["verify"] == phases(done)["verify-locks"] == "Succeeded"
    # The holder's session was ended by the server, so its psql failed.
    holder = lock_holder["holder"]
    assert holder.wait(timeout=60) != 0
    assert "terminat" in (holder.stderr.read() if holder.stderr else "")
    record_recovery(request, status, name)
    incidents.resolve(name, DBA, "a batch job held an exclusive lock on e2e_orders")


def test_killed_postgres_is_restarted(
    stack: Stack, incidents: Incidents, request: pytest.FixtureRequest
) -> None:
    apply_runbooks(stack)
    before = stack.server_identity("postgres")
    stack.kill_server("postgres")
    eventually(lambda: stack.exec("postgres", *PG_DOWN).returncode != 0, what="PostgreSQL down")
    eventually(lambda: not stack.ready("postgres"), what="the postgres pod not Ready")
    name = unique("db-down")
    incidents.open(
        name, incident("postgres", "Cannot connect to database", "PostgresDown"), ONCALL, E2E_LABEL
    )

    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=180)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    assert status["runbook"] == "database-outage"
    done = phases(incidents.steps(name))
    assert done["connectivity"] == done["service-status"] == "Failed"
    assert done["kill-long-queries"] == "Skipped"  # no query could be seen
    assert done["restart"] == "Succeeded"  # Step 3: only because SELECT 1 failed
    assert done["verify"] == done["verify-locks"] == "Succeeded"
    assert stack.server_identity("postgres") != before  # a new postmaster
    eventually(lambda: stack.health() == 200, timeout=60, what="the dashboard reconnected")
    record_recovery(request, status, name)
    incidents.resolve(name, DBA, "the postmaster was killed")


@pytest.fixture
def full_redis(stack: Stack) -> Iterator[None]:
    """Redis at its maxmemory with noeviction: writes fail with OOM."""
    stack.redis(
        "EVAL",
        "for i = 1, 3000 do redis.call('SET', 'e2e:cache:' .. i, string.rep('x', 1024)) end",
        "0",
    )
    info = stack.redis("INFO", "memory")
    used = int(
        next(line for line in info.splitlines() if line.startswith("used_memory:")).split(":")[1]
    )
    stack.redis("CONFIG", "SET", "maxmemory-policy", "noeviction")
    stack.redis("CONFIG", "SET", "maxmemory", str(int(used * 0.98)))
    write = "return redis.pcall('SET', 'e2e:one-more', string.rep('x', 200000))"
    assert "OOM" in stack.redis("EVAL", write, "0")
    yield


def test_full_redis_is_flushed_and_restarted(
    stack: Stack, incidents: Incidents, full_redis: None, request: pytest.FixtureRequest
) -> None:
    apply_runbooks(stack)
    before = stack.server_identity("redis")
    name = unique("cache-full")
    incidents.open(
        name,
        incident("redis", "Cache misses increasing, memory errors in logs", "RedisMemoryHigh"),
        ONCALL,
        E2E_LABEL,
    )

    status = incidents.wait(name, {"AwaitingApproval", "Escalated"}, timeout=120)
    assert status["phase"] == "AwaitingApproval", incidents.explain(name)
    assert status["runbook"] == "redis-outage"
    memory = incidents.steps(name)["memory"]
    assert memory["phase"] == "Failed"
    assert float(memory["findings"]["usedMemoryPercent"]) > 90
    assert int(stack.redis("DBSIZE")) >= 3000

    incidents.approve(name, "flush-cache", COMMANDER)
    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=120)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    done = incidents.steps(name)
    # redis-cli FLUSHDB ran inside the Redis container (execInPod), then a new server.
    assert done["flush-cache"]["phase"] == "Succeeded"
    assert done["flush-cache"]["findings"]["exitCode"] in (0, "0")
    assert "OK" in done["flush-cache"].get("output", "")
    assert done["restart"]["phase"] == done["verify"]["phase"] == "Succeeded"
    # The new server starts empty and without the runtime maxmemory: no percentage to fail.
    assert float(done["verify"]["findings"].get("usedMemoryPercent", 0)) < 90
    assert stack.server_identity("redis") != before
    assert int(stack.redis("DBSIZE")) < 3000
    record_recovery(request, status, name)
    incidents.resolve(name, COMMANDER, "cache filled up to maxmemory with noeviction")
