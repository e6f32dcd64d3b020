"""The demo data plane with real processes, no mocks.

* The dashboard (``python -m incident_demo.dashboard``) against the real PostgreSQL
  and Redis of hack/services-up.sh: stats, caching, health, fault injection, ERROR log lines,
  dependency outages and the circuit breaker.
* A real Prometheus (Debian package) scraping it; PromQL over its metrics.
* The data-plane bridge against the local cluster (hack/cluster-up.sh): the manifests of
  manifests/demo applied in a fresh namespace, a real process per dashboard pod, a bad deploy
  (``:v2-broken``), ``kubectl rollout undo``, a crash repaired by ``kubectl rollout restart``,
  ``kubectl logs`` and ``kubectl exec`` mapped to the local processes and servers.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import redis
import yaml

from incident_demo import _proc, dashboard, dataplane
from incident_demo import prometheus as prom

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests" / "demo"
T = TypeVar("T")

PG_KEYS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")


def poll(probe: Callable[[], T | None], timeout: float = 30, what: str = "condition") -> T:
    """Calls ``probe`` until it returns something truthy; AssertionErrors count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except (AssertionError, httpx.HTTPError, OSError) as e:
            last = e
        else:
            if last:
                return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(0.1)


def get(url: str, key: str | None = None, timeout: float = 5) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return httpx.get(url, headers=headers, timeout=timeout)


def metric(text: str, line_prefix: str) -> float:
    """Value of the first sample line starting with ``line_prefix`` (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- the dashboard against real PostgreSQL and Redis --------------------------------------------


@dataclass
class Dashboard:
    url: str
    key: str
    log: Path
    proc: subprocess.Popen[bytes]
    table: str

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def fault(self, **body: Any) -> httpx.Response:
        return httpx.post(
            f"{self.url}/admin/fault", json=body, headers={"X-API-Key": self.key}, timeout=5
        )


def _conninfo(env: dict[str, str]) -> str:
    return psycopg.conninfo.make_conninfo(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        password=env["PGPASSWORD"],
        dbname=env["PGDATABASE"],
    )


@pytest.fixture
def inventory_table(services_env: dict[str, str]) -> Iterator[str]:
    """A seeded ``<schema>.inventory`` of its own in ``retail`` (other tests share the db)."""
    schema = f"demo_t_{secrets.token_hex(4)}"
    table = f"{schema}.inventory"
    assert dashboard.init_inventory(_conninfo(services_env), table) == len(dashboard.SEED_ROWS)
    yield table
    with psycopg.connect(_conninfo(services_env), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())
    r = redis.Redis(host=services_env["REDIS_HOST"], port=int(services_env["REDIS_PORT"]))
    r.delete(dashboard.CACHE_KEY_PREFIX + table)
    r.close()


@pytest.fixture
def start_dashboard(
    services_env: dict[str, str], inventory_table: str, tmp_path: Path
) -> Iterator[Callable[..., Dashboard]]:
    started: list[Dashboard] = []

    def start(*args: str, **env_overrides: str) -> Dashboard:
        port = _proc.free_port()
        key = secrets.token_hex(16)
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        env.update({k: services_env[k] for k in (*PG_KEYS, "REDIS_HOST", "REDIS_PORT")})
        env.update(
            {
                "API_KEY": key,
                "PORT": str(port),
                "INVENTORY_TABLE": inventory_table,
                "CACHE_TTL_SECONDS": "30",
                "DEPENDENCY_TIMEOUT_SECONDS": "1",
                **env_overrides,
            }
        )
        log = tmp_path / f"dashboard-{port}.log"
        with open(log, "wb") as out:
            proc = _proc.spawn(
                [sys.executable, "-m", "incident_demo.dashboard", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        d = Dashboard(f"http://127.0.0.1:{port}", key, log, proc, inventory_table)
        started.append(d)
        try:
            # Any answer means it serves; the tests decide which one is right.
            _proc.wait_http(f"{d.url}/health", 30, ok=range(200, 600), proc=proc)
        except (TimeoutError, RuntimeError) as e:
            raise AssertionError(f"dashboard did not start: {e}\n{d.log_text()}") from e
        return d

    yield start
    for d in started:
        _proc.stop(d.proc)


@pytest.mark.services
def test_dashboard_serves_and_caches_inventory_stats(
    start_dashboard: Callable[..., Dashboard], services_env: dict[str, str]
) -> None:
    d = start_dashboard()
    health = get(f"{d.url}/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "healthy"
    assert health.json()["checks"] == {"postgres": "ok", "redis": "ok"}

    assert get(f"{d.url}/api/inventory/stats").status_code == 401
    assert get(f"{d.url}/metrics", key="wrong").status_code == 401

    first = get(f"{d.url}/api/inventory/stats", d.key)
    assert first.status_code == 200, first.text
    stats = first.json()
    assert stats["cache"] == "miss"
    assert stats["items"] == len(dashboard.SEED_ROWS)
    assert stats["totalQuantity"] == sum(r[2] for r in dashboard.SEED_ROWS)
    assert stats["outOfStock"] == 1
    second = get(f"{d.url}/api/inventory/stats", d.key)
    assert second.json()["cache"] == "hit"
    assert second.json()["items"] == stats["items"]

    r = redis.Redis(host=services_env["REDIS_HOST"], port=int(services_env["REDIS_PORT"]))
    ttl = r.ttl(dashboard.CACHE_KEY_PREFIX + d.table)
    r.close()
    assert 0 < int(str(ttl)) <= 30

    text = get(f"{d.url}/metrics", d.key).text
    assert metric(text, "cache_hits_total ") >= 1
    assert metric(text, "cache_misses_total ") >= 1
    assert 'dashboard_build_info{version="v1"} 1' in text
    assert (
        metric(text, 'http_requests_total{code="200",method="GET",path="/api/inventory/stats"') == 2
    )
    assert metric(text, 'http_requests_total{code="401",method="GET",path="/metrics"') == 1
    assert "http_request_duration_seconds_bucket{" in text
    breakers = get(f"{d.url}/api/circuit-breaker/status", d.key).json()["breakers"]
    assert breakers["postgres"]["state"] == breakers["redis"]["state"] == "closed"


@pytest.mark.services
def test_dashboard_survives_terminated_backends(
    start_dashboard: Callable[..., Dashboard], services_env: dict[str, str]
) -> None:
    """The Database runbook's pg_terminate_backend: the next request reconnects."""
    appname = f"dashboard-test-{secrets.token_hex(4)}"
    d = start_dashboard(PGAPPNAME=appname)
    assert get(f"{d.url}/api/inventory/stats", d.key).status_code == 200
    superuser = psycopg.conninfo.make_conninfo(
        _conninfo(services_env),
        user=services_env["PG_SUPERUSER"],
        password=services_env["PG_SUPERPASSWORD"],
    )
    with psycopg.connect(superuser, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (appname,),
        ).fetchone()
    assert killed is not None and killed[0] == 1
    health = get(f"{d.url}/health")
    assert health.status_code == 200, health.text


@pytest.mark.services
def test_fault_modes_fail_requests_and_log_errors(
    start_dashboard: Callable[..., Dashboard],
) -> None:
    d = start_dashboard()
    assert get(f"{d.url}/health").status_code == 200
    assert d.fault(mode="errors", rate=1).status_code == 200
    assert get(f"{d.url}/health").status_code == 500
    assert get(f"{d.url}/api/inventory/stats", d.key).status_code == 500
    # Each failed request is one "<time> ERROR ..." line on stdout.
    errors = poll(
        lambda: [line for line in d.log_text().splitlines() if " ERROR GET /health 500" in line],
        10,
        "an ERROR line for /health",
    )
    assert errors[0][:20].endswith("Z") and errors[0][4] == "-"
    assert "ERROR GET /api/inventory/stats 500" in d.log_text()

    assert d.fault(mode="latency", latencyMs=400, rate=1).status_code == 200
    t0 = time.perf_counter()
    assert get(f"{d.url}/health").status_code == 200
    assert time.perf_counter() - t0 >= 0.4

    assert d.fault(mode="none").status_code == 200
    assert get(f"{d.url}/health").status_code == 200

    # A crash ends the process; a restart comes back without the runtime fault.
    assert d.fault(mode="crash").status_code == 202
    assert d.proc.wait(10) == 1
    assert "ERROR injected crash" in d.log_text()


@pytest.mark.services
def test_broken_build_fails_until_replaced(start_dashboard: Callable[..., Dashboard]) -> None:
    broken = start_dashboard("--version", "v2-broken")
    r = get(f"{broken.url}/health")
    assert r.status_code == 500
    assert r.json()["version"] == "v2-broken"
    assert get(f"{broken.url}/api/inventory/stats", broken.key).status_code == 500
    text = get(f"{broken.url}/metrics", broken.key).text
    assert 'dashboard_build_info{version="v2-broken"} 1' in text
    assert "failed its startup self-check" in broken.log_text()
    good = start_dashboard(VERSION="v1")
    assert get(f"{good.url}/health").status_code == 200


@pytest.mark.services
def test_redis_outage_degrades_to_postgres_and_opens_the_breaker(
    start_dashboard: Callable[..., Dashboard],
) -> None:
    d = start_dashboard(REDIS_PORT=str(_proc.free_port()))
    health = get(f"{d.url}/health")
    assert health.status_code == 503
    assert health.json()["checks"] == {"postgres": "ok", "redis": "error"}
    assert health.json()["reason"].startswith("redis:")
    for _ in range(3):  # each lookup fails a read and a write: 6 failures > threshold 5
        r = get(f"{d.url}/api/inventory/stats", d.key)
        assert r.status_code == 200 and r.json()["cache"] == "miss"
    status = get(f"{d.url}/api/circuit-breaker/status", d.key).json()["breakers"]
    assert status["redis"]["state"] == "open"
    assert status["postgres"]["state"] == "closed"
    text = get(f"{d.url}/metrics", d.key).text
    assert metric(text, "cache_misses_total ") == 3
    assert 'circuit_breaker_open{dependency="redis"} 1' in text


@pytest.mark.services
def test_postgres_outage_fails_health_and_api(start_dashboard: Callable[..., Dashboard]) -> None:
    d = start_dashboard(PGPORT=str(_proc.free_port()))
    health = get(f"{d.url}/health")
    assert health.status_code == 503
    assert health.json()["checks"]["postgres"] == "error"
    assert get(f"{d.url}/api/inventory/stats", d.key).status_code == 503
    assert poll(lambda: "ERROR GET /api/inventory/stats 503" in d.log_text(), 10, "ERROR line")


# --- Prometheus ----------------------------------------------------------------------------------


def _need_prometheus() -> None:
    if prom.find_binary() is None:
        # A missing server is a broken set-up, not a reason to pass quietly.
        pytest.fail("no prometheus binary: apt-get install -y prometheus (hack/bootstrap.sh)")


def _value(result: list[dict[str, Any]]) -> float | None:
    return float(result[0]["value"][1]) if result else None


@pytest.mark.services
def test_prometheus_scrapes_the_dashboard(
    start_dashboard: Callable[..., Dashboard], tmp_path: Path
) -> None:
    _need_prometheus()
    d = start_dashboard()
    key_file = tmp_path / "api-key"
    key_file.write_text(d.key)
    key_file.chmod(0o600)
    config = prom.render_scrape_config(
        d.url.removeprefix("http://"), credentials_file=key_file, scrape_interval="1s"
    )
    with prom.PrometheusServer(config, workdir=tmp_path / "prom") as server:
        poll(
            lambda: _value(server.query('up{job="dashboard"}')) == 1,
            30,
            "the dashboard target to be up (scraped with the API key)",
        )
        assert _value(server.query('dashboard_build_info{version="v1"}')) == 1

        assert d.fault(mode="errors", rate=1).status_code == 200
        error_rate = 'sum(rate(http_requests_total{job="dashboard",code=~"5.."}[5s]))'

        def errors_visible() -> float | None:
            for _ in range(5):
                get(f"{d.url}/health")
            v = _value(server.query(error_rate))
            return v if v and v > 0 else None

        assert poll(errors_visible, 45, "a non-zero 5xx rate in Prometheus") > 0
        ratio = server.query(
            f'{error_rate} / sum(rate(http_requests_total{{job="dashboard",path="/health"}}[5s]))'
        )
        assert ratio and float(ratio[0]["value"][1]) > 0

        # High latency: p99 of /health from the histogram.
        assert d.fault(mode="latency", latencyMs=300, rate=1).status_code == 200
        p99 = (
            "histogram_quantile(0.99, sum by (le) (rate("
            'http_request_duration_seconds_bucket{job="dashboard",path="/health"}[3s])))'
        )

        def slow_visible() -> float | None:
            get(f"{d.url}/health")
            v = _value(server.query(p99))
            return v if v is not None and v >= 0.25 else None

        assert poll(slow_visible, 45, "p99 >= 250ms in Prometheus") >= 0.25


# --- the bridge against the local cluster --------------------------------------------------------


def _kubectl_binary() -> str:
    found = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if found:
        return found
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-k8s.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    return str(Path(out.stdout.strip().splitlines()[-1]) / "kubectl")


class Kubectl:
    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.binary = _kubectl_binary()
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--kubeconfig", self.kubeconfig, "-n", self.namespace, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed: {done.stderr}")
        return done


def demo_manifests(namespace: str, api_key: str, env: dict[str, str]) -> str:
    """manifests/demo/*.yaml moved to ``namespace``, with the real secrets filled in."""
    docs: list[dict[str, Any]] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if doc["kind"] == "Namespace":
                doc["metadata"]["name"] = namespace
            else:
                doc["metadata"]["namespace"] = namespace
            if doc["kind"] == "Secret" and doc["metadata"]["name"] == "dashboard-api-key":
                doc["stringData"]["api-key"] = api_key
            if doc["kind"] == "Secret" and doc["metadata"]["name"] == "postgres-credentials":
                doc["stringData"].update(
                    username=env["PGUSER"], password=env["PGPASSWORD"], database=env["PGDATABASE"]
                )
            docs.append(doc)
    return yaml.safe_dump_all(docs)


@dataclass
class Bridge:
    proc: subprocess.Popen[bytes]
    state_dir: Path
    namespace: str
    log: Path
    dashboard_port: int
    prometheus_port: int

    def state(self, app: str) -> dict[str, Any] | None:
        return dataplane.read_state(self.state_dir, self.namespace, app)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.mark.cluster
@pytest.mark.services
def test_bridge_follows_rollouts_and_rollbacks(
    kubeconfig: str, services_env: dict[str, str], tmp_path: Path
) -> None:
    namespace = f"demo-t-{secrets.token_hex(4)}"
    kc = Kubectl(kubeconfig, namespace)
    api_key = secrets.token_hex(16)
    kc("apply", "-f", "-", input=demo_manifests(namespace, api_key, services_env))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(kc, "delete", "namespace", namespace, "--wait=false", check=False)
        # The pod log files the bridge wrote (see hack/cluster-up.sh for the layout).
        logs = dataplane.state_root() / "logs" / namespace
        cleanup.callback(shutil.rmtree, logs, ignore_errors=True)
        bridge = _start_bridge(kubeconfig, namespace, tmp_path)
        cleanup.callback(_stop_bridge, bridge)
        try:
            _exercise_bridge(kc, bridge, api_key)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- bridge log ---\n{bridge.log_text()[-6000:]}") from e


def _start_bridge(kubeconfig: str, namespace: str, tmp_path: Path) -> Bridge:
    dash_port, prom_port = _proc.free_port(), _proc.free_port()
    state_dir = tmp_path / "state"
    log = tmp_path / "bridge.log"
    with open(log, "wb") as out:
        proc = _proc.spawn(
            [
                sys.executable,
                "-m",
                "incident_demo.dataplane",
                "--kubeconfig",
                kubeconfig,
                "--namespace",
                namespace,
                "--state-dir",
                str(state_dir),
                "--dashboard-port",
                str(dash_port),
                "--prometheus-port",
                str(prom_port),
                "--scrape-interval",
                "1s",
                "--debounce",
                "0.2",
            ],
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Bridge(proc, state_dir, namespace, log, dash_port, prom_port)


def _stop_bridge(bridge: Bridge) -> None:
    pids = [
        s["pid"]
        for app in ("dashboard", "prometheus")
        if (s := bridge.state(app)) is not None and s.get("pid")
    ]
    assert _proc.stop(bridge.proc, timeout=15) == 0, bridge.log_text()[-3000:]
    for pid in pids:  # no orphans: every local process went with the bridge
        poll(lambda p=pid: not _pid_alive(p), 10, f"pid {pid} to exit with the bridge")  # type: ignore[misc]
    states = [bridge.state(app) for app in ("dashboard", "prometheus")]
    assert all(s is None or s["status"] == "stopped" for s in states), states


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[-1][0] != "Z"
    except FileNotFoundError:
        return False


def _serving(bridge: Bridge, version: str, not_pid: int | None = None) -> dict[str, Any] | None:
    """The dashboard state once a process of ``version`` (a new one) runs and answers."""
    s = bridge.state("dashboard")
    if not s or s["status"] != "running" or s["version"] != version or s["pid"] == not_pid:
        return None
    r = get(f"{s['url']}/health")  # connection refused while it starts: poll() retries
    return s if r.json().get("version") == version else None


def _exercise_bridge(kc: Kubectl, bridge: Bridge, api_key: str) -> None:
    # 1. The v1 pod becomes a real local process answering /health.
    v1 = poll(lambda: _serving(bridge, "v1"), 60, "a v1 dashboard process")
    assert v1["port"] == bridge.dashboard_port
    assert v1["image"] == "incident-operator/dashboard:v1"
    url = v1["url"]

    def healthy() -> httpx.Response | None:
        r = get(f"{url}/health")
        return r if r.status_code == 200 else None

    assert poll(healthy, 30, "a healthy v1").json()["version"] == "v1"
    # It got API_KEY from the Secret (as the kubelet would have).
    assert get(f"{url}/metrics", api_key).status_code == 200
    assert get(f"{url}/metrics", "wrong").status_code == 401

    # kubectl logs shows the real process's stdout; kubectl exec reaches the real PostgreSQL.
    poll(
        lambda: "dashboard v1 listening" in kc("logs", f"pod/{v1['pod']}").stdout,
        30,
        "kubectl logs of the dashboard pod",
    )
    out = kc("exec", "postgres-0", "--", "psql", "-Atc", "SELECT 1", check=False)
    assert out.stdout.strip() == "1", out.stderr

    # The prometheus pod is a real Prometheus scraping the local dashboard.
    if prom.find_binary() is not None:
        p = poll(
            lambda: (s := bridge.state("prometheus")) and s["status"] == "running" and s,
            30,
            "the prometheus process",
        )

        def scraped() -> bool:
            r = httpx.get(
                f"{p['url']}/api/v1/query",
                params={"query": 'dashboard_build_info{job="dashboard"}'},
                timeout=5,
            )
            result = r.json()["data"]["result"]
            return bool(result) and result[0]["metric"]["version"] == "v1"

        poll(scraped, 60, "Prometheus to scrape dashboard_build_info")

    # 2. A bad deploy: new pod, new process, /health fails.
    kc("set", "image", "deployment/dashboard", "dashboard=incident-operator/dashboard:v2-broken")
    broken = poll(lambda: _serving(bridge, "v2-broken", v1["pid"]), 60, "the v2-broken process")
    assert broken["pod"] != v1["pod"]
    assert not _pid_alive(v1["pid"])
    assert get(f"{url}/health").status_code == 500
    poll(
        lambda: "ERROR GET /health 500" in kc("logs", "deployment/dashboard").stdout,
        30,
        "ERROR lines in kubectl logs",
    )

    # 3. The rollback brings a healthy v1 back.
    kc("rollout", "undo", "deployment/dashboard")
    back = poll(lambda: _serving(bridge, "v1", broken["pid"]), 60, "v1 again after the undo")
    assert get(f"{url}/health").status_code == 200
    assert not _pid_alive(broken["pid"])

    # 4. A crash leaves the service down (the fake pod stays Running) until a rollout restart.
    r = httpx.post(
        f"{url}/admin/fault", json={"mode": "crash"}, headers={"X-API-Key": api_key}, timeout=5
    )
    assert r.status_code == 202
    crashed = poll(
        lambda: (s := bridge.state("dashboard")) and s["status"] == "exited" and s,
        30,
        "the state file to record the crash",
    )
    assert crashed["exitCode"] == 1
    with pytest.raises(httpx.HTTPError):
        get(f"{url}/health")
    kc("rollout", "restart", "deployment/dashboard")
    restarted = poll(lambda: _serving(bridge, "v1", back["pid"]), 60, "v1 after the restart")
    assert restarted["pod"] != back["pod"]
    assert get(f"{url}/health").status_code == 200
    assert json.loads(Path(bridge.state_dir / bridge.namespace / "bridge.json").read_text())[
        "ready"
    ]
