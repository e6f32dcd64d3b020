"""Restarting the local cluster's kube-apiserver (hack/cluster-up.sh: ``kwokctl --runtime
binary``, every component a local process with a pid file), as an upgrade or a crash of the
control plane does. etcd, the controller-manager, the scheduler and the node keep running, so
the cluster is whole again once the new API server is ready."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.fixtures.cluster import eventually

from incident_demo.kube import Kubectl

STATE = Path(
    os.environ.get("INCIDENT_OPERATOR_STATE")
    or Path.home() / ".cache" / "incident-operator" / "run"
)
CLUSTER = os.environ.get("CLUSTER_NAME", "incident-operator")


def _kwokctl() -> str:
    kubectl = os.environ.get("KUBECTL", "")
    beside = Path(kubectl).parent / "kwokctl"
    if kubectl and beside.is_file():
        return str(beside)
    found = shutil.which("kwokctl")
    assert found, "kwokctl not found beside $KUBECTL nor on PATH (hack/build-k8s.sh builds it)"
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def _ready(kube: Kubectl) -> bool:
    done = kube.run("get", "--raw", "/readyz", "--request-timeout=5s", check=False, timeout=10)
    return done.returncode == 0 and done.stdout.strip() == "ok"


def _pid_file() -> Path:
    return STATE / "kwok" / "clusters" / CLUSTER / "pids" / "kube-apiserver.pid"


def apiserver_pid() -> int:
    return int(_pid_file().read_text().strip())


def restart_apiserver(kube: Kubectl) -> float:
    """SIGKILL to kube-apiserver (a crash; a SIGTERM makes it drain its watches for a minute
    or more), then ``kwokctl start cluster``, which starts the components that do not run;
    returns the seconds the API server was away."""
    pid = apiserver_pid()
    assert _running(pid), f"kube-apiserver (pid {pid}) is not running"
    down = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: not _running(pid), timeout=60, interval=0.05, what="kube-apiserver gone")
    # kwokctl counts a zombie as running and would start nothing (cluster-up.sh does this too).
    _pid_file().unlink()
    env = {**os.environ, "KWOK_WORKDIR": str(STATE / "kwok")}
    done = subprocess.run(
        [_kwokctl(), "start", "cluster", "--name", CLUSTER],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"kwokctl start cluster failed:\n{done.stdout}\n{done.stderr}"
    eventually(lambda: _ready(kube), timeout=120, what="the new kube-apiserver ready")
    assert apiserver_pid() != pid, "kwokctl did not start a new kube-apiserver"
    return time.monotonic() - down
