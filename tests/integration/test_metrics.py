"""The operator's /metrics, scraped by a real Prometheus (Debian's) and queried back."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from incident_demo import _proc
from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import operator_process

pytestmark = pytest.mark.cluster
PROMETHEUS = "/usr/bin/prometheus"


@pytest.fixture
def ops_port() -> int:
    return _proc.free_port()


@pytest.fixture
def prometheus(tmp_path: Path, ops_port: int) -> Iterator[str]:
    port = _proc.free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "incident-operator",
                "static_configs": [{"targets": [f"127.0.0.1:{ops_port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    server = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _proc.wait_http(f"{url}/-/ready", 60, proc=server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_prometheus_scrapes_the_operators_series(
    objects: Objects,
    operator_identity: str,
    namespace: str,
    tmp_path: Path,
    ops_port: int,
    prometheus: str,
) -> None:
    objects.create(
        "runbooks",
        {
            "kind": "Runbook",
            "metadata": {"name": "pause"},
            "spec": {
                "title": "A pause",
                "match": {"services": ["dashboard"]},
                "rto": {"mitigation": "5m"},
                "recovery": [{"name": "pause", "action": {"type": "wait", "duration": "10ms"}}],
            },
        },
    )
    with operator_process(namespace, tmp_path, "--ops-address", f"127.0.0.1:{ops_port}"):
        objects.create(
            "incidents",
            {
                "kind": "Incident",
                "metadata": {"name": "measured"},
                "spec": {
                    "service": "dashboard",
                    "summary": "down",
                    "severity": 2,
                    "acknowledgedBy": "alice",
                },
            },
        )
        eventually(
            lambda: objects.status("incidents", "measured").get("phase") == "Monitoring",
            what="the runbook to finish",
        )
        sample = eventually(
            lambda: (
                "incident_operator_step_runs_total{"
                in (t := httpx.get(f"http://127.0.0.1:{ops_port}/metrics", timeout=2).text)
                and t
            ),
            what="the step on /metrics",
        )
        checks = {
            'up{job="incident-operator"}': "1",
            "incident_operator_leader": "1",
            'incident_operator_open_incidents{severity="2",phase="Monitoring"}': "1",
            'incident_operator_time_to_acknowledge_seconds_count{severity="2"}': "1",
            'incident_operator_step_runs_total{action="wait",outcome="succeeded"}': "1",
        }
        for promql, expected in checks.items():
            eventually(
                lambda q=promql, e=expected: any(r["value"][1] == e for r in _query(prometheus, q)),
                timeout=30,
                what=f"{promql} == {expected} in Prometheus",
            )
    assert "# TYPE incident_operator_time_to_recover_seconds histogram" in sample
