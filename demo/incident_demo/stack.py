"""The local demo stack in one place: manifests, secrets, the bridge, local runbooks.

Used by the e2e tests and by ``python -m incident_demo.story``. It applies the demo
manifests into a namespace, fills the Secrets with the real local credentials, runs the
data-plane bridge, and rewrites the shipped runbooks' targets (cluster DNS names) to the
loopback addresses where the real servers listen on this machine.

The manifests, runbooks and CRDs come from an incident-operator checkout: the one named by
``$INCIDENT_DEMO_ROOT``, else the one this package sits in (``demo/incident_demo/``).
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from . import _proc
from .dashboard import init_inventory
from .dataplane import parse_env_file, state_root

ROOT_ENV = "INCIDENT_DEMO_ROOT"


def repository_root(explicit: Path | None = None) -> Path:
    """The checkout whose ``crds/`` and ``manifests/`` the demo applies: ``explicit``, else
    ``$INCIDENT_DEMO_ROOT``, else the one around this package; an error when it is none."""
    configured = explicit or os.environ.get(ROOT_ENV)
    root = Path(configured).expanduser() if configured else Path(__file__).resolve().parents[2]
    if not ((root / "crds").is_dir() and (root / "manifests" / "demo").is_dir()):
        raise FileNotFoundError(
            f"{root} is not an incident-operator checkout (no crds/ and manifests/demo/): "
            f"point {ROOT_ENV} (or the story's --root) at one"
        )
    return root.resolve()


def load_documents(path: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for file in sorted(path.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(file.read_text()) if d]
    return docs


class LocalStack:
    """The demo workloads of one namespace, made real on this machine."""

    def __init__(
        self,
        kubeconfig: str,
        namespace: str,
        kubectl: str = "kubectl",
        settle: str = "2s",
        root: Path | None = None,
    ) -> None:
        self.kubeconfig, self.namespace, self.kubectl = kubeconfig, namespace, kubectl
        self.root = repository_root(root)
        self.manifests = self.root / "manifests"
        self.settle = settle
        self.services = parse_env_file((state_root() / "services.env").read_text())
        self.api_key = secrets.token_hex(16)
        self.dashboard_port = _proc.free_port()
        self.prometheus_port = _proc.free_port()
        self.state_dir = state_root() / "dataplane-stacks"
        self.bridge: subprocess.Popen[bytes] | None = None

    # --- cluster objects ------------------------------------------------------------------
    def kubectl_run(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [self.kubectl, "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def apply(self, docs: list[dict[str, Any]]) -> None:
        self.kubectl_run("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))

    def workloads(self) -> list[dict[str, Any]]:
        docs = []
        for doc in load_documents(self.manifests / "demo"):
            if doc["kind"] == "Namespace":
                continue
            doc = copy.deepcopy(doc)
            doc["metadata"]["namespace"] = self.namespace
            if doc["kind"] == "Secret" and doc["metadata"]["name"] == "dashboard-api-key":
                doc["stringData"] = {"api-key": self.api_key}
            if doc["kind"] == "Secret" and doc["metadata"]["name"] == "postgres-credentials":
                doc["stringData"] = {
                    "username": self.services["PGUSER"],
                    "password": self.services["PGPASSWORD"],
                    "database": self.services["PGDATABASE"],
                }
            docs.append(doc)
        return docs

    def runbooks(self) -> list[dict[str, Any]]:
        return [self.localize(doc) for doc in load_documents(self.manifests / "runbooks")]

    def localize(self, runbook: dict[str, Any]) -> dict[str, Any]:
        """A shipped runbook pointed at the loopback servers; the steps stay as shipped."""
        doc = copy.deepcopy(runbook)
        doc["metadata"]["namespace"] = self.namespace
        targets = doc["spec"].get("targets", {})
        if "http" in targets:
            targets["http"]["baseUrl"] = self.dashboard_url
        if "prometheus" in targets:
            targets["prometheus"]["url"] = self.prometheus_url
        if "postgres" in targets:
            targets["postgres"].update(
                host=self.services["PGHOST"], port=int(self.services["PGPORT"])
            )
        if "redis" in targets:
            targets["redis"].update(
                host=self.services["REDIS_HOST"], port=int(self.services["REDIS_PORT"])
            )
        for stage in ("diagnosis", "recovery"):
            for step in doc["spec"].get(stage, []):
                action = step["action"]
                if action["type"] == "wait":
                    action["duration"] = self.settle
                if action["type"] == "execInPod" and action["command"][:1] == ["redis-cli"]:
                    command = action["command"]
                    if "-p" in command:
                        command[command.index("-p") + 1] = self.services["REDIS_PORT"]
        return doc

    # --- local processes ------------------------------------------------------------------
    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def bridge_state(self, app: str) -> dict[str, Any]:
        path = self.state_dir / self.namespace / f"{app}.json"
        result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        return result

    def start(self, timeout: float = 120) -> LocalStack:
        conninfo = (
            f"host={self.services['PGHOST']} port={self.services['PGPORT']} "
            f"dbname={self.services['PGDATABASE']} user={self.services['PGUSER']} "
            f"password={self.services['PGPASSWORD']}"
        )
        init_inventory(conninfo)
        self.apply(self.workloads())
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        self.bridge = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "incident_demo.dataplane",
                "--kubeconfig",
                self.kubeconfig,
                "--namespace",
                self.namespace,
                "--state-dir",
                str(self.state_dir),
                "--dashboard-port",
                str(self.dashboard_port),
                "--prometheus-port",
                str(self.prometheus_port),
                "--scrape-interval",
                "1s",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.wait_healthy(timeout)
        _proc.wait_http(f"{self.prometheus_url}/-/ready", timeout=timeout)
        return self

    def dashboard_health(self) -> int | None:
        try:
            return httpx.get(f"{self.dashboard_url}/health", timeout=2).status_code
        except httpx.HTTPError:
            return None

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.dashboard_health() != 200:
            if self.bridge is not None and self.bridge.poll() is not None:
                raise RuntimeError("the data-plane bridge exited")
            if time.monotonic() > deadline:
                raise TimeoutError(f"dashboard at {self.dashboard_url} not healthy")
            time.sleep(0.3)

    def inject(self, mode: str, **params: Any) -> None:
        """Provoke a failure: errors, latency or crash (see the dashboard's /admin/fault)."""
        httpx.post(
            f"{self.dashboard_url}/admin/fault",
            json={"mode": mode, **params},
            headers={"X-API-Key": self.api_key},
            timeout=5,
        ).raise_for_status()

    def stop(self) -> None:
        if self.bridge is not None and self.bridge.poll() is None:
            self.bridge.terminate()
            try:
                self.bridge.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.bridge.kill()
                self.bridge.wait()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
