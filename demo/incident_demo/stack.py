"""The playbook's staging stack as real pods, for ``hack/demo.sh`` and the e2e tests.

The stack is ``manifests/demo`` (dashboard, PostgreSQL, Redis, Prometheus on the node's host
network, loopback ports :data:`PORTS`), its runbooks are ``manifests/demo/runbooks`` (the
shipped ones, localized), the operator is ``manifests/overlays/local``. This module installs
them, looks at the servers from inside their containers (``kubectl exec``), and breaks them in
the ways the playbook's runbooks are for. Nothing here talks to the servers directly, so the
same code runs against any cluster that can run the stack.

The manifests come from an incident-operator checkout: the one named by
``$INCIDENT_DEMO_ROOT``, else the one this package sits in (``demo/incident_demo/``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from . import DEFAULT_STATE_DIR, STATE_ENV
from .kube import Kubectl, KubectlError, wait_until

ROOT_ENV = "INCIDENT_DEMO_ROOT"
NAMESPACE = "incident-demo"
OPERATOR_NAMESPACE = "incident-operator"
#: The loopback ports of the stack on its node (manifests/demo).
PORTS = {"dashboard": 19000, "postgres": 15432, "redis": 16379, "prometheus": 19090}
#: app -> (workload kind, name, container)
WORKLOADS = {
    "postgres": ("statefulset", "postgres", "postgres"),
    "redis": ("deployment", "redis", "redis"),
    "dashboard": ("deployment", "dashboard", "dashboard"),
    "prometheus": ("deployment", "prometheus", "prometheus"),
}
#: The demo's people (manifests/demo/people.yaml).
ONCALL, COMMANDER, DBA = "alice", "bob", "dana"

#: Runs in the dashboard container: one HTTP request to the local server, with its API key.
HTTP_SCRIPT = """
import json, os, sys, urllib.error, urllib.request
method, path = sys.argv[1], sys.argv[2]
body = sys.argv[3].encode() if len(sys.argv) > 3 else None
url = "http://127.0.0.1:%s%s" % (os.environ["PORT"], path)
headers = {"X-API-Key": os.environ["API_KEY"], "Content-Type": "application/json"}
request = urllib.request.Request(url, data=body, method=method, headers=headers)
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        code, text = answer.status, answer.read().decode()
except urllib.error.HTTPError as error:
    code, text = error.code, error.read().decode()
except OSError as error:
    code, text = 0, str(error)
print(json.dumps({"status": code, "body": text}))
"""

#: Runs in the dashboard container: requests to ``path`` from 4 threads for ``seconds``.
TRAFFIC_SCRIPT = """
import os, sys, threading, time, urllib.request
url = "http://127.0.0.1:%s%s" % (os.environ["PORT"], sys.argv[1])
end = time.time() + float(sys.argv[2])
def loop():
    while time.time() < end:
        request = urllib.request.Request(url, headers={"X-API-Key": os.environ["API_KEY"]})
        try:
            urllib.request.urlopen(request, timeout=10).read()
        except Exception:
            time.sleep(0.1)
        time.sleep(0.02)
for _ in range(4):
    threading.Thread(target=loop).start()
"""


def repository_root(explicit: Path | None = None) -> Path:
    """The checkout whose ``manifests/`` the demo applies: ``explicit``, else
    ``$INCIDENT_DEMO_ROOT``, else the one around this package; an error when it is none."""
    configured = explicit or os.environ.get(ROOT_ENV)
    root = Path(configured).expanduser() if configured else Path(__file__).resolve().parents[2]
    if not (root / "manifests" / "demo" / "kustomization.yaml").is_file():
        raise FileNotFoundError(
            f"{root} is not an incident-operator checkout (no manifests/demo/kustomization.yaml):"
            f" point {ROOT_ENV} (or the story's --root) at one"
        )
    return root.resolve()


class Stack:
    """The demo stack in its namespace, driven through kubectl."""

    def __init__(
        self, kubectl: Kubectl, root: Path | None = None, namespace: str = NAMESPACE
    ) -> None:
        self.k, self.namespace = kubectl, namespace
        self.root = repository_root(root)
        self.manifests = self.root / "manifests"

    # --- one user of the stack at a time ---------------------------------------------------
    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the stack against other demos and e2e runs on this machine (fixed ports, one
        namespace); waits for them."""
        state = Path(os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR).expanduser()
        state.mkdir(parents=True, exist_ok=True)
        with open(state / ".incident-demo.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # --- install ---------------------------------------------------------------------------
    def install_operator(self, restart: bool = False, timeout: float = 180) -> str:
        """``kubectl apply -k manifests/overlays/local``; ``restart`` rolls the pod so it runs
        the image now on the node. Returns kubectl's output."""
        applied = self.k.out("apply", "-k", str(self.manifests / "overlays" / "local"))
        deploy = ("-n", OPERATOR_NAMESPACE, "deployment/incident-operator")
        if restart:
            self.k.out("rollout", "restart", *deploy)
        self.k.out("rollout", "status", *deploy, f"--timeout={int(timeout)}s")
        return applied

    def forget_remediations(self) -> list[str]:
        """Delete the operator's safety-gate Leases (its remediation history per target:
        cooldowns, attempt counts), so earlier demos and tests do not count against this one.
        Returns the Leases deleted."""
        leases = self.k.json("-n", OPERATOR_NAMESPACE, "get", "leases")["items"]
        names = [
            lease["metadata"]["name"]
            for lease in leases
            if lease["metadata"]["name"].startswith("incident-operator-")
        ]
        if names:
            self.k.out("-n", OPERATOR_NAMESPACE, "delete", "lease", *names, "--ignore-not-found")
        return names

    def ensure_secrets(self) -> list[str]:
        """The Secrets the stack and runbooks read, with random values, unless they exist
        (PostgreSQL keeps the password it was initialized with). Returns those created."""
        wanted = {
            "postgres-credentials": {
                "username": "inventory",
                "password": secrets.token_urlsafe(24),
                "database": "retail",
            },
            "dashboard-api-key": {"api-key": secrets.token_hex(16)},
        }
        created = []
        for name, data in wanted.items():
            if self.k.get(self.namespace, "secret", name) is None:
                literals = [f"--from-literal={key}={value}" for key, value in data.items()]
                self.k.out("-n", self.namespace, "create", "secret", "generic", name, *literals)
                created.append(name)
        return created

    def apply(self) -> str:
        """``kubectl apply -k manifests/demo``: also puts back what a test or runbook changed
        in the specs (image, replicas, resources)."""
        return self.k.out("apply", "-k", str(self.manifests / "demo"))

    def rollout(self, verb: str, app: str, timeout: float = 180) -> str:
        """``kubectl rollout <verb>`` of ``app``'s workload (status waits up to ``timeout``)."""
        kind, name, _ = WORKLOADS[app]
        wait = [f"--timeout={int(timeout)}s"] if verb == "status" else []
        return self.k.out("-n", self.namespace, "rollout", verb, f"{kind}/{name}", *wait)

    def wait_ready(self, timeout: float = 180) -> None:
        for app in WORKLOADS:
            self.rollout("status", app, timeout)

    def runbooks(self) -> list[dict[str, Any]]:
        """The shipped runbooks as localized by ``manifests/demo/runbooks``."""
        text = self.k.out("kustomize", str(self.manifests / "demo" / "runbooks"))
        return [doc for doc in yaml.safe_load_all(text) if doc]

    def apply_docs(self, docs: list[dict[str, Any]]) -> str:
        return self.k.out("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))

    def wait_runbooks_checked(self, names: list[str], timeout: float = 60) -> None:
        """Until the operator has checked the current generation of each Runbook (and so
        knows it when an Incident comes); fails when one is invalid."""

        def checked() -> bool:
            items = self.k.json("-n", self.namespace, "get", "runbooks")["items"]
            seen = {rb["metadata"]["name"]: rb for rb in items}
            for name in names:
                status = seen[name].get("status") or {}
                if status.get("observedGeneration") != seen[name]["metadata"]["generation"]:
                    return False
                if not status.get("valid"):
                    raise AssertionError(f"runbook {name} invalid: {status.get('message')}")
            return True

        wait_until(checked, timeout, f"the operator checking runbooks {', '.join(names)}")

    # --- look ------------------------------------------------------------------------------
    def pod(self, app: str) -> dict[str, Any] | None:
        """The newest pod of ``app`` that is not being deleted."""
        pods = self.k.json("-n", self.namespace, "get", "pods", "-l", f"app={app}")["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        live.sort(key=lambda p: p["metadata"]["creationTimestamp"])
        return live[-1] if live else None

    def container(self, app: str) -> tuple[str, str] | None:
        """(container ID, start time) of ``app``'s server container as the kubelet reports
        it, or None while it does not run."""
        pod = self.pod(app)
        name = WORKLOADS[app][2]
        for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
            running = (status.get("state") or {}).get("running")
            if status["name"] == name and running and status.get("containerID"):
                return str(status["containerID"]), str(running["startedAt"])
        return None

    def ready(self, app: str) -> bool:
        """Whether ``app``'s newest pod is Ready (its readiness probe passes)."""
        conditions = ((self.pod(app) or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def exec(
        self, app: str, *command: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        kind, name, container = WORKLOADS[app]
        return self.k.exec(self.namespace, f"{kind}/{name}", container, command, timeout)

    def http(self, method: str, path: str, body: Any = None) -> tuple[int, str] | None:
        """One request to the dashboard from inside its container: (status, body), status 0
        when the server does not answer; None when the container cannot be reached."""
        args = [method, path] + ([json.dumps(body)] if body is not None else [])
        done = self.exec("dashboard", "python3", "-c", HTTP_SCRIPT, *args)
        if done.returncode != 0:
            return None
        answer = json.loads(done.stdout)
        return int(answer["status"]), str(answer["body"])

    def health(self) -> int | None:
        """The dashboard's /health status (0: no answer, None: no container)."""
        answer = self.http("GET", "/health")
        return answer[0] if answer else None

    def prometheus(self, query: str) -> float | None:
        """The largest value of an instant query, asked with promtool in the Prometheus pod."""
        url = f"http://127.0.0.1:{PORTS['prometheus']}"
        done = self.exec("prometheus", "promtool", "query", "instant", "-o", "json", url, query)
        if done.returncode != 0:
            return None
        values = [float(sample["value"][1]) for sample in json.loads(done.stdout or "[]")]
        finite = [v for v in values if v == v and v not in (float("inf"), float("-inf"))]
        return max(finite) if finite else None

    def psql(self, sql: str) -> str:
        """``psql -c`` inside the PostgreSQL container, as the playbook's ``docker exec``."""
        done = self.exec("postgres", "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql)
        if done.returncode != 0:
            raise KubectlError(("exec", "psql"), done.returncode, done.stderr)
        return done.stdout.strip()

    def redis(self, *args: str) -> str:
        """``redis-cli`` inside the Redis container."""
        done = self.exec("redis", "redis-cli", "-p", str(PORTS["redis"]), *args)
        if done.returncode != 0:
            raise KubectlError(("exec", "redis-cli"), done.returncode, done.stderr)
        return done.stdout.strip()

    def server_identity(self, app: str) -> str:
        """What changes only when the server itself restarts: PostgreSQL's postmaster start
        time, Redis's run_id, the dashboard's process start time; for Prometheus (PID 1 of its
        container) its container."""
        if app == "postgres":
            return self.psql("SELECT pg_postmaster_start_time()")
        if app == "redis":
            info = self.redis("INFO", "server")
            return next(line for line in info.splitlines() if line.startswith("run_id:"))
        if app == "prometheus":
            container = self.container(app)
            if container is None:
                raise KubectlError(("get", "pod"), 1, "prometheus is not running")
            return " ".join(container)
        answer = self.http("GET", "/metrics")
        if not answer or answer[0] != 200:
            raise KubectlError(("exec", "dashboard /metrics"), 1, str(answer))
        return next(
            line for line in answer[1].splitlines() if line.startswith("process_start_time")
        )

    # --- break -----------------------------------------------------------------------------
    def kill_server(self, app: str) -> None:
        """SIGKILL to the server process inside its container (run-server keeps the container
        up without it: the outage lasts until the workload is restarted)."""
        done = self.exec(app, "sh", "-c", 'kill -KILL "$(cat /tmp/server.pid)"')
        if done.returncode != 0:
            raise KubectlError(("exec", "kill"), done.returncode, done.stderr)

    def inject(self, mode: str, **params: Any) -> None:
        """A runtime fault through the dashboard's /admin/fault (errors, latency, crash)."""
        answer = self.http("POST", "/admin/fault", {"mode": mode, **params})
        if answer is None or answer[0] not in (200, 202):
            raise RuntimeError(f"/admin/fault {mode}: {answer}")

    def traffic(self, path: str, seconds: float = 180) -> subprocess.Popen[str]:
        """Requests to the dashboard from inside its pod (4 threads) for ``seconds``, so
        Prometheus has rates. Ends by itself, or with the pod."""
        kind, name, container = WORKLOADS["dashboard"]
        return self.k.popen(
            "-n", self.namespace, "exec", f"{kind}/{name}", "-c", container, "--",
            "python3", "-c", TRAFFIC_SCRIPT, path, str(seconds),
        )  # fmt: skip

    def backup(self, name: str, timeout: float = 120) -> str:
        """A backup now, from the CronJob postgres-backup (as an operator would take one);
        returns the Job's log."""
        ns = ("-n", self.namespace)
        self.k.out(*ns, "create", "job", "--from=cronjob/postgres-backup", name)
        self.k.out(
            *ns, "wait", "--for=condition=complete", f"job/{name}", f"--timeout={int(timeout)}s"
        )
        return self.k.out(*ns, "logs", f"job/{name}", "-c", "pg-dump")

    # --- heal ------------------------------------------------------------------------------
    def heal(self, timeout: float = 180) -> list[str]:
        """Back to a healthy baseline: the manifests' specs, every server running, no runtime
        fault, Redis without a memory limit. Returns what it had to restart."""
        self.apply()
        restarted = []
        for app in ("postgres", "redis", "dashboard"):
            alive = self.exec(app, "sh", "-c", 'kill -0 "$(cat /tmp/server.pid)"')
            # A running container without its server (run-server waits for a restart).
            if alive.returncode != 0 and self.container(app) is not None:
                self.rollout("restart", app)
                restarted.append(app)
        self.wait_ready(timeout)
        fault = self.http("GET", "/admin/fault")
        if fault is None or fault[0] != 200 or json.loads(fault[1]).get("mode") != "none":
            self.rollout("restart", "dashboard")
            self.rollout("status", "dashboard", timeout)
            restarted.append("dashboard")
        self.redis("CONFIG", "SET", "maxmemory", "0")
        wait_until(lambda: self.health() == 200, timeout, "the dashboard's /health 200")
        return restarted
