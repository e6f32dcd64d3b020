"""Operator SIGKILL at kill points spread over the shipped runbooks (see conftest.py).

After every kill a new process carries on from status. What must hold, read from the servers
themselves: a finished step never runs again, an idempotent step caught mid-way runs again
(``StepResumed``), a non-idempotent one caught mid-way is never repeated but marked
Interrupted and escalated; every Incident ends Monitoring (mitigated) or Escalated; every
notification number is used for one message only.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.fixtures.cluster import eventually
from tests.fixtures.receiver import Receiver

from e2e.conftest import E2E_LABEL, apply_runbooks, phases, unique
from e2e.faults.conftest import (
    LocalOperator,
    check_notifications,
    generations,
    reasons,
    redis_calls,
    redis_monitor,
    timeline,
)
from incident_demo.incidents import Incidents
from incident_demo.kube import Kubectl
from incident_demo.stack import COMMANDER, DBA, ONCALL, PORTS, Stack

pytestmark = pytest.mark.cluster


def spec(service: str, summary: str, alert: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "service": service,
        "summary": summary,
        "severity": 2,
        "acknowledgedBy": ONCALL,
        "roles": {"incidentCommander": COMMANDER, "technicalLead": ONCALL},
    }
    if alert:
        found["source"] = {"kind": "Alertmanager", "alertName": alert}
    return found


def resumed(status: dict[str, Any]) -> list[str]:
    """The steps run again after a kill, in order."""
    return [
        entry["message"].split(" ", 1)[0]
        for entry in status.get("timeline", [])
        if entry["reason"] == "StepResumed"
    ]


def updates(receiver: Receiver, uid: str) -> set[int]:
    return {int(r["key"].rsplit("/", 1)[1]) for r in receiver.of_kind("Update") if uid in r["key"]}


def update_resent_after_kill(operator: LocalOperator, receiver: Receiver, uid: str) -> None:
    """A kill once the next update was accepted by the channel and before status records it:
    the new process sends it again under its number, and numbers the next one +1."""
    operator.stop()
    operator.crash_through("delivered:Update")
    crashed = max(updates(receiver, uid))
    operator.start()
    eventually(
        lambda: crashed + 1 in updates(receiver, uid),
        timeout=60,
        what=f"update #{crashed + 1} after the kill",
    )
    copies = [r for r in receiver.of_kind("Update") if r["key"] == f"{uid}/Update/{crashed}"]
    assert len(copies) == 2, copies


@pytest.mark.timeout(600)
def test_dashboard_outage(
    stack: Stack,
    incidents: Incidents,
    kube: Kubectl,
    operator: LocalOperator,
    receiver: Receiver,
) -> None:
    """Nine kills over the whole runbook, one of them mid-step and one with an update on the
    wire; the restart (not idempotent) is killed only once its result is committed."""
    operator.start(crash_at="delivered:Initial")
    apply_runbooks(stack, {"dashboard-outage": {"settle": {"action": {"duration": "6s"}}}})
    before = generations(kube, "dashboard")
    stack.kill_server("dashboard")
    eventually(lambda: stack.health() == 0, what="the dashboard's server gone")
    name = unique("kill-dashboard")
    incidents.open(
        name, spec("dashboard", "Dashboard not loading: /health failing"), ONCALL, E2E_LABEL
    )
    operator.wait_crashed()
    operator.crash_through("running:health-endpoint", "acted:warning-events", "recorded:restart")
    operator.start()
    eventually(
        lambda: incidents.steps(name).get("settle", {}).get("phase") == "Running",
        timeout=120,
        what="settle running",
        describe=lambda: incidents.explain(name),
    )
    operator.kill("mid-step: settle (wait)")
    operator.crash_through("acted:verify", "recorded:verify", "running:monitor-errors")
    operator.start()
    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=180)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    uid = incidents.get(name)["metadata"]["uid"]
    update_resent_after_kill(operator, receiver, uid)

    done = phases(incidents.steps(name))
    assert done["restart"] == done["settle"] == done["verify"] == "Succeeded", done
    assert done["health-endpoint"] == "Failed" and done["monitor-errors"] == "Succeeded", done
    assert done["rollback"] == "Skipped", done
    again = resumed(status)
    killed = ["health-endpoint", "warning-events", "settle", "verify", "monitor-errors"]
    # The Initial goes out while the first steps run: that kill may catch one mid-step too.
    early = again[: len(again) - len(killed)]
    assert again[len(early) :] == killed, timeline(status)
    assert len(early) <= 1 and set(early) <= {"service-status", "error-logs"}, again
    # The restart ran once: one spec change of the Deployment, not two.
    assert generations(kube, "dashboard")["dashboard"] - before["dashboard"] == 1
    assert stack.health() == 200
    counts = check_notifications(receiver.received, uid)
    assert counts["redelivered"] >= 2, counts  # the Initial and the update at their kills
    incidents.resolve(name, COMMANDER, "the dashboard's server was killed")
    assert incidents.wait(name, {"Resolved"}, timeout=60)["phase"] == "Resolved"


def fill_redis(stack: Stack) -> None:
    """Redis at its maxmemory with noeviction: the runbook's memory check fails."""
    stack.redis(
        "EVAL",
        "for i = 1, 3000 do redis.call('SET', 'e2e:cache:' .. i, string.rep('x', 1024)) end",
        "0",
    )
    info = stack.redis("INFO", "memory")
    used = next(line for line in info.splitlines() if line.startswith("used_memory:"))
    stack.redis("CONFIG", "SET", "maxmemory-policy", "noeviction")
    stack.redis("CONFIG", "SET", "maxmemory", str(int(int(used.split(":")[1]) * 0.98)))


def test_redis_flush_interrupted_is_not_repeated(
    stack: Stack,
    incidents: Incidents,
    kube: Kubectl,
    operator: LocalOperator,
    receiver: Receiver,
) -> None:
    """Kills around an approval, then one right after FLUSHDB ran (execInPod, not
    idempotent): it is never run again; the Incident is escalated for a human."""
    operator.start(crash_at="running:memory")
    apply_runbooks(stack)
    fill_redis(stack)
    before = stack.server_identity("redis")
    name = unique("kill-redis")
    with redis_monitor(kube) as monitor:
        incidents.open(
            name, spec("redis", "Cache memory errors", "RedisMemoryHigh"), ONCALL, E2E_LABEL
        )
        operator.wait_crashed()
        operator.crash_through("delivered:Approval")
        uid = incidents.get(name)["metadata"]["uid"]
        operator.start()
        # The approval request goes out again under its number after the kill.
        eventually(
            lambda: len([r for r in receiver.of_kind("Approval") if uid in r["key"]]) >= 2,
            timeout=60,
            what="the approval request delivered again",
        )
        assert incidents.status(name)["phase"] == "AwaitingApproval", incidents.explain(name)
        operator.kill("awaiting approval: flush-cache")
        operator.start(crash_at="acted:flush-cache")
        incidents.approve(name, "flush-cache", COMMANDER)
        operator.wait_crashed()
        operator.start()
        status = incidents.wait(name, {"Escalated", "Monitoring"}, timeout=120)
        assert status["phase"] == "Escalated", incidents.explain(name)
        # Killed again while escalated: the next process sends the next update and still
        # leaves FLUSHDB alone.
        seen = max(updates(receiver, uid), default=0)
        operator.kill("escalated, after the interrupted step")
        operator.start()
        eventually(
            lambda: seen + 1 in updates(receiver, uid),
            timeout=60,
            what=f"update #{seen + 1} from the restarted operator",
        )
        flushes = redis_calls(monitor, "FLUSHDB")
    assert flushes == 1, f"FLUSHDB ran {flushes} times"
    steps = incidents.steps(name)
    assert steps["flush-cache"]["phase"] == "Interrupted", incidents.explain(name)
    assert stack.server_identity("redis") == before  # the runbook stopped: no restart
    status = incidents.status(name)
    assert status["phase"] == "Escalated"
    assert resumed(status) == ["memory"], timeline(status)
    assert reasons(status).count("StepInterrupted") == 1, timeline(status)
    counts = check_notifications(receiver.received, uid)
    assert counts["kinds"].get("Approval") == 1, counts


def test_database_outage(
    stack: Stack,
    incidents: Incidents,
    kube: Kubectl,
    operator: LocalOperator,
    receiver: Receiver,
) -> None:
    """Six kills over a PostgreSQL outage, one right after the restart's result was
    committed: the StatefulSet is restarted once."""
    operator.start(crash_at="running:service-status")
    apply_runbooks(stack)
    before = generations(kube, "postgres")
    identity = stack.server_identity("postgres")
    stack.kill_server("postgres")
    pg_down = ("pg_isready", "-h", "127.0.0.1", "-p", str(PORTS["postgres"]))
    eventually(lambda: stack.exec("postgres", *pg_down).returncode != 0, what="PostgreSQL down")
    name = unique("kill-db")
    incidents.open(
        name, spec("postgres", "Cannot connect to database", "PostgresDown"), ONCALL, E2E_LABEL
    )
    operator.wait_crashed()
    operator.crash_through(
        "recorded:connectivity",
        "acted:disk-usage",
        "recorded:restart",
        "running:verify",
        "acted:verify-locks",
    )
    operator.start()

    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=180)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    done = phases(incidents.steps(name))
    assert done["connectivity"] == "Failed", done
    assert done["restart"] == done["verify"] == done["verify-locks"] == "Succeeded", done
    assert resumed(status) == ["service-status", "disk-usage", "verify", "verify-locks"], timeline(
        status
    )
    assert generations(kube, "postgres")["postgres"] - before["postgres"] == 1
    assert stack.server_identity("postgres") != identity
    check_notifications(receiver.received, incidents.get(name)["metadata"]["uid"])
    incidents.resolve(name, DBA, "the postmaster was killed")
    assert incidents.wait(name, {"Resolved"}, timeout=60)["phase"] == "Resolved"
