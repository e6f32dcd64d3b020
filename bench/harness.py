"""What every benchmark shares: the cluster, a namespace watched as installed, the operator
(or a floor) as a process, and the figures read from /proc and from the API server.

The operator always authenticates as its ServiceAccount, with the RBAC of ``manifests/``
(``tests/fixtures/identity.py`` applies it and gets a TokenRequest token). Its API requests
are counted by the API server itself: each run installs a FlowSchema that matches exactly
that ServiceAccount's requests in the run's namespace, on the priority level its requests
use anyway (``workload-low``), so ``apiserver_flowcontrol_dispatched_requests_total`` for
that schema counts the operator's requests and nobody else's, even while other people's
tests use the same cluster. (``apiserver_request_total`` has no user or namespace label.)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(
    os.environ.get("INCIDENT_OPERATOR_STATE", Path.home() / ".cache/incident-operator/run")
)
ADMIN_KUBECONFIG = str(STATE / "kubeconfig")
os.environ.setdefault("KUBECONFIG", ADMIN_KUBECONFIG)
sys.path.insert(0, str(ROOT))  # tests.fixtures (the operator's identity) and the bench modules

import kubernetes  # noqa: E402
import urllib3  # noqa: E402
import yaml  # noqa: E402
from tests.fixtures.identity import (  # noqa: E402
    OPERATOR_ACCOUNT,
    OPERATOR_NAMESPACE,
    grant_namespace,
    write_operator_kubeconfig,
)

GROUP, VERSION = "incidents.dev", "v1alpha1"
PYTHON = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")


def kubectl_binary() -> str:
    versions = (ROOT / "hack" / "versions.env").read_text()
    found = re.search(r"^K8S_VERSION=\"?([^\"\n]+)", versions, re.M)
    version = found.group(1) if found else "v1.37.2"
    return str(Path.home() / ".cache" / "incident-operator" / f"k8s-{version}" / "bin" / "kubectl")


os.environ.setdefault("KUBECTL", kubectl_binary())


# --- the machine --------------------------------------------------------------------------


def load() -> str:
    """The load averages (1, 5, 15 min) and the core count, to print beside each figure."""
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return f"load {one} {five} {fifteen} on {os.cpu_count()} cores"


def reproduce(script: str, argv: list[str]) -> str:
    return f".venv/bin/python bench/{script} " + " ".join(shlex.quote(a) for a in argv)


def header(script: str, argv: list[str]) -> None:
    # A stopped bench still removes its namespace, FlowSchemas and processes (finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"# {reproduce(script, argv)}")
    print(f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {load()}", flush=True)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank: what a p99 means for a few hundred values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": max(values) if values else float("nan"),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def ratio(value: float, floor: float) -> float:
    return value / floor if floor > 0 else float("inf")


class ProcStats:
    """RSS and CPU seconds of one process, from /proc; a thread keeps the peak RSS."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _field(self, name: str) -> int:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(name + ":"):
                    return int(line.split()[1])
        return 0

    def rss_mib(self) -> float:
        return self._field("VmRSS") / 1024

    def hwm_mib(self) -> float:
        return max(self._field("VmHWM"), self.peak_kib) / 1024

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_kib = max(self.peak_kib, self._field("VmRSS"))

    def stop(self) -> None:
        self._stop.set()


# --- the cluster --------------------------------------------------------------------------


class Cluster:
    """Admin clients of the local cluster (hack/cluster-up.sh), for the bench's own calls."""

    def __init__(self, kubeconfig: str = ADMIN_KUBECONFIG, pool: int = 64) -> None:
        self.kubeconfig = kubeconfig
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = pool
        # Other people's tests restart the API server now and then: a refused connection is
        # tried again for about a minute (a request that was never sent is safe to repeat).
        configuration.retries = urllib3.util.Retry(
            total=None, connect=30, read=0, status=0, other=0, backoff_factor=0.5, backoff_max=2
        )
        self.api = kubernetes.client.ApiClient(configuration)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.flow = kubernetes.client.FlowcontrolApiserverV1Api(self.api)
        self._identity: str | None = None
        self._counted: dict[str, tuple[int, int, str]] = {}  # schema: (total, offset, start)
        self.restarts = 0

    def operator_kubeconfig(self) -> str:
        """The operator's ServiceAccount's kubeconfig (RBAC of manifests/base applied)."""
        if self._identity is None:
            path = Path(tempfile.mkdtemp(prefix="bench-identity-")) / "operator.kubeconfig"
            self._identity = write_operator_kubeconfig(self.api, path)
        return self._identity

    def metrics(self) -> str:
        return self.get_raw("/metrics").decode()

    def get_raw(self, path: str) -> bytes:
        answer = self.api.call_api("GET", self.api.configuration.host + path)
        answer.read()
        return bytes(answer.data)

    def dispatched(self, flow_schema: str) -> int:
        """Requests the API server dispatched under one FlowSchema (APF's own counter).

        The counter starts again from 0 when the API server restarts: the count carries on
        from the last one read (what was dispatched between that read and the restart is
        lost), and ``restarts`` says it happened."""
        pattern = re.compile(
            r'^apiserver_flowcontrol_dispatched_requests_total\{flow_schema="'
            + re.escape(flow_schema)
            + r'",[^}]*\} (\S+)$',
            re.M,
        )
        text = self.metrics()
        value = sum(int(float(m)) for m in pattern.findall(text))
        started = re.search(r"^process_start_time_seconds (\S+)$", text, re.M)
        since = started.group(1) if started else ""
        last, offset, seen = self._counted.get(flow_schema, (0, 0, since))
        if since != seen or value + offset < last:
            offset, self.restarts = last, self.restarts + 1
            print(f"note: the API server restarted; {flow_schema} counts carry on", flush=True)
        self._counted[flow_schema] = (value + offset, offset, since)
        return value + offset

    def list(self, namespace: str, plural: str = "incidents") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, plural
        )["items"]
        return items

    def create(self, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", **body}
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, body
        )
        return created

    def events(self, namespace: str) -> list[dict[str, Any]]:
        answer = self.get_raw(f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")
        items: list[dict[str, Any]] = json.loads(answer)["items"]
        return items


@contextlib.contextmanager
def bench_namespace(cluster: Cluster, prefix: str = "bench") -> Iterator[str]:
    """A fresh namespace, watched as an install watches one (it is also the operator's own
    namespace: its Lease), with a FlowSchema counting the operator's requests in it."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace({"metadata": {"name": namespace}})
    grant_namespace(cluster.api, namespace)
    schemas = [flow_schema(namespace), flow_schema(namespace, leases=True)]
    for schema in schemas:
        cluster.flow.create_flow_schema(schema)
    try:
        yield namespace
    finally:
        for schema in schemas:
            with contextlib.suppress(kubernetes.client.ApiException):
                cluster.flow.delete_flow_schema(schema["metadata"]["name"])
        with contextlib.suppress(kubernetes.client.ApiException):
            cluster.core.delete_namespace(namespace)


def flow_schema(namespace: str, leases: bool = False) -> dict[str, Any]:
    """Matches the operator's ServiceAccount in ``namespace`` before the ``service-accounts``
    schema would (precedence 9000), on the same priority level: nothing else changes. The
    leader election's Lease requests get a schema of their own (``NAMESPACE-leases``): they
    are the price of HA, the same with 1 or 1,000 Incidents, and counted apart."""
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": f"{namespace}-leases" if leases else namespace},
        "spec": {
            "matchingPrecedence": 7999 if leases else 8000,
            "priorityLevelConfiguration": {"name": "workload-low"},
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "serviceAccount": {
                                "name": OPERATOR_ACCOUNT,
                                "namespace": OPERATOR_NAMESPACE,
                            },
                        }
                    ],
                    "resourceRules": [
                        {
                            "verbs": ["*"],
                            "apiGroups": ["coordination.k8s.io"] if leases else ["*"],
                            "resources": ["leases"] if leases else ["*"],
                            "namespaces": [namespace],
                        }
                    ],
                }
            ],
        },
    }


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def write_policy(directory: Path, policy: dict[str, Any] | None = None) -> Path:
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(policy or {}))
    return path


class Process:
    """A process the bench started: its stats, its ops port, its log."""

    def __init__(self, popen: subprocess.Popen[bytes], log: Path, ops_port: int | None) -> None:
        self.popen = popen
        self.log = log
        self.ops_port = ops_port
        self.stats = ProcStats(popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def ops(self, path: str) -> tuple[int, str]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.ops_port}{path}", timeout=5
            ) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def leading(self) -> bool:
        return self.ops("/readyz")[0] == 200

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        self.stats.stop()
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the bench dies, so no operator outlives a killed run."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)


def spawn(
    command: list[str], env: dict[str, str], log: Path, ops_port: int | None = None
) -> Process:
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=_die_with_parent,
        )
    return Process(popen, log, ops_port)


def operator_env(cluster: Cluster, namespace: str, policy: Path) -> dict[str, str]:
    return {
        "INCIDENT_OPERATOR_KUBECONFIG": cluster.operator_kubeconfig(),
        "INCIDENT_OPERATOR_NAMESPACE": namespace,
        "INCIDENT_OPERATOR_POLICY": str(policy),
        "INCIDENT_OPERATOR_LOG_LEVEL": "warning",
    }


def start_operator(
    cluster: Cluster,
    namespace: str,
    workdir: Path,
    policy: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> Process:
    """The operator as installed runs it: ``python -m incident_operator run -n NS`` with
    leader election, its ServiceAccount's token, /metrics on a loopback port."""
    port = free_port()
    environment = {**operator_env(cluster, namespace, write_policy(workdir, policy)), **(env or {})}
    command = [
        PYTHON,
        "-m",
        "incident_operator",
        "run",
        "-n",
        namespace,
        "--ops-address",
        f"127.0.0.1:{port}",
    ]
    process = spawn(command, environment, workdir / "operator.log", port)
    if wait:
        until(process.leading, 60, "the operator to lead", process)
    return process


def until(
    probe: Callable[[], Any], timeout: float, what: str, process: Process | None = None
) -> Any:
    """Poll ``probe`` until it is truthy; fail (with the process's log) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if process is not None and not process.alive():
            raise RuntimeError(f"process exited while waiting for {what}:\n{process.tail()}")
        if time.monotonic() > deadline:
            tail = process.tail() if process is not None else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{tail}")
        time.sleep(0.2)


# --- Incidents ----------------------------------------------------------------------------


def incident(name: str, severity: int = 3, service: str = "bench") -> dict[str, Any]:
    return {
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"service": service, "summary": f"bench {name}", "severity": severity},
    }


def runbook(name: str, service: str, steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "kind": "Runbook",
        "metadata": {"name": name},
        "spec": {
            "title": f"bench runbook {name}",
            "match": {"services": [service]},
            "rto": {"mitigation": "30m"},
            "diagnosis": steps or [{"name": "look", "action": {"type": "wait", "duration": "1s"}}],
            "recovery": [],
        },
    }


def create_concurrently(
    cluster: Cluster, namespace: str, bodies: list[dict[str, Any]], threads: int = 32
) -> dict[str, tuple[float, float]]:
    """Create every body at once from ``threads`` threads; each name's (sent, answered)
    wall-clock times (the API server's creationTimestamp has only whole seconds)."""
    times: dict[str, tuple[float, float]] = {}

    def one(body: dict[str, Any]) -> None:
        sent = time.time()
        cluster.create(namespace, "incidents", body)
        times[body["metadata"]["name"]] = (sent, time.time())

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(one, body) for body in bodies]:
            future.result()
    return times


def parse_time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def condition_time(item: dict[str, Any], type_: str) -> float | None:
    for condition in (item.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return parse_time(condition["lastTransitionTime"])
    return None


def row(*cells: object) -> None:
    """One Markdown table row."""
    print("| " + " | ".join(str(c) for c in cells) + " |")
