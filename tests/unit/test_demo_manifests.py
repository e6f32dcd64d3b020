"""The demo stack's manifests (manifests/demo) against the rules of the machines it runs on,
and against the ports the demo code uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from incident_demo.stack import NAMESPACE, PORTS, WORKLOADS

DEMO = Path(__file__).resolve().parents[2] / "manifests" / "demo"


def documents() -> list[dict[str, Any]]:
    listed = yaml.safe_load((DEMO / "kustomization.yaml").read_text())
    docs = []
    for name in listed["resources"]:
        docs += [d for d in yaml.safe_load_all((DEMO / name).read_text()) if d]
    return docs


def pod_specs() -> dict[str, dict[str, Any]]:
    specs = {}
    for doc in documents():
        if doc["kind"] in ("Deployment", "StatefulSet"):
            specs[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]
        if doc["kind"] == "CronJob":
            specs[doc["metadata"]["name"]] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return specs


def test_the_kustomization_is_the_namespace_the_code_uses() -> None:
    kustomization = yaml.safe_load((DEMO / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == NAMESPACE
    runbooks = yaml.safe_load((DEMO / "runbooks" / "kustomization.yaml").read_text())
    assert runbooks["namespace"] == NAMESPACE


def test_every_workload_the_code_drives_is_there() -> None:
    found = {(d["kind"].lower(), d["metadata"]["name"]) for d in documents()}
    for kind, name, _ in WORKLOADS.values():
        assert (kind, name) in found


def test_no_secret_values_are_committed() -> None:
    assert not [d for d in documents() if d["kind"] == "Secret"]


def test_pods_use_the_host_network_the_images_built_here_and_loopback_probes() -> None:
    for name, spec in pod_specs().items():
        assert spec.get("hostNetwork") is True, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert container["image"].startswith("localhost/"), (name, container["name"])
            assert container["imagePullPolicy"] == "Never", (name, container["name"])
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in container:
                    check = container[probe].get("httpGet") or container[probe].get("tcpSocket")
                    assert check["host"] == "127.0.0.1", (name, probe)


def test_fixed_host_ports_match_the_code() -> None:
    """Each server's port in its manifest is the one incident_demo.stack.PORTS names, and
    Deployments on a fixed host port replace their pods old-first."""
    text = {path.name: path.read_text() for path in DEMO.glob("*.y*ml")}
    assert '"15432"' in text["postgres.yaml"]
    assert '"16379"' in text["redis.yaml"]
    assert '"19000"' in text["dashboard.yaml"]
    assert "127.0.0.1:19090" in text["prometheus.yaml"]
    assert "127.0.0.1:19000" in text["prometheus.yml"]
    assert PORTS == {"dashboard": 19000, "postgres": 15432, "redis": 16379, "prometheus": 19090}
    for doc in documents():
        if doc["kind"] == "Deployment":
            assert doc["spec"]["strategy"] == {"type": "Recreate"}, doc["metadata"]["name"]


def test_crashed_servers_stay_down_until_restarted() -> None:
    """dashboard, postgres and redis run under run-server, and PostgreSQL's StatefulSet can
    replace a pod that is not Ready (a rollout restart of a crashed server)."""
    specs = pod_specs()
    for name in ("dashboard", "postgres", "redis"):
        container = specs[name]["containers"][0]
        assert container["command"][:2] == ["sh", "/demo/run-server"], name
    postgres = next(d for d in documents() if d["kind"] == "StatefulSet")
    assert postgres["spec"]["podManagementPolicy"] == "Parallel"
    assert (DEMO / "run-server").read_text().startswith("#!/bin/sh")
