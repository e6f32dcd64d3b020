"""A real Prometheus for the demo: scrape config rendering and a subprocess runner.

Uses the ``prometheus`` binary of the Debian package (``apt-get install -y prometheus``); no
system service is involved: :class:`PrometheusServer` runs its own instance with a temporary
TSDB on a loopback port and waits until ``/-/ready``.

    cfg = render_scrape_config("127.0.0.1:9000", credentials_file=key_file, scrape_interval="1s")
    with PrometheusServer(cfg) as prom:
        prom.query('sum(rate(http_requests_total{code=~"5.."}[30s]))')
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from . import _proc

DEFAULT_BINARY = "prometheus"
DEFAULT_PORT = 9090


def find_binary(binary: str | None = None) -> str | None:
    """Path of the prometheus binary (env PROMETHEUS_BIN, then PATH), or None."""
    candidate = binary or os.environ.get("PROMETHEUS_BIN") or DEFAULT_BINARY
    return shutil.which(candidate)


def render_scrape_config(
    targets: str | Sequence[str],
    *,
    job: str = "dashboard",
    scrape_interval: str = "1s",
    evaluation_interval: str | None = None,
    api_key: str | None = None,
    credentials_file: str | os.PathLike[str] | None = None,
    labels: Mapping[str, str] | None = None,
    metrics_path: str = "/metrics",
) -> str:
    """A prometheus.yml that scrapes the dashboard at ``targets`` (``host:port``).

    The dashboard accepts its API key as ``Authorization: Bearer``, which Prometheus sends from
    ``credentials_file`` (read on every scrape, so the key can rotate) or inline ``api_key``.
    """
    if isinstance(targets, str):
        targets = [targets]
    if api_key and credentials_file:
        raise ValueError("give api_key or credentials_file, not both")
    job_cfg: dict[str, Any] = {
        "job_name": job,
        "scrape_interval": scrape_interval,
        "scrape_timeout": scrape_interval,
        "metrics_path": metrics_path,
        "static_configs": [{"targets": list(targets), "labels": dict(labels or {})}],
    }
    if not job_cfg["static_configs"][0]["labels"]:
        del job_cfg["static_configs"][0]["labels"]
    if credentials_file:
        job_cfg["authorization"] = {"type": "Bearer", "credentials_file": str(credentials_file)}
    elif api_key:
        job_cfg["authorization"] = {"type": "Bearer", "credentials": api_key}
    cfg = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval or scrape_interval,
        },
        "scrape_configs": [job_cfg],
    }
    return yaml.safe_dump(cfg, sort_keys=False)


class PrometheusServer:
    """Runs ``prometheus`` as a child process with its own config and temporary TSDB."""

    def __init__(
        self,
        config: str,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        binary: str | None = None,
        workdir: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        found = find_binary(binary)
        if found is None:
            raise FileNotFoundError(
                "prometheus binary not found (apt-get install -y prometheus, or PROMETHEUS_BIN)"
            )
        self.binary = found
        self.config = config
        self.host = host
        self.port = port or _proc.free_port()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="prom-demo-"))
        self.log_path = Path(log_path) if log_path else self.workdir / "prometheus.log"
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    def argv(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--storage.tsdb.retention.time=2h",
            "--web.enable-lifecycle",
            "--log.level=warn",
            *self.extra_args,
        ]

    def start(self, timeout: float = 60.0) -> PrometheusServer:
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                return self
            self.workdir.mkdir(parents=True, exist_ok=True)
            _proc.write_atomic(self.config_path, self.config, 0o600)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as logf:
                self.proc = _proc.spawn(
                    self.argv(), cwd=self.workdir, stdout=logf, stderr=subprocess.STDOUT
                )
        try:
            _proc.wait_http(f"{self.url}/-/ready", timeout, proc=self.proc)
        except (TimeoutError, RuntimeError) as e:
            self.stop()
            raise RuntimeError(f"prometheus did not become ready: {e}\n{self.log_tail()}") from e
        return self

    def reload(self, config: str | None = None) -> None:
        """Writes a new config (when given) and asks the running server to reload it."""
        if config is not None:
            self.config = config
            _proc.write_atomic(self.config_path, config, 0o600)
        r = httpx.post(f"{self.url}/-/reload", timeout=10)
        r.raise_for_status()

    def stop(self) -> None:
        with self._lock:
            proc, self.proc = self.proc, None
        if proc is not None:
            _proc.stop(proc, timeout=10)

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; returns ``data.result`` (raises on an API error)."""
        params: dict[str, str] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        r = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        body = r.json()
        if r.status_code != 200 or body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body}")
        return list(body["data"]["result"])

    def targets(self) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/api/v1/targets", timeout=10)
        r.raise_for_status()
        return list(r.json()["data"]["activeTargets"])

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m incident_demo.prometheus --target 127.0.0.1:9000 --api-key-file F``."""
    p = argparse.ArgumentParser(
        prog="python -m incident_demo.prometheus",
        description="Run a local Prometheus scraping the dashboard.",
    )
    p.add_argument("--target", default="127.0.0.1:9000", help="dashboard host:port")
    p.add_argument("--api-key-file", help="file holding the dashboard API key")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--scrape-interval", default="5s")
    p.add_argument("--workdir", help="config and TSDB directory (default: a temp dir)")
    a = p.parse_args(argv)
    cfg = render_scrape_config(
        a.target,
        scrape_interval=a.scrape_interval,
        credentials_file=os.path.abspath(a.api_key_file) if a.api_key_file else None,
    )
    server = PrometheusServer(cfg, port=a.port, workdir=a.workdir)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"prometheus ready at {server.url} (config {server.config_path})", flush=True)
    try:
        while not stop.is_set():
            if server.proc is None or server.proc.poll() is not None:
                print(f"prometheus exited\n{server.log_tail()}", file=sys.stderr)
                return 1
            stop.wait(1)
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
