"""Operator throughput and memory on the real API server.

    .venv/bin/python bench/bench_triage.py [--incidents N] [--kubeconfig PATH]

Starts the operator as a process watching a fresh namespace, creates N Incidents at once, and
prints how long it took until every one was triaged (status.phase set), the rate, and the
operator's resident memory before and after (from /proc). Uses the local cluster by default
(hack/cluster-up.sh).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import kubernetes

GROUP, VERSION = "incidents.dev", "v1alpha1"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=100)
    parser.add_argument(
        "--kubeconfig",
        default=str(Path.home() / ".cache" / "incident-operator" / "run" / "kubeconfig"),
    )
    args = parser.parse_args()
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(args.kubeconfig, client_configuration=configuration)
    api = kubernetes.client.ApiClient(configuration)
    core, custom = kubernetes.client.CoreV1Api(api), kubernetes.client.CustomObjectsApi(api)
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    policy = Path(tempfile.mkdtemp()) / "policy.yaml"
    policy.write_text("{}\n")
    env = {
        **os.environ,
        "KUBECONFIG": args.kubeconfig,
        "INCIDENT_OPERATOR_POLICY": str(policy),
        "INCIDENT_OPERATOR_NAMESPACE": namespace,
        "INCIDENT_OPERATOR_RETRY_SECONDS": "10",
    }
    operator = subprocess.Popen(
        [sys.executable, "-m", "incident_operator", "run", "--standalone", "-n", namespace],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # start-up (login, CRD discovery) is not what this measures
        idle = rss_mib(operator.pid)
        started = time.monotonic()
        for i in range(args.incidents):
            custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "incidents",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Incident",
                    "metadata": {"name": f"inc-{i}"},
                    "spec": {
                        "service": "dashboard",
                        "summary": f"bench {i}",
                        "severity": 1 + i % 4,
                    },
                },
            )
        created = time.monotonic() - started
        deadline = started + 600
        while time.monotonic() < deadline:
            items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")[
                "items"
            ]
            done = sum(1 for item in items if (item.get("status") or {}).get("phase"))
            if done == args.incidents:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        print(
            f"created {args.incidents} incidents in {created:.1f}s; all triaged after "
            f"{elapsed:.1f}s ({args.incidents / elapsed:.1f} incidents/s)"
        )
        print(
            f"operator RSS: {idle:.0f} MiB idle, {rss_mib(operator.pid):.0f} MiB with "
            f"{args.incidents} incidents"
        )
    finally:
        operator.terminate()
        operator.wait(timeout=60)
        for item in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")[
            "items"
        ]:
            custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "incidents",
                item["metadata"]["name"],
                {"metadata": {"finalizers": None}},
            )
        core.delete_namespace(namespace)


if __name__ == "__main__":
    main()
