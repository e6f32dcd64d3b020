"""Runbook overhead: the dashboard restart as a Runbook against the same commands by hand.

    .venv/bin/python bench/bench_runbook_overhead.py [--rounds 3]

Needs the demo stack on the real node (manifests/demo; the same set-up as e2e/conftest.py:
the operator installed by ``kubectl apply -k manifests/overlays/local``, the stack's Secrets,
a healthy baseline) and holds it exclusively, as the e2e tests do.

Both sides restart the healthy dashboard Deployment, wait for the rollout, and check
``/health`` (host network, 127.0.0.1:19000), retrying once a second until it answers 200:
- runbook: a Runbook with the playbook's restart steps only (``restartWorkload``, which waits
  for the rollout, then ``httpCheck /health``), run by the installed operator for a new
  Incident; timed from the create request to the check step's ``finishedAt`` in status;
- plain: ``kubectl rollout restart``, ``kubectl rollout status``, ``curl`` in a loop.
Rounds alternate, the safety gate's history is cleared before each, and the medians are
compared. Target: runbook / plain <= 1.2.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import harness as h

from incident_demo.incidents import Incidents
from incident_demo.kube import Kubectl
from incident_demo.stack import COMMANDER, NAMESPACE, ONCALL, PORTS, Stack

RUNBOOK = "bench-dashboard-restart"
HEALTH = f"http://127.0.0.1:{PORTS['dashboard']}/health"


def runbook() -> dict[str, Any]:
    return {
        "apiVersion": "incidents.dev/v1alpha1",
        "kind": "Runbook",
        "metadata": {"name": RUNBOOK, "namespace": NAMESPACE},
        "spec": {
            "title": "Dashboard restart (bench)",
            "severity": 2,
            "serviceAccountName": "incident-runbook",
            "match": {"services": ["bench-dashboard"]},
            "rto": {"mitigation": "5m"},
            "targets": {"http": {"baseUrl": f"http://127.0.0.1:{PORTS['dashboard']}"}},
            "diagnosis": [],
            "recovery": [
                {
                    "name": "restart",
                    "action": {"type": "restartWorkload", "workload": {"name": "dashboard"}},
                    "timeout": "5m",
                },
                {
                    "name": "verify",
                    "action": {"type": "httpCheck", "path": "/health", "expectStatus": 200},
                    "retries": 10,
                    "backoff": "1s",
                },
            ],
            "safety": {"cooldown": "1s", "maxAttemptsPerTarget": 20},
        },
    }


def by_runbook(stack: Stack, incidents: Incidents) -> float:
    name = f"bench-restart-{uuid.uuid4().hex[:6]}"
    spec = {
        "service": "bench-dashboard",
        "summary": "Dashboard restart (bench)",
        "severity": 2,
        "acknowledgedBy": ONCALL,
        "roles": {"incidentCommander": COMMANDER, "technicalLead": ONCALL},
    }
    started = time.time()
    incidents.open(name, spec, ONCALL, {"incidents.dev/bench": "true"})

    def verified() -> dict[str, Any] | None:
        step = incidents.steps(name).get("verify") or {}
        return step if step.get("phase") in ("Succeeded", "Failed") else None

    step = h.until(verified, 600, "the runbook's verify step")
    if step["phase"] != "Succeeded":
        raise RuntimeError(incidents.explain(name))
    return h.parse_time(step["finishedAt"]) - started


def by_hand(kube: Kubectl) -> float:
    script = (
        f'set -e; k() {{ {" ".join(kube.command())} -n {NAMESPACE} "$@"; }}; '
        "k rollout restart deployment/dashboard >/dev/null; "
        "k rollout status deployment/dashboard --timeout=300s >/dev/null; "
        f"for i in $(seq 30); do curl -sf -m 2 -o /dev/null {HEALTH} && exit 0; sleep 1; done; "
        "exit 1"
    )
    started = time.time()
    subprocess.run(["bash", "-c", script], check=True, timeout=600)
    return time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    h.header("bench_runbook_overhead.py", sys.argv[1:])
    kube = Kubectl(h.ADMIN_KUBECONFIG, h.kubectl_binary())
    stack = Stack(kube)
    incidents = Incidents(kube, NAMESPACE)
    times: dict[str, list[float]] = {"runbook": [], "plain": []}
    with stack.exclusive():
        stack.install_operator()
        stack.ensure_secrets()
        stack.heal(timeout=300)
        stack.apply_docs([runbook()])
        stack.wait_runbooks_checked([RUNBOOK])
        try:
            for i in range(args.rounds):
                for side in ("runbook", "plain") if i % 2 == 0 else ("plain", "runbook"):
                    stack.forget_remediations()
                    stack.heal()
                    seconds = by_runbook(stack, incidents) if side == "runbook" else by_hand(kube)
                    times[side].append(seconds)
                    print(f"round {i + 1} {side}: {seconds:.1f}s ({h.load()})", flush=True)
        finally:
            incidents.delete("incidents.dev/bench=true")
            kube.run(
                "-n", NAMESPACE, "delete", "runbook", RUNBOOK, "--ignore-not-found", check=False
            )
    runbook_s, plain_s = statistics.median(times["runbook"]), statistics.median(times["plain"])
    ratio = h.ratio(runbook_s, plain_s)
    h.row("figure", "value", "floor", "ratio", "target")
    h.row("---", "---", "---", "---", "---")
    h.row(
        "dashboard restart + rollout + /health, median s",
        f"{runbook_s:.1f} (runbook)",
        f"{plain_s:.1f} (kubectl + curl)",
        f"{ratio:.2f}",
        f"<= 1.2: {'met' if ratio <= 1.2 else 'missed'}",
    )


if __name__ == "__main__":
    main()
