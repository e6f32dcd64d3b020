"""Two operator processes, one leader: kill the leader at several points of a runbook, and
nothing runs twice and no notification goes out twice (the servers' own counters say so).

The runbook counts the keys (DBSIZE), flushes Redis (FLUSHDB) and counts again, with pauses
between; Redis's INFO commandstats is the witness of what ran. The leader is killed with
SIGKILL while each pause runs; the standby takes over when the Lease expires.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from incident_operator.models.runbook import RedisTarget
from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import LOOPBACK_TARGETS, operator_process
from tests.fixtures.receiver import Receiver
from tests.fixtures.services import DictSecretReader, RedisFixture

pytestmark = pytest.mark.cluster
PAUSES = ("pause-1", "pause-2", "pause-3")
LEASE = "incident-operator-leader"


def _runbook(redis: RedisFixture) -> dict[str, Any]:
    pause = {"type": "wait", "duration": "3s"}
    return {
        "kind": "Runbook",
        "metadata": {"name": "flush"},
        "spec": {
            "title": "Count, flush, count",
            "match": {"services": ["cache"]},
            "rto": {"mitigation": "5m"},
            "targets": {"redis": {"host": redis.target.host, "port": redis.target.port, "db": 13}},
            "diagnosis": [
                {"name": "count-1", "action": {"type": "redisDbSize"}},
                {"name": "pause-1", "action": pause},
            ],
            "recovery": [
                {"name": "flush", "action": {"type": "redisFlushDb"}},
                {"name": "pause-2", "action": pause},
                {"name": "count-2", "action": {"type": "redisDbSize"}},
                {"name": "pause-3", "action": pause},
            ],
        },
    }


@pytest.fixture
def redis() -> Iterator[RedisFixture]:
    """A Redis of this test's own: INFO commandstats counts every client's commands."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = RedisTarget(host="127.0.0.1", port=port, db=13)
    fixture = RedisFixture(target, DictSecretReader(), {})
    try:
        eventually(lambda: fixture.client().ping(), what="redis-server to answer")
        yield fixture
    finally:
        server.terminate()
        server.wait(timeout=30)


def _calls(redis: RedisFixture, command: str) -> int:
    stats = redis.client().info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def _leader_pid(api: kubernetes.client.CoordinationV1Api, namespace: str) -> int | None:
    with contextlib.suppress(kubernetes.client.ApiException):
        holder = api.read_namespaced_lease(LEASE, namespace).spec.holder_identity
        if holder:
            return int(holder.rsplit("-", 2)[1])
    return None


def _step(objects: Objects, name: str) -> dict[str, Any]:
    steps = objects.status("incidents", "cache").get("steps", [])
    return next((s for s in steps if s["name"] == name), {})


@pytest.fixture
def policy_env(
    tmp_path: Path, receiver: Receiver, namespace: str, api_client: kubernetes.client.ApiClient
) -> dict[str, str]:
    kubernetes.client.CoreV1Api(api_client).create_namespaced_secret(
        namespace, {"metadata": {"name": "hooks"}, "stringData": {"url": receiver.url}}
    )
    policy = {
        **LOOPBACK_TARGETS,
        "channels": [
            {"name": "ops", "kind": "webhook", "urlSecretRef": {"name": "hooks", "key": "url"}}
        ],
        "levels": [{"level": 3, "updateCadence": "4s"}],
    }
    path = tmp_path / "ha-policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return {"INCIDENT_OPERATOR_POLICY": str(path)}


def test_a_killed_leader_hands_over_without_repeating_anything(
    objects: Objects,
    operator_identity: str,
    namespace: str,
    tmp_path: Path,
    redis: RedisFixture,
    receiver: Receiver,
    policy_env: dict[str, str],
    api_client: kubernetes.client.ApiClient,
) -> None:
    redis.client().set("stale", "1")
    redis.client().config_resetstat()
    leases = kubernetes.client.CoordinationV1Api(api_client)
    objects.create("runbooks", _runbook(redis))
    handovers: list[float] = []
    with contextlib.ExitStack() as stack:

        def start() -> Any:
            return stack.enter_context(operator_process(namespace, tmp_path, env=policy_env))

        processes = {p.pid: p for p in (start(), start())}
        eventually(lambda: _leader_pid(leases, namespace) in processes, what="a leader")
        objects.create(
            "incidents",
            {
                "kind": "Incident",
                "metadata": {"name": "cache"},
                "spec": {
                    "service": "cache",
                    "summary": "cache full",
                    "severity": 3,
                    "acknowledgedBy": "alice",
                },
            },
        )
        for pause in PAUSES:
            eventually(
                lambda p=pause: _step(objects, p).get("phase") == "Running",
                timeout=60,
                what=f"{pause} to run",
            )
            leader = _leader_pid(leases, namespace)
            assert leader in processes
            killed_at = time.monotonic()
            os.kill(leader, signal.SIGKILL)
            processes.pop(leader).wait(timeout=30)
            eventually(
                lambda: _leader_pid(leases, namespace) in processes,
                timeout=30,
                interval=0.1,
                what="the standby to lead",
            )
            handovers.append(time.monotonic() - killed_at)
            new = start()
            processes[new.pid] = new
        final = eventually(
            lambda: (s := objects.status("incidents", "cache")).get("phase") == "Monitoring" and s,
            timeout=120,
            what="the runbook to finish",
        )
    print(f"handover after SIGKILL: {', '.join(f'{h:.1f}s' for h in handovers)}")
    assert {s["name"]: s["phase"] for s in final["steps"]} == {
        "count-1": "Succeeded",
        "pause-1": "Succeeded",
        "flush": "Succeeded",
        "pause-2": "Succeeded",
        "count-2": "Succeeded",
        "pause-3": "Succeeded",
    }
    # Each count is one DBSIZE; the flush counts the keys before and after it: 2 + 2.
    story = "\n".join(f"{e['time']} {e['reason']}: {e['message']}" for e in final["timeline"])
    assert _calls(redis, "dbsize") == 4, f"a count ran twice or not at all:\n{story}"
    assert _calls(redis, "flushdb") == 1, "the flush ran twice or not at all"
    keys = receiver.keys()
    assert keys and len(keys) == len(set(keys)), f"a notification went out twice: {keys}"
