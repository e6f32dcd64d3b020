"""An alert storm through the real Alertmanager: 5,000 alerts in 50 groups end in exactly
50 Incidents, and the operator (a separate process, so its memory is its own) stays bounded.
The time to the last Incident and the peak RSS are printed, not asserted."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from incident_demo import _proc
from tests.fixtures.alerting import alertmanager_bin, run_alertmanager
from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import LOOPBACK_TARGETS

pytestmark = pytest.mark.cluster
__all__ = ["alertmanager_bin"]
GROUPS, PER_GROUP = 50, 100
#: A bound far above what the operator needs, far below what one object per alert would take.
RSS_BOUND_MIB = 400


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Peak(threading.Thread):
    """Samples the process's RSS until stopped (VmHWM gives the kernel's own peak too)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            try:
                self.peak = max(self.peak, rss_kib(self.pid, "VmRSS"))
            except OSError:
                return


def storm() -> list[dict[str, Any]]:
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    return [
        {
            "labels": {
                "alertname": f"Storm{g:02d}",
                "service": f"svc-{g:02d}",
                "severity": "warning",
                "instance": f"host-{i:03d}:9100",
            },
            "annotations": {"summary": f"storm group {g}"},
            "startsAt": start,
        }
        for g in range(GROUPS)
        for i in range(PER_GROUP)
    ]


def count(objects: Objects) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = objects.custom.list_namespaced_custom_object(
        "incidents.dev", "v1alpha1", objects.namespace, "incidents"
    )["items"]
    return items


def test_a_storm_of_5000_alerts_in_50_groups_opens_50_incidents(
    objects: Objects,
    namespace: str,
    operator_identity: str,
    alertmanager_bin: Path,
    tmp_path: Path,
) -> None:
    port, token = _proc.free_port(), secrets.token_hex(16)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(LOOPBACK_TARGETS))
    env = {
        **os.environ,
        "INCIDENT_OPERATOR_POLICY": str(policy),
        "INCIDENT_OPERATOR_NAMESPACE": namespace,
        "INCIDENT_OPERATOR_WEBHOOK_HOST": "127.0.0.1",
        "INCIDENT_OPERATOR_WEBHOOK_PORT": str(port),
        "INCIDENT_OPERATOR_WEBHOOK_TOKEN": token,
    }
    log = tmp_path / "operator.log"
    with open(log, "wb") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "incident_operator", "run", "--standalone", "-n", namespace],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    peak = Peak(operator.pid)
    peak.start()
    url = f"http://127.0.0.1:{port}/alertmanager"
    try:
        _proc.wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc=operator)
        with run_alertmanager(
            alertmanager_bin, tmp_path / "am", url, token, group_by=("alertname",)
        ) as am:
            alerts = storm()
            started = time.monotonic()
            for chunk in range(0, len(alerts), 500):
                am.post_alerts(alerts[chunk : chunk + 500])
            eventually(lambda: len(count(objects)) >= GROUPS, timeout=240, what="50 Incidents")
            to_last = time.monotonic() - started
            recorded = eventually(
                lambda: (
                    (items := count(objects))
                    and all(
                        (i.get("status") or {}).get("alerts", {}).get("total") == PER_GROUP
                        for i in items
                    )
                    and items
                ),
                timeout=240,
                what="every alert recorded in its group's Incident",
            )
            to_all = time.monotonic() - started
        hwm = rss_kib(operator.pid, "VmHWM")
    finally:
        peak.done.set()
        operator.terminate()
        try:
            operator.wait(timeout=20)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
    assert len(recorded) == GROUPS, "one Incident per group, no more"
    services = sorted(i["spec"]["service"] for i in recorded)
    assert services == [f"svc-{g:02d}" for g in range(GROUPS)]
    assert all(len(i["status"]["alerts"]["items"]) == 20 for i in recorded)  # bounded list
    notifications = sum(i["status"]["alerts"]["notifications"] for i in recorded)
    print(
        f"\nstorm: {GROUPS * PER_GROUP} alerts, {GROUPS} groups -> {len(recorded)} Incidents; "
        f"50th Incident after {to_last:.1f}s, every alert recorded after {to_all:.1f}s, "
        f"{notifications} notifications; operator peak RSS {max(peak.peak, hwm) / 1024:.0f} MiB"
    )
    assert max(peak.peak, hwm) / 1024 < RSS_BOUND_MIB, log.read_text()[-2000:]
