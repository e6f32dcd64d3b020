"""The servers around the operator restart under it: the kube-apiserver mid-runbook, and
PostgreSQL and Redis while a step waits on them (see conftest.py for the operator process)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from tests.fixtures.cluster import eventually

from e2e.conftest import E2E_LABEL, apply_runbooks, phases, psql_session, unique
from e2e.faults.conftest import LocalOperator, fault, generations, reasons, timeline
from e2e.faults.control_plane import restart_apiserver
from incident_demo.incidents import Incidents
from incident_demo.kube import Kubectl
from incident_demo.stack import COMMANDER, ONCALL, PORTS, Stack

pytestmark = pytest.mark.cluster


def spec(service: str, summary: str, alert: str) -> dict[str, Any]:
    return {
        "service": service,
        "summary": summary,
        "severity": 2,
        "acknowledgedBy": ONCALL,
        "roles": {"incidentCommander": COMMANDER, "technicalLead": ONCALL},
        "source": {"kind": "Alertmanager", "alertName": alert},
    }


def step_phase(incidents: Incidents, name: str, step: str) -> str | None:
    found = incidents.steps(name).get(step)
    return str(found["phase"]) if found else None


def test_apiserver_restart_mid_runbook(
    stack: Stack,
    incidents: Incidents,
    kube: Kubectl,
    operator: LocalOperator,
    request: pytest.FixtureRequest,
) -> None:
    """The API server goes away while a recovery step runs and its result is due; the same
    operator process reconnects (watches, Lease, status writes) and finishes the runbook."""
    # A leader that cannot renew its Lease for 2/3 of it steps down and exits (its pod is
    # restarted): a 30 s Lease outlasts the restart, so this process must reconnect.
    operator.start(
        INCIDENT_OPERATOR_LEASE_SECONDS="30",
        INCIDENT_OPERATOR_RENEW_SECONDS="5",
        INCIDENT_OPERATOR_RETRY_SECONDS_LEADER="2",
    )
    apply_runbooks(stack, {"dashboard-outage": {"settle": {"action": {"duration": "3s"}}}})
    before = generations(kube, "dashboard")
    name = unique("apiserver")
    incidents.open(name, spec("dashboard", "Dashboard errors", "DashboardDown"), ONCALL, E2E_LABEL)
    eventually(
        lambda: step_phase(incidents, name, "settle") == "Running",
        timeout=120,
        what="settle running",
        describe=lambda: incidents.explain(name),
    )
    away = restart_apiserver(kube)
    fault(request, f"kube-apiserver SIGKILLed and restarted mid-step (settle), away {away:.1f} s")

    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=180)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    done = phases(incidents.steps(name))
    assert done["restart"] == done["settle"] == done["verify"] == "Succeeded", done
    assert done["monitor-errors"] == "Succeeded", done
    assert "StepResumed" not in reasons(status), timeline(status)
    assert generations(kube, "dashboard")["dashboard"] - before["dashboard"] == 1
    # One process throughout: it reconnected rather than died and restarted.
    assert operator.alive() and len(operator.runs) == 1, operator.tail()


@pytest.fixture
def open_writer(stack: Stack, kube: Kubectl) -> Iterator[subprocess.Popen[str]]:
    """A transaction that has written to ``inventory`` and stays open: CREATE INDEX
    CONCURRENTLY commits its (invalid) index, then waits for it."""
    stack.psql("DROP INDEX IF EXISTS idx_inventory_sku")
    sql = "BEGIN; UPDATE inventory SET sku = sku WHERE false; SELECT pg_sleep(600);"
    session = psql_session(kube, "e2e-writer", sql)
    eventually(
        lambda: (
            stack.psql(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE a.application_name = 'e2e-writer' AND l.mode = 'RowExclusiveLock' "
                "AND l.relation = 'inventory'::regclass AND l.granted"
            )
            == "1"
        ),
        timeout=60,
        what="the writer's open transaction",
    )
    yield session
    session.kill()
    session.communicate(timeout=30)


def index_state(stack: Stack) -> str:
    """'valid', 'invalid' or 'none' for idx_inventory_sku."""
    return stack.psql(
        "SELECT coalesce((SELECT CASE WHEN indisvalid THEN 'valid' ELSE 'invalid' END"
        " FROM pg_index WHERE indexrelid = to_regclass('idx_inventory_sku')), 'none')"
    )


def index_build_waiting(stack: Stack) -> bool:
    return (
        stack.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'CREATE INDEX CONCURRENTLY%'"
            " AND wait_event_type = 'Lock'"
        )
        == "1"
    )


def test_postgres_restart_mid_step(
    stack: Stack,
    incidents: Incidents,
    operator: LocalOperator,
    open_writer: subprocess.Popen[str],
    request: pytest.FixtureRequest,
) -> None:
    """PostgreSQL restarts while CREATE INDEX CONCURRENTLY waits, its invalid index already
    committed: the step's attempt fails, the declared retry drops the half-built index and
    builds it again; the timeline has the step's outcome."""
    operator.start()
    index_step = {
        "when": [{"step": "slow-queries", "phases": ["Succeeded", "Failed"]}],
        "retries": 5,
        "backoff": "2s",
        "timeout": "2m",
    }
    apply_runbooks(stack, {"high-latency": {"index-inventory-sku": index_step}})
    name = unique("pg-restart")
    incidents.open(name, spec("dashboard", "Dashboard slow", "HighLatency"), ONCALL, E2E_LABEL)
    eventually(
        lambda: (
            step_phase(incidents, name, "index-inventory-sku") == "Running"
            and index_build_waiting(stack)
        ),
        timeout=120,
        what="CREATE INDEX CONCURRENTLY waiting for the open transaction",
        describe=lambda: incidents.explain(name),
    )
    assert index_state(stack) == "invalid"  # half-built: what an interruption leaves
    identity = stack.server_identity("postgres")
    stack.rollout("restart", "postgres")
    stack.rollout("status", "postgres")
    fault(request, "PostgreSQL restarted mid-step (CREATE INDEX CONCURRENTLY)")

    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=240)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    assert stack.server_identity("postgres") != identity
    step = incidents.steps(name)["index-inventory-sku"]
    assert step["phase"] == "Succeeded", incidents.explain(name)
    assert step["findings"]["rebuiltInvalid"] in (True, "True"), step
    assert index_state(stack) == "valid"
    assert any(
        e.startswith("StepSucceeded: ") and "index-inventory-sku" in e for e in timeline(status)
    ), timeline(status)
    assert open_writer.wait(timeout=60) != 0  # its server went away under it


def redis_connections(pid: int) -> int:
    """Established TCP connections of process ``pid`` to the Redis port."""
    done = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( dport = :{PORTS['redis']} )"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return sum(1 for line in done.stdout.splitlines() if f"pid={pid}," in line)


def test_redis_restart_mid_step(
    stack: Stack,
    incidents: Incidents,
    operator: LocalOperator,
    request: pytest.FixtureRequest,
) -> None:
    """Redis restarts while the memory check waits on it (clients paused): the attempt fails,
    the declared retry asks the new server; the timeline has the step's outcome."""
    operator.start()
    memory = {"retries": 5, "backoff": "2s", "timeout": "1m"}
    apply_runbooks(stack, {"redis-outage": {"memory": memory}})
    # A mark of the old server: the new one starts without a maxmemory.
    stack.redis("CONFIG", "SET", "maxmemory", str(1 << 30))
    stack.redis("CLIENT", "PAUSE", "120000", "ALL")
    name = unique("redis-restart")
    incidents.open(name, spec("redis", "Cache timeouts", "RedisDown"), ONCALL, E2E_LABEL)
    process = operator.process
    assert process is not None
    eventually(
        lambda: (
            step_phase(incidents, name, "memory") == "Running" and redis_connections(process.pid)
        ),
        timeout=120,
        what="the memory check connected to the paused Redis",
        describe=lambda: incidents.explain(name),
    )
    stack.rollout("restart", "redis")
    stack.rollout("status", "redis")
    fault(request, "Redis restarted mid-step (INFO on a paused server)")

    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=180)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    steps = incidents.steps(name)
    assert steps["memory"]["phase"] == "Succeeded", incidents.explain(name)
    # Answered by the new server: the attempt on the old one failed and was retried.
    assert int(steps["memory"]["findings"]["maxMemory"]) == 0, steps["memory"]
    assert steps["memory"]["attempts"] == 1  # retried within the step, not re-run
    assert phases(steps)["restart"] == phases(steps)["verify"] == "Succeeded"
    assert any(e.startswith("StepSucceeded: ") and "memory" in e for e in timeline(status)), (
        timeline(status)
    )
