"""Unit tests of the data-plane bridge's pure parts and of the demo's process helpers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from incident_demo import _proc
from incident_demo import dataplane as dp
from incident_demo import prometheus as prom

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "demo"


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("incident-operator/dashboard:v1", "v1"),
        ("incident-operator/dashboard:v2-broken", "v2-broken"),
        ("registry.local:5000/dashboard:v3", "v3"),
        ("registry.local:5000/dashboard", "latest"),
        ("dashboard", "latest"),
        ("dashboard:v1@sha256:abc", "v1"),
        ("dashboard@sha256:abc", "sha256:abc"),
    ],
)
def test_image_tag(image: str, tag: str) -> None:
    assert dp.image_tag(image) == tag


def test_cri_line_format() -> None:
    ns = int(datetime(2026, 11, 27, 20, 0, 0, tzinfo=UTC).timestamp()) * 10**9 + 123
    assert (
        dp.cri_line("stdout", "hello", now_ns=ns)
        == "2026-11-27T20:00:00.000000123Z stdout F hello\n"
    )
    assert dp.cri_line("stderr", "part", partial=True, now_ns=ns).endswith(" stderr P part\n")


def test_parse_env_file() -> None:
    text = "# c\nPGHOST=127.0.0.1\nexport PGPORT=5433\nPGPASSWORD='a=b'\n\nJUNK\n"
    assert dp.parse_env_file(text) == {"PGHOST": "127.0.0.1", "PGPORT": "5433", "PGPASSWORD": "a=b"}


def view(
    name: str,
    created: float,
    *,
    app: str = "dashboard",
    phase: str = "Running",
    deleting: bool = False,
    rs: str = "",
) -> dp.PodView:
    return dp.PodView(
        name=name,
        uid=f"uid-{name}",
        app=app,
        phase=phase,
        created=created,
        deleting=deleting,
        owner_rs=rs,
    )


def test_newest_running_pod_wins() -> None:
    pods = [
        view("old", 10),
        view("new", 20),
        view("pending", 30, phase="Pending"),
        view("leaving", 40, deleting=True),
        view("other-app", 50, app="redis"),
    ]
    chosen = dp.newest_running(pods, "dashboard")
    assert chosen is not None and chosen.name == "new"
    assert dp.newest_running(pods, "prometheus") is None
    # Same creation second: the higher Deployment revision (the rollback target) wins, and the
    # revision is only looked up for such ties.
    revisions = {"rs-a": 5, "rs-b": 4}
    asked: list[str] = []

    def revision(p: dp.PodView) -> int:
        asked.append(p.name)
        return revisions[p.owner_rs]

    tie = [view("b-pod", 10, rs="rs-b"), view("a-pod", 10, rs="rs-a"), view("c", 9, rs="rs-b")]
    chosen = dp.newest_running(tie, "dashboard", revision)
    assert chosen is not None and chosen.name == "a-pod"
    assert sorted(asked) == ["a-pod", "b-pod"]
    asked.clear()
    assert dp.newest_running(pods, "dashboard", revision) == view("new", 20)
    assert asked == []


def test_pod_view_of_a_client_pod() -> None:
    pod = SimpleNamespace(
        metadata=SimpleNamespace(
            name="dashboard-abc",
            uid="u1",
            labels={"app": "dashboard"},
            creation_timestamp=datetime(2026, 1, 1, tzinfo=UTC),
            deletion_timestamp=None,
            owner_references=[SimpleNamespace(kind="ReplicaSet", name="dashboard-rs")],
        ),
        spec=SimpleNamespace(
            containers=[
                SimpleNamespace(name="sidecar", image="busybox"),
                SimpleNamespace(name="dashboard", image="incident-operator/dashboard:v2-broken"),
            ]
        ),
        status=SimpleNamespace(phase="Running"),
    )
    v = dp.pod_view(pod)
    assert v is not None
    assert (v.name, v.app, v.container, v.image, v.owner_rs, v.serving) == (
        "dashboard-abc",
        "dashboard",
        "dashboard",
        "incident-operator/dashboard:v2-broken",
        "dashboard-rs",
        True,
    )
    pod.metadata.labels = {}
    assert dp.pod_view(pod) is None


def test_cri_log_pump_and_long_lines(tmp_path: Path) -> None:
    sink = dp.CriLog(tmp_path / "p.log")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; print('out'); print('err', file=sys.stderr); print('x' * 20000)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    threads = [sink.pump("stdout", proc.stdout), sink.pump("stderr", proc.stderr)]
    proc.wait(10)
    for t in threads:
        t.join(5)
    sink.close()
    lines = (tmp_path / "p.log").read_text().splitlines()
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [FP] ")
    assert all(pattern.match(line) for line in lines)
    assert any(line.endswith("stdout F out") for line in lines)
    assert any(line.endswith("stderr F err") for line in lines)
    assert sum(" stdout P " in line for line in lines) == 1  # 20000 chars > 16 KiB


def test_spawned_child_dies_with_its_parent(tmp_path: Path) -> None:
    """The PR_SET_PDEATHSIG shim: SIGKILL the parent, the grandchild goes too."""
    pidfile = tmp_path / "child.pid"
    parent_code = (
        "import sys, time\n"
        "from incident_demo import _proc\n"
        f"p = _proc.spawn([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        deadline = time.monotonic() + 15
        while not (pidfile.exists() and pidfile.read_text()):
            assert time.monotonic() < deadline, "child never started"
            time.sleep(0.05)
        child = int(pidfile.read_text())
        os.kill(child, 0)
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, f"child {child} outlived its parent"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_stop_kills_the_process_group() -> None:
    p = _proc.spawn(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
        ]
    )
    time.sleep(0.3)
    t0 = time.monotonic()
    code = _proc.stop(p, timeout=0.5)
    assert code == -signal.SIGKILL
    assert time.monotonic() - t0 < 5


def test_render_scrape_config() -> None:
    text = prom.render_scrape_config(
        "127.0.0.1:9000", credentials_file="/k", labels={"namespace": "demo"}
    )
    cfg = yaml.safe_load(text)
    assert cfg["global"]["scrape_interval"] == "1s"
    job = cfg["scrape_configs"][0]
    assert job["job_name"] == "dashboard"
    assert job["scrape_timeout"] == "1s"
    assert job["static_configs"] == [
        {"targets": ["127.0.0.1:9000"], "labels": {"namespace": "demo"}}
    ]
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "/k"}
    inline = yaml.safe_load(
        prom.render_scrape_config(["a:1", "b:2"], api_key="s", scrape_interval="5s")
    )
    assert inline["scrape_configs"][0]["authorization"]["credentials"] == "s"
    assert "labels" not in inline["scrape_configs"][0]["static_configs"][0]
    with pytest.raises(ValueError):
        prom.render_scrape_config("x:1", api_key="a", credentials_file="b")


def test_manifests_are_consistent() -> None:
    docs = [
        doc
        for path in sorted(MANIFESTS.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    by_kind = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    for want in [
        ("Namespace", "demo"),
        ("Deployment", "dashboard"),
        ("StatefulSet", "postgres"),
        ("Deployment", "redis"),
        ("Deployment", "prometheus"),
        ("ConfigMap", "prometheus-config"),
        ("Secret", "dashboard-api-key"),
        ("Service", "dashboard"),
        ("Service", "postgres"),
        ("Service", "redis"),
        ("Service", "prometheus"),
    ]:
        assert want in by_kind, want
    assert all(
        doc["metadata"].get("namespace") == "demo" for doc in docs if doc["kind"] != "Namespace"
    )
    dash = next(
        doc
        for doc in docs
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "dashboard"
    )
    pod = dash["spec"]["template"]
    assert pod["metadata"]["labels"]["app"] == "dashboard"
    c = pod["spec"]["containers"][0]
    assert c["image"] == "incident-operator/dashboard:v1"
    assert c["ports"][0]["containerPort"] == 9000
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    api_key = next(e for e in c["env"] if e["name"] == "API_KEY")
    assert api_key["valueFrom"]["secretKeyRef"]["name"] == "dashboard-api-key"
    assert dash["spec"]["replicas"] == 1
    # Schedulable on kwok nodes (label type=kwok, the usual kwok taint) and elsewhere (kind).
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            spec = doc["spec"]["template"]["spec"]
            assert "nodeSelector" not in spec, doc["metadata"]["name"]
            assert {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"} in (
                spec["tolerations"]
            )
    cm = next(doc for doc in docs if doc["kind"] == "ConfigMap")
    scrape = yaml.safe_load(cm["data"]["prometheus.yml"])
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == [
        "dashboard.demo.svc:9000"
    ]
    assert (MANIFESTS / "Dockerfile.dashboard").is_file()
