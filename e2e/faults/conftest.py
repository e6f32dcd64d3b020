"""Faults survived: the shipped runbooks on the demo stack while the operator is SIGKILLed,
the API server restarts, and PostgreSQL or Redis restart under a step.

The operator runs here as a local process (the CLI, as the image runs it: leader election,
the operator's ServiceAccount token, a policy file), watching ``incident-demo`` like the
installed one, which is scaled to 0 meanwhile so that only one operator acts, and restored
after the package. The process has a namespace of its own for its Leases (leader, safety
history) and for the Secret of the webhook channel, so every test starts without history.
Restarts take a second or two: a 3 s leader Lease, and no kubelet back-off.

Kill points are exact: ``INCIDENT_OPERATOR_CRASH_AT`` makes the process SIGKILL itself at one
named moment (see ``incident_operator.crashpoints``): a step marked Running, its action
done, its result committed, a notification accepted by the channel. Kills mid-step, while a
step awaits approval and after an escalation are SIGKILLs sent from here. The API server is
restarted by ``control_plane.restart_apiserver``; PostgreSQL and Redis by a rollout restart
of their workloads.

Every process runs with ``INCIDENT_OPERATOR_LOOP_STALL_MS``: each callback that held its
event loop longer than :data:`REPORT_MS` is a line in its log; a test fails when one held
it longer than :data:`STALL_LIMIT_MS`. The session's summary gives the figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from tests.fixtures.cluster import eventually
from tests.fixtures.identity import grant_namespace
from tests.fixtures.operator import LOOPBACK_TARGETS
from tests.fixtures.receiver import Receiver

from incident_demo.kube import Kubectl
from incident_demo.stack import NAMESPACE, OPERATOR_NAMESPACE, PORTS, WORKLOADS, Stack

#: A callback holding the loop longer than this fails the test (the issue's bound).
STALL_LIMIT_MS = 100.0
#: Callbacks longer than this are logged, so the worst one is known even when under the limit.
REPORT_MS = 20
_STALL = re.compile(r"event loop blocked for (?P<ms>[0-9.]+) ms by (?P<what>.*)$")
CHANNEL_SECRET = "fault-hooks"
#: Figures for the summary: kill points and faults per test, the worst stall per test.
KILLS: list[tuple[str, str]] = []
FAULTS: list[tuple[str, str]] = []
WORST_STALLS: list[tuple[str, float, str]] = []
DURATIONS: dict[str, float] = defaultdict(float)


class LocalOperator:
    """One operator process at a time, started, crashed, killed and restarted by a test."""

    def __init__(self, env: dict[str, str], logs: Path, test: str) -> None:
        self.env, self.logs, self.test = env, logs, test
        self.process: subprocess.Popen[bytes] | None = None
        self.crash_at: str | None = None
        self.runs: list[Path] = []

    @property
    def log(self) -> Path:
        return self.runs[-1]

    def start(self, crash_at: str | None = None, **env: str) -> None:
        """A new process; ``crash_at``: the crash point it SIGKILLs itself at."""
        assert not self.alive(), "one operator at a time"
        log = self.logs / f"operator-{len(self.runs)}.log"
        environment = {**self.env, **env}
        if crash_at:
            environment["INCIDENT_OPERATOR_CRASH_AT"] = crash_at
        command = [sys.executable, "-m", "incident_operator", "run", "-n", NAMESPACE]
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [*command, "--ops-address", "127.0.0.1:0"],
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.runs.append(log)
        self.crash_at = crash_at

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 25) -> str:
        if not self.runs:
            return "(no operator started)"
        text = self.log.read_text(errors="replace").splitlines()
        return f"{self.log}:\n" + "\n".join(text[-lines:])

    def wait_crashed(self, timeout: float = 120) -> None:
        """Until the process has SIGKILLed itself at its crash point."""
        point = self.crash_at
        assert self.process is not None and point
        process = self.process
        eventually(
            lambda: process.poll() is not None,
            timeout=timeout,
            interval=0.1,
            what=f"the operator to reach crash point {point}",
            describe=self.tail,
        )
        assert process.returncode == -signal.SIGKILL, self.tail()
        assert f"crash point {point} reached" in self.log.read_text(), self.tail()
        KILLS.append((self.test, point))

    def crash_through(self, *points: str, timeout: float = 120) -> None:
        """A process per crash point, each started after the last one died at its point,
        in the order the runbook reaches them."""
        for point in points:
            self.start(crash_at=point)
            self.wait_crashed(timeout)

    def kill(self, moment: str) -> None:
        """SIGKILL now, from outside; ``moment`` says when, for the summary."""
        assert self.process is not None and self.alive(), f"the operator died:\n{self.tail()}"
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        KILLS.append((self.test, moment))

    def stop(self) -> None:
        """A clean stop (SIGTERM: the Lease is released), as a rolling update does."""
        if self.process is None or not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def stalls(self) -> list[tuple[float, str]]:
        found = []
        for log in self.runs:
            for line in log.read_text(errors="replace").splitlines():
                match = _STALL.search(line)
                if match:
                    found.append((float(match.group("ms")), match.group("what")[:200]))
        return sorted(found, reverse=True)

    def lines(self, text: str) -> list[str]:
        """Log lines of every run so far that contain ``text``."""
        return [
            line
            for log in self.runs
            for line in log.read_text(errors="replace").splitlines()
            if text in line
        ]


@pytest.fixture(scope="package")
def installed_operator_paused(demo_stack: Stack, kube: Kubectl) -> Iterator[None]:
    """The installed operator scaled to 0 for these tests (only one operator may act on
    incident-demo), and back, Ready, after them."""
    deploy = ("-n", OPERATOR_NAMESPACE, "deployment/incident-operator")
    kube.out("scale", *deploy, "--replicas=0")
    selector = "app.kubernetes.io/name=incident-operator"
    eventually(
        lambda: not kube.json("-n", OPERATOR_NAMESPACE, "get", "pods", "-l", selector)["items"],
        timeout=120,
        what="the installed operator's pod gone",
    )
    try:
        yield
    finally:
        kube.out("scale", *deploy, "--replicas=1")
        kube.out("rollout", "status", *deploy, "--timeout=180s")


def operator_policy() -> dict[str, Any]:
    """The local overlay's policy, a webhook channel, and an update every 10 s."""
    return {
        "statusPage": "https://status.company.com",
        "incidentChannel": "#incident-response",
        **LOOPBACK_TARGETS,
        "channels": [
            {
                "name": "ops",
                "kind": "webhook",
                "urlSecretRef": {"name": CHANNEL_SECRET, "key": "url"},
            }
        ],
        "levels": [{"level": level, "updateCadence": "10s"} for level in (1, 2, 3, 4)],
    }


@pytest.fixture
def operator_env(
    installed_operator_paused: None,
    stack: Stack,
    namespace: str,
    api_client: kubernetes.client.ApiClient,
    operator_kubeconfig: str,
    receiver: Receiver,
    tmp_path: Path,
) -> dict[str, str]:
    """The environment of the local operator: its own namespace (Leases, channel Secret)."""
    grant_namespace(api_client, namespace)
    kubernetes.client.CoreV1Api(api_client).create_namespaced_secret(
        namespace, {"metadata": {"name": CHANNEL_SECRET}, "stringData": {"url": receiver.url}}
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(operator_policy()))
    passed = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_OPERATOR_")}
    return {
        **passed,
        "INCIDENT_OPERATOR_KUBECONFIG": operator_kubeconfig,
        "INCIDENT_OPERATOR_NAMESPACE": namespace,
        "INCIDENT_OPERATOR_POLICY": str(policy),
        "INCIDENT_OPERATOR_RETRY_SECONDS": "0.5",
        "INCIDENT_OPERATOR_LEASE_SECONDS": "3",
        "INCIDENT_OPERATOR_RENEW_SECONDS": "0.5",
        "INCIDENT_OPERATOR_RETRY_SECONDS_LEADER": "0.2",
        "INCIDENT_OPERATOR_LOOP_STALL_MS": str(REPORT_MS),
    }


@pytest.fixture
def operator(
    operator_env: dict[str, str],
    kube: Kubectl,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[LocalOperator]:
    """The local operator (not started). After the test, the test's Incidents are deleted
    while an operator runs (it removes their finalizers), and the event loop's worst stall
    is checked."""
    local = LocalOperator(operator_env, tmp_path, request.node.name)
    yield local
    try:
        if not local.alive():
            local.start()
        kube.out("-n", NAMESPACE, "delete", "incidents", "-l", "incidents.dev/e2e=true")
    finally:
        local.stop()
    stalls = local.stalls()
    worst = stalls[0] if stalls else (0.0, f"nothing over {REPORT_MS} ms")
    WORST_STALLS.append((request.node.name, *worst))
    over = [s for s in stalls if s[0] > STALL_LIMIT_MS]
    if over:
        pytest.fail(f"the event loop was blocked over {STALL_LIMIT_MS:g} ms: {over[:5]}")


def fault(request: pytest.FixtureRequest, what: str) -> None:
    """Note a fault the test injected, for the summary."""
    FAULTS.append((request.node.name, what))


# --- the servers' own evidence ---------------------------------------------------------------


def generations(kube: Kubectl, *apps: str) -> dict[str, int]:
    """metadata.generation of each app's workload: every spec change (a restart's template
    stamp, a rollback, a scale) adds one."""
    found = {}
    for app in apps:
        kind, name, _ = WORKLOADS[app]
        found[app] = int(kube.json("-n", NAMESPACE, "get", kind, name)["metadata"]["generation"])
    return found


class Watch:
    """A long-running kubectl whose stdout lines are collected by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process, self.lines = process, list[str]()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.communicate(timeout=30)
        self._thread.join(timeout=30)


@contextlib.contextmanager
def redis_monitor(kube: Kubectl) -> Iterator[Watch]:
    """``redis-cli MONITOR`` in the Redis container: every command the server executes."""
    kind, name, container = WORKLOADS["redis"]
    command = ["redis-cli", "-p", str(PORTS["redis"]), "monitor"]
    target = ("-n", NAMESPACE, "exec", f"{kind}/{name}", "-c", container, "--")
    watch = Watch(kube.popen(*target, *command))
    try:
        eventually(lambda: "OK" in watch.lines, timeout=60, what="redis-cli monitor attached")
        yield watch
    finally:
        watch.close()


def redis_calls(watch: Watch, command: str) -> int:
    """How often the server executed ``command`` (MONITOR lines: ``<time> [db addr] "CMD" ...``)."""
    wanted = f'] "{command.upper()}"'
    return sum(1 for line in watch.lines if wanted in line.upper())


def check_notifications(received: list[dict[str, Any]], uid: str) -> dict[str, Any]:
    """No notification number repeats: one message per key (re-deliveries of a key are
    byte-identical, which its Idempotency-Key lets a receiver drop), the key in the header
    equals the body's, and the updates are numbered 1..n without a gap. Returns counts."""
    mine = [r for r in received if str(r.get("key", "")).startswith(f"{uid}/")]
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in mine:
        assert message["idempotencyKey"] == message["key"], message
        by_key[message["key"]].append(message)
    for key, copies in by_key.items():
        contents = {json.dumps([c["kind"], c["title"], c["text"]]) for c in copies}
        assert len(contents) == 1, f"number {key} used for {len(contents)} messages"
    numbers: dict[str, list[int]] = defaultdict(list)
    for key in by_key:
        _, kind, number = key.rsplit("/", 2)
        numbers[kind].append(int(number))
    updates = sorted(numbers.get("Update", []))
    assert updates == list(range(1, len(updates) + 1)), f"update numbers {updates}"
    assert "Initial" in numbers, f"no initial notification: {sorted(by_key)}"
    return {
        "messages": len(by_key),
        "redelivered": len(mine) - len(by_key),
        "kinds": {kind: len(found) for kind, found in numbers.items()},
    }


def timeline(status: dict[str, Any]) -> list[str]:
    return [f"{e['reason']}: {e['message']}" for e in status.get("timeline", [])]


def reasons(status: dict[str, Any]) -> list[str]:
    return [e["reason"] for e in status.get("timeline", [])]


# --- figures -----------------------------------------------------------------------------------


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "e2e/faults/" in report.nodeid.replace(os.sep, "/"):
        DURATIONS[report.nodeid] += report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not DURATIONS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("faults survived (e2e/faults)")
    write(f"operator SIGKILLs at kill points: {len(KILLS)}")
    for test, point in KILLS:
        write(f"  {test}: {point}")
    write(f"other faults: {len(FAULTS)}")
    for test, what in FAULTS:
        write(f"  {test}: {what}")
    if WORST_STALLS:
        test, ms, what = max(WORST_STALLS, key=lambda s: s[1])
        write(f"worst event-loop stall: {ms:.0f} ms (limit {STALL_LIMIT_MS:g}) in {test}: {what}")
    write(f"time: {sum(DURATIONS.values()):.0f} s for {len(DURATIONS)} tests")
    for nodeid, seconds in DURATIONS.items():
        write(f"  {seconds:6.1f} s  {nodeid}")
